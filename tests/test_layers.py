"""The architecture, checked: layers by folder, imports one way, no cycle, a pure core.

The layers, lowest first (``docs/design.md``, "Where things live"):

======== ============================================ =====
layer    folders and modules                          pure
======== ============================================ =====
loader   ``overlay/compiled.py``, ``collector.py``      no
protocol ``overlay/protocol/``                        yes
search   ``search/``                                  yes
core     ``overlay/core/``, ``bootstrap/hostcache.py`` yes
sim      ``overlay/sim/``                             no
net      ``overlay/net/``, ``bootstrap/server.py``    no
tools    ``overlay/tools/``                           no
======== ============================================ =====

A module may import its own layer and the layers below it; ``sim`` and ``net`` are
two runtimes of one rank and import neither each other nor ``tools``.  A package root
imports nothing of the project but the loader, which decides (before any layer is
imported) whether the compiled build of the core runs, and imports no layer itself.  Every import
counts, ``TYPE_CHECKING`` and function-local ones included: a cycle hidden from the
interpreter is still a cycle for whoever reads the code.  The pure layers import no
I/O, no clock and no module-level random functions; a seeded simulation with those
booby-trapped must still run.

Each check is also run on an injected violation, so a check that silently stopped
checking would fail here too.
"""

from __future__ import annotations

import ast
import random
import time
from collections.abc import Iterator, Mapping
from pathlib import Path

import networkx as nx
import pytest

from overlay.sim.simulator import Simulator

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("overlay", "search", "bootstrap")

LOADER = "overlay.compiled"
COLLECTOR = "overlay.collector"
LAYERS: Mapping[str, tuple[str, ...]] = {
    "loader": (LOADER, COLLECTOR),
    "protocol": ("overlay.protocol",),
    "search": ("search",),
    "core": ("overlay.core", "bootstrap.hostcache"),
    "sim": ("overlay.sim",),
    "net": ("overlay.net", "bootstrap.server"),
    "tools": ("overlay.tools",),
}
RANK: Mapping[str, int] = {
    "loader": -1, "protocol": 0, "search": 1, "core": 2, "sim": 3, "net": 3, "tools": 4,
}  # fmt: skip
PURE_LAYERS = frozenset({"protocol", "search", "core"})
FORBIDDEN_IMPORTS = frozenset(
    {
        "trio", "socket", "time", "os", "asyncio", "threading", "selectors", "subprocess",
        "datetime", "multiprocessing", "signal",
    }
)  # fmt: skip


def project_modules(root: Path) -> dict[str, Path]:
    """Every module of the three packages under ``root``, by dotted name."""
    modules: dict[str, Path] = {}
    for package in PACKAGES:
        for path in sorted((root / package).rglob("*.py")):
            parts = path.relative_to(root).with_suffix("").parts
            if parts[-1] == "__init__":
                parts = parts[:-1]
            modules[".".join(parts)] = path
    return modules


def _resolve(name: str, modules: Mapping[str, Path]) -> str | None:
    """The project module that importing ``name`` runs: itself, or its closest package."""
    while name:
        if name in modules:
            return name
        name = name.rpartition(".")[0]
    return None


def imported_names(module: str, path: Path, is_package: bool) -> Iterator[str]:
    """Every dotted name ``module`` imports, anywhere in its source (a ``from a import b``
    yields ``a.b`` and ``a``: ``b`` may be a module or a name defined in ``a``)."""
    tree = ast.parse(path.read_text(), filename=str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                package = module if is_package else module.rpartition(".")[0]
                for _ in range(node.level - 1):
                    package = package.rpartition(".")[0]
                base = f"{package}.{base}" if base else package
            yield base
            for alias in node.names:
                yield f"{base}.{alias.name}"


def import_graph(root: Path) -> nx.DiGraph:
    """Modules as nodes, "imports" as edges, among the project's own modules."""
    modules = project_modules(root)
    graph = nx.DiGraph()
    graph.add_nodes_from(modules)
    for module, path in modules.items():
        for name in imported_names(module, path, path.name == "__init__.py"):
            target = _resolve(name, modules)
            if target is not None and target != module:
                graph.add_edge(module, target)
    return graph


def layer_of(module: str) -> str | None:
    """The layer a module belongs to (None: a package's own ``__init__``)."""
    for layer, prefixes in LAYERS.items():
        if any(module == prefix or module.startswith(prefix + ".") for prefix in prefixes):
            return layer
    return None


def direction_violations(graph: nx.DiGraph) -> list[str]:
    """Each import that goes up or sideways between layers, or out of a package root."""
    found = []
    for importer, imported in sorted(graph.edges):
        source, target = layer_of(importer), layer_of(imported)
        if source is None:
            if imported != LOADER:
                found.append(f"{importer} (a package root) imports {imported}")
        elif target is not None and target != source and RANK[target] >= RANK[source]:
            found.append(f"{importer} ({source}) imports {imported} ({target})")
    return found


def import_cycles(graph: nx.DiGraph) -> list[list[str]]:
    """The groups of modules that import each other, directly or round a loop."""
    return sorted(
        sorted(group) for group in nx.strongly_connected_components(graph) if len(group) > 1
    )


def impurities(source: str) -> list[str]:
    """What a pure module must not do: import I/O or a clock, or use global randomness."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found += [
                f"imports {alias.name}"
                for alias in node.names
                if alias.name.split(".")[0] in FORBIDDEN_IMPORTS
            ]
        elif isinstance(node, ast.ImportFrom) and not node.level:
            top = (node.module or "").split(".")[0]
            if top in FORBIDDEN_IMPORTS:
                found.append(f"imports from {node.module}")
            elif top == "random":
                found += [
                    f"imports random.{alias.name}" for alias in node.names if alias.name != "Random"
                ]
        elif (
            isinstance(node, ast.Attribute)
            and isinstance(node.value, ast.Name)
            and node.value.id == "random"
            and node.attr != "Random"
        ):
            found.append(f"uses random.{node.attr}")
    return found


# ---------------------------------------------------------------------- the project


def test_every_module_belongs_to_a_layer() -> None:
    loose = [m for m in project_modules(ROOT) if layer_of(m) is None and m not in PACKAGES]
    assert loose == []


def test_overlay_top_level_holds_no_more_than_a_dozen_modules() -> None:
    modules = sorted(path.name for path in (ROOT / "overlay").glob("*.py"))
    assert len(modules) <= 12, modules


def test_no_layer_imports_a_higher_one() -> None:
    assert direction_violations(import_graph(ROOT)) == []


def test_no_import_cycle_among_the_project_modules() -> None:
    assert import_cycles(import_graph(ROOT)) == []


def pure_modules() -> list[Path]:
    return [
        path for module, path in project_modules(ROOT).items() if layer_of(module) in PURE_LAYERS
    ]


@pytest.mark.parametrize("path", pure_modules(), ids=lambda p: str(p.relative_to(ROOT)))
def test_pure_layers_import_no_io_and_use_no_global_random(path: Path) -> None:
    assert impurities(path.read_text()) == []


def test_the_pure_layers_are_the_whole_core() -> None:
    pure = {str(path.relative_to(ROOT)) for path in pure_modules()}
    for expected in (
        "overlay/core/peer.py",
        "overlay/core/membership.py",
        "overlay/protocol/messages.py",
        "overlay/protocol/wire.py",
        "search/flood.py",
        "bootstrap/hostcache.py",
    ):
        assert expected in pure
    assert "overlay/net/node.py" not in pure
    assert "bootstrap/server.py" not in pure


def test_a_simulated_run_needs_no_global_random_and_no_clock(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def trap(*_args: object, **_kwargs: object) -> None:
        raise AssertionError("the core touched global randomness or a clock")

    for name in (
        "random", "randrange", "randint", "choice", "choices", "sample", "shuffle",
        "getrandbits", "uniform", "seed",
    ):  # fmt: skip
        monkeypatch.setattr(random, name, trap)
    for name in ("time", "monotonic", "perf_counter", "sleep", "time_ns"):
        monkeypatch.setattr(time, name, trap)
    sim = Simulator(seed=3)
    for _ in range(30):
        sim.add_peer()
    sim.run_until(20.0)
    assert sum(1 for p in sim.peers.values() if p.membership.active) == 30


# ---------------------------------------------------------------------- the checks check


def test_the_direction_check_catches_an_injected_upward_or_sideways_import() -> None:
    graph = import_graph(ROOT)
    graph.add_edge("overlay.core.peer", "overlay.net.node")  # core -> net: upward
    graph.add_edge("overlay.sim.simulator", "overlay.net.node")  # sim -> net: sideways
    graph.add_edge("search.flood", "overlay.core.membership")  # search -> core: upward
    graph.add_edge("overlay", "overlay.protocol.effects")  # a package root -> a layer
    graph.add_edge(LOADER, "overlay.protocol.effects")  # the loader -> a layer: upward
    assert direction_violations(graph) == [
        "overlay (a package root) imports overlay.protocol.effects",
        "overlay.compiled (loader) imports overlay.protocol.effects (protocol)",
        "overlay.core.peer (core) imports overlay.net.node (net)",
        "overlay.sim.simulator (sim) imports overlay.net.node (net)",
        "search.flood (search) imports overlay.core.membership (core)",
    ]


def _write(root: Path, relative: str, source: str) -> None:
    path = root / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(source)


def test_the_graph_sees_type_checking_and_function_local_imports(tmp_path: Path) -> None:
    for package in ("overlay", "overlay/core", "overlay/net", "search", "bootstrap"):
        _write(tmp_path, f"{package}/__init__.py", "")
    _write(
        tmp_path,
        "overlay/core/a.py",
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from overlay.core.b import B\n",
    )
    _write(tmp_path, "overlay/core/b.py", "def f():\n    from overlay.core import a\n")
    _write(tmp_path, "overlay/net/c.py", "from . import d\n")
    _write(tmp_path, "overlay/net/d.py", "import overlay.core.a\n")
    graph = import_graph(tmp_path)
    assert import_cycles(graph) == [["overlay.core.a", "overlay.core.b"]]
    assert graph.has_edge("overlay.net.c", "overlay.net.d")  # relative import resolved
    assert graph.has_edge("overlay.net.d", "overlay.core.a")
    assert direction_violations(graph) == []


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("import trio\n", ["imports trio"]),
        ("import os.path\n", ["imports os.path"]),
        ("from time import monotonic\n", ["imports from time"]),
        ("from random import choice, Random\n", ["imports random.choice"]),
        ("import random\nx = random.random()\n", ["uses random.random"]),
        ("import random\nrng = random.Random(1)\nx = rng.random()\n", []),
        ("from random import Random\n", []),
    ],
)
def test_the_purity_check_catches_injected_io_and_global_random(
    source: str, expected: list[str]
) -> None:
    assert impurities(source) == expected
