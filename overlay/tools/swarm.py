"""``overlay swarm``, the main job: a bootstrap and N peers on this machine (or N peers
joining another machine's overlay, ``--bootstrap``), watched live, searched once settled,
summarized at the end.

Layout: the parent process (this module) runs the bootstrap and the observer; the
peers run in P worker processes (``python -m overlay.net.swarm.worker``, see
:mod:`overlay.net.swarm.worker`), many peers per process in one ``trio.run`` each, so that
every core works.  A worker prints one JSON line per peer it started
(``{"peer": "HOST:PORT", "id": ...}``), then ``{"ready": n}``; it leaves gracefully
when its standard input closes (or on SIGINT/SIGTERM) and prints ``{"left": n}``.
Workers run in their own session, so a Ctrl-C at the terminal reaches only the parent,
which first reads the final stats and only then tells the workers to leave.  What
both sides need lives in light modules (:mod:`overlay.net.swarm.setup`,
:mod:`overlay.net.swarm.control`, :mod:`overlay.net.swarm.stats`): a worker never imports
this module, nor networkx or rich.

The observer reads every peer through a :class:`StatsRequest` (concurrently,
each under a timeout) and computes the same summary as ``overlay sim``
(:func:`overlay.sim.topology.summarize`), plus wall-clock figures.

Content (``--items M`` with ``--copies C`` or ``--replication R``): M items (5 by
default), each held by C random peers (R of them, at least one).  The plan is a pure
function of (M, C, peers, seed) (:func:`overlay.net.swarm.setup.seed_plan`), so each
worker computes it itself and publishes its own share locally before its peers start,
and a test or benchmark that knows the arguments knows every key
(:func:`overlay.net.swarm.setup.seeded_items`) without asking anyone.  The summary lists
the keys.  Once the overlay has settled (:func:`overlay.tools.swarm_search.settled`, read
from the stats; at the latest when ``--duration`` ends) every item is searched for by
every mode, and each search's cost is read from every peer's own tally
(:mod:`overlay.tools.swarm_search`, :mod:`overlay.net.search_tally`).

Across machines (``--bootstrap HOST:PORT --host ADDRESS``): no bootstrap is started, the
peers listen on ADDRESS and join the given overlay; the observer then reads every peer
the bootstrap lists, so the summary describes the whole overlay (docs/multi-host.md).

For benchmarks (``benchmarks/live_vs_sim.py``): ``--topology-out FILE`` rewrites FILE
after every stats poll with the current topology as an edge list, peer i being the
i-th started (the numbering the plan names holders by), so the static
simulator can replay it; ``--first-seen DIR`` has every worker record when its peers
first saw each query id (:mod:`overlay.net.first_seen`) and write it to DIR as it leaves.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import json
import logging
import math
import os
import random
import signal
import subprocess
import sys
import time
import zlib
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any, Final, TypeVar

import attrs
import networkx as nx
import trio
from rich.console import Console
from rich.live import Live
from rich.logging import RichHandler
from rich.text import Text

from bootstrap.server import serve_bootstrap
from overlay.core.peer import PeerSnapshot
from overlay.net.client import ask
from overlay.net.gc_rounds import keep_collector_quiet
from overlay.net.memtrace import rss_bytes
from overlay.net.node import NodeConfig, one_host
from overlay.net.options import (
    add_runtime_arguments,
    add_super_peers_argument,
    check_runtime_arguments,
    fault_and_limit_totals,
    host_cache_config_of,
    runtime_argv,
)
from overlay.net.secure import PLAINTEXT
from overlay.net.swarm.control import CONTROL_ADD, CONTROL_CRASH, for_each_stdin_line
from overlay.net.swarm.setup import LOOPBACK, copies_for, seed_plan, seeded_items
from overlay.net.swarm.stats import MAX_STATS_RECORD, StatsBatches
from overlay.protocol.errors import OverlayError, TransportError
from overlay.protocol.identity import Address
from overlay.protocol.messages import StatsReply, StatsRequest
from overlay.sim.topology import graph_of, summarize
from overlay.tools.cli import address_argument
from overlay.tools.cli_sim import print_summary
from overlay.tools.cli_view import WorkerControl, swarm_view
from overlay.tools.crawl import list_members, snapshot_from
from overlay.tools.swarm_search import (
    by_mode,
    modes_for,
    plan_searches,
    print_search_table,
    run_searches,
    settled,
)
from overlay.tools.view import write_edge_list
from search.store import content_key

log = logging.getLogger("overlay.tools.swarm")
T = TypeVar("T")

STATS_TIMEOUT = 3.0
STATS_CONCURRENCY = 128
"""Stats requests in flight at once (bounded: each holds a socket)."""
WORKER_START_TIMEOUT = 120.0
WORKER_EXIT_TIMEOUT = 15.0
MAX_PEERS = 20_000
OBSERVER_KINDS = frozenset(
    {"StatsReply", "ClientPublished", "ClientSearchResult", "ClientFetchResult"}
)
"""Messages the observer and clients cause; left out of the protocol's message counts."""
MAX_ITEMS = 100_000
DEFAULT_ITEMS = 5
DEFAULT_PORT = 7000
DEFAULT_REPLICATION = 0.01
SETTLE_LIMIT = 300.0
"""With ``--duration 0``: the longest wait for the overlay to settle before searching."""
FINAL_SETTLE_GRACE = 10.0
"""Seconds the final reading waits for a settled moment, once the overlay has settled."""
FINAL_READ_INTERVAL = 0.5
BOOTSTRAP_CHECK_TIMEOUT = 5.0
SHOWN_PEERS = 3
"""Peer addresses printed at the start (``overlay members`` lists every one)."""


def register_swarm(subparsers: Any) -> None:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "swarm",
        help="run N peers (and a bootstrap) on this machine, search them, summarize",
        description="Start a bootstrap on --port and N peers on --host, spread over P "
        "worker processes (or, with --bootstrap, join the peers to an existing overlay and "
        "start no bootstrap); show joined / components / messages per second while it "
        "runs; publish --items items and, once the overlay has settled, search for each by "
        "every mode; at the end (--duration or Ctrl-C) print the topology summary, read "
        "from every peer through a stats request, and the search table, and every peer "
        "leaves gracefully.",
    )
    parser.add_argument("--peers", type=int, default=50, help="peers to start (default 50)")
    parser.add_argument(
        "--processes", type=int, default=None, help="worker processes (default: one per core)"
    )
    parser.add_argument(
        "--port",
        type=int,
        default=None,
        help=f"port of the bootstrap this swarm starts (default {DEFAULT_PORT}; 0: any free)",
    )
    parser.add_argument(
        "--host",
        default="127.0.0.1",
        help="this machine's address the peers (and the bootstrap) listen on "
        "(default 127.0.0.1; another machine's peers must be able to reach it)",
    )
    parser.add_argument(
        "--one-host",
        action="store_true",
        help="every peer on --host; by default a swarm on 127.0.0.1 puts peer i on "
        "127.1.(i mod 250 + 1).(i div 250 + 1), so caps per host and per /24 count its "
        "peers apart",
    )
    parser.add_argument(
        "--bootstrap",
        type=address_argument,
        default=None,
        metavar="HOST:PORT",
        help="join the peers to the overlay of this bootstrap (on this or another machine) "
        "instead of starting one: swarms on several machines make one overlay",
    )
    parser.add_argument(
        "--duration",
        type=float,
        default=60.0,
        help="seconds to run (default 60; 0: until Ctrl-C, which ends it at any time)",
    )
    parser.add_argument(
        "--seed",
        type=int,
        default=1,
        help="random seed of the items, capacities and searches (default 1; give each "
        "machine's swarm its own)",
    )
    parser.add_argument("--json", action="store_true", help="print the summary as JSON")
    parser.add_argument(
        "--view",
        action="store_true",
        help="show the live topology view until q (keys: k crash a peer, K crash a super "
        "peer, a add a peer, f flood search, w walk search); --duration is then ignored",
    )
    parser.add_argument("--interval", type=float, default=None, help="seconds between stats polls")
    parser.add_argument(
        "--items",
        type=int,
        default=DEFAULT_ITEMS,
        help=f"items to publish, named by --seed (default {DEFAULT_ITEMS}; 0: none, and no "
        "searches)",
    )
    copies = parser.add_mutually_exclusive_group()
    copies.add_argument(
        "--copies",
        type=int,
        default=None,
        metavar="N",
        help="peers holding each item, a count (default: as --replication 0.01, at least 1)",
    )
    copies.add_argument(
        "--replication",
        type=float,
        default=None,
        metavar="FRACTION",
        help="share of the peers holding each item, a fraction in (0, 1] (default 0.01, "
        "at least one peer); for a count of copies use --copies",
    )
    parser.add_argument(
        "--searches",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="once settled, search for each item by every mode and print the table "
        "(default on; --no-searches: only the topology)",
    )
    add_super_peers_argument(
        parser, "run the super-peer layer (election, attachment, index, super-layer search)"
    )
    parser.add_argument(
        "--capacity-seed",
        type=int,
        default=None,
        help="seed of the peers' capacities, drawn as in `overlay sim --super-peers` "
        "(default: --seed)",
    )
    parser.add_argument(
        "--topology-out",
        type=Path,
        default=None,
        metavar="FILE",
        help="after every stats poll, write the current topology to FILE as an edge list "
        "(peers numbered in start order, as the --items plan numbers holders; see "
        "`overlay sim query --topology`)",
    )
    parser.add_argument(
        "--progress-out",
        type=Path,
        default=None,
        metavar="FILE",
        help="after every stats poll, append the status line to FILE as one JSON object "
        "(seconds, joined, linked, alive, components, supers, converged_seconds, "
        "settled_seconds, phase, counters, waiting): for scripts that wait for the swarm "
        "(benchmarks/swarm_1000.py) or trace its join (benchmarks/join_trace.py)",
    )
    parser.add_argument(
        "--first-seen",
        type=Path,
        default=None,
        metavar="DIR",
        help="each worker records when its peers first saw each query id and writes "
        "DIR/first-seen-<pid>.json when it leaves (flood reach times; overlay.net.first_seen)",
    )
    parser.add_argument(
        "--control",
        action="store_true",
        help="read control lines on standard input once the peers are up: `crash HOST:PORT` "
        "(stop that peer without a goodbye), `add` (start one more peer), `stop-bootstrap` "
        "(stop serving the bootstrap; the peers stay); the end of input "
        "ends the swarm as --duration does (for scripts: benchmarks/soak.py)",
    )
    add_runtime_arguments(parser, swarm=True)
    parser.set_defaults(run=run_swarm)


# ---------------------------------------------------------------------- stats client


async def fetch_stats(address: Address, timeout: float = STATS_TIMEOUT) -> StatsReply:
    """Ask one peer for its stats over a fresh connection (handshake, request, reply)."""
    return await ask(address, StatsRequest(), StatsReply, timeout)


def snapshot_of(reply: StatsReply) -> PeerSnapshot:
    """A stats reply as the snapshot the summary reads (super-peer fields included)."""
    return snapshot_from(reply)


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


StatsReader = Callable[[Sequence[Address]], Awaitable[tuple[list[StatsReply], int]]]
"""Reads the stats of the given peers: the replies, and how many did not answer."""
OBSERVER_BATCH_TIMEOUT = 10.0
"""How long the observer waits for a worker's batch before asking its peers over TCP."""


async def read_stats(
    control: WorkerControl, everyone: Sequence[Address]
) -> tuple[list[StatsReply], int]:
    """The stats of ``everyone`` for the observer: the peers this swarm's workers host in
    one batch per worker, through its pipe (:mod:`overlay.net.swarm.stats`); the others
    (another machine's peers, those of a worker that did not answer in time) over TCP.

    Over TCP every poll would be one connection per peer, and on the secure runtime one
    Noise handshake at each end: 1,000 peers polled every two seconds cost about as much
    CPU as the machine has, slowed the very join being watched, and ran the workers'
    handshake queues over so that most polls went unanswered.
    """
    wanted = set(everyone)
    replies = [r for r in await control.snapshots(OBSERVER_BATCH_TIMEOUT) if r.address in wanted]
    answered = {r.address for r in replies}
    rest, failed = await collect_stats([a for a in everyone if a not in answered])
    return replies + rest, failed


JOIN_COUNTERS: Final = (
    "node.dial.",
    "node.handshake.",
    "node.connections.",
    "node.sent.",
    "node.dropped.",
    "ticks_late",
    "neighbors_declared_dead",
)
"""What ``--progress-out`` sums per poll: where a forming swarm's dials and handshakes go
(``node.dial.for.<Kind>``: which message opened each connection)."""


def join_counters(replies: Sequence[StatsReply]) -> dict[str, int]:
    """The counters of :data:`JOIN_COUNTERS` summed over ``replies``."""
    totals: dict[str, int] = {}
    for reply in replies:
        for counter in reply.counters:
            if counter.name.startswith(JOIN_COUNTERS):
                totals[counter.name] = totals.get(counter.name, 0) + counter.value
    return dict(sorted(totals.items()))


WAITING_SHOWN: Final = 5


def waiting_peers(replies: Sequence[StatsReply]) -> list[dict[str, Any]]:
    """Up to :data:`WAITING_SHOWN` peers that never joined: what each knows (passive
    view, known hosts) and its nonzero counters, to see what holds the last joiners up."""
    return [
        {
            "address": str(reply.address),
            "passive": len(reply.passive),
            "known_hosts": reply.known_hosts,
            "counters": {c.name: c.value for c in reply.counters if c.value},
        }
        for reply in [r for r in replies if not r.joined][:WAITING_SHOWN]
    ]


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
    stats: StatsBatches = attrs.field(factory=StatsBatches)
    """Its answers to batched stats requests (``overlay swarm --view``)."""


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
        if len(buffer) > MAX_STATS_RECORD:  # the longest record: a batch of stats
            log.error("worker %d: overlong output line; ignoring it", worker.index)
            buffer = b""
        for line in lines:
            try:
                record = json.loads(line)
                if "peer" in record:
                    worker.peers.append(Address.parse(record["peer"]))
                elif "ready" in record:
                    worker.ready.set()
                elif "stats" in record:
                    worker.stats.deliver(record)
                elif "left" in record:
                    worker.left = int(record["left"])
            except (ValueError, TypeError, KeyError):
                log.error("worker %d: unexpected output %r", worker.index, line[:80])
    worker.ready.set()  # it ended: whoever waits for it must not wait forever


async def start_worker(
    nursery: trio.Nursery, index: int, count: int, command: Sequence[str]
) -> Worker:
    """Launch one worker process (its own session, so a Ctrl-C reaches it through us
    only) and follow its output in ``nursery``."""
    process = await trio.lowlevel.open_process(
        list(command), stdin=subprocess.PIPE, stdout=subprocess.PIPE, start_new_session=True
    )
    worker = Worker(index, count, process)
    nursery.start_soon(_read_worker, worker)
    return worker


async def wait_ready(workers: Sequence[Worker], timeout: float) -> None:
    """Wait until every worker has started its peers (or ended), at most ``timeout``."""
    with trio.move_on_after(timeout):
        for worker in workers:
            await worker.ready.wait()


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


CONTROL_STOP_BOOTSTRAP = b"stop-bootstrap"
"""Control line for the parent itself: stop serving the bootstrap (the peers stay up)."""


async def _within(
    scope: trio.CancelScope,
    serve: Callable[..., Awaitable[object]],
    task_status: trio.TaskStatus[Any] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Run ``serve`` (started through ``nursery.start``) until ``scope`` is cancelled."""
    with scope:
        await serve(task_status=task_status)


async def follow_control(
    control: WorkerControl, stop: trio.Event, stop_bootstrap: Callable[[], None] | None = None
) -> None:
    """``--control``: carry out the lines on our standard input through the workers (as
    the keys of ``--view`` do); the end of input sets ``stop``.  ``stop-bootstrap`` calls
    ``stop_bootstrap`` (benchmarks/faults.py: joins while the bootstrap is down).  A line
    that is not a command is logged and skipped."""

    async def handle(raw: bytes) -> bool:
        line = raw.strip()
        if line == CONTROL_STOP_BOOTSTRAP and stop_bootstrap is not None:
            stop_bootstrap()
            said = "stopped the bootstrap"
        elif line == CONTROL_ADD:
            said = await control.add()
        elif line.startswith(CONTROL_CRASH):
            try:
                said = await control.crash(
                    Address.parse(line[len(CONTROL_CRASH) :].decode("ascii"))
                )
            except (UnicodeDecodeError, ValueError):
                log.error("control: bad address in %r", raw[:80])
                return True
        else:
            log.error("control: unknown line %r", raw[:80])
            return True
        log.info("control: %s", said)
        return True

    await for_each_stdin_line(handle)
    stop.set()


def write_topology(graph: nx.Graph, addresses: Sequence[Address], path: Path) -> None:
    """``--topology-out``: the graph as an edge list, peer i being the i-th started."""
    start_order = {str(address): index for index, address in enumerate(addresses)}
    numbers = {
        node: start_order[address]
        for node, address in graph.nodes(data="address")
        if address in start_order
    }
    write_edge_list(graph, path, numbers)


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
    supers: int = 0
    rate: float = 0.0
    converged_at: float | None = None
    settled_at: float | None = None
    phase: str = "joining"
    linked: int = 0
    """Peers with at least one neighbor now (``joined`` counts those that ever had one)."""
    counters: dict[str, int] = attrs.field(factory=dict)
    """The join's counters (:func:`join_counters`) summed over the peers that answered."""
    waiting: list[dict[str, Any]] = attrs.field(factory=list)
    """A few peers not joined yet: what they know and did (:func:`waiting_peers`)."""

    def record(self) -> dict[str, Any]:
        """The status as ``--progress-out`` writes it, one JSON object per poll."""
        return {
            "seconds": round(time.monotonic() - self.started, 3),
            "joined": self.joined,
            "linked": self.linked,
            "alive": self.alive,
            "components": self.components,
            "supers": self.supers,
            "converged_seconds": self.converged_at,
            "settled_seconds": self.settled_at,
            "phase": self.phase,
            "counters": self.counters,
            "waiting": self.waiting,
        }

    def line(self, peers: int) -> Text:
        elapsed = time.monotonic() - self.started
        return Text(
            f"swarm {elapsed:6.1f} s  joined {self.joined}/{peers}  answering {self.alive}  "
            f"components {self.components}  super peers {self.supers}  "
            f"messages/s {self.rate:,.0f}  {self.phase}"
        )


def usage_error(args: argparse.Namespace) -> str | None:
    """What is wrong with the swarm's arguments, in one line naming the flags (None: fine)."""
    if not 1 <= args.peers <= MAX_PEERS:
        return f"--peers must be in [1, {MAX_PEERS}]"
    if args.processes is not None and args.processes < 1:
        return "--processes must be >= 1"
    if args.duration < 0:
        return "--duration must be >= 0 (0: until Ctrl-C)"
    if not 0 <= args.items <= MAX_ITEMS:
        return f"--items must be in [0, {MAX_ITEMS}]"
    if args.copies is not None and not 1 <= args.copies <= args.peers:
        return f"--copies is a count of peers holding each item, in [1, --peers={args.peers}]"
    if args.replication is not None and not 0.0 < args.replication <= 1.0:
        hint = ""
        if args.replication > 1 and float(args.replication).is_integer():
            count = int(args.replication)
            hint = f"; for {count} copies of each item use --copies {count}"
        return f"--replication is a fraction of the peers, in (0, 1]{hint}"
    if args.bootstrap is not None and args.port is not None:
        return "--port is the port of the bootstrap a swarm starts; with --bootstrap it starts none"
    return check_runtime_arguments(args)


def copies_of(args: argparse.Namespace) -> int:
    if args.copies is not None:
        return int(args.copies)
    replication = args.replication if args.replication is not None else DEFAULT_REPLICATION
    return copies_for(replication, args.peers)


def run_swarm(args: argparse.Namespace) -> int:
    for handler in logging.getLogger().handlers:  # stdout is for the summary
        if isinstance(handler, RichHandler):
            handler.console = Console(stderr=True)
    usage = usage_error(args)
    if usage is not None:
        print(f"overlay swarm: {usage}", file=sys.stderr)
        return 2
    processes = args.processes if args.processes is not None else (os.cpu_count() or 1)
    processes = min(processes, args.peers)
    try:
        if args.bootstrap is not None:
            trio.run(_check_bootstrap, args.bootstrap)
        summary = trio.run(_swarm_main, args, processes)
    except OverlayError as error:
        print(f"overlay swarm: {error}", file=sys.stderr)
        return 1
    if summary is None:
        return 1
    if args.json:
        print(json.dumps(summary, sort_keys=True), flush=True)
    else:
        console = Console()
        print_summary(summary, console)
        if summary.get("search") is not None:
            print_search_table(summary["search"], console)
    return 0


def worker_command(
    args: argparse.Namespace, bootstrap: Address, index: int, count: int, offset: int
) -> list[str]:
    """How worker ``index`` is started: ``count`` peers, the first being the swarm's
    ``offset``-th."""
    id_seed = args.seed * 1_000_003 + index
    if args.bootstrap is not None:
        # Joining an overlay other swarms may have joined with the same --seed: peer ids
        # must still differ, so this machine's address and process go into their seed.
        id_seed = zlib.crc32(f"{id_seed} {args.host} {os.getpid()}".encode())
    command = [
        sys.executable,
        "-m",
        "overlay.net.swarm.worker",
        "--bootstrap",
        str(bootstrap),
        "--host",
        args.host,
        "--count",
        str(count),
        "--seed",
        str(id_seed),
        "--spread",
        str(min(5.0, count / 200)),
        # Peer i of the swarm proves the key derived_key(--seed, i): the same ids run
        # after run (a swarm joining another's bootstrap mixes in its process, as above).
        "--key-seed",
        str(args.seed if args.bootstrap is None else id_seed),
        "--key-first",
        str(offset),
    ]
    if args.host == LOOPBACK and not args.one_host:
        command.append("--spread-hosts")
    if args.super_peers:
        capacity_seed = args.capacity_seed if args.capacity_seed is not None else args.seed
        command += ["--super-peers", "--capacity-seed", str(capacity_seed), "--first", str(offset)]
    if args.items:
        command += [
            *("--items", str(args.items), "--copies", str(copies_of(args))),
            *("--items-seed", str(args.seed), "--total", str(args.peers)),
            *("--offset", str(offset)),
        ]
    if args.first_seen is not None:
        command += ["--first-seen", str(args.first_seen)]
    return command + runtime_argv(args)


def _where(args: argparse.Namespace) -> str:
    if args.host == LOOPBACK and not args.one_host:
        return "127.1.1.1-127.1.250.254, one /24 per 250 peers in turn"
    return str(args.host)


def where_to_connect(
    bootstrap: Address, addresses: Sequence[Address], args: argparse.Namespace
) -> list[str]:
    """The lines printed once the peers are up: where to point the other commands."""
    shown = " ".join(str(a) for a in addresses[:SHOWN_PEERS])
    lines = [
        f"bootstrap {bootstrap}   (overlay members --bootstrap {bootstrap}; "
        f"overlay view --bootstrap {bootstrap})",
        f"peers {shown}{' ...' if len(addresses) > SHOWN_PEERS else ''} "
        f"({len(addresses)} on {_where(args)})",
    ]
    if args.items:
        copies = copies_of(args)
        held = f"{copies} cop{'y' if copies == 1 else 'ies'}"
        items = seeded_items(args.items, args.seed)
        lines += [f"item {content_key(value)}  {name!r}  ({held})" for value, name in items]
        if addresses:
            key = content_key(items[0][0])
            lines.append(f"try: overlay search --via {addresses[0]} --mode walk {key}")
    return lines


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
            nursery.start_soon(keep_collector_quiet)  # overlay.collector
            bootstrap_scope = trio.CancelScope()  # `stop-bootstrap` (--control) cancels it
            server = None
            if args.bootstrap is None:
                port = args.port if args.port is not None else DEFAULT_PORT
                server = await nursery.start(
                    _within,
                    bootstrap_scope,
                    lambda task_status: serve_bootstrap(
                        args.host,
                        port,
                        config=host_cache_config_of(args),
                        node_config=one_host(
                            NodeConfig(max_connections=max(4096, 2 * peers), idle_timeout=15.0)
                        ),
                        seed=args.seed,
                        security=PLAINTEXT if args.plaintext else None,
                        task_status=task_status,
                    ),
                )
                bootstrap: Address = server.address
                stderr.print(f"bootstrap listening on {bootstrap}", highlight=False)
            else:
                bootstrap = args.bootstrap
                stderr.print(
                    f"joining the overlay of the bootstrap at {bootstrap}", highlight=False
                )
            started = time.monotonic()
            workers: list[Worker] = []
            offset = 0
            summary: dict[str, Any] = {}
            try:
                for index, count in enumerate(_split(peers, processes)):
                    command = worker_command(args, bootstrap, index, count, offset)
                    offset += count
                    workers.append(await start_worker(nursery, index, count, command))
                await wait_ready(workers, WORKER_START_TIMEOUT)
                addresses = [a for w in workers for a in w.peers]
                if len(addresses) < peers:
                    log.error("swarm: only %d of %d peers started", len(addresses), peers)
                if not args.view:
                    for line in where_to_connect(bootstrap, addresses, args):
                        stderr.print(line, highlight=False, soft_wrap=True)
                # One control for churn, the view and the observer: each worker has one
                # input pipe, and two writers on it at once would fail.
                keys = [content_key(value) for value, _ in seeded_items(args.items, args.seed)]
                control = WorkerControl(workers, keys, random.Random(args.seed))
                if args.control and not args.view:
                    nursery.start_soon(follow_control, control, stop, bootstrap_scope.cancel)
                if args.view:
                    await swarm_view(
                        bootstrap,
                        control,
                        console=Console(),
                        interval=args.interval or 1.0,
                        batch=control.snapshots,
                        stop=stop,
                        seed=args.seed,
                    )
                    stop.set()  # q: go straight to the final summary
                    addresses = [a for w in workers for a in w.peers]  # after k and a
                summary = await _observe(
                    args,
                    addresses,
                    stop,
                    read=functools.partial(read_stats, control),
                    interval=interval,
                    started=started,
                    stderr=stderr,
                    bootstrap=bootstrap,
                )
                summary["worker_rss_bytes"] = [rss_bytes(w.process.pid) for w in workers]
                summary["processes"] = processes
                summary["bootstrap"] = str(bootstrap)
                summary["peers_started_here"] = len(addresses)
                summary["addresses"] = [str(a) for a in addresses[:SHOWN_PEERS]]
                if server is not None:
                    summary["bootstrap_hosts"] = len(server.cache)
                    summary["bootstrap_counters"] = dict(sorted(server.cache.counters.items()))
                if args.items:
                    plan = seed_plan(args.items, copies_of(args), peers, args.seed)
                    summary["items"] = {
                        "count": args.items,
                        "copies": len(plan[0]),
                        "holders_per_item": len(plan[0]),
                        "replication": len(plan[0]) / peers,
                        "keys": [
                            content_key(value) for value, _ in seeded_items(args.items, args.seed)
                        ],
                        "names": [name for _, name in seeded_items(args.items, args.seed)],
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


async def _check_bootstrap(bootstrap: Address) -> None:
    """Fail at once, in one line, when nothing answers at the bootstrap to join."""
    try:
        await list_members(bootstrap, BOOTSTRAP_CHECK_TIMEOUT)
    except OverlayError as error:
        raise TransportError(f"cannot join the overlay: {error}") from None


async def _everyone(
    args: argparse.Namespace, addresses: list[Address], bootstrap: Address
) -> list[Address]:
    """Whom the observer asks: this swarm's peers, and, when it joined an overlay others
    share, every peer the bootstrap lists (the summary describes the whole overlay)."""
    if args.bootstrap is None:
        return addresses
    try:
        listed = [entry.contact.address for entry in await list_members(bootstrap)]
    except OverlayError as error:
        log.warning("swarm: no listing from the bootstrap at %s: %s", bootstrap, error)
        listed = []
    return list(dict.fromkeys([*addresses, *listed]))


async def _observe(
    args: argparse.Namespace,
    addresses: list[Address],
    stop: trio.Event,
    *,
    read: StatsReader,
    interval: float,
    started: float,
    stderr: Console,
    bootstrap: Address,
) -> dict[str, Any]:
    """Poll until the duration passes or a signal arrives, searching once settled;
    return the final summary."""
    progress = Progress(started)
    forever = args.duration == 0
    end = trio.current_time() + (math.inf if forever else args.duration)
    settle_by = trio.current_time() + (SETTLE_LIMIT if forever else args.duration)
    layered = bool(args.super_peers)
    searching = bool(args.items and args.searches and addresses)
    search: dict[str, Any] | None = None
    last_total: int | None = None
    last_time = time.monotonic()
    rates: list[float] = []
    everyone = addresses
    with Live(
        progress.line(args.peers),
        console=stderr,
        transient=True,
        refresh_per_second=4,
        redirect_stdout=False,
        redirect_stderr=False,
    ) as live:
        while not stop.is_set():
            everyone = await _everyone(args, addresses, bootstrap)
            replies, _failed = await read(everyone)
            now = time.monotonic()
            shots = [snapshot_of(r) for r in replies]
            graph = graph_of(shots)
            progress.alive = len(shots)
            progress.joined = sum(1 for s in shots if s.joined)
            progress.linked = sum(1 for s in shots if s.neighbors)
            progress.supers = sum(1 for s in shots if s.role == "super")
            progress.components = (
                nx.number_connected_components(graph) if graph.number_of_nodes() else 0
            )
            if args.topology_out is not None:
                write_topology(graph, addresses, args.topology_out)
            total = sum(sent_by_kind(replies).values())
            if last_total is not None and now > last_time:
                progress.rate = (total - last_total) / (now - last_time)
                rates.append(progress.rate)
            last_total, last_time = total, now
            expected = _expected(args, everyone)
            if (
                progress.converged_at is None
                and progress.joined == expected
                and progress.components == 1
            ):
                progress.converged_at = now - started
            if progress.settled_at is None and settled(shots, expected, layered):
                progress.settled_at = now - started
                progress.phase = "settled"
            if args.progress_out is not None:
                progress.counters = join_counters(replies)
                progress.waiting = waiting_peers(replies)
                with args.progress_out.open("a", encoding="utf-8") as file:
                    file.write(json.dumps(progress.record()) + "\n")
            if (
                searching
                and search is None
                and (progress.settled_at is not None or trio.current_time() >= settle_by)
            ):
                progress.phase = "searching"
                live.update(progress.line(args.peers))
                search = await _unless_stopped(stop, _search_phase(args, addresses, everyone))
                progress.phase = "searched; running until the end" + (
                    " (Ctrl-C ends)" if forever else ""
                )
            live.update(progress.line(args.peers))
            if trio.current_time() >= end:
                break
            with trio.move_on_at(min(end, trio.current_time() + interval)):
                await stop.wait()
    read_at = time.monotonic()
    replies, failed, shots = await final_reading(
        functools.partial(read, everyone),
        _expected(args, everyone),
        layered,
        stop,
        wait=progress.settled_at is not None,
    )
    final_wait = time.monotonic() - read_at
    if args.topology_out is not None:
        write_topology(graph_of(shots), addresses, args.topology_out)
    sent = sent_by_kind(replies)
    peers = args.peers if args.bootstrap is None else len(everyone)
    summary = summarize(shots, peers=peers, messages=sent, seed=args.seed)
    elapsed = time.monotonic() - started
    summary.update(
        {
            "seed": args.seed,
            "duration": args.duration,
            "stats_unanswered": failed,
            "converged_seconds": progress.converged_at,
            "settled_seconds": progress.settled_at,
            "final_reading_wait_seconds": round(final_wait, 3),
            "messages_per_wall_second": sum(sent.values()) / elapsed if elapsed > 0 else 0.0,
            "steady_messages_per_second": (sum(rates[-5:]) / len(rates[-5:])) if rates else None,
            "faults_and_limits": fault_and_limit_totals(shot.counters for shot in shots),
            "search": search,
        }
    )
    return summary


def _expected(args: argparse.Namespace, everyone: Sequence[Address]) -> int:
    """How many peers a settled overlay has: this swarm's, or every peer listed."""
    return max(len(everyone), args.peers if args.bootstrap is None else 0)


async def final_reading(
    read: Callable[[], Awaitable[tuple[list[StatsReply], int]]],
    expected: int,
    layered: bool,
    stop: trio.Event,
    *,
    wait: bool,
) -> tuple[list[StatsReply], int, list[PeerSnapshot]]:
    """The stats the summary is made of: ``read``'s replies, how many failed, snapshots.

    A live overlay is never still: a weak peer re-homing to a new super peer is one
    attachment short for a round trip, and a reading taken at that instant says "short
    of super peers" of an overlay that is whole.  So when the overlay has settled during
    the run (``wait``), the final reading is taken again every
    :data:`FINAL_READ_INTERVAL` until it is settled once more, for at most
    :data:`FINAL_SETTLE_GRACE` seconds (the summary says how long it waited); an
    overlay that stays broken is reported as it is, and ``stop`` (Ctrl-C, SIGTERM)
    ends the wait at once.
    """
    replies, failed = await read()
    shots = [snapshot_of(r) for r in replies]
    if not wait:
        return replies, failed, shots
    grace_ends = trio.current_time() + FINAL_SETTLE_GRACE
    while not settled(shots, expected, layered) and trio.current_time() < grace_ends:
        with trio.move_on_after(FINAL_READ_INTERVAL):
            await stop.wait()
        if stop.is_set():
            break
        replies, failed = await read()
        shots = [snapshot_of(r) for r in replies]
    return replies, failed, shots


async def _unless_stopped(stop: trio.Event, work: Awaitable[T]) -> T | None:
    """``work``'s result, or None once ``stop`` is set first (Ctrl-C ends the swarm at
    any time, searches included)."""
    done: list[T] = []
    async with trio.open_nursery() as nursery:

        async def watch() -> None:
            await stop.wait()
            nursery.cancel_scope.cancel()

        nursery.start_soon(watch)
        done.append(await work)
        nursery.cancel_scope.cancel()
    return done[0] if done else None


async def _search_phase(
    args: argparse.Namespace, addresses: list[Address], everyone: list[Address]
) -> dict[str, Any]:
    """Search for every seeded item by every mode (see :mod:`overlay.tools.swarm_search`)."""
    keys = [content_key(value) for value, _ in seeded_items(args.items, args.seed)]
    holders = seed_plan(args.items, copies_of(args), args.peers, args.seed)
    planned = plan_searches(keys, holders, addresses, modes_for(args.super_peers), args.seed)
    records = await run_searches(planned, everyone)
    return {"modes": by_mode(records), "searches": records}
