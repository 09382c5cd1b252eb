"""``overlay swarm``: a bootstrap and N peers on loopback, watched live, summarized at the end.

Layout: the parent process runs the bootstrap and the observer; the peers run
in P worker processes (``python -m overlay.swarm``), many peers per process in
one ``trio.run`` each, so that every core works.  A worker prints one JSON line
per peer it started (``{"peer": "HOST:PORT", "id": ...}``), then ``{"ready": n}``;
it leaves gracefully when its standard input closes (or on SIGINT/SIGTERM) and
prints ``{"left": n}``.  Standard input as the stop signal means a worker whose
parent dies (even by SIGKILL) stops too: no orphans.  Workers run in their own
session, so a Ctrl-C at the terminal reaches only the parent, which first reads
the final stats and only then tells the workers to leave.

The observer reads every peer through a :class:`StatsRequest` (concurrently,
each under a timeout) and computes the same summary as ``overlay sim``
(:func:`overlay.topology.summarize`), plus wall-clock figures.

Content (``--items M --replication R``): M items, each held by a random fraction R of
the peers (at least one).  The plan is a pure function of (M, R, peers, seed)
(:func:`seed_plan`), so each worker computes it itself and publishes its own share
locally before its peers start, and a test or benchmark that knows the arguments knows
every key (:func:`seeded_items`) without asking anyone.  The summary lists the keys.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from typing import Any

import attrs
import networkx as nx
import trio
from rich.console import Console
from rich.live import Live
from rich.logging import RichHandler
from rich.text import Text

from bootstrap.server import serve_bootstrap
from overlay.cli_sim import print_summary
from overlay.cli_view import WorkerControl, handle_control_line, swarm_view
from overlay.client import ask
from overlay.config import PeerConfig
from overlay.errors import LocalError, OverlayError
from overlay.identity import Address
from overlay.messages import StatsReply, StatsRequest
from overlay.node import Node, NodeConfig, open_listeners, peer_node
from overlay.peer import Peer, PeerSnapshot
from overlay.topology import graph_of, summarize
from search.store import content_key

log = logging.getLogger("overlay.swarm")

STATS_TIMEOUT = 3.0
STATS_CONCURRENCY = 128
"""Stats requests in flight at once (bounded: each holds a socket)."""
MAX_WORKER_LINE = 4096
WORKER_START_TIMEOUT = 120.0
WORKER_EXIT_TIMEOUT = 15.0
MAX_PEERS = 20_000
OBSERVER_KINDS = frozenset(
    {"StatsReply", "ClientPublished", "ClientSearchResult", "ClientFetchResult"}
)
"""Messages the observer and clients cause; left out of the protocol's message counts."""
MAX_ITEMS = 100_000


def register_swarm(subparsers: Any) -> None:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "swarm",
        help="run a bootstrap and N peers on loopback, watch them, summarize",
        description="Start a bootstrap on --port and N peers on 127.0.0.1 spread over P "
        "worker processes; show joined / components / messages per second while it runs; "
        "at the end (--duration or Ctrl-C) every peer leaves gracefully and the summary "
        "of `overlay sim` is printed, read from every peer through a stats request.",
    )
    parser.add_argument("--peers", type=int, default=50, help="peers to start (default 50)")
    parser.add_argument(
        "--processes", type=int, default=None, help="worker processes (default: one per core)"
    )
    parser.add_argument("--port", type=int, default=7000, help="bootstrap port (0: any free)")
    parser.add_argument(
        "--duration", type=float, default=60.0, help="seconds to run (default 60; Ctrl-C ends)"
    )
    parser.add_argument("--seed", type=int, default=1, help="random seed (default 1)")
    parser.add_argument("--json", action="store_true", help="print the summary as JSON")
    parser.add_argument(
        "--view",
        action="store_true",
        help="show the live topology view until q (keys: k crash, K crash super, a add, "
        "f flood, w walk); --duration is then ignored",
    )
    parser.add_argument("--interval", type=float, default=None, help="seconds between stats polls")
    parser.add_argument(
        "--items", type=int, default=0, help="items to seed (default 0; see --replication)"
    )
    parser.add_argument(
        "--replication",
        type=float,
        default=0.01,
        help="fraction of the peers holding each seeded item (default 0.01, at least one)",
    )
    parser.set_defaults(run=run_swarm)


# ---------------------------------------------------------------------- seeded content


def seeded_items(count: int, seed: int) -> list[tuple[bytes, str]]:
    """The (value, name) of the items ``overlay swarm --items COUNT --seed SEED`` seeds.

    Item i's name has the word ``item<i>``, unique to it, so it can be searched for by
    keywords as well as by key.
    """
    return [
        (f"overlay swarm item {i} of {count}, seed {seed}\n".encode(), f"swarm item{i} seed{seed}")
        for i in range(count)
    ]


def seed_plan(count: int, replication: float, peers: int, seed: int) -> list[list[int]]:
    """For each seeded item, the indices (in start order) of the peers that hold it:
    ``max(1, round(replication * peers))`` distinct peers, drawn from their own seeded
    random source."""
    rng = random.Random(f"swarm items {seed}")
    holders = min(peers, max(1, round(replication * peers)))
    return [sorted(rng.sample(range(peers), holders)) for _ in range(count)]


# ---------------------------------------------------------------------- stats client


async def fetch_stats(address: Address, timeout: float = STATS_TIMEOUT) -> StatsReply:
    """Ask one peer for its stats over a fresh connection (handshake, request, reply)."""
    return await ask(address, StatsRequest(), StatsReply, timeout)


def snapshot_of(reply: StatsReply) -> PeerSnapshot:
    return PeerSnapshot(
        id=reply.id,
        address=reply.address,
        role=reply.role,
        joined=reply.joined,
        neighbors=reply.neighbors,
        passive=reply.passive,
        known_hosts=reply.known_hosts,
        counters={c.name: c.value for c in reply.counters},
    )


async def collect_stats(
    addresses: Sequence[Address], timeout: float = STATS_TIMEOUT
) -> tuple[list[StatsReply], int]:
    """Stats of every peer, asked concurrently; returns the replies and how many failed."""
    replies: list[StatsReply] = []
    failed = 0
    limiter = trio.CapacityLimiter(STATS_CONCURRENCY)

    async def ask(address: Address) -> None:
        nonlocal failed
        async with limiter:
            try:
                replies.append(await fetch_stats(address, timeout))
            except OverlayError as error:
                failed += 1
                log.debug("stats: %s", error)

    async with trio.open_nursery() as nursery:
        for address in addresses:
            nursery.start_soon(ask, address)
    return replies, failed


def sent_by_kind(replies: Sequence[StatsReply]) -> dict[str, int]:
    """Messages sent by kind over all peers (the runtime counts ``node.sent.<Kind>``)."""
    totals: dict[str, int] = {}
    for reply in replies:
        for counter in reply.counters:
            if counter.name.startswith("node.sent."):
                kind = counter.name[len("node.sent.") :]
                if kind in OBSERVER_KINDS:
                    continue
                totals[kind] = totals.get(kind, 0) + counter.value
    return totals


# ---------------------------------------------------------------------- workers


@attrs.define
class Worker:
    """One worker process and what it told us."""

    index: int
    count: int
    process: trio.Process
    peers: list[Address] = attrs.field(factory=list)
    ready: trio.Event = attrs.field(factory=trio.Event)
    left: int | None = None


def _rss_bytes(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError):
        return None
    return None


async def _read_worker(worker: Worker) -> None:
    """Follow a worker's JSON lines (bounded line length, bounded buffer)."""
    stream = worker.process.stdout
    assert stream is not None
    buffer = b""
    while True:
        data = await stream.receive_some(65536)
        if not data:
            break
        buffer += data
        *lines, buffer = buffer.split(b"\n")
        if len(buffer) > MAX_WORKER_LINE:
            log.error("worker %d: overlong output line; ignoring it", worker.index)
            buffer = b""
        for line in lines:
            try:
                record = json.loads(line)
                if "peer" in record:
                    worker.peers.append(Address.parse(record["peer"]))
                elif "ready" in record:
                    worker.ready.set()
                elif "left" in record:
                    worker.left = int(record["left"])
            except (ValueError, TypeError, KeyError):
                log.error("worker %d: unexpected output %r", worker.index, line[:80])
    worker.ready.set()  # it ended: whoever waits for it must not wait forever


async def _stop_worker(worker: Worker) -> None:
    """Close its stdin (leave gracefully), then escalate to SIGTERM and SIGKILL."""
    process = worker.process
    if process.stdin is not None:
        with contextlib.suppress(trio.BrokenResourceError, trio.ClosedResourceError, OSError):
            await process.stdin.aclose()
    with trio.move_on_after(WORKER_EXIT_TIMEOUT):
        await process.wait()
        return
    log.warning("worker %d did not leave in time; terminating it", worker.index)
    process.terminate()
    with trio.move_on_after(3.0):
        await process.wait()
        return
    process.kill()
    await process.wait()


def _split(total: int, parts: int) -> list[int]:
    return [total // parts + (1 if i < total % parts else 0) for i in range(parts)]


# ---------------------------------------------------------------------- the swarm


@attrs.define
class Progress:
    """What the live status line shows."""

    started: float
    joined: int = 0
    alive: int = 0
    components: int = 0
    rate: float = 0.0
    converged_at: float | None = None

    def line(self, peers: int) -> Text:
        elapsed = time.monotonic() - self.started
        return Text(
            f"swarm {elapsed:6.1f} s  joined {self.joined}/{peers}  answering {self.alive}  "
            f"components {self.components}  messages/s {self.rate:,.0f}"
        )


def run_swarm(args: argparse.Namespace) -> int:
    for handler in logging.getLogger().handlers:  # stdout is for the summary
        if isinstance(handler, RichHandler):
            handler.console = Console(stderr=True)
    processes = args.processes if args.processes is not None else (os.cpu_count() or 1)
    if not 1 <= args.peers <= MAX_PEERS:
        print(f"overlay swarm: --peers must be in [1, {MAX_PEERS}]", file=sys.stderr)
        return 2
    if processes < 1 or args.duration < 0:
        print("overlay swarm: --processes must be >= 1 and --duration >= 0", file=sys.stderr)
        return 2
    if not 0 <= args.items <= MAX_ITEMS or not 0.0 < args.replication <= 1.0:
        print(
            f"overlay swarm: --items must be in [0, {MAX_ITEMS}] and --replication in (0, 1]",
            file=sys.stderr,
        )
        return 2
    processes = min(processes, args.peers)
    try:
        summary = trio.run(_swarm_main, args, processes)
    except OverlayError as error:
        print(f"overlay swarm: {error}", file=sys.stderr)
        return 1
    if summary is None:
        return 1
    if args.json:
        print(json.dumps(summary, sort_keys=True), flush=True)
    else:
        print_summary(summary, Console())
    return 0


async def _swarm_main(args: argparse.Namespace, processes: int) -> dict[str, Any] | None:
    peers: int = args.peers
    stderr = Console(stderr=True)
    interval = args.interval if args.interval is not None else max(1.0, peers / 500)
    stop = trio.Event()
    with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async with trio.open_nursery() as nursery:

            async def watch_signals() -> None:
                async for signum in signals:
                    log.info("swarm: %s, shutting down", signal.Signals(signum).name)
                    stop.set()

            nursery.start_soon(watch_signals)
            server = await nursery.start(
                lambda task_status: serve_bootstrap(
                    "127.0.0.1",
                    args.port,
                    node_config=NodeConfig(max_connections=max(4096, 2 * peers), idle_timeout=15.0),
                    seed=args.seed,
                    task_status=task_status,
                )
            )
            stderr.print(f"bootstrap listening on {server.address}", highlight=False)
            started = time.monotonic()
            workers: list[Worker] = []
            offset = 0
            try:
                for index, count in enumerate(_split(peers, processes)):
                    command = [
                        sys.executable,
                        "-m",
                        "overlay.swarm",
                        "--bootstrap",
                        str(server.address),
                        "--count",
                        str(count),
                        "--seed",
                        str(args.seed * 1_000_003 + index),
                        "--spread",
                        str(min(5.0, count / 200)),
                    ]
                    if args.items:
                        command += [
                            "--items",
                            str(args.items),
                            "--replication",
                            repr(args.replication),
                            "--items-seed",
                            str(args.seed),
                            "--total",
                            str(peers),
                            "--offset",
                            str(offset),
                        ]
                    offset += count
                    process = await trio.lowlevel.open_process(
                        command,
                        stdin=subprocess.PIPE,
                        stdout=subprocess.PIPE,
                        start_new_session=True,
                    )
                    worker = Worker(index, count, process)
                    workers.append(worker)
                    nursery.start_soon(_read_worker, worker)
                with trio.move_on_after(WORKER_START_TIMEOUT):
                    for worker in workers:
                        await worker.ready.wait()
                addresses = [a for w in workers for a in w.peers]
                if len(addresses) < peers:
                    log.error("swarm: only %d of %d peers started", len(addresses), peers)
                if args.view:
                    keys = [content_key(value) for value, _ in seeded_items(args.items, args.seed)]
                    control = WorkerControl(workers, keys, random.Random(args.seed))
                    await swarm_view(
                        server.address,
                        control,
                        console=Console(),
                        interval=args.interval or 1.0,
                        stop=stop,
                        seed=args.seed,
                    )
                    stop.set()  # q: go straight to the final summary
                    addresses = [a for w in workers for a in w.peers]  # after k and a
                summary = await _observe(
                    args, addresses, stop, interval=interval, started=started, stderr=stderr
                )
                summary["worker_rss_bytes"] = [_rss_bytes(w.process.pid) for w in workers]
                summary["processes"] = processes
                summary["bootstrap"] = str(server.address)
                summary["bootstrap_hosts"] = len(server.cache)
                if args.items:
                    plan = seed_plan(args.items, args.replication, peers, args.seed)
                    summary["items"] = {
                        "count": args.items,
                        "replication": args.replication,
                        "holders_per_item": len(plan[0]),
                        "keys": [
                            content_key(value) for value, _ in seeded_items(args.items, args.seed)
                        ],
                    }
            finally:
                with trio.CancelScope(shield=True):
                    async with trio.open_nursery() as stopping:
                        for worker in workers:
                            stopping.start_soon(_stop_worker, worker)
                nursery.cancel_scope.cancel()
            summary["peers_left_gracefully"] = sum(w.left or 0 for w in workers)
            summary["wall_seconds"] = time.monotonic() - started
    return summary


async def _observe(
    args: argparse.Namespace,
    addresses: list[Address],
    stop: trio.Event,
    *,
    interval: float,
    started: float,
    stderr: Console,
) -> dict[str, Any]:
    """Poll until the duration passes or a signal arrives; return the final summary."""
    peers: int = args.peers
    progress = Progress(started)
    end = trio.current_time() + args.duration
    last_total: int | None = None
    last_time = time.monotonic()
    rates: list[float] = []
    with Live(
        progress.line(peers),
        console=stderr,
        transient=True,
        refresh_per_second=4,
        redirect_stdout=False,
        redirect_stderr=False,
    ) as live:
        while not stop.is_set() and trio.current_time() < end:
            replies, _failed = await collect_stats(addresses)
            now = time.monotonic()
            shots = [snapshot_of(r) for r in replies]
            graph = graph_of(shots)
            progress.alive = len(shots)
            progress.joined = sum(1 for s in shots if s.joined)
            progress.components = (
                nx.number_connected_components(graph) if graph.number_of_nodes() else 0
            )
            total = sum(sent_by_kind(replies).values())
            if last_total is not None and now > last_time:
                progress.rate = (total - last_total) / (now - last_time)
                rates.append(progress.rate)
            last_total, last_time = total, now
            if (
                progress.converged_at is None
                and progress.joined == peers
                and progress.components == 1
            ):
                progress.converged_at = now - started
            live.update(progress.line(peers))
            with trio.move_on_at(min(end, trio.current_time() + interval)):
                await stop.wait()
    replies, failed = await collect_stats(addresses)
    shots = [snapshot_of(r) for r in replies]
    sent = sent_by_kind(replies)
    summary = summarize(shots, peers=peers, messages=sent, seed=args.seed)
    elapsed = time.monotonic() - started
    summary.update(
        {
            "seed": args.seed,
            "duration": args.duration,
            "stats_unanswered": failed,
            "converged_seconds": progress.converged_at,
            "messages_per_wall_second": sum(sent.values()) / elapsed if elapsed > 0 else 0.0,
            "steady_messages_per_second": (sum(rates[-5:]) / len(rates[-5:])) if rates else None,
        }
    )
    return summary


# ---------------------------------------------------------------------- worker process


@attrs.frozen
class Seeding:
    """What a worker's share of ``--items`` is computed from (see :func:`seed_plan`)."""

    items: int
    replication: float
    seed: int
    total: int
    offset: int

    def holdings(self, count: int) -> dict[int, list[tuple[bytes, str]]]:
        """Items to publish, by local peer index."""
        items = seeded_items(self.items, self.seed)
        mine: dict[int, list[tuple[bytes, str]]] = {}
        for item, holders in zip(
            items, seed_plan(self.items, self.replication, self.total, self.seed), strict=True
        ):
            for index in holders:
                if self.offset <= index < self.offset + count:
                    mine.setdefault(index - self.offset, []).append(item)
        return mine


async def _worker_main(
    bootstrap: Address, count: int, seed: int, spread: float, seeding: Seeding | None = None
) -> None:
    rng = random.Random(seed)
    holdings = seeding.holdings(count) if seeding is not None else {}
    stdin = trio.lowlevel.FdStream(os.dup(sys.stdin.fileno()))
    with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async with trio.open_nursery() as nursery:
            stop = trio.Event()

            nodes: list[Node] = []

            async def add_peer() -> None:
                await start_peer(len(nodes))

            async def until_stdin_closes() -> None:
                # Lines are control lines (overlay.cli_view.handle_control_line): crash a
                # peer, add one; anything else, or the end of input, means stop.
                buffer = b""
                async with stdin:
                    for _ in range(1_000_000):  # bounded
                        try:
                            data = await stdin.receive_some(4096)
                        except (OSError, trio.BrokenResourceError):
                            break
                        if not data:
                            break
                        *lines, buffer = (buffer + data).split(b"\n")
                        if len(buffer) > MAX_WORKER_LINE:
                            break
                        for line in lines:
                            if not await handle_control_line(line, nodes, add_peer):
                                stop.set()
                                return
                stop.set()

            async def until_signal() -> None:
                async for _ in signals:
                    break
                stop.set()

            nursery.start_soon(until_stdin_closes)
            nursery.start_soon(until_signal)

            async def start_peer(index: int) -> None:
                listeners, address = await open_listeners("127.0.0.1", 0)
                peer = Peer(
                    address, PeerConfig(), random.Random(rng.getrandbits(64)), bootstrap=bootstrap
                )
                for value, name in holdings.get(index, ()):
                    try:
                        peer.search.publish(value, name)  # before it starts: no one to tell
                    except LocalError as error:  # its store is full: it holds fewer
                        log.error("peer %s: not seeding %s: %s", peer.id, name, error)
                node = peer_node(peer, NodeConfig())
                await nursery.start(node.serve, listeners)
                nodes.append(node)
                _emit({"peer": str(address), "id": peer.id})

            for index in range(count):
                if stop.is_set():
                    break
                await start_peer(index)
                if spread > 0:
                    await trio.sleep(spread / count)
            _emit({"ready": len(nodes)})
            await stop.wait()
            async with trio.open_nursery() as leaving:
                for node in nodes:
                    leaving.start_soon(node.leave)
            _emit({"left": len(nodes)})
            nursery.cancel_scope.cancel()


def _emit(record: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(record) + "\n")
    sys.stdout.flush()


def worker_main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m overlay.swarm", description=__doc__)
    parser.add_argument("--bootstrap", type=Address.parse, required=True)
    parser.add_argument("--count", type=int, required=True)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--spread", type=float, default=0.0, help="seconds to stagger starts")
    parser.add_argument("--items", type=int, default=0, help="items the swarm seeds")
    parser.add_argument("--replication", type=float, default=0.01)
    parser.add_argument("--items-seed", type=int, default=1, help="the swarm's --seed")
    parser.add_argument("--total", type=int, default=0, help="peers in the whole swarm")
    parser.add_argument("--offset", type=int, default=0, help="index of this worker's first peer")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.ERROR, format="worker: %(message)s")
    seeding = (
        Seeding(args.items, args.replication, args.items_seed, args.total, args.offset)
        if args.items
        else None
    )
    try:
        trio.run(_worker_main, args.bootstrap, args.count, args.seed, args.spread, seeding)
    except OverlayError as error:
        print(f"overlay swarm worker: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(worker_main())
