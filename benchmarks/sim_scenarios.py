"""The simulator scenarios behind docs/results/membership-in-the-simulator.md.

    python benchmarks/sim_scenarios.py [--peers 10000] [--out DIR]

Runs, with seed 1: the plain join (``overlay sim --peers N --duration 60``), a mass
crash of half the peers at 30 s (``--crash-fraction 0.5 --crash-at 30 --duration
90``), continuous churn with 10% loss, and a partition healed after 20 s.  For the
faults it also samples the overlay every simulated second and records when the
survivors were one component again.  Writes ``sim_scenarios.json``.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from rich.console import Console
from rich.table import Table

from benchmarks.harness import Run
from overlay.sim.scenario import Scenario, run
from overlay.sim.simulator import Simulator
from overlay.sim.topology import summarize

RESULTS = Path(__file__).resolve().parent / "results"


def timeline(scenario: Scenario, since: float) -> tuple[dict[str, Any], dict[str, Any]]:
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

    summary = run(scenario, observer=observe)
    worst["one_component_again_after"] = merged[0] - since if merged else None
    return summary, worst


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--peers", type=int, default=10_000)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    recording = Run.begin("benchmarks/sim_scenarios.py", argv)
    n = args.peers
    scenarios = {
        "join": (Scenario(peers=n, seed=1, duration=60), None),
        "mass_crash": (
            Scenario(peers=n, seed=1, duration=90, crash_fraction=0.5, crash_at=30),
            30.0,
        ),
        "churn_and_loss": (
            Scenario(peers=max(1, n // 5), seed=1, duration=120, churn=2.0, loss=0.1),
            12.0,
        ),
        "partition": (
            Scenario(peers=max(1, n // 5), seed=1, duration=90, partition_at=30, heal_at=50),
            50.0,
        ),
    }
    results: dict[str, Any] = {}
    console = Console(stderr=True)
    for name, (scenario, since) in scenarios.items():
        console.log(f"running {name} ({scenario.peers} peers, {scenario.duration:.0f} s)")
        worst: dict[str, Any] = {}
        if since is None:
            summary = run(scenario)
        else:
            summary, worst = timeline(scenario, since)
        summary.pop("degree_histogram", None)
        results[name] = {"scenario": {
            "peers": scenario.peers, "duration": scenario.duration, "loss": scenario.loss,
            "churn": scenario.churn, "crash_fraction": scenario.crash_fraction,
            "crash_at": scenario.crash_at, "partition_at": scenario.partition_at,
            "heal_at": scenario.heal_at,
        }, "summary": summary, "after_fault": worst}  # fmt: skip
    path = args.out / "sim_scenarios.json"
    recording.write(path, results)
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
    sys.exit(main())
