"""The simulator's cost per delivered message, in instructions, and its determinism digest.

Instruction counts (``valgrind --tool=callgrind``) are repeatable on a shared, loaded
machine where seconds are not, so two versions of the code are compared by them::

    python benchmarks/sim_cost.py --tree /tmp/before --tree . \\
        --output benchmarks/results/sim_cost_trust.json

runs, for each source tree, ``overlay sim --peers 500 --seed 9 --duration 30 --json``
under callgrind (``PYTHONPATH`` set to the tree) and records the instructions, the
delivered messages, their ratio, and the digest of the JSON (SHA-256 of it without
``wall_seconds`` and ``messages_per_wall_second``, keys sorted).  ``--commit REF``
measures a commit of this repository (``git archive`` into a scratch folder).
``--reuse LABEL OUT JSON`` reads a callgrind output file and the sim's JSON from a run
made by hand with the same command (after ``python -m compileall`` of the tree) instead
of running again, and ``--keep FILE`` carries the rows of an earlier record over, first.
``ratio_last_to_first`` compares the last row with the first one this run added (the
kept rows may have been measured another way: see below), or with the first kept row
when this run added at most one.

Every tree runs pure Python (``OVERLAY_PURE_PYTHON=1``: the figures before the compiled
core were pure, and a tree from ``git archive`` has nothing compiled) on one process
(``--workers 1`` where the tree has the parallel simulator: callgrind follows one
process).

Bytecode compilation is not in any figure: before its callgrind run, each tree's
sources are compiled to ``__pycache__`` (:func:`warm_up`, the same for every tree), as
an installed package's are, so a run loads bytecode instead of compiling every module
again (which it would where bytecode is never written, ``PYTHONDONTWRITEBYTECODE``, as
on the machine these figures come from; the rows recorded before this warm-up existed
include it).  The dependencies' bytecode is written by pip at install.  What remains of
start-up is the interpreter and the imports a simulation needs; everything per message
is counted.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import subprocess
import sys
import tarfile
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.harness import Run

SIM_ARGS = ("sim", "--peers", "500", "--seed", "9", "--duration", "30", "--json")
PACKAGES = ("overlay", "search", "bootstrap")
_TOTAL = re.compile(rb"^(?:summary|totals):\s+(\d+)", re.MULTILINE)


def digest(figures: dict[str, Any]) -> str:
    """The determinism digest: the sim's JSON without its two wall-clock figures."""
    kept = {
        k: v for k, v in figures.items() if k not in {"wall_seconds", "messages_per_wall_second"}
    }
    return hashlib.sha256(json.dumps(kept, sort_keys=True).encode()).hexdigest()


def instructions(callgrind_out: Path) -> int:
    match = _TOTAL.search(callgrind_out.read_bytes())
    if match is None:
        raise ValueError(f"no instruction total in {callgrind_out}")
    return int(match.group(1))


def sim_args_for(tree: Path) -> tuple[str, ...]:
    """The sim's arguments, on one process where the tree can split a run."""
    if (tree / "overlay" / "sim" / "parallel.py").exists():
        return (*SIM_ARGS, "--workers", "1")
    return SIM_ARGS


def warm_up(tree: Path) -> None:
    """Write the bytecode of ``tree``'s packages, so no measured run compiles a module."""
    packages = [str(tree / name) for name in PACKAGES if (tree / name).is_dir()]
    subprocess.run([sys.executable, "-m", "compileall", "-q", *packages], check=True)


def measure(tree: Path, sim_args: Sequence[str]) -> tuple[int, dict[str, Any]]:
    """Run the sim from ``tree`` under callgrind; (instructions, the sim's JSON)."""
    warm_up(tree)
    with tempfile.TemporaryDirectory() as scratch:
        out = Path(scratch) / "callgrind.out"
        env = {**os.environ, "PYTHONPATH": str(tree.resolve()), "OVERLAY_PURE_PYTHON": "1"}
        command = [
            "valgrind",
            "--tool=callgrind",
            f"--callgrind-out-file={out}",
            sys.executable,
            "-m",
            "overlay.tools.cli",
            *sim_args,
        ]
        done = subprocess.run(command, env=env, cwd=tree, capture_output=True, check=True)
        return instructions(out), json.loads(done.stdout)


def measure_commit(ref: str) -> tuple[int, dict[str, Any]]:
    """Run the sim from commit ``ref`` of the repository this script is in."""
    repository = Path(__file__).resolve().parents[1]
    with tempfile.TemporaryDirectory() as scratch:
        archive = Path(scratch) / "tree.tar"
        tree = Path(scratch) / "tree"
        subprocess.run(
            ["git", "archive", "--output", str(archive), ref], cwd=repository, check=True
        )
        with tarfile.open(archive) as tar:
            tar.extractall(tree, filter="data")
        return measure(tree, sim_args_for(tree))


def figures_of(label: str, count: int, sim: dict[str, Any]) -> dict[str, Any]:
    delivered = int(sim["delivered_messages"])
    return {
        "tree": label,
        "instructions": count,
        "delivered_messages": delivered,
        "instructions_per_message": round(count / delivered, 1),
        "digest": digest(sim),
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keep", type=Path, help="an earlier record whose rows come first")
    parser.add_argument("--commit", action="append", default=[], help="a commit to measure")
    parser.add_argument("--tree", type=Path, action="append", default=[])
    parser.add_argument("--reuse", nargs=3, action="append", default=[],
                        metavar=("LABEL", "CALLGRIND_OUT", "SIM_JSON"))  # fmt: skip
    parser.add_argument("--output", type=Path, required=True)
    args = parser.parse_args(argv)
    run = Run.begin("benchmarks/sim_cost.py", argv)
    rows: list[dict[str, Any]] = []
    if args.keep is not None:
        rows.extend(json.loads(args.keep.read_text(encoding="utf-8"))["runs"])
    kept = len(rows)
    rows.extend(figures_of(ref, *measure_commit(ref)) for ref in args.commit)
    rows.extend(figures_of(str(tree), *measure(tree, sim_args_for(tree))) for tree in args.tree)
    for label, out, sim in args.reuse:
        figures = json.loads(Path(sim).read_text(encoding="utf-8"))
        rows.append(figures_of(label, instructions(Path(out)), figures))
    record: dict[str, Any] = {"sim_command": "overlay " + " ".join(SIM_ARGS), "runs": rows}
    compared = rows[kept:] if len(rows) - kept >= 2 else rows
    if len(compared) >= 2:
        record["ratio_last_to_first"] = round(
            compared[-1]["instructions_per_message"] / compared[0]["instructions_per_message"], 4
        )
    run.write(args.output, record)
    print(json.dumps(record, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
