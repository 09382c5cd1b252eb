"""One seeded run, split over 1, 2 and 4 worker processes: the same result each time.

    python benchmarks/sim_digest.py [--peers 2000] [--seed 9] [--duration 30]
                                    [--workers 1,2,4] [--out DIR]

Runs ``overlay sim --peers N --seed S --duration D --json --workers W`` for each W and
records, for each, the SHA-256 of the JSON summary with the fields that say how it was
run left out (``wall_seconds``, ``messages_per_wall_second``, ``workers``: see
``overlay.sim.scenario.RUN_FIELDS``), serialised with sorted keys, and the delivered
messages, in ``benchmarks/results/sim_digest_<N>.json``.  The digests must all be the
same; ``identical`` says whether they are.  A smaller run of the same kind is a test
(``tests/overlay/sim/test_parallel.py``).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.harness import Run, as_typed, overlay_command
from overlay.sim.scenario import RUN_FIELDS

RESULTS = Path(__file__).resolve().parent / "results"


def digest(summary: dict[str, Any]) -> str:
    """SHA-256 of the summary without the fields that say how it was run."""
    kept = {key: value for key, value in summary.items() if key not in RUN_FIELDS}
    return hashlib.sha256(json.dumps(kept, sort_keys=True).encode()).hexdigest()


def one_run(peers: int, seed: int, duration: float, workers: int) -> dict[str, Any]:
    command = overlay_command(
        "sim", "--peers", str(peers), "--seed", str(seed), "--duration", f"{duration:g}",
        "--json", "--workers", str(workers),
    )  # fmt: skip
    started = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, check=True)
    summary: dict[str, Any] = json.loads(done.stdout)
    return {
        "command": as_typed(command),
        "workers": workers,
        "digest": digest(summary),
        "delivered_messages": summary["delivered_messages"],
        "lost_messages": summary["lost_messages"],
        "components": summary["components"],
        "wall_seconds": time.perf_counter() - started,
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--peers", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=9)
    parser.add_argument("--duration", type=float, default=30.0)
    parser.add_argument("--workers", default="1,2,4", help="comma-separated worker counts")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    counts = [int(word) for word in args.workers.split(",")]
    recording = Run.begin("benchmarks/sim_digest.py", argv)
    runs = [one_run(args.peers, args.seed, args.duration, count) for count in counts]
    path = args.out / f"sim_digest_{args.peers}.json"
    figures = {
        "peers": args.peers,
        "seed": args.seed,
        "sim_seconds": args.duration,
        "identical": len({run["digest"] for run in runs}) == 1,
        "runs": runs,
    }
    result = recording.write(path, figures)
    print(json.dumps(result, indent=2))
    print(f"written to {path}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
