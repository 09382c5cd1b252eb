"""The crawler behind ``overlay view`` and ``overlay members``: who is in a running overlay.

A crawl starts at the bootstrap, which lists its registered peers with their
addresses (:class:`~overlay.protocol.messages.MembersRequest`; a stats reply names
neighbors by id only, so the bootstrap's listing is the address book), then asks
every peer for its stats (:class:`~overlay.protocol.messages.StatsRequest`), many at once,
each under its own timeout.  Every peer a reply names (neighbors, super and weak
peers) whose address the crawl knows and has not asked yet is asked too, so the
crawl is a breadth-first search that also reaches peers the bootstrap forgot.

Nothing waits on a dead peer for longer than ``timeout``: it is marked and the
crawl goes on.  Statuses, as ``overlay members`` prints them:

* ``alive``: answered its stats request;
* ``unreachable``: we had its address and asked, and got no answer in time (refused,
  reset, silent, or a reply that was not a stats reply);
* ``suspect``: a live peer names it (as neighbor, super peer or weak peer) but we
  know no address to ask it at, so nobody has checked it is there.

:func:`crawl` is one crawl, as ``overlay members`` and ``overlay view --once`` need;
``prefetch`` lets a caller that hosts peers (``overlay swarm --view``) bring their
stats in a batch so only the rest are asked.  :class:`RollingCrawl` never ends: it
asks every peer once a period in the background and hands out, at any moment, a
:class:`Crawl` of the latest answers with their age, which is what the live view
draws from (a frame then never waits for a slow peer).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from typing import Any, Final

import attrs
import networkx as nx
import trio

from overlay.core.peer import PeerSnapshot
from overlay.net.client import CONNECT_TIMEOUT, ClientLink
from overlay.protocol.errors import OverlayError, ProtocolError, TransportError
from overlay.protocol.identity import Address, PeerId
from overlay.protocol.messages import (
    MemberEntry,
    MembersReply,
    MembersRequest,
    Message,
    StatsReply,
    StatsRequest,
)
from overlay.sim.topology import graph_of

log = logging.getLogger("overlay.tools.crawl")

STATUSES: Final = ("alive", "suspect", "unreachable")
DEFAULT_TIMEOUT: Final = 1.0
"""Per request.  Loopback answers in milliseconds; a peer that needs a second is as good
as gone for a view refreshed every second."""
DEFAULT_CONCURRENCY: Final = 256
"""Requests in flight at once (each holds a socket)."""
MAX_LISTING: Final = 100_000
"""Most registered peers read from one bootstrap (the listing is paged)."""
MAX_READS: Final = 10_000
"""Reads on one connection before giving up (each read brings at least one byte)."""

StatsFetcher = Callable[[Address, float], Awaitable[StatsReply]]
StatsBatch = Callable[[], Awaitable[Sequence[StatsReply]]]
"""Stats of many peers at once, from whoever hosts them (``overlay swarm``'s workers)."""


# ---------------------------------------------------------------------- records


@attrs.frozen
class Member:
    """One peer as the crawl found it: one row of ``overlay members``."""

    id: PeerId | None
    address: Address | None
    role: str
    status: str
    degree: int = 0
    super_peers: tuple[PeerId, ...] = ()
    weak_peers: tuple[PeerId, ...] = ()
    registered: bool = False
    """Listed by the bootstrap."""
    error: str = ""

    def as_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "address": str(self.address) if self.address is not None else None,
            "role": self.role,
            "status": self.status,
            "degree": self.degree,
            "super_peers": list(self.super_peers),
            "weak_peers": list(self.weak_peers),
            "registered": self.registered,
            "error": self.error,
        }


@attrs.frozen
class Crawl:
    """The result of one crawl: the snapshots of the peers that answered, and everyone."""

    snapshots: tuple[PeerSnapshot, ...]
    members: tuple[Member, ...]
    registered: int
    """How many peers the bootstrap lists (0 without a bootstrap)."""
    started: float
    """``time.monotonic()`` when the crawl began (rates are taken between crawls)."""
    elapsed: float
    bootstrap_error: str | None = None
    data_age: float | None = None
    """A rolling crawl's (:class:`RollingCrawl`): how old the oldest snapshot shown is,
    in seconds (None: a one-shot crawl, whose data is as old as ``elapsed``)."""
    ages: tuple[float, ...] = ()
    """A rolling crawl's: the age of each snapshot, in the order of ``snapshots``."""

    def graph(self) -> nx.Graph:
        return graph_of(self.snapshots)

    def count(self, status: str) -> int:
        return sum(1 for member in self.members if member.status == status)

    def alive_addresses(self) -> dict[PeerId, Address]:
        """Who answered, and where: the next crawl's fallback address book."""
        return {
            m.id: m.address
            for m in self.members
            if m.status == "alive" and m.id is not None and m.address is not None
        }


def super_peers_of(shot: object) -> tuple[PeerId, ...]:
    """A weak peer's super peers; () for snapshots from before super peers existed."""
    return tuple(getattr(shot, "super_peers", ()) or ())


def weak_peers_of(shot: object) -> tuple[PeerId, ...]:
    return tuple(getattr(shot, "weak_peers", ()) or ())


def index_size_of(shot: object) -> int:
    return int(getattr(shot, "index_size", 0) or 0)


_SNAPSHOT_FIELDS = tuple(field.name for field in attrs.fields(PeerSnapshot))


def snapshot_from(reply: StatsReply) -> PeerSnapshot:
    """A stats reply as a snapshot: every field the two records share is copied by name,
    so fields added to both (super peers, index size) arrive without a change here."""
    values: dict[str, Any] = {}
    for name in _SNAPSHOT_FIELDS:
        if name == "counters":
            values[name] = {c.name: c.value for c in reply.counters}
        elif hasattr(reply, name):
            values[name] = getattr(reply, name)
    return PeerSnapshot(**values)


# ---------------------------------------------------------------------- clients


async def _exchange(
    address: Address,
    requests: Sequence[Message],
    accept: Callable[[Message], bool],
    timeout: float,
) -> None:
    """Connect, handshake, send ``requests``, and feed every later message to ``accept``
    until it returns True.  Everything under one ``timeout``."""
    try:
        with trio.fail_after(timeout):
            link = await ClientLink.open(
                address, requests, connect_timeout=min(timeout, CONNECT_TIMEOUT)
            )
            try:
                for _ in range(MAX_READS):
                    messages = await link.read()
                    if messages is None:
                        break
                    if any(accept(message) for message in messages):
                        return
                raise ProtocolError("connection closed before the answer came")
            finally:
                await link.aclose()
    except trio.TooSlowError:
        raise TransportError(f"no answer from {address} within {timeout:g} s") from None
    except (OSError, trio.BrokenResourceError) as exc:
        raise TransportError(f"{address}: {exc}") from None


async def fetch_stats(address: Address, timeout: float = DEFAULT_TIMEOUT) -> StatsReply:
    """One peer's stats, over a fresh connection."""
    found: list[StatsReply] = []

    def accept(message: Message) -> bool:
        if type(message) is StatsReply:
            found.append(message)
            return True
        return False

    await _exchange(address, [StatsRequest()], accept, timeout)
    return found[0]


async def list_members(bootstrap: Address, timeout: float = DEFAULT_TIMEOUT) -> list[MemberEntry]:
    """Every peer the bootstrap lists, page by page over one connection.

    Pages are asked one at a time (the next start is known only from the reply);
    a listing that changes meanwhile may skip or repeat a peer, which the crawl's
    breadth-first search makes good.
    """
    members: dict[PeerId, MemberEntry] = {}
    try:
        with trio.fail_after(timeout):
            link = await ClientLink.open(bootstrap, [MembersRequest()])
            try:
                for _ in range(MAX_READS):
                    messages = await link.read()
                    if messages is None:
                        raise ProtocolError("the bootstrap closed the connection mid-listing")
                    for message in messages:
                        if type(message) is not MembersReply:
                            continue
                        for entry in message.members:
                            members[entry.contact.id] = entry
                        following = message.start + max(len(message.members), 1)
                        if following >= min(message.total, MAX_LISTING) or not message.members:
                            return list(members.values())
                        await link.send(MembersRequest(following))
                raise ProtocolError("the bootstrap's listing never ended")
            finally:
                await link.aclose()
    except trio.TooSlowError:
        raise TransportError(f"no listing from {bootstrap} within {timeout:g} s") from None
    except (OSError, trio.BrokenResourceError) as exc:
        raise TransportError(f"listing from {bootstrap}: {exc}") from None


class StatsClient:
    """Stats requests over connections kept open between crawls.

    A live view asks every peer once a second; a fresh TCP connection and handshake
    for each request would cost the peer (and the crawler) several times what the
    answer does, and at 1,000 peers that is what stops a refresh from fitting in a
    second.  One connection per peer is kept and reused; a connection that fails or
    times out is closed and the next request opens a new one, so a crashed peer
    costs one refused connect per crawl.
    """

    def __init__(self) -> None:
        self._open: dict[Address, _Link] = {}

    async def fetch(self, address: Address, timeout: float = DEFAULT_TIMEOUT) -> StatsReply:
        link = self._open.pop(address, None)
        try:
            with trio.fail_after(timeout):
                reply: StatsReply | None = None
                if link is not None:
                    try:
                        reply = await link.ask()
                    except (OSError, trio.BrokenResourceError, TransportError):
                        # Peers close idle client connections after a few seconds
                        # (NodeConfig.transient_idle_timeout): a kept link may be gone
                        # by the next refresh.  That is no sign of a dead peer: ask
                        # once more on a fresh connection.
                        await _close(link)
                        link = None
                if link is None:
                    link = await _Link.open(address)
                    reply = await link.ask()
                assert reply is not None
        except trio.TooSlowError:
            await _close(link)
            raise TransportError(f"no answer from {address} within {timeout:g} s") from None
        except (OSError, trio.BrokenResourceError, trio.ClosedResourceError) as exc:
            await _close(link)
            raise TransportError(f"{address}: {exc}") from None
        except OverlayError:
            await _close(link)
            raise
        self._open[address] = link
        return reply

    async def aclose(self) -> None:
        links, self._open = list(self._open.values()), {}
        for link in links:
            await _close(link)

    def __len__(self) -> int:
        return len(self._open)


async def _close(link: _Link | None) -> None:
    if link is not None:
        with trio.CancelScope(shield=True):
            await link.stream.aclose()


class _Link:
    """One open, handshaken connection to a peer, used for one request at a time."""

    def __init__(self, link: ClientLink) -> None:
        self.link = link
        self.stream = link.stream

    @classmethod
    async def open(cls, address: Address) -> _Link:
        link = await ClientLink.open(address)
        try:
            messages = await link.read()
            if messages is None:
                raise TransportError("the peer closed the connection")
            if messages:
                raise ProtocolError("a message before any request")
        except BaseException:
            await link.aclose()
            raise
        return cls(link)

    async def next_message(self) -> Message:
        pending: list[Message] = []
        for _ in range(MAX_READS):
            messages = await self.link.read()
            if messages is None:
                raise TransportError("the peer closed the connection")
            pending = messages
            if pending:
                break
        if not pending:
            raise ProtocolError("no message after many reads")
        if len(pending) > 1:
            raise ProtocolError("more than one message where one answer was due")
        return pending[0]

    async def ask(self) -> StatsReply:
        await self.link.send(StatsRequest())
        message = await self.next_message()
        if type(message) is not StatsReply:
            raise ProtocolError(f"expected a stats reply, got {type(message).__name__}")
        return message


# ---------------------------------------------------------------------- the crawl


async def crawl(
    bootstrap: Address | None,
    seeds: Iterable[Address] = (),
    *,
    timeout: float = DEFAULT_TIMEOUT,
    concurrency: int = DEFAULT_CONCURRENCY,
    fetch: StatsFetcher = fetch_stats,
    fallback: Mapping[PeerId, Address] | None = None,
    prefetch: StatsBatch | None = None,
) -> Crawl:
    """Crawl the overlay from the bootstrap's listing (and any ``seeds``).

    ``prefetch`` gives, alongside the listing, the stats of the peers someone hosts
    (``overlay swarm --view`` asks its workers in one batch each): those peers are
    not asked again, and TCP requests go only to the rest (peers the caller does not
    host, or whose host did not answer).

    ``fallback`` is an address book to start from when the bootstrap does not answer
    (a live view passes the peers its previous crawl found alive), so that a slow or
    dead bootstrap blanks the picture only if it was never reached at all.

    Bounded: every request has ``timeout``; each address is asked at most once; the
    whole crawl takes at most (breadth-first depth + 1) x ``timeout``, and in practice
    one round, since the listing names nearly everyone.
    """
    started = time.monotonic()
    book: dict[PeerId, Address] = {}
    roles: dict[PeerId, str] = {}
    registered: set[PeerId] = set()
    bootstrap_error: str | None = None
    listing = 0
    batch: list[StatsReply] = []

    async def read_listing() -> None:
        nonlocal bootstrap_error, listing
        if bootstrap is None:
            return
        try:
            entries = await list_members(bootstrap, max(timeout, 2.0))
        except OverlayError as error:
            bootstrap_error = str(error)
            log.info("crawl: %s", error)  # the caller reports it (the view shows it)
            book.update(fallback or {})
        else:
            listing = len(entries)
            for entry in entries:
                book[entry.contact.id] = entry.contact.address
                roles[entry.contact.id] = entry.role
                registered.add(entry.contact.id)

    async def read_batch() -> None:
        if prefetch is not None:
            batch.extend(await prefetch())

    async with trio.open_nursery() as nursery:
        nursery.start_soon(read_listing)
        nursery.start_soon(read_batch)

    asked: set[Address] = set()
    replies: dict[PeerId, StatsReply] = {}
    for reply in batch:
        if reply.id not in replies:
            replies[reply.id] = reply
            asked.add(reply.address)
            book.setdefault(reply.id, reply.address)
    failures: dict[Address, str] = {}
    limiter = trio.CapacityLimiter(max(1, concurrency))

    async def ask(address: Address, nursery: trio.Nursery) -> None:
        async with limiter:
            try:
                reply = await fetch(address, timeout)
            except OverlayError as error:
                failures[address] = str(error)
                return
        if reply.id in replies:
            return  # two addresses for one id (a restart): the first answer stands
        replies[reply.id] = reply
        book.setdefault(reply.id, reply.address)
        for other in _named_by(reply):
            where = book.get(other)
            if where is not None and where not in asked:
                asked.add(where)
                nursery.start_soon(ask, where, nursery)

    async with trio.open_nursery() as nursery:
        for address in [*book.values(), *seeds]:
            if address not in asked:
                asked.add(address)
                nursery.start_soon(ask, address, nursery)

    snapshots = tuple(snapshot_from(reply) for reply in replies.values())
    members = _members(snapshots, book, roles, registered, failures)
    return Crawl(
        snapshots=snapshots,
        members=members,
        registered=listing,
        started=started,
        elapsed=time.monotonic() - started,
        bootstrap_error=bootstrap_error,
    )


def _named_by(shot: object) -> list[PeerId]:
    neighbors: tuple[PeerId, ...] = getattr(shot, "neighbors", ())
    layer: tuple[PeerId, ...] = tuple(getattr(shot, "super_neighbors", ()) or ())
    return [*neighbors, *super_peers_of(shot), *weak_peers_of(shot), *layer]


def _members(
    snapshots: Sequence[PeerSnapshot],
    book: dict[PeerId, Address],
    roles: dict[PeerId, str],
    registered: set[PeerId],
    failures: dict[Address, str],
) -> tuple[Member, ...]:
    rows: list[Member] = []
    seen: set[PeerId] = set()
    for shot in snapshots:
        seen.add(shot.id)
        rows.append(
            Member(
                id=shot.id,
                address=shot.address,
                role=shot.role,
                status="alive",
                degree=len(shot.neighbors),
                super_peers=super_peers_of(shot),
                weak_peers=weak_peers_of(shot),
                registered=shot.id in registered,
            )
        )
    by_address = {address: peer for peer, address in book.items()}
    for address, error in failures.items():
        peer = by_address.get(address)
        if peer is not None and peer in seen:
            continue
        if peer is not None:
            seen.add(peer)
        rows.append(
            Member(
                id=peer,
                address=address,
                role=roles.get(peer, "weak") if peer is not None else "weak",
                status="unreachable",
                registered=peer in registered,
                error=error,
            )
        )
    named: dict[PeerId, None] = {}
    for shot in snapshots:
        for other in _named_by(shot):
            if other not in seen:
                named[other] = None
    for peer in named:
        rows.append(
            Member(
                id=peer,
                address=book.get(peer),
                role=roles.get(peer, "weak"),
                status="suspect",
                registered=peer in registered,
                error="named by a live peer; no address to ask",
            )
        )
    rows.sort(key=lambda m: (STATUSES.index(m.status), m.role != "super", m.id or ""))
    return tuple(rows)


# ---------------------------------------------------------------------- the rolling crawl

DEFAULT_STALE: Final = 5.0
"""Seconds without an answer after which a rolling crawl shows a peer as unreachable.
A loopback peer answers in milliseconds, but two worker processes running 500 peers
each answer a stats request a second late or more when the machine is busy: a bound
of a few intervals keeps a slow peer on the map and a dead one off it within seconds."""
LISTING_PERIOD: Final = 2.0
"""Seconds between a rolling crawl's readings of the bootstrap's listing (new peers)."""
FORGET_AFTER: Final = 60.0
"""Seconds after which a peer that neither answers nor is listed is no longer asked."""


@attrs.frozen
class _Heard:
    snapshot: PeerSnapshot
    asked: float
    """When the request that brought it was sent: the data is at most this old."""


class RollingCrawl:
    """A crawl that never ends: every known peer is asked again every ``period``, each
    on its own schedule, and :meth:`latest` draws a :class:`Crawl` at once from the
    latest answer of every peer.

    This is how ``overlay view`` stays on time when peers answer slowly: a frame does
    not wait for a crawl; it shows what the crawl knows, and says how old that is.
    A peer's data is as old as the request that brought it; a peer not heard from for
    more than ``stale`` seconds (or, never heard from, known for that long) is shown
    as ``unreachable`` with its last error, the others keep their latest data.  A
    request may take up to ``timeout`` (default: ``stale``), since a slow answer no
    longer holds anything up, and giving up on it would only cost a new connection.

    Bounded: one poller per known address (the bootstrap's listing, the seeds, and
    peers named by replies whose address is known), at most ``concurrency`` requests
    in flight, and a peer that neither answers nor is listed for
    :data:`FORGET_AFTER` seconds is dropped.  Times are trio's clock.
    """

    def __init__(
        self,
        bootstrap: Address | None,
        seeds: Iterable[Address] = (),
        *,
        period: float = 1.0,
        stale: float = DEFAULT_STALE,
        timeout: float | None = None,
        concurrency: int = DEFAULT_CONCURRENCY,
        fetch: StatsFetcher = fetch_stats,
        listing_period: float = LISTING_PERIOD,
    ) -> None:
        self.bootstrap = bootstrap
        self.seeds = tuple(seeds)
        self.period = period
        self.stale = stale
        self.timeout = stale if timeout is None else timeout
        self.fetch = fetch
        self.listing_period = listing_period
        self.first_pass = trio.Event()
        """Set once every peer known at the start has been asked once (or nobody is known)."""
        self.bootstrap_error: str | None = None
        self.listed = 0
        self._limiter = trio.CapacityLimiter(max(1, concurrency))
        self._book: dict[PeerId, Address] = {}
        self._roles: dict[PeerId, str] = {}
        self._registered: set[PeerId] = set()
        self._known_since: dict[Address, float] = {}
        self._heard: dict[Address, _Heard] = {}
        self._errors: dict[Address, str] = {}
        self._polled: set[Address] = set()
        self._listed_addresses: set[Address] = set()
        self._first_round: set[Address] | None = None
        self._nursery: trio.Nursery | None = None

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Crawl until cancelled (start it with ``nursery.start``)."""
        async with trio.open_nursery() as nursery:
            self._nursery = nursery
            task_status.started()
            while True:
                await self._read_listing()
                for address in [*self._book.values(), *self.seeds]:
                    self._poll_soon(address)
                if self._first_round is None:
                    self._first_round = set(self._polled)
                    self._first_round_done(None)
                await trio.sleep(self.listing_period)

    async def _read_listing(self) -> None:
        if self.bootstrap is None:
            return
        try:
            entries = await list_members(self.bootstrap, max(self.timeout, 2.0))
        except OverlayError as error:
            self.bootstrap_error = str(error)
            log.info("rolling crawl: %s", error)
            return
        self.bootstrap_error = None
        self.listed = len(entries)
        self._registered = {entry.contact.id for entry in entries}
        self._listed_addresses = {entry.contact.address for entry in entries}
        self._roles = {entry.contact.id: entry.role for entry in entries}
        # Bounded: the listing, and the ids of the addresses still asked.
        kept = {peer: at for peer, at in self._book.items() if at in self._polled}
        self._book = kept | {entry.contact.id: entry.contact.address for entry in entries}

    def _poll_soon(self, address: Address) -> None:
        if address in self._polled or self._nursery is None:
            return
        self._polled.add(address)
        self._known_since.setdefault(address, trio.current_time())
        self._nursery.start_soon(self._poll, address)

    def _first_round_done(self, address: Address | None) -> None:
        waiting = self._first_round
        if waiting is None:
            return
        if address is not None:
            waiting.discard(address)
        if not waiting:
            self.first_pass.set()

    async def _poll(self, address: Address) -> None:
        while True:
            began = trio.current_time()
            try:
                async with self._limiter:
                    asked = trio.current_time()
                    reply = await self.fetch(address, self.timeout)
            except OverlayError as error:
                self._errors[address] = str(error)
            else:
                self._heard[address] = _Heard(snapshot_from(reply), asked)
                self._errors.pop(address, None)
                if len(self._book) < MAX_LISTING:
                    self._book.setdefault(reply.id, address)
                for other in _named_by(reply):
                    where = self._book.get(other)
                    if where is not None:
                        self._poll_soon(where)
            self._first_round_done(address)
            if self._forgotten(address):
                return
            await trio.sleep_until(began + self.period)

    def _forgotten(self, address: Address) -> bool:
        """Drop a peer that has been silent and unlisted for :data:`FORGET_AFTER`."""
        if address in self._listed_addresses or address in self.seeds:
            return False
        heard = self._heard.get(address)
        since = heard.asked if heard is not None else self._known_since.get(address, 0.0)
        if trio.current_time() - since <= FORGET_AFTER:
            return False
        self._polled.discard(address)
        self._heard.pop(address, None)
        self._errors.pop(address, None)
        self._known_since.pop(address, None)
        for peer in [p for p, a in self._book.items() if a == address]:
            del self._book[peer]
        return True

    def latest(self) -> Crawl:
        """The overlay as the latest answers show it, now."""
        now = trio.current_time()
        fresh: dict[PeerId, tuple[PeerSnapshot, float]] = {}
        failures: dict[Address, str] = {}
        for address in self._polled:
            heard = self._heard.get(address)
            since = heard.asked if heard is not None else self._known_since[address]
            age = now - since
            if heard is not None and age <= self.stale:
                shot = heard.snapshot
                kept = fresh.get(shot.id)
                if kept is None or age < kept[1]:  # one id at two addresses: the freshest
                    fresh[shot.id] = (shot, age)
            elif heard is not None or age > self.stale:
                error = self._errors.get(address, "no answer")
                failures[address] = f"not heard from for {age:.1f} s (> {self.stale:g} s): {error}"
        shots = tuple(shot for shot, _age in fresh.values())
        ages = tuple(age for _shot, age in fresh.values())
        return Crawl(
            snapshots=shots,
            members=_members(shots, self._book, self._roles, self._registered, failures),
            registered=self.listed,
            started=time.monotonic(),
            elapsed=0.0,
            bootstrap_error=self.bootstrap_error,
            data_age=max(ages, default=0.0),
            ages=ages,
        )
