"""The determinism digest: one seeded run, compiled and pure, on 1, 2 and 4 workers.

    python benchmarks/sim_digest.py [--peers 2000] [--seed 9] [--duration 30]
                                    [--workers 1,2,4] [--out DIR]

Runs ``overlay sim --peers N --seed S --duration D --json --workers W`` in subprocesses:
for each W with the build this install runs, and once more with ``OVERLAY_PURE_PYTHON=1``
on one worker. Each run records the SHA-256 of its JSON summary with the fields that
say how it was run left out (``wall_seconds``, ``messages_per_wall_second``,
``workers``...: ``overlay.sim.scenario.RUN_FIELDS``), serialised with sorted keys, the
delivered messages and which build ran, in ``benchmarks/results/sim_digest_<N>.json``.
The digests must all be equal (``identical``): compiling or splitting the peers over
processes changes how fast a run goes, never what it does. Smaller runs of the same
kind are tests (``tests/overlay/sim/test_parallel.py``, ``tests/overlay/test_compiled.py``).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.harness import Run, as_typed, overlay_command
from overlay.compiled import PURE_ENV
from overlay.sim.scenario import RUN_FIELDS

RESULTS = Path(__file__).resolve().parent / "results"
REPORT_BUILD = "from overlay.compiled import BUILD; print(BUILD.describe())"


def digest(summary: Mapping[str, Any]) -> str:
    """SHA-256 of a run's JSON summary without the fields that say how it was run."""
    kept = {key: value for key, value in summary.items() if key not in RUN_FIELDS}
    return hashlib.sha256(json.dumps(kept, sort_keys=True).encode()).hexdigest()


def one_run(peers: int, seed: int, duration: float, workers: int, *, pure: bool) -> dict[str, Any]:
    env = {k: v for k, v in os.environ.items() if k != PURE_ENV}
    if pure:
        env[PURE_ENV] = "1"
    command = overlay_command(
        "sim", "--peers", str(peers), "--seed", str(seed), "--duration", f"{duration:g}",
        "--json", "--workers", str(workers),
    )  # fmt: skip
    started = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, env=env, check=True)
    wall = time.perf_counter() - started
    summary: dict[str, Any] = json.loads(done.stdout)
    build = subprocess.run(
        [sys.executable, "-c", REPORT_BUILD], capture_output=True, text=True, env=env, check=True
    ).stdout.strip()
    return {
        "command": as_typed(command),
        "pure_python_forced": pure,
        "build": build,
        "workers": workers,
        "digest": digest(summary),
        "delivered_messages": summary["delivered_messages"],
        "lost_messages": summary["lost_messages"],
        "components": summary["components"],
        "wall_seconds": wall,
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--peers", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=9)
    parser.add_argument("--duration", type=float, default=30.0)
    parser.add_argument("--workers", default="1,2,4", help="comma-separated worker counts")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    counts = [int(word) for word in args.workers.split(",")]
    recording = Run.begin("benchmarks/sim_digest.py", argv)
    shape = (args.peers, args.seed, args.duration)
    runs = [one_run(*shape, count, pure=False) for count in counts]
    runs.append(one_run(*shape, 1, pure=True))
    path = args.out / f"sim_digest_{args.peers}.json"
    figures = {
        "peers": args.peers,
        "seed": args.seed,
        "sim_seconds": args.duration,
        "identical": len({run["digest"] for run in runs}) == 1,
        "runs": runs,
    }
    result = recording.write(path, figures)
    print(json.dumps({k: result[k] for k in ("identical", "runs")}, indent=2))
    print(f"written to {path}", file=sys.stderr)
    return 0 if figures["identical"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
