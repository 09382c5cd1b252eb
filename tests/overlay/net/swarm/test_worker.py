"""``overlay swarm``'s worker process (:mod:`overlay.net.swarm.worker`): light on imports, and
its peers' capacities and items the same as before it had a module of its own.

Every worker pays for every module it imports in resident memory; networkx, rich and
matplotlib are only for the parent (summary, status line, view), so a worker that
loads them pays about 20 MB for nothing (issue #3: memory per peer at 1,000 peers).
The import checks run in a fresh interpreter: this test process has long since
imported everything.
"""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys

import pytest

from overlay.net.node import NodeConfig
from overlay.net.swarm.setup import (
    copies_for,
    peer_capacity,
    room_for_weak_peers,
    seed_plan,
    seeded_items,
    super_peer_config,
)
from overlay.net.swarm.worker import Seeding
from tests.conftest import REPO

PARENT_ONLY = ("networkx", "rich", "matplotlib", "overlay.tools.swarm", "overlay.sim.simulator")
"""Modules a worker must not load (``overlay.tools.swarm`` is the parent's module)."""

LOADED = """
import json, sys
loaded = sorted(
    name for name in sys.modules
    if name.split(".")[0] in {"networkx", "rich", "matplotlib"}
    or name in {"overlay.tools.swarm", "overlay.sim.simulator"}
)
print(json.dumps(loaded))
"""


def run_python(code: str) -> list[str]:
    """Run ``code`` in a fresh interpreter; the parent-only modules it loaded (its last
    output line), checking it succeeded."""
    done = subprocess.run(
        [sys.executable, "-c", code],
        cwd=str(REPO),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr.decode(errors="replace")
    loaded: list[str] = json.loads(done.stdout.splitlines()[-1])
    return loaded


def test_the_check_sees_what_the_parent_loads() -> None:
    """The parent's module does load them: the check below can fail."""
    loaded = run_python("import overlay.tools.swarm\n" + LOADED)
    assert {"networkx", "rich", "overlay.tools.swarm"} <= set(loaded)


def test_importing_the_worker_loads_no_parent_module() -> None:
    assert run_python("import overlay.net.swarm.worker\n" + LOADED) == []


def test_a_whole_worker_run_loads_no_parent_module() -> None:
    """Argument parsing, ``trio.run``, the ready and left records, the runtime options,
    the super-peer layer and the seeding: a worker with no peer (its standard input is
    empty, so it leaves at once) runs its whole life and loads none of them."""
    code = (
        "from overlay.net.swarm.worker import worker_main\n"
        "argv = ['--bootstrap', '127.0.0.1:9', '--count', '0', '--super-peers',\n"
        "        '--items', '3', '--total', '10', '--offset', '0']\n"
        "assert worker_main(argv) == 0\n" + LOADED
    )
    loaded = run_python(code)
    assert loaded == []


LAZY = ("tracemalloc", "pickle", "importlib.abc", "importlib.resources", "bootstrap.hostcache")
"""Modules the worker's own code loads only when asked for (the allocation tracer:
:mod:`tracemalloc`, which loads :mod:`pickle`; the bootstrap's limits) or not at all
(``importlib.abc``, which loads ``importlib.resources``, for the pure-Python finder's
base class).  None of trio, attrs, cattrs, cryptography, noise or msgpack loads them,
so a worker that does pays for them in resident memory (about 0.85 MB in all)."""


@pytest.mark.parametrize("pure", ["", "1"], ids=["as-built", "pure-python"])
def test_importing_the_worker_loads_no_lazy_module(pure: str) -> None:
    env = {name: value for name, value in os.environ.items() if name != "OVERLAY_PURE_PYTHON"}
    if pure:
        env["OVERLAY_PURE_PYTHON"] = pure
    done = subprocess.run(
        [sys.executable, "-c", "import overlay.net.swarm.worker, sys; print(sorted(sys.modules))"],
        cwd=str(REPO),
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    loaded = set(ast.literal_eval(done.stdout.splitlines()[-1]))
    assert "overlay.net.swarm.worker" in loaded
    assert sorted(loaded & set(LAZY)) == []


def test_capacities_and_items_are_as_before_the_move() -> None:
    """Same seeds, same capacities and items: the values are those of the functions when
    they lived in ``overlay.tools.swarm`` (and ``overlay.sim.scenario``)."""
    assert [peer_capacity(1, i) for i in range(12)] == [
        37,
        92,
        13,
        22,
        18,
        25,
        11,
        17,
        71,
        11,
        26,
        91,
    ]
    assert seed_plan(3, copies_for(0.01, 1000), 1000, 1) == [
        [63, 129, 479, 481, 612, 655, 768, 786, 873, 947],
        [64, 178, 306, 318, 430, 478, 520, 739, 790, 922],
        [35, 259, 317, 568, 649, 690, 711, 763, 841, 986],
    ]
    assert seeded_items(1, 1) == [(b"overlay swarm item 0 of 1, seed 1\n", "swarm item0 seed1")]


def test_a_worker_holds_its_share_of_the_plan() -> None:
    plan = seed_plan(20, 10, 100, 5)
    items = seeded_items(20, 5)
    first, second = Seeding(20, 10, 5, 100, 0), Seeding(20, 10, 5, 100, 50)
    held = [
        (offset + local, value)
        for seeding, offset in ((first, 0), (second, 50))
        for local, values in seeding.holdings(50).items()
        for value, _ in values
    ]
    expected = [
        (holder, items[number][0]) for number, holders in enumerate(plan) for holder in holders
    ]
    assert sorted(held) == sorted(expected)


def test_a_super_peer_gets_room_for_its_weak_peers() -> None:
    config = room_for_weak_peers(NodeConfig(max_connections=64), super_peer_config(50))
    assert config.max_connections > 64
    unchanged = NodeConfig(max_connections=100_000)
    assert room_for_weak_peers(unchanged, super_peer_config(50)) is unchanged
