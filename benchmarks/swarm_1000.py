"""Benchmark: ``overlay swarm --peers 1000`` on this machine, idle and forwarding floods.

Records, in ``benchmarks/results/swarm_1000.json``:

* ``converged_seconds``: from the swarm's launch until the swarm's own stats poll
  (every two seconds, through the workers' pipes: ``--progress-out``) finds all 1,000
  peers joined in one component; an upper bound by up to one poll period, and it
  includes the interpreters' start-up (``swarm_converged_seconds``: the swarm's own
  figure, from its start after the bootstrap is up).  Until 2026-12-07 this script
  polled every peer over TCP itself, which on the secure runtime cost a Noise
  handshake at both ends per peer per poll and slowed the join it timed;
* ``rss_per_peer_kib``: the worker processes' resident memory, summed, over the
  number of peers (interpreter and libraries included), read from ``/proc`` once the
  swarm has converged and idled for ``--idle`` seconds, before this script's first
  stats poll (1,000 client handshakes at once) and before any flood;
  ``rss_per_peer_kib_after_floods`` the same at the end of the flood window;
  ``interpreter_rss_bytes`` a worker running no peer (what each worker costs before
  its first peer), and
  ``rss_per_peer_kib_beyond_interpreter`` the settled figure without it;
  ``pss_per_peer_kib`` the settled figure from the proportional set size (pages the
  workers share, such as the libraries, counted once rather than once per worker);
* ``messages_per_second_per_process``: membership traffic (heartbeats, shuffles,
  joins) sent per second over the worker processes, in an idle window after
  convergence;
* ``flood``: **forwarded flood messages per second that one peer process sustains over
  loopback**.  The script keeps ``--concurrency`` flood searches in flight, each asked
  of a random peer through the client protocol (``overlay search --mode flood``) for
  one of the swarm's seeded items (``--items``, 1% replication), for ``--window``
  seconds.  The count is the ``node.sent.Query`` counters of every peer (the runtime
  counts a message when it queues it on a connection) read by a stats request before
  and after the window, over the window's length, over the worker processes.

* ``flood_one_process``: the same flood measurement on a swarm whose peers all run in
  **one** worker process (``--one-process-peers``, default 250, with
  ``--one-process-concurrency`` floods in flight), so that the worker is not diluted by
  the parent and the flood clients sharing its two cores: this is the figure of what
  one peer process sustains.  ``worker_cpu_share`` says how much of a core it got.

Every flood figure comes per worker process per wall second and per worker CPU-second,
with the load average at the end of its window.  The previous result file is kept
under ``before`` (and its own ``before`` in it: the history of the figures).

Caveats, written into the result too: the peers' worker processes share the machine
with the swarm's parent (bootstrap), this script (the flood clients) and, on a shared
machine, whatever else runs; the per-process figure is the total over the number of
worker processes, which assumes the load spreads evenly (peers are split evenly and
flood origins are drawn uniformly).  So the result also gives the CPU time the workers
actually got in the window (``worker_cpu_share``: 1.0 is a whole core each) and the
forwarded messages per CPU-second of a worker, which is what one process would sustain
with a core to itself.

A swarm that does not converge within ``--join-timeout`` is recorded as such
(``converged_seconds`` null, ``not_converged`` with what the last poll saw) and gets no
flood figure: floods over a swarm that is falling apart measure nothing.  On a machine
too busy for 1,000 peers, measure the flood on a smaller swarm (``--peers 400 --output
...``); the committed result says which it did.

Run: ``python -m benchmarks.swarm_1000 [--peers N] [--window S] [--concurrency K]
[--one-process-peers M]`` (about three minutes; under ``flock /tmp/bench.lock`` on a
shared machine).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import signal
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import networkx as nx
import trio

from benchmarks.harness import (
    Child,
    Listening,
    NotReady,
    Run,
    WorkerStarted,
    as_typed,
    listening,
    overlay_command,
    read_result,
    started,
    worker_command,
)
from overlay.net.client import set_client_security
from overlay.net.secure import PLAINTEXT
from overlay.net.swarm.setup import seeded_items
from overlay.protocol.errors import OverlayError
from overlay.protocol.identity import Address
from overlay.protocol.messages import StatsReply
from overlay.sim.topology import graph_of
from overlay.tools.cli_search import search_via
from overlay.tools.crawl import list_members
from overlay.tools.swarm import collect_stats, sent_by_kind, snapshot_of
from search.store import content_key

RESULTS = Path(__file__).resolve().parent / "results" / "swarm_1000.json"
SEED = 1
POLL = 2.0
"""Seconds between the swarm's stats polls (batched: one pipe line per worker)."""
PROGRESS_POLL = 0.2
"""Seconds between this script's reads of the swarm's progress file."""
STATS_TIMEOUT = 15.0
"""Generous: on a loaded machine a peer may take seconds to answer, and a stats poll that
misses a peer cannot tell that the swarm converged, nor count that peer's messages."""
GOAL_FORWARDED = 20_000


def _counters(replies: Sequence[StatsReply]) -> dict[str, int]:
    """Every counter summed over the peers that answered."""
    totals: dict[str, int] = {}
    for reply in replies:
        for counter in reply.counters:
            totals[counter.name] = totals.get(counter.name, 0) + counter.value
    return totals


def _workers(swarm: int) -> list[int]:
    """The swarm's worker processes (its children).

    Every thread's ``children`` file is read: trio starts processes from a worker
    thread, and ``/proc/PID/task/TID/children`` lists only the children a thread made
    (reading the main thread's alone found no worker and recorded no CPU time)."""
    pids: list[int] = []
    for task in Path(f"/proc/{swarm}/task").glob("*"):
        try:
            pids += [int(pid) for pid in (task / "children").read_text("ascii").split()]
        except OSError:
            continue
    return sorted(set(pids))


def _cpu_seconds(pids: Sequence[int]) -> float:
    """User plus system CPU time the processes have used so far."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat", encoding="ascii") as file:
                fields = file.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])  # utime, stime (fields 14 and 15)
    return total / ticks


def _rss_bytes(pids: Sequence[int], *, field: str = "VmRSS:", file: str = "status") -> list[int]:
    """Resident memory of each process (a process gone meanwhile is left out)."""
    sizes = []
    for pid in pids:
        try:
            with open(f"/proc/{pid}/{file}", encoding="ascii") as status:
                for line in status:
                    if line.startswith(field):
                        sizes.append(int(line.split()[1]) * 1024)
        except (OSError, ValueError):
            continue
    return sizes


def _pss_bytes(pids: Sequence[int]) -> list[int]:
    """Proportional set size of each process: resident memory with every page shared
    between processes (the interpreter's binary and libraries, mapped by every worker)
    divided among them, so that the workers' sum counts each page once."""
    return _rss_bytes(pids, field="Pss:", file="smaps_rollup")


async def interpreter_rss() -> int | None:
    """Resident memory of a swarm worker that runs no peer: the interpreter and the
    modules a worker imports, which every worker pays once whatever its peers."""
    command = worker_command("--bootstrap", "127.0.0.1:9", "--count", "0")
    try:
        # {"ready": 0}: imports done, trio running.  The end of its input makes it leave.
        async with started(command, WorkerStarted(), stop="eof", grace=30) as worker:
            size = _rss_bytes([worker.process.pid])
    except NotReady:
        return None
    return size[0] if size else None


def _progress(text: str) -> None:
    """One status line per phase on stderr (stdout carries the JSON)."""
    print(f"swarm_1000: {text}", file=sys.stderr, flush=True)


def _state(replies: Sequence[StatsReply]) -> dict[str, int]:
    shots = [snapshot_of(r) for r in replies]
    graph = graph_of(shots)
    return {
        "answered": len(shots),
        "joined": sum(1 for s in shots if s.joined),
        "components": nx.number_connected_components(graph) if graph.number_of_nodes() else 0,
    }


async def _listing(bootstrap: Address, last: list[Any]) -> list[Any]:
    """The bootstrap's listing, or the last one when it does not answer in time: busy
    registering hundreds of peers (each with a Noise handshake on the secure runtime),
    a bootstrap on a loaded machine missed the listing's 1 s and ended the run."""
    try:
        return await list_members(bootstrap, STATS_TIMEOUT)
    except OverlayError as error:
        _progress(f"no listing this time: {error}")
        return last


def _last_progress(path: Path) -> dict[str, Any] | None:
    """The swarm's last ``--progress-out`` record (None before its first poll)."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError:
        return None
    for line in reversed(lines):
        try:
            record = json.loads(line)
        except ValueError:
            continue  # the line being written
        if isinstance(record, dict):
            return record
    return None


async def _measure(
    args: argparse.Namespace, swarm: Child[Listening], launched: float, progress: Path
) -> dict[str, Any]:
    """The figures of a running swarm; the swarm's own summary comes when it stops."""
    bootstrap = swarm.ready.address
    result: dict[str, Any] = {}
    # Every peer joined in one component, as the swarm's own polls see it: they read the
    # workers' batched stats through their pipes.  Polling every peer over TCP from here
    # cost, on the secure runtime, a Noise handshake at both ends per peer per poll
    # (1,000 peers every 2 s: about a core), which slowed the very join it timed.
    state: dict[str, Any] = {}
    with trio.move_on_after(args.join_timeout) as joining:
        while (state := _last_progress(progress) or state).get("converged_seconds") is None:
            await trio.sleep(PROGRESS_POLL)
    if joining.cancelled_caught:
        # Record what was seen rather than nothing: on a starved machine a swarm of
        # this size may not settle, and that is a result too.
        result["converged_seconds"] = None
        result["not_converged"] = state
        return result
    result["converged_seconds"] = time.monotonic() - launched
    result["swarm_converged_seconds"] = state["converged_seconds"]
    _progress(f"converged after {result['converged_seconds']:.1f} s")
    # Settled memory first, after an idle window and before this script's own stats
    # polls: a poll is a client connection to every peer (a Noise handshake at both
    # ends on the secure runtime), 1,000 at once, and what they left in the workers'
    # heaps was read as the peers' own (about 20 KiB a peer, 2026-12-07).
    await trio.sleep(args.idle)
    workers = _workers(swarm.process.pid)
    result["worker_rss_settled"] = _rss_bytes(workers)
    result["worker_pss_settled"] = _pss_bytes(workers)
    members = await _listing(bootstrap, [])
    addresses = [m.contact.address for m in members]
    replies = (await collect_stats(addresses, STATS_TIMEOUT))[0]

    # Idle: membership traffic only.
    idle_start = time.monotonic()
    idle_before = sum(sent_by_kind(replies).values())
    await trio.sleep(args.idle)
    replies, _ = await collect_stats(addresses, STATS_TIMEOUT)
    idle_seconds = time.monotonic() - idle_start
    result["messages_per_second"] = (
        sum(sent_by_kind(replies).values()) - idle_before
    ) / idle_seconds

    # Floods: keep `concurrency` in flight for `window` seconds.
    keys = [content_key(value) for value, _ in seeded_items(args.items, SEED)]
    counters_before = _counters(replies)
    rng = random.Random(SEED)
    done = {"floods": 0, "found": 0, "errors": 0}
    _progress(f"flooding for {args.window:g} s, {args.concurrency} floods in flight")
    cpu_before = _cpu_seconds(workers)
    flood_start = time.monotonic()
    stop_at = flood_start + args.window

    async def flooder() -> None:
        while time.monotonic() < stop_at:
            via = rng.choice(addresses)
            try:
                found = await search_via(via, "flood", key=rng.choice(keys), ttl=7)
            except OverlayError:
                done["errors"] += 1
                continue
            done["floods"] += 1
            done["found"] += found.success

    async with trio.open_nursery() as floods:
        for _ in range(args.concurrency):
            floods.start_soon(flooder)
    flood_seconds = time.monotonic() - flood_start  # the last floods have ended here
    cpu_used = _cpu_seconds(workers) - cpu_before
    load_after_window = os.getloadavg()
    result["worker_rss_after_floods"] = _rss_bytes(workers)
    replies, unanswered = await collect_stats(addresses, STATS_TIMEOUT)
    counters_after = _counters(replies)
    sent = counters_after.get("node.sent.Query", 0) - counters_before.get("node.sent.Query", 0)
    received = counters_after.get("received.Query", 0) - counters_before.get("received.Query", 0)
    processes = args.processes or (os.cpu_count() or 1)
    per_process = sent / flood_seconds / processes
    result["flood"] = {
        "window_seconds": flood_seconds,
        "concurrency": args.concurrency,
        "floods_completed": done["floods"],
        "floods_found_item": done["found"],
        "client_errors": done["errors"],
        "ttl": 7,
        "items": args.items,
        "replication": 0.01,
        "queries_forwarded": sent,
        "queries_received": received,
        "forwarded_per_second": sent / flood_seconds,
        "forwarded_per_second_per_process": per_process,
        "goal_forwarded_per_second_per_process": GOAL_FORWARDED,
        "meets_goal": per_process >= GOAL_FORWARDED,
        "stats_unanswered": unanswered,
        "worker_cpu_seconds": cpu_used,
        "worker_cpu_share": cpu_used / flood_seconds / max(len(workers), 1),
        "forwarded_per_worker_cpu_second": sent / cpu_used if cpu_used > 0 else None,
        "load_average_at_end_of_window": load_after_window,
        # What else the workers did meanwhile (links opened and refused, hits checked,
        # messages dropped): the counters that moved, summed over the peers.
        "counters_in_window": {
            name: value - counters_before.get(name, 0)
            for name, value in sorted(counters_after.items())
            if value != counters_before.get(name, 0)
        },
    }
    final = _state(replies)
    result["after_floods"] = final
    return result


def run(args: argparse.Namespace) -> dict[str, Any]:
    progress = Path(tempfile.mkdtemp(prefix="swarm_1000-")) / "progress.jsonl"
    command = overlay_command(
        "swarm",
        "--peers",
        str(args.peers),
        "--duration",
        "3600",
        "--interval",
        str(POLL),
        "--progress-out",
        str(progress),
        "--port",
        "0",
        "--no-super-peers",  # the flat overlay's cost per peer, as recorded
        "--items",
        "0",
        "--seed",
        str(SEED),
        "--items",
        str(args.items),
        "--replication",
        "0.01",
        "--json",
    )
    if args.processes is not None:
        command += ["--processes", str(args.processes)]
    if args.plaintext:
        command.append("--plaintext")

    async def main() -> tuple[dict[str, Any], dict[str, Any]]:
        launched = time.monotonic()
        async with started(
            command, listening("bootstrap"), ready_on="stderr", stop=signal.SIGTERM, grace=120
        ) as swarm:
            measured = await _measure(args, swarm, launched, progress)
        # Stopped: its summary (JSON) is all it printed on standard output.
        return measured, json.loads(swarm.stdout) if swarm.stdout.strip() else {}

    try:
        measured, summary = trio.run(main)
    finally:
        shutil.rmtree(progress.parent, ignore_errors=True)  # the swarm's progress file
    processes = summary.get("processes") or args.processes or (os.cpu_count() or 1)
    idle_rate = measured.get("messages_per_second")
    settled = measured.get("worker_rss_settled") or []
    flooded = measured.get("worker_rss_after_floods") or []
    proportional = measured.get("worker_pss_settled") or []
    interpreter = trio.run(interpreter_rss)

    def per_peer(sizes: Sequence[int], less: int = 0) -> float | None:
        return (sum(sizes) - less * len(sizes)) / args.peers / 1024 if sizes else None

    return {
        "swarm_command": as_typed(command),
        "peers": args.peers,
        "links": "plaintext" if args.plaintext else "noise",
        "processes": processes,
        "alive": summary.get("alive"),
        "components": summary.get("components"),
        "degree": summary.get("degree"),
        "converged_seconds": measured["converged_seconds"],
        "not_converged": measured.get("not_converged"),
        "after_floods": measured.get("after_floods"),
        "goal_converged_seconds": 30,
        "rss_per_peer_kib": per_peer(settled),
        "goal_rss_per_peer_kib": 150,
        "meets_rss_goal": (per_peer(settled) or float("inf")) <= 150,
        "rss_per_peer_kib_after_floods": per_peer(flooded),
        "rss_per_peer_kib_beyond_interpreter": per_peer(settled, interpreter or 0)
        if interpreter
        else None,
        "pss_per_peer_kib": per_peer(proportional),
        "interpreter_rss_bytes": interpreter,
        "worker_rss_settled_bytes": settled,
        "worker_rss_after_floods_bytes": flooded,
        "worker_rss_bytes": summary.get("worker_rss_bytes"),
        "messages_per_second": idle_rate,
        "messages_per_second_per_process": idle_rate / processes if idle_rate else None,
        "flood_forwarding_measured": "flood" in measured,
        "flood": measured.get("flood"),
        "note": "messages_per_second is membership traffic in an idle window; flood is "
        "Query messages forwarded per second while the script kept floods in flight. "
        "The machine is shared: the swarm's parent, this script's flood clients and other "
        "users' jobs ran on the same cores (see load_after). rss_per_peer_kib is "
        "the workers' resident memory, summed, over the peers, read after an idle window "
        "(joined and settled, before this script's stats polls and any flood); "
        "rss_per_peer_kib_after_floods the same at the end of the flood window (each peer "
        "then remembers the query ids of the last seen_seconds); interpreter_rss_bytes "
        "is a worker running no peer; "
        "pss_per_peer_kib is the settled figure with pages shared between the workers "
        "(libraries) counted once.",
        "messages": summary.get("messages"),
        "peers_left_gracefully": summary.get("peers_left_gracefully"),
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--peers", type=int, default=1000)
    parser.add_argument("--processes", type=int, default=None)
    parser.add_argument("--items", type=int, default=20, help="seeded items (1%% each)")
    parser.add_argument("--idle", type=float, default=10.0, help="idle window, seconds")
    parser.add_argument("--window", type=float, default=20.0, help="flood window, seconds")
    parser.add_argument(
        "--concurrency",
        type=int,
        default=64,
        help="floods in flight (a client waits out each flood; with 32 the two workers "
        "were idle a third of the time)",
    )
    parser.add_argument("--join-timeout", type=float, default=300.0)
    parser.add_argument(
        "--one-process-peers",
        type=int,
        default=250,
        help="then flood a swarm of this many peers in one worker process, so that the "
        "forwarding figure is one process's own, not shared with the clients (0: skip)",
    )
    parser.add_argument(
        "--one-process-concurrency",
        type=int,
        default=64,
        help="floods in flight for the one-process run (enough to keep its worker busy)",
    )
    parser.add_argument(
        "--plaintext", action="store_true", help="the swarm and the flood clients without Noise"
    )
    parser.add_argument("--output", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    if args.plaintext:
        set_client_security(PLAINTEXT)
    recording = Run.begin("-m benchmarks.swarm_1000", argv)
    result = run(args)
    if args.one_process_peers:
        _progress(f"one worker process with {args.one_process_peers} peers")
        focused = argparse.Namespace(
            **{
                **vars(args),
                "peers": args.one_process_peers,
                "processes": 1,
                "idle": 2.0,
                "concurrency": args.one_process_concurrency,
            }
        )
        one = run(focused)
        result["flood_one_process"] = {
            "swarm_command": one["swarm_command"],
            "peers": one["peers"],
            "converged_seconds": one["converged_seconds"],
            "flood": one["flood"],
            "note": "every peer in one worker process; the bootstrap (the swarm's parent) "
            "and this script's flood clients run in other processes, so the worker can "
            "have a core to itself (flood.worker_cpu_share says how much it got)",
        }
    # The previous result goes under "before" (with its own "before": the history).
    record = recording.write(args.output, result, before=read_result(args.output))
    print(json.dumps(record, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
