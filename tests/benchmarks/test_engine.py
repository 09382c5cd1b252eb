"""Sweeps through Dask (benchmarks/engine.py): the same rows for the same seeds, run in
this process, on a local cluster, and on a scheduler and two workers started as
separate processes; the bars, the options and the code check on their own.

The clusters are real (Dask's own processes on 127.0.0.1); readiness is what they
print when they listen or have registered, and the worker count is waited for through
the scheduler (``Client.wait_for_workers``), never a sleep.  Every process is stopped
at the end of its block, SIGKILL after a bounded wait (``benchmarks.harness.started``).
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import io
import operator
import re
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
import trio
from rich.console import Console
from rich.progress import Progress

from benchmarks import engine
from benchmarks.engine import Bars, Outcome, SweepError, Where, code_digest, run_sweep
from benchmarks.flood_vs_walk import modes_flood, modes_search, sweep
from benchmarks.harness import REPO, module_command, started
from benchmarks.runner import Task, measured, rows_digest, run_task
from benchmarks.sim_scenarios import Named, run_scenario, scenarios
from benchmarks.sim_scenarios import sweep as scenario_sweep
from benchmarks.topologies import TopologySpec
from overlay.sim.scenario import WALL_CLOCK_FIELDS

RANDOM = TopologySpec("random", "random", nodes=120, mean_degree=4.0)
POWER_LAW = TopologySpec("power-law", "power-law", nodes=200, mean_degree=3.5, exponent=2.1)
TINY_SWEEP = [
    Task("main", POWER_LAW, 0.0, (("uniform", 0.05),), modes_flood(), 12, 7),
    Task("main", RANDOM, 0.1, (("uniform", 0.05),), modes_search(), 12, 7),
    Task("main", RANDOM, 0.0, (("uniform", 0.05),), modes_flood(), 12, 7),
    Task("replication", RANDOM, 0.0, (("square-root", 0.02), ("uniform", 0.05)),
         modes_search()[1:3], 12, 7),
]  # fmt: skip
"""Two small graphs, lossless floods (derived TTLs), lossy walks and the ring, a
replication task of two configurations: each kind of task the sweep has, in seconds."""
TINY_SCENARIOS = scenarios(40)[1:]  # the three with a fault; 40 peers, churn on 8

SCHEDULER_AT = re.compile(r"Scheduler at:\s+(\S+)")


def quiet() -> Console:
    return Console(file=io.StringIO(), width=100)


def serial_rows() -> list[list[dict[str, Any]]]:
    return [run_task(task) for task in TINY_SWEEP]


def tiny_sweep(where: Where) -> Outcome[list[dict[str, Any]]]:
    return sweep(TINY_SWEEP, where, quiet())


def without_wall_clock(result: dict[str, Any]) -> dict[str, Any]:
    summary = {k: v for k, v in result["summary"].items() if k not in WALL_CLOCK_FIELDS}
    return {**result, "summary": summary}


def same_rows(outcome: Outcome[list[dict[str, Any]]], expected: list[list[dict[str, Any]]]) -> None:
    """Task by task, in the tasks' order, every row equal but for its timing fields."""
    assert outcome.unfinished == []
    got = [[measured(row) for row in rows or []] for rows in outcome.results]
    assert got == [[measured(row) for row in rows] for rows in expected]
    flat = [row for rows in outcome.results for row in rows or []]
    assert rows_digest(flat) == rows_digest([row for rows in expected for row in rows])


def test_the_tiny_sweep_has_one_row_per_configuration() -> None:
    """The equality tests below compare something: rows of every kind, and many."""
    floods, lossy, floods_again, replication = serial_rows()
    assert len(lossy) == 5 and len(replication) == 2 * 2  # ring + 4 walkers; 2 x 2
    assert 2 <= len(floods) <= 7 and 1 <= len(floods_again) <= 7
    assert any("derived_from_ttl" in row for row in floods)
    assert sum(row["sim_lost"] for row in lossy) > 0


@pytest.fixture(scope="module")
def expected() -> list[list[dict[str, Any]]]:
    return serial_rows()


def test_a_local_cluster_gives_the_rows_of_a_serial_run(
    expected: list[list[dict[str, Any]]],
) -> None:
    outcome = tiny_sweep(Where(workers=2))
    same_rows(outcome, expected)
    assert outcome.cluster["scheduler"] == "local cluster"
    assert outcome.cluster["workers"] == 2 and outcome.cluster["threads"] == 2
    assert sum(outcome.cluster["tasks_per_worker"].values()) == len(TINY_SWEEP)


@contextlib.asynccontextmanager
async def separate_cluster(tmp_path: Path) -> AsyncIterator[str]:
    """``dask scheduler`` and two ``dask worker`` processes on 127.0.0.1, as one starts
    them by hand (docs/results/flood-vs-walk.md), this checkout on their PYTHONPATH;
    the scheduler's address once both workers have registered."""
    scheduler_file = tmp_path / "scheduler.json"
    env = {"PYTHONPATH": str(REPO)}

    def scheduler_at(line: str) -> str | None:
        found = SCHEDULER_AT.search(line)
        return found.group(1) if found else None

    def registered(line: str) -> bool | None:
        return True if "Registered to:" in line else None

    scheduler_command = module_command(
        "dask", "scheduler", "--host", "127.0.0.1", "--port", "0",
        "--dashboard-address", "127.0.0.1:0", "--scheduler-file", str(scheduler_file),
    )  # fmt: skip
    worker_command = module_command(
        "dask", "worker", "--scheduler-file", str(scheduler_file), "--nworkers", "1",
        "--nthreads", "1", "--no-nanny", "--host", "127.0.0.1",
        "--dashboard-address", "127.0.0.1:0",
    )  # fmt: skip
    common: dict[str, Any] = {"ready_on": "stderr", "env": env, "grace": 10.0}
    async with (
        started(scheduler_command, scheduler_at, **common) as scheduler,
        started(worker_command, registered, **common),
        started(worker_command, registered, **common),
    ):
        address = scheduler.ready
        distributed = pytest.importorskip("distributed")

        def two_workers() -> None:
            with distributed.Client(address, timeout=30) as client:
                client.wait_for_workers(2, timeout=60)

        await in_thread(two_workers)
        yield address


async def in_thread(call: Callable[[], Any]) -> Any:
    """Dask's blocking client off the trio thread: the processes' output keeps being read,
    and a timeout abandons the thread, so that the block still stops the processes."""
    return await trio.to_thread.run_sync(call, abandon_on_cancel=True)


async def test_a_scheduler_and_two_separate_workers_give_the_rows_of_a_serial_run(
    tmp_path: Path, expected: list[list[dict[str, Any]]]
) -> None:
    serial_scenarios = [run_scenario(named) for named in TINY_SCENARIOS]
    with trio.fail_after(120):
        async with separate_cluster(tmp_path) as address:
            outcome = await in_thread(functools.partial(tiny_sweep, Where(scheduler=address)))
            same_rows(outcome, expected)
            assert outcome.cluster["scheduler"] == address
            assert outcome.cluster["workers"] == 2
            # Both workers ran tasks: the rows do not depend on which one ran what.
            assert len(outcome.cluster["tasks_per_worker"]) == 2
            assert set(outcome.ran_on) == set(outcome.cluster["tasks_per_worker"])

            # The scenario sweep too: the same figures but for wall-clock ones.
            scenario_outcome = await in_thread(
                functools.partial(scenario_sweep, TINY_SCENARIOS, Where(scheduler=address), quiet())
            )
            assert [without_wall_clock(r) for r in scenario_outcome.results if r] == [
                without_wall_clock(r) for r in serial_scenarios
            ]

            # A task that raises stops the sweep with its name, not a hang.
            failing = functools.partial(
                run_sweep, [1], operator.truediv, labels=["one divided by progress"],
                planned=[1], unit="tasks", where=Where(scheduler=address), console=quiet(),
            )  # fmt: skip
            with pytest.raises(SweepError, match="task one divided by progress failed"):
                await in_thread(failing)


def test_scenarios_are_the_four_of_the_results_page() -> None:
    assert [named.name for named in scenarios(100)] == [
        "join", "mass_crash", "churn_and_loss", "partition",
    ]  # fmt: skip
    assert all(isinstance(named, Named) for named in TINY_SCENARIOS)
    assert [named.scenario.peers for named in TINY_SCENARIOS] == [40, 8, 8]


# ---------------------------------------------------------------------- the pieces


def test_where_comes_from_the_options() -> None:
    parser = argparse.ArgumentParser(exit_on_error=False)
    engine.add_arguments(parser)

    def where(*argv: str) -> Where:
        return engine.where_from(parser.parse_args(list(argv)), parser)

    assert where() == Where(None, None)
    assert where("--workers", "3") == Where(None, 3)
    assert where("--scheduler", "tcp://scheduler.example:8786") == Where(
        "tcp://scheduler.example:8786", None
    )
    for bad in (
        ["--scheduler", "scheduler.example:8786"],  # no protocol
        ["--scheduler", "tcp://host"],  # no port
        ["--scheduler", "tcp://a:1", "--workers", "2"],  # a remote cluster has its own
        ["--workers", "0"],
    ):
        with pytest.raises(SystemExit):
            where(*bad)


def test_the_code_digest_follows_every_source_file(tmp_path: Path) -> None:
    for folder in engine.CODE_FOLDERS:
        (tmp_path / folder).mkdir()
        (tmp_path / folder / "a.py").write_text("x = 1\n")
    first = code_digest(tmp_path)
    assert code_digest(tmp_path) == first
    (tmp_path / "search" / "a.py").write_text("x = 2\n")
    changed = code_digest(tmp_path)
    assert changed != first
    (tmp_path / "search" / "a.py").rename(tmp_path / "search" / "b.py")
    assert code_digest(tmp_path) not in (first, changed)
    (tmp_path / "search" / "notes.txt").write_text("not code")
    assert code_digest(tmp_path) == code_digest(tmp_path)
    assert code_digest() == code_digest(REPO)


class FakeClient:
    """What check_workers asks of a cluster, answered with given digests."""

    def __init__(self, scheduler: str, workers: dict[str, str]) -> None:
        self.scheduler = scheduler
        self.workers = workers

    def wait_for_workers(self, n_workers: int, timeout: float | None = None) -> None:
        assert n_workers <= len(self.workers)

    def run_on_scheduler(self, function: Callable[[], str]) -> str:
        return self.scheduler

    def run(self, function: Callable[[], str]) -> dict[str, str]:
        return dict(self.workers)

    def nthreads(self) -> dict[str, int]:
        return dict.fromkeys(self.workers, 1)


def test_a_cluster_running_other_code_is_refused() -> None:
    mine = code_digest()
    where = Where("tcp://127.0.0.1:1")
    good = FakeClient(mine, {"tcp://w1": mine, "tcp://w2": mine})
    assert engine.check_workers(good, where)["workers"] == 2
    with pytest.raises(SweepError, match=r"tcp://w2 run\(s\) other code"):
        engine.check_workers(FakeClient(mine, {"tcp://w1": mine, "tcp://w2": "x"}), where)
    with pytest.raises(SweepError, match="the scheduler run"):
        engine.check_workers(FakeClient("x", {"tcp://w1": mine}), where)


def test_bars_follow_the_events_and_ignore_anything_else() -> None:
    progress = Progress(console=quiet())
    bars = Bars(progress, ["a", "b"], [100, 50], "queries")

    def overall() -> tuple[float, float | None]:
        task = next(t for t in progress.tasks if t.id == bars.overall)
        return task.completed, task.total

    bars.on_event((1.0, [0, "start", 80]))
    bars.on_event((1.0, [0, "advance", 25]))
    bars.on_event((1.0, [0, "shrink", 30]))
    assert overall() == (25, 50 + 50)
    for junk in (
        None, (1.0,), (1.0, "text"), (1.0, [5, "advance", 1]), (1.0, [-1, "advance", 1]),
        (1.0, [0, "explode", 1]), (1.0, [0, "advance", "1"]), (1.0, [0, "advance"]),
    ):  # fmt: skip
        bars.on_event(junk)  # type: ignore[arg-type]
    assert overall() == (25, 100)
    bars.on_event((1.0, [0, "start", 80]))  # its worker died: the task begins again
    assert overall() == (0, 130)
    bars.finish(0)
    bars.on_event((1.0, [0, "advance", 25]))  # late: its result is already in
    assert overall() == (80, 130)
    assert [t.id for t in progress.tasks] == [bars.overall]
