"""The simulator scenarios behind docs/results/membership-in-the-simulator.md.

    python benchmarks/sim_scenarios.py [--peers 10000] [--out DIR]
        [--workers N | --scheduler tcp://HOST:PORT]

Runs, with seed 1: the plain join (``overlay sim --peers N --duration 60``), a mass
crash of half the peers at 30 s (``--crash-fraction 0.5 --crash-at 30 --duration
90``), continuous churn with 10% loss, and a partition healed after 20 s.  For the
faults it also samples the overlay every simulated second and records when the
survivors were one component again.  The four runs are independent: they go through
Dask's distributed scheduler (:mod:`benchmarks.engine`; a local cluster of one process
per core by default), and each gives the same figures wherever it runs.  Writes
``sim_scenarios.json``.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import attrs
from rich.console import Console
from rich.table import Table

from benchmarks.engine import (
    NO_PROGRESS,
    Outcome,
    SweepError,
    TaskProgress,
    Where,
    add_arguments,
    run_sweep,
    where_from,
)
from benchmarks.harness import Run
from overlay.sim.scenario import Scenario, run
from overlay.sim.simulator import Simulator
from overlay.sim.topology import summarize

RESULTS = Path(__file__).resolve().parent / "results"


@attrs.frozen
class Named:
    """One scenario of the sweep: its name, itself, and the fault it recovers from (the
    simulated second after which the overlay is watched; None: no fault)."""

    name: str
    scenario: Scenario
    since: float | None = None


def scenarios(n: int) -> list[Named]:
    """The four scenarios, for ``n`` peers (the faults with churn and partitions on n/5)."""
    return [
        Named("join", Scenario(peers=n, seed=1, duration=60)),
        Named(
            "mass_crash",
            Scenario(peers=n, seed=1, duration=90, crash_fraction=0.5, crash_at=30),
            30.0,
        ),
        Named(
            "churn_and_loss",
            Scenario(peers=max(1, n // 5), seed=1, duration=120, churn=2.0, loss=0.1),
            12.0,
        ),
        Named(
            "partition",
            Scenario(peers=max(1, n // 5), seed=1, duration=90, partition_at=30, heal_at=50),
            50.0,
        ),
    ]


def timeline(
    scenario: Scenario, since: float, progress: Callable[[float], None] | None = None
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Run ``scenario``; return its summary and when it was one component after ``since``."""
    worst: dict[str, Any] = {"max_components": 0, "min_degree": None, "max_degree": 0}
    merged: list[float] = []

    def observe(sim: Simulator, now: float) -> None:
        if now <= since:
            return
        summary = summarize(sim.snapshots(), peers=sim.started_peers)
        worst["max_components"] = max(worst["max_components"], summary["components"])
        low = summary["degree"]["min"]
        worst["min_degree"] = low if worst["min_degree"] is None else min(worst["min_degree"], low)
        worst["max_degree"] = max(worst["max_degree"], summary["degree"]["max"])
        if summary["components"] == 1 and not merged:
            merged.append(now)
        elif summary["components"] != 1:
            merged.clear()

    summary = run(scenario, observer=observe, progress=progress)
    worst["one_component_again_after"] = merged[0] - since if merged else None
    return summary, worst


def run_scenario(named: Named, progress: TaskProgress = NO_PROGRESS) -> dict[str, Any]:
    """One scenario's entry of the result: the scenario, its summary, its recovery."""
    scenario = named.scenario
    progress.start(scenario.duration)
    reached = [0.0]

    def advance(second: float) -> None:
        progress.advance(second - reached[0])
        reached[0] = second

    worst: dict[str, Any] = {}
    if named.since is None:
        summary = run(scenario, progress=advance)
    else:
        summary, worst = timeline(scenario, named.since, advance)
    summary.pop("degree_histogram", None)
    return {"scenario": {
        "peers": scenario.peers, "duration": scenario.duration, "loss": scenario.loss,
        "churn": scenario.churn, "crash_fraction": scenario.crash_fraction,
        "crash_at": scenario.crash_at, "partition_at": scenario.partition_at,
        "heal_at": scenario.heal_at,
    }, "summary": summary, "after_fault": worst}  # fmt: skip


def sweep(named: Sequence[Named], where: Where, console: Console) -> Outcome[dict[str, Any]]:
    """Run the scenarios on the cluster ``where`` names, with progress bars on
    ``console``; their entries in the order of ``named``."""
    return run_sweep(
        named,
        run_scenario,
        labels=[f"{n.name} ({n.scenario.peers:,} peers)" for n in named],
        planned=[n.scenario.duration for n in named],
        unit="simulated seconds",
        where=where,
        console=console,
        describe=lambda result: f"{result['summary']['components']} component(s)",
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--peers", type=int, default=10_000)
    parser.add_argument("--out", type=Path, default=RESULTS)
    add_arguments(parser)
    args = parser.parse_args(argv)
    where = where_from(args, parser)
    recording = Run.begin("benchmarks/sim_scenarios.py", argv)
    named = scenarios(args.peers)
    console = Console(stderr=True)
    try:
        outcome = sweep(named, where, console)
    except SweepError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    results = {n.name: result for n, result in zip(named, outcome.results, strict=True) if result}
    unfinished = [named[index].name for index in outcome.unfinished]
    path = args.out / "sim_scenarios.json"
    recording.write(path, {**results, "cluster": outcome.cluster, "unfinished": unfinished})
    table = Table(title="simulator scenarios (seed 1)")
    for column in ("scenario", "peers", "alive", "components", "degree", "clustering",
                   "path", "dangling", "one component after", "msgs/wall s"):  # fmt: skip
        table.add_column(column)
    for name, result in results.items():
        s = result["summary"]
        after = result["after_fault"].get("one_component_again_after")
        table.add_row(
            name, str(result["scenario"]["peers"]), str(s["alive"]), str(s["components"]),
            f"{s['degree']['min']}/{s['degree']['mean']:.2f}/{s['degree']['max']}",
            f"{s['clustering']:.4f}", f"{s['avg_path_length']:.2f}", str(s["dangling_entries"]),
            "-" if after is None else f"{after:.0f} s", f"{s['messages_per_wall_second']:,.0f}",
        )  # fmt: skip
    Console().print(table)
    print(f"written to {path}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    # Run as a script, this module is __main__, whose functions Dask workers could not
    # import by name: run main() from the module as the workers will import it.
    from benchmarks.sim_scenarios import main as imported_main

    sys.exit(imported_main())
