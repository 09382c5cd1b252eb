"""The protocol core is pure: no I/O, no clock, no global random.

Checked twice: statically (what the core modules import and call) and
dynamically (a simulated run with the global random functions and the clocks
booby-trapped must still work).
"""

from __future__ import annotations

import ast
import random
import time
from pathlib import Path

import pytest

from overlay.sim.simulator import Simulator

ROOT = Path(__file__).resolve().parents[2]
RUNTIME_MODULES = {"wire.py", "node.py", "swarm.py", "view.py", "cli.py", "sim.py", "scenario.py"}
FORBIDDEN_IMPORTS = {
    "trio", "socket", "time", "asyncio", "threading", "selectors", "subprocess",
    "datetime", "os", "multiprocessing", "signal",
}  # fmt: skip


def core_modules() -> list[Path]:
    modules = [
        ROOT / "overlay" / name
        for name in (
            "peer.py", "membership.py", "messages.py", "identity.py", "config.py",
            "effects.py", "validate.py", "errors.py", "election.py", "attachment.py",
            "standing.py", "admission.py",
        )
    ]  # fmt: skip
    modules.append(ROOT / "bootstrap" / "hostcache.py")
    modules += [
        path
        for path in sorted((ROOT / "search").glob("*.py"))
        if path.name not in RUNTIME_MODULES and not path.name.startswith(("cli", "client"))
    ]
    return modules


@pytest.mark.parametrize("path", core_modules(), ids=lambda p: f"{p.parent.name}/{p.name}")
def test_core_module_imports_no_io_and_uses_no_global_random(path: Path) -> None:
    tree = ast.parse(path.read_text(), filename=str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                assert alias.name.split(".")[0] not in FORBIDDEN_IMPORTS, (
                    f"{path.name} imports {alias.name}"
                )
        elif isinstance(node, ast.ImportFrom):
            module = (node.module or "").split(".")[0]
            assert module not in FORBIDDEN_IMPORTS, f"{path.name} imports from {node.module}"
            if module == "random":
                assert all(a.name == "Random" for a in node.names), (
                    f"{path.name} imports global random functions"
                )
        elif (
            isinstance(node, ast.Attribute)
            and isinstance(node.value, ast.Name)
            and node.value.id == "random"
        ):
            assert node.attr == "Random", f"{path.name} uses random.{node.attr}"


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
