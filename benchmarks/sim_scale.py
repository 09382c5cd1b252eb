"""How far the simulator scales: N peers for D simulated seconds, on W worker processes.

    python benchmarks/sim_scale.py [--peers 100000] [--duration 60] [--seed 1]
                                   [--workers W] [--out DIR]

``--workers 1`` (the default is every core) runs the simulator in this process, as
``overlay sim --workers 1`` does; more run it split over that many processes
(:mod:`overlay.sim.parallel`), with the same messages.  Records wall time, delivered
messages per wall second, the simulator's CPU time, peak resident memory
(``ru_maxrss``: of this process, or of this process and every worker, summed) and the
topology summary in ``benchmarks/results/sim_<N>_workers<W>.json``.  The issue's goals:
at most 1 GiB of peak memory per 100,000 peers, and a million peers in at most 10 GiB.
This is a benchmark, not a test: it asserts nothing, it records.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

from benchmarks.harness import Run
from overlay.sim.parallel import run_parallel
from overlay.sim.scenario import Scenario, run

RESULTS = Path(__file__).resolve().parent / "results"
GIB = 1024**3


def measure(peers: int, duration: float, seed: int, workers: int) -> dict[str, Any]:
    scenario = Scenario(peers=peers, seed=seed, duration=duration, super_peers=False)
    console = Console(stderr=True)
    started = time.perf_counter()
    cpu_started = time.process_time()
    with Progress(
        TextColumn(f"{peers:,} peers, {workers} worker(s)"),
        BarColumn(),
        TextColumn("{task.completed:.0f}/{task.total:.0f} simulated s"),
        TimeElapsedColumn(),
        console=console,
    ) as progress:
        task = progress.add_task("sim", total=duration)

        def advance(second: float) -> None:
            progress.update(task, completed=second)

        if workers == 1:
            summary = run(scenario, progress=advance)
            cpu = time.process_time() - cpu_started
            peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
            worker_peaks = [peak]
        else:
            summary, usage = run_parallel(scenario, workers, progress=advance)
            cpu = usage.cpu_seconds
            peak = usage.peak_rss_bytes
            worker_peaks = [usage.parent_rss_bytes, *usage.worker_rss_bytes]
    total = time.perf_counter() - started
    wall = summary.pop("wall_seconds")
    summary.pop("messages_per_wall_second")
    summary.pop("degree_histogram", None)
    delivered = summary["delivered_messages"]
    return {
        "peers": peers,
        "sim_seconds": duration,
        "seed": seed,
        "workers": workers,
        "sim_wall_seconds": wall,
        "build_and_summary_seconds": total - wall,
        "delivered_messages": delivered,
        "messages_per_wall_second": delivered / wall,
        "cpu_seconds_all_processes": cpu,
        "messages_per_cpu_second": delivered / cpu if cpu > 0 else None,
        "peak_rss_bytes": peak,
        "peak_rss_bytes_by_process": worker_peaks,
        "peak_rss_gib_per_100000_peers": peak / GIB * 100_000 / peers,
        "goal_peak_rss_bytes": max(1, peers // 100_000) * GIB if peers < 1_000_000 else 10 * GIB,
        "summary": summary,
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--peers", type=int, default=100_000)
    parser.add_argument("--duration", type=float, default=60.0)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--workers", type=int, default=os.cpu_count() or 1, help="default: every core"
    )
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    if args.workers < 1:
        parser.error("--workers must be at least 1")
    recording = Run.begin("benchmarks/sim_scale.py", argv)
    path = args.out / f"sim_{args.peers}_workers{args.workers}.json"
    result = recording.write(path, measure(args.peers, args.duration, args.seed, args.workers))
    print(json.dumps({k: v for k, v in result.items() if k != "summary"}, indent=2))
    print(f"written to {path}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
