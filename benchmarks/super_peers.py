"""The super-peer figures of issue 5, in the simulator, from a seed.

    python benchmarks/super_peers.py [--peers 10000] [--duration 420] [--seed 1]
        [--crash-super-at 240] [--crash-super-fraction 0.3]
        [--crash-at 320] [--crash-fraction 0.05] [--out benchmarks/results/super_peers.json]

One run: N peers join, the super layer forms and settles; at ``--crash-super-at`` a
fraction of the super peers crash at once; at ``--crash-at`` a fraction of all
peers crash (so that index entries naming dead weak peers appear and must go).
Every simulated second around the faults (every ten otherwise) the script records
the super-peer count, ``unattached_weak``, ``index_coverage`` and
``stale_index_entries``; it then reports, in heartbeat periods and seconds, how long
each took to recover, the largest number of role changes of any peer before the
first fault, and the settled super-peer count against N / (ratio + 1).
This is a benchmark, not a test: it asserts nothing, it records.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

from benchmarks.harness import Run
from overlay.collector import few_collections
from overlay.sim.scenario import Scenario, build
from overlay.sim.simulator import Simulator
from overlay.sim.topology import super_layer_figures

RESULTS = Path(__file__).resolve().parent / "results"


def observe(sim: Simulator) -> dict[str, Any]:
    shots = sim.snapshots()
    alive = {s.id for s in shots}
    figures = super_layer_figures(shots, alive)
    figures["supers"] = sum(1 for s in shots if s.role == "super")
    figures["alive"] = len(shots)
    figures["time"] = sim.now
    return figures


def first_time(series: list[dict[str, Any]], after: float, test: Any) -> float | None:
    for row in series:
        if row["time"] > after and test(row):
            return float(row["time"]) - after
    return None


def measure(args: argparse.Namespace) -> dict[str, Any]:
    scenario = Scenario(
        peers=args.peers,
        seed=args.seed,
        duration=args.duration,
        super_peers=True,
        crash_super_fraction=args.crash_super_fraction,
        crash_super_at=args.crash_super_at,
        crash_fraction=args.crash_fraction,
        crash_at=args.crash_at,
    )
    config = scenario.peer_config.supers
    period = scenario.peer_config.membership.heartbeat_period
    sim = build(scenario)
    series: list[dict[str, Any]] = []
    faults = [t for t in (args.crash_super_at, args.crash_at) if t is not None]
    started = time.perf_counter()
    before_fault: dict[str, Any] | None = None
    with Progress(
        TextColumn(f"{args.peers:,} peers, super layer"),
        BarColumn(),
        TextColumn("{task.completed:.0f}/{task.total:.0f} simulated s"),
        TimeElapsedColumn(),
        console=Console(stderr=True),
    ) as progress:
        task = progress.add_task("sim", total=args.duration)
        second = 0.0
        with few_collections():
            while second < args.duration:
                second = min(args.duration, second + 1.0)
                sim.run_until(second)
                near = any(-5 <= second - t <= 40 for t in faults)
                if near or second % 10 == 0 or second == args.duration:
                    row = observe(sim)
                    series.append(row)
                    if faults and second < min(faults):
                        before_fault = row
                progress.update(task, completed=second)
    wall = time.perf_counter() - started
    target = args.peers / (config.ratio + 1)
    result: dict[str, Any] = {
        "peers": args.peers,
        "seed": args.seed,
        "duration": args.duration,
        "ratio": config.ratio,
        "k": config.k,
        "heartbeat_period": period,
        "lease": config.lease,
        "target_supers": target,
        "sim_wall_seconds": wall,
        "series": series,
        "messages": dict(sorted(sim.sent.items())),
    }
    if before_fault is not None:
        result["settled_before_fault"] = before_fault
        result["settled_supers_relative_error"] = abs(before_fault["supers"] - target) / target
        result["max_role_changes_before_fault"] = before_fault["max_role_changes"]
    if args.crash_super_at is not None:
        at = args.crash_super_at
        before = [r for r in series if r["time"] < at]
        result["supers_before_crash"] = before[-1]["supers"] if before else None
        result["supers_right_after_crash"] = next(
            (r["supers"] for r in series if r["time"] >= at), None
        )
        reattached = first_time(series, at, lambda r: r["unattached_weak"] == 0)
        covered = first_time(series, at, lambda r: r["index_coverage"] >= 0.999)
        result["super_crash"] = {
            "at": at,
            "fraction": args.crash_super_fraction,
            "all_reattached_after_s": reattached,
            "all_reattached_after_periods": reattached / period if reattached else None,
            "coverage_999_after_s": covered,
            "coverage_999_after_periods": covered / period if covered else None,
            "supers_at_end": series[-1]["supers"],
        }
    if args.crash_at is not None:
        at = args.crash_at
        cleared = first_time(series, at, lambda r: r["stale_index_entries"] == 0)
        peak = max((r["stale_index_entries"] for r in series if r["time"] >= at), default=0)
        result["peer_crash"] = {
            "at": at,
            "fraction": args.crash_fraction,
            "stale_entries_peak": peak,
            "stale_entries_zero_after_s": cleared,
            "bound_s": config.lease + config.period,
        }
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--peers", type=int, default=10_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--duration", type=float, default=420.0)
    parser.add_argument("--crash-super-at", type=float, default=240.0)
    parser.add_argument("--crash-super-fraction", type=float, default=0.3)
    parser.add_argument("--crash-at", type=float, default=320.0)
    parser.add_argument("--crash-fraction", type=float, default=0.05)
    parser.add_argument("--out", type=Path, default=RESULTS / "super_peers.json")
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    args = parser.parse_args(argv)
    recording = Run.begin("benchmarks/super_peers.py", argv)
    result = recording.write(args.out, measure(args))
    summary = {k: v for k, v in result.items() if k not in ("series", "messages")}
    print(json.dumps(summary, indent=1 if not args.json else None, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
