"""py-libp2p 0.8.1 beside this overlay: 200 hosts, Noise + yamux, floodsub, on loopback.

    python -m benchmarks.libp2p_compare [--hosts 200] [--processes 2] [--dials 3]
        [--messages 20] [--overlay-runtimes plaintext,secure] [--output FILE]

**The libp2p side.**  The script makes its own venv, ``benchmarks/.libp2p-venv``
(git-ignored), with ``pip install libp2p==0.8.1`` the first time (never a dependency of
this project), and runs ``--processes`` workers (:mod:`benchmarks.libp2p_hosts`) under
that venv's interpreter, the hosts split evenly among them.  Each host has an Ed25519
identity, Noise as its only security transport, yamux as its only muxer and a floodsub
subscribed to one topic.  Once every host listens, each dials ``--dials`` others drawn
from the seed (a random graph of mean degree about 6, as the overlay's), and the
script measures:

* ``connect_seconds``: from the first dial until every dial has returned (each worker
  dials 16 at a time, and each dial includes opening the dialler's floodsub stream);
  ``pubsub_ready_seconds``: until, after every host has opened a floodsub stream to
  each peer it is connected to, both ends of every connection have one (polled every
  0.5 s);
* ``rss_per_host_kib``: the workers' resident memory, summed, over the hosts, once
  connected; ``rss_per_host_beyond_imports_kib`` the same less each worker's memory
  after its imports and before its first host;
* ``delivery_median_seconds``: ``--messages`` messages published one after another
  (``--gap`` apart) from random hosts; for each that every host received, the last
  reception minus the publish (``time.monotonic``, one clock for the machine's
  processes); the median, and how many reached every host.

**The overlay side, in the same run**: :func:`benchmarks.secure_overhead.delivery` on
200 peers for each of ``--overlay-runtimes`` that can run here: seconds to one
component, settled memory per peer, the median flood delivery to every peer.

Result: ``benchmarks/results/libp2p_compare.json``.
"""

from __future__ import annotations

import argparse
import json
import random
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Final

if __package__ in (None, ""):  # run as a script: make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import trio

from benchmarks import secure_overhead
from benchmarks.harness import REPO, Child, Run, as_typed, delivery_figures, started
from benchmarks.runtimes import runnable, runtimes_argument
from benchmarks.swarm_1000 import _rss_bytes

LIBP2P: Final = "libp2p==0.8.1"
VENV: Final = REPO / "benchmarks" / ".libp2p-venv"
WORKER: Final = "benchmarks/libp2p_hosts.py"
RESULTS: Final = REPO / "benchmarks" / "results" / "libp2p_compare.json"
ANSWER_TIMEOUT: Final = 300.0
READY_TIMEOUT: Final = 600.0
"""Starting 100 libp2p hosts in one process on a loaded machine takes a while."""
PUBSUB_TIMEOUT: Final = 300.0
"""At 200 hosts on a loaded 2-core machine, floodsub's peers were not all known after
60 s, and then no message reached every host."""
DRAIN: Final = 30.0
"""Seconds after the last publish for the last messages to arrive (one took 3.5 s at
40 hosts)."""


def _progress(text: str) -> None:
    print(f"libp2p_compare: {text}", file=sys.stderr, flush=True)


def venv_python() -> Path:
    """The venv's interpreter, with libp2p 0.8.1 installed (made on first use)."""
    python = VENV / "bin" / "python"
    check = [str(python), "-c", "import importlib.metadata as m; print(m.version('libp2p'))"]
    if python.exists():
        found = subprocess.run(check, capture_output=True, text=True, check=False).stdout
        if found.strip() == LIBP2P.split("==")[1]:
            return python
    _progress(f"making {VENV.relative_to(REPO)} with {LIBP2P} (once)")
    subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True)
    subprocess.run([str(python), "-m", "pip", "install", "-q", LIBP2P], check=True)
    return python


def listed_hosts(line: str) -> dict[str, Any] | None:
    """A worker's ready line: ``{"hosts": [...]}``."""
    record = json_record(line.encode())
    return record if record is not None and "hosts" in record else None


class Worker:
    """One worker process and the answers it printed since the last one read."""

    def __init__(self, child: Child[dict[str, Any]], first: int) -> None:
        self.child = child
        self.first = first
        """Global index of its first host."""
        self.addresses: list[str] = list(child.ready["hosts"])
        self.rss_before_hosts = int(child.ready["rss_before_hosts"])
        self._read = len(child.stdout)

    async def ask(self, command: dict[str, Any], key: str) -> dict[str, Any]:
        """Send ``command``; the next line it prints that has ``key``."""
        await self.child.send(json.dumps(command))
        with trio.fail_after(ANSWER_TIMEOUT):
            while True:
                out = self.child.stdout
                end = out.rfind(b"\n")
                if end >= self._read:
                    lines = out[self._read : end].split(b"\n")
                    self._read = end + 1
                    for line in lines:
                        record = json_record(line)
                        if record is not None and key in record:
                            return record
                await trio.sleep(0.02)


def json_record(line: bytes) -> dict[str, Any] | None:
    """A line a worker printed, if it is one of its JSON records."""
    try:
        record = json.loads(line)
    except ValueError:
        return None
    return record if isinstance(record, dict) else None


def random_dials(hosts: int, dials: int, rng: random.Random) -> list[tuple[int, int]]:
    """Each host dials ``dials`` distinct others; a pair is dialled once."""
    pairs: set[tuple[int, int]] = set()
    for host in range(hosts):
        others = [h for h in range(hosts) if h != host]
        for other in rng.sample(others, min(dials, len(others))):
            if (other, host) not in pairs:
                pairs.add((host, other))
    return sorted(pairs)


async def gather(
    workers: Sequence[Worker], commands: Sequence[dict[str, Any]], key: str
) -> list[dict[str, Any]]:
    """Each worker's answer to its command, asked at once."""
    answers: list[dict[str, Any]] = [{} for _ in workers]

    async def one(i: int) -> None:
        answers[i] = await workers[i].ask(commands[i], key)

    async with trio.open_nursery() as nursery:
        for i in range(len(workers)):
            nursery.start_soon(one, i)
    return answers


async def measure_libp2p(args: argparse.Namespace, python: Path) -> dict[str, Any]:
    split = [
        args.hosts // args.processes + (i < args.hosts % args.processes)
        for i in range(args.processes)
    ]
    rng = random.Random(f"libp2p {args.seed}")
    async with trio.open_nursery() as nursery:
        workers: list[Worker] = []
        ready = trio.Event()
        done = trio.Event()

        async def run_worker(count: int, first: int) -> None:
            command = [str(python), WORKER, str(count)]
            async with started(command, listed_hosts, timeout=READY_TIMEOUT, stop="eof") as child:
                workers.append(Worker(child, first))
                if len(workers) == len(split):
                    ready.set()
                await done.wait()

        began = time.monotonic()
        first = 0
        for count in split:
            nursery.start_soon(run_worker, count, first)
            first += count
        await ready.wait()
        workers.sort(key=lambda w: w.first)
        start_seconds = time.monotonic() - began
        _progress(f"{args.hosts} hosts listening after {start_seconds:.1f} s; dialling")
        addresses = [a for w in workers for a in w.addresses]
        owner = [
            (w, i - w.first) for w in workers for i in range(w.first, w.first + len(w.addresses))
        ]
        pairs = random_dials(args.hosts, args.dials, rng)
        plan: list[list[list[Any]]] = [[] for _ in workers]
        for a, b in pairs:
            worker, local = owner[a]
            plan[workers.index(worker)].append([local, addresses[b]])
        began = time.monotonic()
        dialled = await gather(workers, [{"connect": p} for p in plan], "connected")
        connect_seconds = time.monotonic() - began
        await gather(workers, [{"ensure": True}] * len(workers), "ensured")
        pubsub_ready = None
        with trio.move_on_after(PUBSUB_TIMEOUT):
            while True:
                answers = await gather(workers, [{"peers": True}] * len(workers), "pubsub_peers")
                if sum(sum(a["pubsub_peers"]) for a in answers) >= 2 * len(pairs):
                    pubsub_ready = time.monotonic() - began
                    break
                await trio.sleep(0.5)
        rss = _rss_bytes([w.child.process.pid for w in workers])
        pubsub_peers = sum(sum(a["pubsub_peers"]) for a in answers)
        _progress(f"connected in {connect_seconds:.1f} s; publishing {args.messages} messages")
        published: dict[str, float] = {}
        for n in range(args.messages):
            host = rng.randrange(args.hosts)
            worker, local = owner[host]
            data = f"m{n}"
            answer = await worker.ask({"publish": [local, data]}, "published")
            published[data] = float(answer["at"])
            await trio.sleep(args.gap)
        await trio.sleep(DRAIN)
        reports = await gather(workers, [{"report": True}] * len(workers), "received")
        done.set()
    received: dict[str, list[float]] = {}
    for report in reports:
        for data, times in report["received"].items():
            received.setdefault(data, []).extend(times)
    delivery = [
        max(received[d]) - at
        for d, at in published.items()
        if len(received.get(d, ())) >= args.hosts
    ]
    reach = sorted(len(received.get(d, ())) for d in published)
    before = sum(w.rss_before_hosts for w in workers)
    return {
        "library": LIBP2P,
        "hosts": args.hosts,
        "processes": args.processes,
        "dials": len(pairs),
        "dials_connected": sum(int(d["connected"]) for d in dialled),
        "dials_failed": sum(int(d["failed"]) for d in dialled),
        "start_seconds": round(start_seconds, 2),
        "connect_seconds": round(connect_seconds, 2),
        "pubsub_ready_seconds": None if pubsub_ready is None else round(pubsub_ready, 2),
        "rss_per_host_kib": round(sum(rss) / args.hosts / 1024, 1),
        "rss_per_host_beyond_imports_kib": round((sum(rss) - before) / args.hosts / 1024, 1),
        "messages": len(published),
        "messages_reaching_every_host": len(delivery),
        "hosts_reached_per_message": reach,
        "pubsub_peers_at_publish": pubsub_peers,
        **delivery_figures(delivery, 3),
    }


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--hosts", type=int, default=200)
    parser.add_argument("--processes", type=int, default=2)
    parser.add_argument("--dials", type=int, default=3, help="dials per host (mean degree 2x)")
    parser.add_argument("--messages", type=int, default=20)
    parser.add_argument("--gap", type=float, default=1.0, help="seconds between messages")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--overlay-runtimes", type=runtimes_argument, default=["plaintext", "secure"]
    )
    parser.add_argument("--no-overlay", dest="overlay", action="store_false")
    parser.add_argument("--output", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    if not args.hosts >= 2 or not 1 <= args.processes <= args.hosts:
        parser.error("--hosts is at least 2, --processes 1..hosts")
    return args


def overlay_side(args: argparse.Namespace) -> dict[str, Any]:
    """The same figures for this overlay, 200 peers, each runtime that can run."""
    sections: dict[str, Any] = {}
    ours = secure_overhead.parse_args(
        ["--peers", "0", "--delivery-peers", str(args.hosts), "--floods", str(args.messages)]
    )
    for runtime, flags in runnable(args.overlay_runtimes, sections):
        _progress(f"the overlay, {runtime}: {args.hosts} peers")
        sections[runtime] = secure_overhead.delivery(ours, flags)
    return sections


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    python = venv_python()
    recording = Run.begin("-m benchmarks.libp2p_compare", argv)
    libp2p = trio.run(measure_libp2p, args, python)
    _progress(json.dumps(libp2p))
    figures: dict[str, Any] = {
        "worker_command": as_typed([str(python.relative_to(REPO)), WORKER, "N"]),
        "libp2p": libp2p,
    }
    if args.overlay:
        figures["overlay"] = overlay_side(args)
    record = recording.write(args.output, figures)
    print(json.dumps({k: record[k] for k in ("libp2p", "overlay") if k in record}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
