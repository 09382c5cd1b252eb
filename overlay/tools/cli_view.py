"""``overlay view`` and ``overlay members``: look at a running overlay from outside.

``overlay view`` redraws a full-screen rich view (:mod:`overlay.tools.view`) every
``--interval`` seconds; ``q`` quits.  It is fed by a *rolling* crawl
(:class:`overlay.tools.crawl.RollingCrawl`): in the background every peer is asked for
its stats once per interval, each on its own schedule, over a connection kept
open, and each frame is drawn on time from the latest answer of every peer, so
frames come every interval however slowly the peers answer.  The header says how
old the data is (``data ≤ 1.8 s old``: the oldest answer shown, counted from when
it was asked); a peer not heard from for more than ``--stale`` seconds is shown as
unreachable.  (One crawl per frame would hold every frame up for the slowest peer:
at 1,000 peers on two busy worker processes, 2.6 s.)  The first frame waits for
the first round of answers, at most ``--stale`` seconds.  ``--once`` crawls once,
prints one frame and exits 0, with or without a terminal.  ``overlay members``
prints one row per peer, in the manner of ``serf members``.

``overlay swarm --view`` owns its peers' processes: it asks each worker for the
stats of all its peers in one batch (:mod:`overlay.net.swarm.stats`) and crawls over
TCP only the peers it does not host.

:func:`live_view` is the loop both this command and ``overlay swarm --view`` use:
it takes a crawl function and a table of key actions, so whoever owns the peers
(the swarm) can offer keys that act on them.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import json
import logging
import os
import random
import select
import sys
import termios
import time
import tty
from collections.abc import Awaitable, Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, Final, Protocol

import attrs
import trio
from rich.console import Console
from rich.live import Live
from rich.table import Table

from overlay.net.options import add_plaintext_argument
from overlay.net.swarm.control import CONTROL_ADD, CONTROL_CRASH
from overlay.net.swarm.stats import DEFAULT_BATCH_TIMEOUT, StatsBatches
from overlay.protocol.errors import OverlayError
from overlay.protocol.identity import Address
from overlay.protocol.messages import StatsReply
from overlay.tools.cli import address_argument
from overlay.tools.cli_search import search_via
from overlay.tools.crawl import (
    DEFAULT_STALE,
    DEFAULT_TIMEOUT,
    Crawl,
    RollingCrawl,
    StatsBatch,
    StatsClient,
    crawl,
    list_members,
)
from overlay.tools.view import FeedEvent, Frame, ViewModel, export_graph, render, short, sim_frames

log = logging.getLogger("overlay.tools.view")

CrawlSource = Callable[[], Awaitable[Crawl]]
KeyAction = Callable[[], Awaitable[str]]
"""An action bound to a key; what it returns goes into the event feed."""

KEY_POLL: Final = 0.2
"""Seconds a key-reading thread waits before checking back (bounds how long quitting takes)."""


def register(subparsers: Any) -> None:
    view: argparse.ArgumentParser = subparsers.add_parser(
        "view",
        help="watch a running overlay live in the terminal",
        description="Crawl the overlay from its bootstrap and draw it every --interval "
        "seconds: counts, the topology, super peers, degrees and an event feed.  q quits.  "
        "The crawl is rolling: every peer is asked once per interval in the background, "
        "and each frame is drawn on time from the latest answers; the header shows how old "
        "the data is, and a peer silent for more than --stale seconds is shown unreachable.",
    )
    view.add_argument(
        "--bootstrap",
        type=address_argument,
        metavar="HOST:PORT",
        default=None,
        help="where the crawl starts: the bootstrap lists every registered peer",
    )
    view.add_argument(
        "--peer",
        type=address_argument,
        metavar="HOST:PORT",
        action="append",
        default=[],
        help="also start the crawl at this peer (repeatable)",
    )
    view.add_argument("--interval", type=float, default=1.0, help="seconds between refreshes")
    view.add_argument(
        "--timeout",
        type=float,
        default=None,
        help=f"per-peer timeout (default: {DEFAULT_TIMEOUT:g} s with --once, else --stale)",
    )
    view.add_argument(
        "--stale",
        type=float,
        default=DEFAULT_STALE,
        help="seconds without an answer after which a peer is shown unreachable "
        f"(default {DEFAULT_STALE:g})",
    )
    view.add_argument(
        "--once",
        action="store_true",
        help="print one frame and exit (1 if nobody answers); --export implies it",
    )
    view.add_argument(
        "--export",
        type=Path,
        default=None,
        metavar="FILE",
        help="write FILE.graphml, FILE.edgelist (integer ids, for `overlay sim query`) or FILE.png",
    )
    add_plaintext_argument(view)
    view.set_defaults(run=run_view)

    members: argparse.ArgumentParser = subparsers.add_parser(
        "members",
        help="list the peers of a running overlay",
        description="One row per peer: id, address, role, degree, its super peers (or its "
        "weak peers), status (alive, suspect, unreachable).",
    )
    members.add_argument(
        "--bootstrap",
        type=address_argument,
        metavar="HOST:PORT",
        required=True,
        help="the overlay's bootstrap (it lists every registered peer)",
    )
    members.add_argument(
        "--role", choices=("super", "weak"), default=None, help="list only peers of this role"
    )
    members.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT, help="per-peer timeout")
    members.add_argument("--json", action="store_true", help="print JSON (one list)")
    add_plaintext_argument(members)
    members.set_defaults(run=run_members)


# ---------------------------------------------------------------------- keyboard


class Keyboard:
    """Single keys from the terminal, without Enter (cbreak mode, restored on exit).

    Keys are read in a worker thread with a short ``select`` so that the terminal's
    file stays blocking (trio's own fd streams would make it non-blocking, and the
    terminal's output shares that flag with its input).
    """

    def __init__(self) -> None:
        self.fd: int | None = None
        self._saved: list[Any] | None = None

    def __enter__(self) -> Keyboard:
        with contextlib.suppress(OSError, ValueError, termios.error):
            fd = sys.stdin.fileno()
            if os.isatty(fd):
                self._saved = termios.tcgetattr(fd)
                tty.setcbreak(fd)
                self.fd = fd
        return self

    def __exit__(self, *_exc: object) -> None:
        if self.fd is not None and self._saved is not None:
            with contextlib.suppress(OSError, termios.error):
                termios.tcsetattr(self.fd, termios.TCSADRAIN, self._saved)
        self.fd = None

    def _read(self) -> str | None:
        fd = self.fd
        if fd is None:
            return None
        ready, _, _ = select.select([fd], [], [], KEY_POLL)
        if not ready:
            return None
        data = os.read(fd, 1)
        if not data:
            return "q"  # the terminal went away: quit
        return data.decode("ascii", errors="replace")

    async def next_key(self) -> str:
        if self.fd is None:
            await trio.sleep_forever()
        while True:
            key = await trio.to_thread.run_sync(self._read)
            if key is not None:
                return key


# ---------------------------------------------------------------------- the live loop


def drawing_height(console: Console, feed_rows: int) -> int:
    """Rows left for the drawing once the header, borders and feed have theirs."""
    return max(6, console.size.height - 3 - 2 - (feed_rows + 3) - 1)


def feed_rows_for(console: Console) -> int:
    return 5 if console.size.height < 40 else 10


@attrs.define
class LiveState:
    model: ViewModel
    started: float
    last: Crawl | None = None
    frame: Frame | None = None


async def live_view(
    source: CrawlSource,
    *,
    console: Console,
    interval: float = 1.0,
    actions: Mapping[str, KeyAction] | None = None,
    once: bool = False,
    export: Path | None = None,
    title: str = "overlay view",
    stop: trio.Event | None = None,
) -> Crawl | None:
    """Crawl and draw every ``interval`` seconds until ``q``, Ctrl-C or ``stop``.

    ``actions`` maps keys to actions; each runs in the background, and its answer
    goes into the feed.  Returns the last crawl (it is exported if asked).
    """
    state = LiveState(ViewModel(title=title), time.monotonic())
    actions = dict(actions or {})
    legend = "  ".join([*(f"{k} {SWARM_KEYS.get(k, '')}".strip() for k in actions), "q quit"])

    def frame_of(result: Crawl) -> Frame:
        return state.model.update_from_crawl(
            result, time.monotonic() - state.started, note=f"keys: {legend}"
        )

    if once:
        state.last = await source()
        frame = frame_of(state.last)
        rows = feed_rows_for(console)
        height = drawing_height(console, rows) if console.is_terminal else 24
        console.print(render(frame, height=height, feed_rows=rows, width=console.width))
        if export is not None:
            export_graph(state.last.graph(), export)
        return state.last

    live_on = console.is_terminal
    with (
        Keyboard() as keyboard,
        Live(console=console, screen=True, auto_refresh=False, transient=True)
        if live_on
        else contextlib.nullcontext() as live,
    ):

        def show() -> None:
            frame = state.frame
            if frame is None:
                return
            frame = attrs.evolve(frame, events=tuple(state.model.events))
            rows = feed_rows_for(console)
            picture = render(
                frame, height=drawing_height(console, rows), feed_rows=rows, width=console.width
            )
            if isinstance(live, Live):
                live.update(picture, refresh=True)
            else:
                console.print(picture)

        async with trio.open_nursery() as nursery:

            async def refresh() -> None:
                while True:
                    began = trio.current_time()
                    state.last = await source()
                    state.frame = frame_of(state.last)
                    show()
                    await trio.sleep_until(began + interval)

            async def act(key: str, action: KeyAction) -> None:
                try:
                    said = await action()
                except Exception as error:  # an action failing must not end the view
                    said = f"{key}: failed: {error}"
                at = time.monotonic() - state.started
                state.model.add(FeedEvent(at, "action", None, said))
                show()

            async def read_keys() -> None:
                while True:
                    key = await keyboard.next_key()
                    if key == "q":
                        nursery.cancel_scope.cancel()
                        return
                    action = actions.get(key)
                    if action is not None:
                        nursery.start_soon(act, key, action)

            async def until_stopped(event: trio.Event) -> None:
                await event.wait()
                nursery.cancel_scope.cancel()

            nursery.start_soon(refresh)
            nursery.start_soon(read_keys)
            if stop is not None:
                nursery.start_soon(until_stopped, stop)
    if export is not None and state.last is not None:
        export_graph(state.last.graph(), export)
    return state.last


# ---------------------------------------------------------------------- commands


def run_view(args: argparse.Namespace) -> int:
    if args.bootstrap is None and not args.peer:
        print("overlay view: give --bootstrap HOST:PORT (or --peer HOST:PORT)", file=sys.stderr)
        return 2
    if args.interval <= 0 or args.stale <= 0 or (args.timeout is not None and args.timeout <= 0):
        print("overlay view: --interval, --timeout and --stale must be positive", file=sys.stderr)
        return 2
    if args.export is not None and args.export.suffix.lower() not in (
        ".graphml",
        ".edgelist",
        ".png",
    ):
        print(
            "overlay view: --export takes FILE.graphml, FILE.edgelist or FILE.png",
            file=sys.stderr,
        )
        return 2

    target = str(args.bootstrap) if args.bootstrap is not None else "peers"
    console = Console()
    once = args.once or args.export is not None  # an export is one picture: draw it and go
    failure: list[str] = []

    async def main() -> None:
        client = StatsClient()  # one connection per peer, kept between refreshes
        show = functools.partial(
            live_view,
            console=console,
            interval=args.interval,
            once=once,
            export=args.export,
            title=f"overlay view {target}",
        )
        try:
            if once:
                timeout = DEFAULT_TIMEOUT if args.timeout is None else args.timeout
                found = await crawl(args.bootstrap, args.peer, timeout=timeout)
                why = unreachable(found)
                if why is not None:
                    failure.append(why)
                    return

                async def crawled() -> Crawl:
                    return found

                await show(crawled)
                return
            if args.bootstrap is not None and not args.peer:
                try:
                    await list_members(args.bootstrap)
                except OverlayError as error:
                    failure.append(str(error))
                    return
            rolling = RollingCrawl(
                args.bootstrap,
                args.peer,
                period=args.interval,
                stale=args.stale,
                timeout=args.timeout,
                fetch=client.fetch,
            )
            async with trio.open_nursery() as nursery:
                await nursery.start(rolling.run)
                await show(rolling_source(rolling))
                nursery.cancel_scope.cancel()
        finally:
            await client.aclose()

    with contextlib.suppress(KeyboardInterrupt):
        trio.run(main)
    if failure:
        print(f"overlay view: {failure[0]}", file=sys.stderr)
        return 1
    if args.export is not None:
        Console(stderr=True).print(f"wrote {args.export}", highlight=False)
    return 0


def unreachable(found: Crawl) -> str | None:
    """Why a one-shot crawl found nobody at all (one line naming the address), or None."""
    if found.snapshots:
        return None
    if found.bootstrap_error is not None:
        return found.bootstrap_error
    errors = [m.error for m in found.members if m.error]
    return errors[0] if errors else "no peer answered"


def rolling_source(rolling: RollingCrawl) -> CrawlSource:
    """Frames from a running :class:`RollingCrawl`: the first waits for its first round
    of answers (at most ``rolling.stale`` seconds), the others take what it knows."""

    async def source() -> Crawl:
        if not rolling.first_pass.is_set():
            with trio.move_on_after(rolling.stale):
                await rolling.first_pass.wait()
        return rolling.latest()

    return source


def run_members(args: argparse.Namespace) -> int:
    result = trio.run(lambda: crawl(args.bootstrap, timeout=args.timeout))
    if result.bootstrap_error is not None and not result.members:
        print(f"overlay members: {result.bootstrap_error}", file=sys.stderr)
        return 1
    rows = [m for m in result.members if args.role is None or m.role == args.role]
    if args.json:
        with contextlib.suppress(BrokenPipeError):
            print(json.dumps([m.as_json() for m in rows]), flush=True)
        return 0
    table = Table(box=None, pad_edge=False, header_style="bold")
    for column in ("id", "address", "role", "degree", "super/weak peers", "status"):
        table.add_column(column, no_wrap=True)
    styles = {"alive": "green", "suspect": "yellow", "unreachable": "red"}
    for member in rows:
        if member.role == "super":
            related = f"{len(member.weak_peers)} weak"
        else:
            related = ",".join(short(p) for p in member.super_peers) or "-"
        table.add_row(
            member.id or "?",
            str(member.address) if member.address is not None else "?",
            member.role,
            str(member.degree) if member.status == "alive" else "-",
            related,
            f"[{styles[member.status]}]{member.status}[/]",
        )
    console = Console()
    if not console.is_terminal:
        console = Console(width=250)  # for pipes: whole ids and addresses, never cut
    console.print(table)
    return 0


# ---------------------------------------------------------------------- overlay swarm --view


class SwarmControl(Protocol):
    """What ``overlay swarm --view`` can do to its own peers (the swarm implements it)."""

    async def crash(self, address: Address) -> str:
        """Stop the peer at ``address`` without a goodbye; say what happened."""
        ...

    async def add(self) -> str:
        """Start one more peer; say so."""
        ...

    async def search(self, mode: str, origin: Address) -> str:
        """Search from ``origin`` by ``mode`` (flood or walk) for a random published item;
        say how it went (found or not, messages, hops)."""
        ...


class WorkerStdin(Protocol):
    async def send_all(self, data: bytes) -> None: ...


class WorkerProcess(Protocol):
    @property
    def stdin(self) -> WorkerStdin | None: ...


class Workers(Protocol):
    """A swarm worker as :class:`WorkerControl` needs it (``overlay.tools.swarm.Worker`` fits)."""

    peers: list[Address]
    stats: StatsBatches

    @property
    def process(self) -> WorkerProcess: ...


SEARCH_TIMEOUT: Final = 10.0


class WorkerControl:
    """:class:`SwarmControl` for ``overlay swarm``: a line to the worker that runs the peer
    (``crash HOST:PORT``, ``add``; see :func:`overlay.net.swarm.control.handle_control_line`
    for the worker's side), and searches through the client protocol
    (:func:`overlay.tools.cli_search.search_via`) for one of ``keys``, the items the swarm
    seeded."""

    def __init__(
        self,
        workers: Sequence[Workers],
        keys: Sequence[str],
        rng: random.Random,
        *,
        search_timeout: float = SEARCH_TIMEOUT,
    ) -> None:
        self.workers = workers
        self.keys = list(keys)
        self.rng = rng
        self.search_timeout = search_timeout
        self._writing: dict[int, trio.Lock] = {}

    async def _tell(self, worker: Workers, line: bytes) -> None:
        stdin = worker.process.stdin
        if stdin is None:
            raise OverlayError("the worker's input is closed")
        # Keys and the view's stats requests write at the same time; one pipe, one writer.
        lock = self._writing.setdefault(id(worker), trio.Lock())
        async with lock:
            await stdin.send_all(line + b"\n")

    async def snapshots(self, timeout: float = DEFAULT_BATCH_TIMEOUT) -> list[StatsReply]:
        """The stats of every peer the workers host, one batch per worker, all workers
        at once (:mod:`overlay.net.swarm.stats`).  A worker that fails to answer is left
        out (logged): the crawl then asks its peers over TCP."""
        replies: list[StatsReply] = []

        async def ask(worker: Workers) -> None:
            async def send(line: bytes) -> None:
                await self._tell(worker, line)

            try:
                replies.extend(await worker.stats.ask(send, timeout))
            except (OverlayError, trio.BrokenResourceError, trio.ClosedResourceError) as error:
                log.info("worker stats: %s", error)

        async with trio.open_nursery() as nursery:
            for worker in self.workers:
                nursery.start_soon(ask, worker)
        return replies

    async def crash(self, address: Address) -> str:
        for worker in self.workers:
            if address in worker.peers:
                await self._tell(worker, CONTROL_CRASH + str(address).encode())
                worker.peers.remove(address)
                return f"crashed the peer at {address}"
        return f"no worker runs {address}"

    async def add(self) -> str:
        if not self.workers:
            return "a: no worker to add a peer to"
        worker = min(self.workers, key=lambda w: len(w.peers))
        await self._tell(worker, CONTROL_ADD)
        return "a: a new peer is joining"

    async def search(self, mode: str, origin: Address) -> str:
        if not self.keys:
            return f"{mode}: nothing to search for (start the swarm with --items)"
        key = self.rng.choice(self.keys)
        result = await search_via(origin, mode, key=key, timeout=self.search_timeout)
        if result.error:
            return f"{mode} from {origin}: {result.error}"
        sent = sum(c.value for c in result.messages)
        hops = "-" if result.first_hit_hops is None else str(result.first_hit_hops)
        outcome = "found" if result.success else "not found"
        return (
            f"{mode} {key[:8]} from {origin}: {outcome}, {len(result.hits)} hits, "
            f"first hit {hops} hops, {sent} msgs sent by the origin, {result.duration:.2f} s"
        )


SWARM_KEYS: Final = {
    "k": "crash",
    "K": "crash super",
    "a": "add",
    "f": "flood",
    "w": "walk",
}


def swarm_actions(
    control: SwarmControl, latest: Callable[[], Crawl | None], rng: random.Random
) -> dict[str, KeyAction]:
    """The keys of ``overlay swarm --view``, acting through ``control`` on the peers the
    latest crawl found alive (``latest``)."""

    def alive(role: str | None) -> list[Address]:
        result = latest()
        if result is None:
            return []
        return sorted(
            m.address
            for m in result.members
            if m.status == "alive" and m.address is not None and role in (None, m.role)
        )

    async def crash_any() -> str:
        targets = alive(None)
        if not targets:
            return "k: no live peer to crash"
        return f"k: {await control.crash(rng.choice(targets))}"

    async def crash_super() -> str:
        targets = alive("super")
        if not targets:
            return "K: no super peer to crash"
        return f"K: {await control.crash(rng.choice(targets))} (a super peer)"

    async def search(mode: str) -> str:
        origins = alive(None)
        if not origins:
            return f"{mode}: no live peer to search from"
        return await control.search(mode, rng.choice(origins))

    async def flood() -> str:
        return await search("flood")

    async def walk() -> str:
        return await search("walk")

    return {"k": crash_any, "K": crash_super, "a": control.add, "f": flood, "w": walk}


async def swarm_view(
    bootstrap: Address,
    control: SwarmControl,
    *,
    console: Console,
    interval: float = 1.0,
    timeout: float = DEFAULT_TIMEOUT,
    stop: trio.Event | None = None,
    seed: int = 0,
    batch: StatsBatch | None = None,
) -> Crawl | None:
    """The live view of a swarm we run ourselves, with keys that act on it.

    ``overlay swarm --view`` calls this instead of its status line; it returns when
    the user presses ``q`` (or ``stop`` is set), with the last crawl.  ``batch``
    (``WorkerControl.snapshots``) brings the stats of the peers the swarm hosts in
    one request per worker; only the others are asked over TCP.
    """
    last: list[Crawl] = []
    client = StatsClient()

    async def source() -> Crawl:
        fallback = last[0].alive_addresses() if last else None
        result = await crawl(
            bootstrap, timeout=timeout, fetch=client.fetch, fallback=fallback, prefetch=batch
        )
        last[:] = [result]
        return result

    actions = swarm_actions(control, lambda: last[0] if last else None, random.Random(seed))
    try:
        return await live_view(
            source,
            console=console,
            interval=interval,
            actions=actions,
            title=f"overlay swarm {bootstrap}",
            stop=stop,
        )
    finally:
        await client.aclose()


# ---------------------------------------------------------------------- overlay sim --view


def replay_sim(
    sim: Any,
    *,
    until: float,
    console: Console,
    step: float = 1.0,
    pace: float = 1.0,
    once: bool = False,
) -> Frame | None:
    """Show a simulator run in the live view, one frame per ``step`` simulated seconds,
    ``pace`` wall seconds apart (0: as fast as it runs); with ``once``, run to ``until``
    and print only the last frame.  For ``overlay sim ... --view``; returns the last frame.
    """
    frames = sim_frames(sim, until, step)
    last: Frame | None = None
    rows = feed_rows_for(console)
    if once or not console.is_terminal:
        for frame in frames:
            last = frame
        if last is not None:
            height = drawing_height(console, rows) if console.is_terminal else 24
            console.print(render(last, height=height, feed_rows=rows, width=console.width))
        return last
    with Live(console=console, screen=True, auto_refresh=False, transient=True) as live:
        for frame in frames:
            began = time.monotonic()
            last = frame
            live.update(
                render(
                    frame, height=drawing_height(console, rows), feed_rows=rows, width=console.width
                ),
                refresh=True,
            )
            time.sleep(max(0.0, pace - (time.monotonic() - began)))
    if last is not None:
        console.print(render(last, height=24, feed_rows=rows, width=console.width))
    return last
