"""How far the simulator scales: N peers for D simulated seconds, on W worker processes.

    python benchmarks/sim_scale.py [--peers 100000] [--duration 60] [--seed 1]
                                   [--workers W] [--compare] [--out DIR]

``--workers 1`` (the default is every core) runs the simulator in this process, as
``overlay sim --workers 1`` does; more run it split over that many processes
(:mod:`overlay.sim.parallel`), with the same messages.  Records wall time, delivered
messages per wall second, the simulator's CPU time, peak resident memory
(``ru_maxrss``: of this process, or of this process and every worker, summed), where
each worker's wall time went (computing, encoding, decoding, waiting at the barrier)
and the topology summary in ``benchmarks/results/sim_<N>_workers<W>.json``.

``--compare`` runs issue 17's comparison in one sitting, back to back, each in a
process of its own: pure serial (``OVERLAY_PURE_PYTHON=1 --workers 1``), compiled
serial (``--workers 1``) and compiled parallel (``--workers W``), then writes
``sim_<N>_compare.json``: each run's figures, whether their message counts agree, and
each lever's share of the gain (the fast path's, already in all three, from the
earlier runs in ``benchmarks/results/sim_scale_levers/`` when they exist for N).
The issue's goals: 3x the delivered messages per wall second of pure serial, at most
1 GiB of peak memory per 100,000 peers, and a million peers in at most 10 GiB.
This is a benchmark, not a test: it asserts nothing, it records.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import attrs
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

from benchmarks.harness import Run, read_result
from overlay.compiled import BUILD, PURE_ENV
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

        phases: list[dict[str, Any]] = []
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
            phases = [attrs.asdict(part) for part in usage.phases]
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
        "build": BUILD.describe(),
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
        "worker_phases_seconds": phases,
        "summary": summary,
    }


LEVERS = RESULTS / "sim_scale_levers"
"""The fast path's runs, before and after it, from the branch that built it."""
COMPARED = (("pure serial", True, 1), ("compiled serial", False, 1))


def one_configuration(
    label: str, pure: bool, workers: int, *, peers: int, duration: float, seed: int, out: Path
) -> dict[str, Any]:
    """One run of the comparison, in a process of its own (the build is chosen at
    import); its result file."""
    folder = out / f"sim_{peers}_compare" / label.replace(" ", "-")
    env = {key: value for key, value in os.environ.items() if key != PURE_ENV}
    if pure:
        env[PURE_ENV] = "1"
    command = [
        sys.executable, str(Path(__file__).resolve()), "--peers", str(peers),
        "--duration", f"{duration:g}", "--seed", str(seed), "--workers", str(workers),
        "--out", str(folder),
    ]  # fmt: skip
    subprocess.run(command, env=env, check=True, stdout=subprocess.DEVNULL)
    result: dict[str, Any] = read_result(folder / f"sim_{peers}_workers{workers}.json")
    return result


def _rate(result: dict[str, Any], per: str) -> float:
    value: float = result[f"messages_per_{per}_second"]
    return value


def fast_path_share(peers: int) -> dict[str, Any] | None:
    """Pure Python with the fast path against pure Python before it, per CPU second,
    from the earlier runs, if they were made at this many peers."""
    paths = [LEVERS / lever / f"sim_{peers}.json" for lever in ("pure-before", "pure-fast-path")]
    if not all(path.exists() for path in paths):
        return None
    before, after = (read_result(path) for path in paths)
    return {
        "files": [str(path.relative_to(RESULTS.parent.parent)) for path in paths],
        "same_delivered": before["delivered_messages"] == after["delivered_messages"],
        "per_cpu_second": _rate(after, "cpu") / _rate(before, "cpu"),
        "per_wall_second": _rate(after, "wall") / _rate(before, "wall"),
        "load": [before["load_before"], after["load_after"]],
    }


def compare(peers: int, duration: float, seed: int, workers: int, out: Path) -> dict[str, Any]:
    """Issue 17's comparison: pure serial, compiled serial, compiled parallel."""
    runs: dict[str, dict[str, Any]] = {}
    for label, pure, count in (*COMPARED, ("compiled parallel", False, workers)):
        runs[label] = one_configuration(
            label, pure, count, peers=peers, duration=duration, seed=seed, out=out
        )
    pure_serial, compiled, parallel = runs.values()
    counted = [(run["delivered_messages"], run["summary"]["messages"]) for run in runs.values()]
    shares = {
        "compiled (compiled serial / pure serial)": (compiled, pure_serial),
        "parallel (compiled parallel / compiled serial)": (parallel, compiled),
        "all (compiled parallel / pure serial)": (parallel, pure_serial),
    }
    return {
        "peers": peers,
        "sim_seconds": duration,
        "seed": seed,
        "workers": workers,
        "same_message_counts": len(set(map(json.dumps, counted))) == 1,
        "delivered_messages": {label: run["delivered_messages"] for label, run in runs.items()},
        "ratio_per_wall_second": {
            name: _rate(a, "wall") / _rate(b, "wall") for name, (a, b) in shares.items()
        },
        "ratio_per_cpu_second": {
            name: _rate(a, "cpu") / _rate(b, "cpu") for name, (a, b) in shares.items()
        },
        "goal_ratio_per_wall_second": 3.0,
        "fast_path_share": fast_path_share(peers),
        "runs": {
            label: {key: value for key, value in run.items() if key not in ("summary", "machine")}
            for label, run in runs.items()
        },
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--peers", type=int, default=100_000)
    parser.add_argument("--duration", type=float, default=60.0)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--workers", type=int, default=os.cpu_count() or 1, help="default: every core"
    )
    parser.add_argument(
        "--compare",
        action="store_true",
        help="pure serial, compiled serial and compiled parallel, back to back",
    )
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    if args.workers < 1:
        parser.error("--workers must be at least 1")
    recording = Run.begin("benchmarks/sim_scale.py", argv)
    if args.compare:
        path = args.out / f"sim_{args.peers}_compare.json"
        shape = (args.peers, args.duration, args.seed, args.workers, args.out)
        result = recording.write(path, compare(*shape))
        print(json.dumps({k: v for k, v in result.items() if k != "runs"}, indent=2))
        print(f"written to {path}", file=sys.stderr)
        return 0
    path = args.out / f"sim_{args.peers}_workers{args.workers}.json"
    result = recording.write(path, measure(args.peers, args.duration, args.seed, args.workers))
    print(json.dumps({k: v for k, v in result.items() if k != "summary"}, indent=2))
    print(f"written to {path}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
