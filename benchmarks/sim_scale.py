"""How far the simulator scales on one core: N peers for D simulated seconds.

    python benchmarks/sim_scale.py [--peers 100000] [--duration 60] [--seed 1] [--out DIR]

Records wall time, peak resident memory of the process (``ru_maxrss``), delivered
messages per wall second and the topology summary in
``benchmarks/results/sim_<N>.json``.  The issue's goal for 100,000 peers and 60 s:
at least 300,000 delivered messages per wall second and at most 2 GiB peak memory.
This is a benchmark, not a test: it asserts nothing, it records.
"""

from __future__ import annotations

import argparse
import json
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
from overlay.sim.scenario import Scenario, build
from overlay.sim.simulator import few_collections

RESULTS = Path(__file__).resolve().parent / "results"


def measure(peers: int, duration: float, seed: int) -> dict[str, Any]:
    scenario = Scenario(peers=peers, seed=seed, duration=duration, super_peers=False)
    built_at = time.perf_counter()
    sim = build(scenario)
    started = time.perf_counter()
    cpu_started = time.process_time()
    console = Console(stderr=True)
    with Progress(
        TextColumn(f"{peers:,} peers"),
        BarColumn(),
        TextColumn("{task.completed:.0f}/{task.total:.0f} simulated s"),
        TimeElapsedColumn(),
        console=console,
    ) as progress:
        task = progress.add_task("sim", total=duration)
        second = 0.0
        with few_collections():
            while second < duration:
                second = min(duration, second + 1.0)
                sim.run_until(second)
                progress.update(task, completed=second)
    wall = time.perf_counter() - started
    cpu = time.process_time() - cpu_started
    summary_started = time.perf_counter()
    summary = sim.summary()
    summary_wall = time.perf_counter() - summary_started
    peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    summary.pop("degree_histogram", None)
    return {
        "peers": peers,
        "sim_seconds": duration,
        "seed": seed,
        "build_seconds": started - built_at,
        "sim_wall_seconds": wall,
        "summary_seconds": summary_wall,
        "delivered_messages": sim.delivered,
        "messages_per_wall_second": sim.delivered / wall,
        "sim_cpu_seconds": cpu,
        "messages_per_cpu_second": sim.delivered / cpu,
        "peak_rss_bytes": peak_kib * 1024,
        "goal_messages_per_wall_second": 300_000,
        "goal_peak_rss_bytes": 2 * 1024**3,
        "summary": summary,
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--peers", type=int, default=100_000)
    parser.add_argument("--duration", type=float, default=60.0)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    recording = Run.begin("benchmarks/sim_scale.py", argv)
    path = args.out / f"sim_{args.peers}.json"
    result = recording.write(path, measure(args.peers, args.duration, args.seed))
    print(json.dumps({k: v for k, v in result.items() if k != "summary"}, indent=2))
    print(f"written to {path}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
