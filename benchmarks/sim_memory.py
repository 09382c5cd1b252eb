"""What a simulated peer costs in memory, and in what: one process, one seeded run.

    python benchmarks/sim_memory.py [--peers 20000] [--duration 30] [--seed 1]
                                    [--trace] [--out DIR]

Runs ``--peers`` peers for ``--duration`` simulated seconds in this process (one
worker, as ``overlay sim --workers 1`` does, membership only) and records, in
``benchmarks/results/sim_memory_<N>.json``:

* ``rss_per_peer_bytes``: peak resident memory (``ru_maxrss``) grown since before the
  simulator was built, over the number of peers;
* ``objects_per_peer_bytes`` and ``by_type``: the Python objects reachable from the
  peers, each counted once (``sys.getsizeof``; shared configuration, classes,
  functions and modules left out), per peer and by type;
* with ``--trace``: ``top_lines``, the allocation sites (``file:line``) holding the
  most at the end, per peer, from :mod:`tracemalloc` (tracing slows the run about
  threefold and adds its own memory: take RSS from a run without it);
* which build ran (compiled or pure Python: ``OVERLAY_PURE_PYTHON=1``), the machine,
  the load before and after, and the command.

A parallel run's figures (every worker and the parent) are ``benchmarks/sim_scale.py``'s.
This is a benchmark, not a test: it asserts nothing, it records.
"""

from __future__ import annotations

import argparse
import gc
import json
import resource
import sys
import tracemalloc
import types
from collections import Counter
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.harness import Run
from overlay.collector import few_collections
from overlay.compiled import BUILD
from overlay.sim.scenario import Scenario, build

RESULTS = Path(__file__).resolve().parent / "results"
SHARED_MODULES = ("overlay.core.config", "search.config", "overlay.sim.keys")
"""Objects of these modules are shared by every peer (configurations, the keyring)."""
NOT_STATE = (type, types.ModuleType, types.FunctionType, types.BuiltinFunctionType)
TOP = 20


def reachable_bytes(roots: Iterable[object]) -> tuple[Counter[str], Counter[str]]:
    """Bytes and object counts by type name of everything reachable from ``roots``,
    each object once, leaving out what every peer shares by design."""
    sizes: Counter[str] = Counter()
    counts: Counter[str] = Counter()
    seen: set[int] = set()
    stack = list(roots)
    while stack:
        obj = stack.pop()
        if id(obj) in seen:
            continue
        seen.add(id(obj))
        kind = type(obj)
        if isinstance(obj, NOT_STATE) or kind.__module__ in SHARED_MODULES:
            continue
        sizes[kind.__name__] += sys.getsizeof(obj)
        counts[kind.__name__] += 1
        stack.extend(gc.get_referents(obj))
    return sizes, counts


def measure(peers: int, duration: float, seed: int, trace: bool) -> dict[str, Any]:
    scenario = Scenario(peers=peers, seed=seed, duration=duration, super_peers=False)
    gc.collect()
    baseline = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    if trace:
        tracemalloc.start()
    sim = build(scenario)
    with few_collections():
        second = 0.0
        while second < duration:
            second = min(second + 1, duration)
            sim.run_until(second)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    top_lines: list[dict[str, Any]] = []
    if trace:
        snapshot = tracemalloc.take_snapshot()
        tracemalloc.stop()
        for stat in snapshot.statistics("lineno")[:TOP]:
            frame = stat.traceback[0]
            top_lines.append(
                {
                    "site": f"{Path(frame.filename).name}:{frame.lineno}",
                    "bytes_per_peer": round(stat.size / peers, 1),
                    "blocks_per_peer": round(stat.count / peers, 2),
                }
            )
    alive = list(sim.peers.values())
    sizes, counts = reachable_bytes(alive)
    in_flight = sum(len(bucket) for bucket in sim._buckets.values())
    result: dict[str, Any] = {
        "build": BUILD.describe(),
        "peers": peers,
        "alive": len(alive),
        "sim_seconds": duration,
        "seed": seed,
        "traced": trace,
        "delivered_messages": sim.delivered,
        "peak_rss_bytes": peak,
        "rss_per_peer_bytes": round((peak - baseline) / peers, 1),
        "objects_per_peer_bytes": round(sum(sizes.values()) / len(alive), 1),
        "events_in_calendar_per_peer": round(in_flight / len(alive), 2),
        "by_type": [
            {
                "type": name,
                "bytes_per_peer": round(size / len(alive), 1),
                "objects_per_peer": round(counts[name] / len(alive), 2),
            }
            for name, size in sizes.most_common(TOP)
        ],
    }
    if trace:
        result["top_lines"] = top_lines
    return result


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--peers", type=int, default=20_000)
    parser.add_argument("--duration", type=float, default=30.0)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--trace", action="store_true", help="allocation sites (tracemalloc)")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    recording = Run.begin("benchmarks/sim_memory.py", argv)
    suffix = "_traced" if args.trace else ""
    path = args.out / f"sim_memory_{args.peers}{suffix}.json"
    result = recording.write(path, measure(args.peers, args.duration, args.seed, args.trace))
    print(json.dumps(result, indent=2))
    print(f"written to {path}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
