"""The determinism digest: one seeded run, on the compiled build and on pure Python.

    python benchmarks/sim_digest.py [--peers 2000] [--seed 9] [--duration 30]

Runs ``overlay sim --peers N --seed S --duration D --json`` in two subprocesses, one
with the build this install runs and one with ``OVERLAY_PURE_PYTHON=1``, and records
for each the SHA-256 of its JSON with the wall-clock fields left out (keys sorted),
the delivered-message count, and which build ran, in
``benchmarks/results/sim_digest.json``.  The two digests must be equal: compiling
changes how fast the core runs, never what it does.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.harness import Run
from overlay.compiled import PURE_ENV
from overlay.sim.scenario import WALL_CLOCK_FIELDS

RESULTS = Path(__file__).resolve().parent / "results"
REPORT_BUILD = "from overlay.compiled import BUILD; print(BUILD.describe())"


def digest(summary: Mapping[str, Any]) -> str:
    """SHA-256 of a run's JSON summary without its wall-clock fields."""
    kept = {key: value for key, value in summary.items() if key not in WALL_CLOCK_FIELDS}
    return hashlib.sha256(json.dumps(kept, sort_keys=True).encode()).hexdigest()


def one_run(args: Sequence[str], *, pure: bool) -> dict[str, Any]:
    env = {k: v for k, v in os.environ.items() if k != PURE_ENV}
    if pure:
        env[PURE_ENV] = "1"

    def python(*words: str) -> str:
        done = subprocess.run(
            [sys.executable, *words], capture_output=True, text=True, env=env, check=True
        )
        return done.stdout

    summary = json.loads(python("-m", "overlay.tools.cli", "sim", *args, "--json"))
    return {
        "build": python("-c", REPORT_BUILD).strip(),
        "digest": digest(summary),
        "wall_seconds": summary.get("wall_seconds"),
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--peers", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=9)
    parser.add_argument("--duration", type=float, default=30.0)
    parser.add_argument("--out", type=Path, default=RESULTS / "sim_digest.json")
    args = parser.parse_args(argv)
    recording = Run.begin("benchmarks/sim_digest.py", argv)
    sim_args = ["--peers", str(args.peers), "--seed", str(args.seed)]
    sim_args += ["--duration", str(args.duration)]
    runs = {"installed": one_run(sim_args, pure=False), "pure": one_run(sim_args, pure=True)}
    same = runs["installed"]["digest"] == runs["pure"]["digest"]
    result = recording.write(
        args.out, {"sim_command": "overlay sim " + " ".join(sim_args), "runs": runs, "same": same}
    )
    print(json.dumps({k: result[k] for k in ("runs", "same")}, indent=2))
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
