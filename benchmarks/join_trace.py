"""Where a swarm's join time goes: a timeline of one ``overlay swarm`` from its launch.

    python -m benchmarks.join_trace [--peers 300] [--plaintext] [--super-peers]
        [--processes P] [--timeout 180] [--output FILE]

Starts the swarm (flat overlay unless ``--super-peers``, no items, a stats poll every
second through the workers' pipes: ``--progress-out``) and records, against seconds
since the launch:

* ``bootstrap_listening``: the parent's interpreter and imports done, the bootstrap up;
* ``first_poll``: every worker has started all its peers (the swarm polls only then);
* per poll: peers answering, ever joined, linked now, components, and the join's
  counters summed over the peers (:data:`overlay.tools.swarm.JOIN_COUNTERS`: dials
  started and failed, handshake slot waits and timeouts, ``dial.for.<Kind>``, messages
  sent by kind), as differences from the poll before (``delta``);
* ``converged_seconds``: the first poll that found every peer joined in one component.

It stops the swarm a few polls after convergence (or at ``--timeout``) and keeps its
final summary's bootstrap counters.  The timeline goes to ``--output`` (JSON), and a
short table to standard error.  A diagnostic: timings depend on the machine's load,
so compare runs made back to back.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

AFTER_CONVERGED = 3
"""Polls recorded after convergence (does the component hold?)."""
SHOWN = (
    "node.dial.started",
    "node.dial.failed",
    "node.handshake.waited",
    "node.handshake.slot_timeout",
    "node.sent.Register",
    "node.sent.Join",
    "node.sent.NeighborRequest",
)


def swarm_command(args: argparse.Namespace, progress: Path) -> list[str]:
    command = [
        sys.executable, "-m", "overlay.tools.cli", "swarm", "--peers", str(args.peers),
        "--port", "0", "--seed", str(args.seed), "--items", "0", "--duration", "3600",
        "--interval", str(args.interval), "--progress-out", str(progress), "--json",
    ]  # fmt: skip
    if not args.super_peers:
        command.append("--no-super-peers")
    if args.plaintext:
        command.append("--plaintext")
    if args.processes is not None:
        command += ["--processes", str(args.processes)]
    return command + list(args.extra)


def _read_stderr(stream: Any, launched: float, lines: list[tuple[float, str]]) -> None:
    for raw in stream:
        lines.append((time.monotonic() - launched, raw.decode(errors="replace").rstrip()))


def _records(progress: Path) -> list[dict[str, Any]]:
    try:
        text = progress.read_text("utf-8")
    except FileNotFoundError:
        return []
    out = []
    for line in text.splitlines():
        try:
            out.append(json.loads(line))
        except json.JSONDecodeError:
            break  # a line being written
    return out


def trace(args: argparse.Namespace) -> dict[str, Any]:
    folder = Path(tempfile.mkdtemp(prefix="join_trace-"))
    progress = folder / "progress.jsonl"
    command = swarm_command(args, progress)
    launched = time.monotonic()
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    lines: list[tuple[float, str]] = []
    reader = threading.Thread(target=_read_stderr, args=(process.stderr, launched, lines))
    reader.start()
    records: list[dict[str, Any]] = []
    try:
        while time.monotonic() - launched < args.timeout and process.poll() is None:
            time.sleep(0.2)
            records = _records(progress)
            after = [r for r in records if r.get("converged_seconds") is not None]
            if len(after) > AFTER_CONVERGED:
                break
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            stdout, _ = process.communicate(timeout=120)
        except subprocess.TimeoutExpired:
            process.kill()
            stdout, _ = process.communicate()
        reader.join()
    records = _records(progress)
    for path in folder.iterdir():
        path.unlink()
    folder.rmdir()
    summary: dict[str, Any] = {}
    if stdout.strip():
        try:
            summary = json.loads(stdout)
        except json.JSONDecodeError:
            summary = {}
    # The swarm's "seconds" count from its own start, after the bootstrap is up.
    listening = next((t for t, line in lines if "bootstrap listening" in line), None)
    offset = listening or 0.0
    previous: dict[str, int] = {}
    timeline: list[dict[str, Any]] = []
    for record in records:
        counters = record.pop("counters", {})
        delta = {k: v - previous.get(k, 0) for k, v in counters.items() if v != previous.get(k, 0)}
        previous = counters
        timeline.append(
            {**record, "since_launch": round(record["seconds"] + offset, 2), "delta": delta}
        )
    converged = next((r for r in timeline if r.get("converged_seconds") is not None), None)
    return {
        "command": " ".join(command[2:]).replace(str(progress), "FILE"),
        "peers": args.peers,
        "plaintext": args.plaintext,
        "load_average": os.getloadavg(),
        "bootstrap_listening": listening,
        "first_poll": timeline[0]["since_launch"] if timeline else None,
        "converged_since_launch": None
        if converged is None
        else round(converged["converged_seconds"] + offset, 2),
        "totals": previous,
        "bootstrap_counters": summary.get("bootstrap_counters"),
        "timeline": timeline,
    }


def table(result: dict[str, Any]) -> str:
    rows = [
        f"peers {result['peers']} plaintext {result['plaintext']} load {result['load_average']}",
        f"bootstrap up {result['bootstrap_listening']} s, first poll {result['first_poll']} s, "
        f"converged {result['converged_since_launch']} s",
        "   t  alive joined linked comp  " + "  ".join(k.split(".")[-1][:9] for k in SHOWN),
    ]
    for r in result["timeline"]:
        delta = r["delta"]
        rows.append(
            f"{r['since_launch']:5.1f} {r['alive']:5d} {r['joined']:6d} {r['linked']:6d} "
            f"{r['components']:4d}  " + "  ".join(f"{delta.get(k, 0):9d}" for k in SHOWN)
        )
    return "\n".join(rows)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--peers", type=int, default=300)
    parser.add_argument("--plaintext", action="store_true")
    parser.add_argument("--super-peers", action="store_true")
    parser.add_argument("--processes", type=int, default=None)
    parser.add_argument("--interval", type=float, default=1.0)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--timeout", type=float, default=180.0)
    parser.add_argument("--output", type=Path, default=None)
    parser.add_argument("extra", nargs="*", help="more `overlay swarm` flags (after --)")
    args = parser.parse_args(argv)
    result = trace(args)
    print(table(result), file=sys.stderr)
    if args.output is not None:
        args.output.write_text(json.dumps(result, indent=1) + "\n", "utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
