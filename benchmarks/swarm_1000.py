"""Benchmark: ``overlay swarm --peers 1000`` on this machine.

Records, in ``benchmarks/results/swarm_1000.json``:

* ``converged_seconds``: from the first worker's start until a stats poll finds all
  1,000 peers joined in one component (polls are about two seconds apart, so this
  is an upper bound by up to one poll period);
* ``rss_per_peer_kib``: the worker processes' resident memory, summed, over the
  number of peers (interpreter and libraries included);
* ``messages_per_second_per_process``: protocol messages sent per second by all
  peers, over the worker processes, in the last polls of the run.  Search is not
  wired into the peer core yet, so this is membership traffic (heartbeats,
  shuffles, joins) and not flood forwarding; the field
  ``flood_forwarding_measured`` says so.

Run: ``python benchmarks/swarm_1000.py [--peers N] [--duration S]``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent / "results" / "swarm_1000.json"


def run(peers: int, duration: float, processes: int | None) -> dict[str, Any]:
    command = [
        sys.executable,
        "-m",
        "overlay.cli",
        "swarm",
        "--peers",
        str(peers),
        "--duration",
        str(duration),
        "--port",
        "0",
        "--json",
    ]
    if processes is not None:
        command += ["--processes", str(processes)]
    started = time.monotonic()
    done = subprocess.run(command, capture_output=True, check=True, timeout=duration + 600)
    summary: dict[str, Any] = json.loads(done.stdout)
    workers = [rss for rss in summary["worker_rss_bytes"] if rss is not None]
    steady = summary.get("steady_messages_per_second") or 0.0
    return {
        "command": " ".join(["overlay", *command[3:]]),
        "machine": {"arch": platform.machine(), "cores": os.cpu_count(), "python": sys.version},
        "peers": peers,
        "processes": summary["processes"],
        "duration": duration,
        "alive": summary["alive"],
        "components": summary["components"],
        "degree": summary["degree"],
        "converged_seconds": summary["converged_seconds"],
        "goal_converged_seconds": 30,
        "rss_per_peer_kib": sum(workers) / peers / 1024 if workers else None,
        "goal_rss_per_peer_kib": 150,
        "worker_rss_bytes": summary["worker_rss_bytes"],
        "messages_per_second": steady,
        "messages_per_second_per_process": steady / summary["processes"],
        "flood_forwarding_measured": False,
        "note": "search is not wired into the peer core yet: the rate is membership "
        "traffic sent per second per worker process, not flood forwarding",
        "messages": summary["messages"],
        "peers_left_gracefully": summary["peers_left_gracefully"],
        "wall_seconds": time.monotonic() - started,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--peers", type=int, default=1000)
    parser.add_argument("--duration", type=float, default=40.0)
    parser.add_argument("--processes", type=int, default=None)
    parser.add_argument("--output", type=Path, default=RESULTS)
    args = parser.parse_args()
    result = run(args.peers, args.duration, args.processes)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(result, indent=2, sort_keys=True) + "\n")
    print(json.dumps(result, indent=2, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
