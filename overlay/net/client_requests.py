"""The runtime's side of ``overlay publish``, ``overlay search`` and ``overlay fetch``.

A client (which listens nowhere) connects to one peer, handshakes like anyone and
sends a :class:`ClientPublish`, :class:`ClientSearch` or :class:`ClientFetch`.  The
peer's core does the work: this glue only calls ``peer.publish`` /
``peer.search.start_*`` with the runtime's clock, carries out the effects through
the node, waits for the core's ``search_done`` / ``fetch_done`` event for that id
(bounded by a timeout) and answers on the connection the request came on.  So the
core stays pure and has no notion of clients.

:class:`ClientRequests` is the peer node's :class:`~overlay.net.node.RequestHandler`:
the node knows it only through that protocol, and this module uses the node's public
methods alone.  Each request runs in its own task of the node's
(:meth:`~overlay.net.node.Node.start_soon`), so a slow walk never holds up the peer or
other requests.  While a client waits, the node's sweeper leaves its
connection alone (:attr:`ClientRequests.serving`): the client is silent by design, and
would otherwise be closed as idle before a long search ends.
At most :data:`MAX_PENDING` requests wait at once per peer; more are refused with an
error reply, because each holds a task and a socket.
"""

from __future__ import annotations

from typing import Final, TypeVar

import trio

from overlay.core.admission import prefix_of
from overlay.core.peer import Peer
from overlay.net.connection import Connection
from overlay.net.node import Node
from overlay.net.search_tally import SearchTally, tally_reply
from overlay.protocol.effects import Notify
from overlay.protocol.errors import LocalError
from overlay.protocol.identity import Contact, PeerId
from overlay.protocol.messages import (
    MAX_CLIENT_ERROR,
    MAX_CLIENT_HITS,
    MAX_CLIENT_SECONDS,
    MAX_FETCH_FAILURES,
    MAX_MODE_NAME,
    MAX_TALLY_IDS,
    MAX_WALK_TTL_FIELD,
    ClientFetch,
    ClientFetchResult,
    ClientHit,
    ClientPublish,
    ClientPublished,
    ClientSearch,
    ClientSearchResult,
    FetchFailure,
    Message,
    StatCounter,
    TallyReply,
    TallyRequest,
)
from search.errors import ContentMismatch, FetchTimeout, ItemNotFound
from search.outcome import KIND_OF, KINDS, MODES, FetchResult, SearchResult
from search.store import Criteria, content_key, keywords_of

CLIENT_TIMEOUT: Final = 20.0
"""Longest a client request waits for the core (searches and fetches end on their own
timers well before this; it only guards against a search that never reports)."""
MAX_PENDING: Final = 256
"""Client requests one peer serves at once."""
WIDER_WANT: Final = 4 * MAX_FETCH_FAILURES
"""Hits the second search of a fetch asks for, once every holder the first named has
failed: enough that a few forgers answering first do not hide the honest holders."""
R = TypeVar("R")


def _clip(text: str) -> str:
    return text if len(text) <= MAX_CLIENT_ERROR else text[: MAX_CLIENT_ERROR - 3] + "..."


def _seconds(value: float) -> float:
    return min(max(value, 0.0), MAX_CLIENT_SECONDS)


def search_reply(result: SearchResult, tally: dict[str, int]) -> ClientSearchResult:
    """A finished search as the wire carries it back to the client (hits bounded);
    ``tally``: what the origin itself sent for it, by kind."""
    first = result.first_hit
    return ClientSearchResult(
        search_id=result.search_id,
        mode=result.mode[:MAX_MODE_NAME],
        success=result.success,
        hits=tuple(
            ClientHit(
                key=hit.key,
                name=hit.name,
                size=hit.size,
                holder=hit.holder,
                hops=min(hit.hops, MAX_WALK_TTL_FIELD),
                time=_seconds(hit.time),
            )
            for hit in result.hits[:MAX_CLIENT_HITS]
        ),
        messages=tuple(StatCounter(kind, tally.get(kind, 0)) for kind in KINDS),
        first_hit_hops=min(first.hops, MAX_WALK_TTL_FIELD) if first is not None else None,
        first_hit_time=_seconds(first.time) if first is not None else None,
        duration=_seconds(result.finished - result.started),
        wire_ids=result.wire_ids[:MAX_TALLY_IDS],
    )


def prefix_diverse(holders: list[Contact]) -> list[Contact]:
    """``holders`` reordered so that each address prefix's first holder comes before any
    prefix's second, and so on (order kept within a prefix and among prefixes).

    Forged hits are cheap for whoever holds many addresses of one prefix: tried in the
    order they came, a dozen Sybils answering first would use up the fetch's
    :data:`MAX_FETCH_FAILURES` tries; in this order they cost one try per round.
    """
    rank: dict[str, int] = {}
    keyed = []
    for position, holder in enumerate(holders):
        group = prefix_of(holder.address.host)
        seen = rank[group] = rank.get(group, -1) + 1
        keyed.append((seen, position, holder))
    return [holder for _seen, _position, holder in sorted(keyed, key=lambda k: k[:2])]


def fetch_failure(result: FetchResult) -> FetchFailure:
    """Why one holder's fetch failed, in the words of the core's typed error."""
    error = result.error
    kind = "error"
    actual = None
    if isinstance(error, ContentMismatch):
        kind, actual = "mismatch", error.actual
    elif isinstance(error, ItemNotFound):
        kind = "not_found"
    elif isinstance(error, FetchTimeout):
        kind = "timeout"
    return FetchFailure(result.holder, kind, _clip(str(error)), actual)


class ClientRequests:
    """Serves client requests for one peer's node: its
    :class:`~overlay.net.node.RequestHandler`."""

    def __init__(self, peer: Peer, timeout: float = CLIENT_TIMEOUT) -> None:
        self.peer = peer
        self.timeout = timeout
        self.waiting: dict[str, trio.Event] = {}
        """Search and fetch ids a request waits for; set when the core reports them done."""
        self.tally = SearchTally()
        """The search messages this peer sent, by query id (:class:`TallyRequest`)."""
        self.serving: dict[Connection, int] = {}
        """Requests pending per client connection (kept open meanwhile)."""
        self.pending = 0

    # ------------------------------------------------------------------ hooks of the node

    def on_event(self, event: Notify) -> None:
        if event.kind not in ("search_done", "fetch_done") or not self.waiting:
            return
        search = self.peer.search
        for ident, done in self.waiting.items():
            if ident in search.results or ident in search.fetches:
                done.set()

    def sent(self, message: Message) -> None:
        # Most of what a peer sends is membership: skip it cheaply.
        tally = self.tally
        if type(message) in KIND_OF and not tally.again(message):
            tally.sent(message, trio.current_time())

    def handle(self, node: Node, connection: Connection, message: Message) -> None:
        """A request arrived: serve it in its own task (or refuse it at once when full);
        a tally request is answered at once (a lookup per id)."""
        if type(message) is TallyRequest:
            assert isinstance(message, TallyRequest)
            node.count("client.TallyRequest")
            node.reply(connection, self._tallies(node, message))
            return
        if self.pending >= MAX_PENDING:
            node.count("client.refused_busy")  # in the stats reply as node.client.*
            node.reply(connection, self._refusal(message, "the peer is busy; try later"))
            return
        self.pending += 1
        self.serving[connection] = self.serving.get(connection, 0) + 1
        node.start_soon(self._serve, node, connection, message)

    # ------------------------------------------------------------------ requests

    async def _serve(self, node: Node, connection: Connection, message: Message) -> None:
        try:
            if type(message) is ClientPublish:
                assert isinstance(message, ClientPublish)
                reply: Message = self._publish(node, message)
            elif type(message) is ClientSearch:
                assert isinstance(message, ClientSearch)
                reply = await self._search(node, message)
            else:
                assert isinstance(message, ClientFetch)
                reply = await self._fetch(node, message)
        finally:
            self.pending -= 1
            left = self.serving.get(connection, 1) - 1
            if left:
                self.serving[connection] = left
            else:
                self.serving.pop(connection, None)
        node.count(f"client.{type(message).__name__}")
        node.reply(connection, reply)

    def _refusal(self, message: Message, why: str) -> Message:
        if type(message) is ClientPublish:
            return ClientPublished(None, _clip(why))
        if type(message) is ClientSearch:
            assert isinstance(message, ClientSearch)
            return ClientSearchResult(None, message.mode, False, error=_clip(why))
        assert isinstance(message, ClientFetch)
        return ClientFetchResult(message.key, None, error=_clip(why))

    def _tallies(self, node: Node, message: TallyRequest) -> TallyReply:
        bootstrap = self.peer.membership.bootstrap
        links = (
            connection.remote
            for address, connections in node.links.items()
            if address != bootstrap
            for connection in connections[:1]
            if connection.remote is not None
        )
        return tally_reply(self.tally, message, links, trio.current_time())

    def _publish(self, node: Node, message: ClientPublish) -> ClientPublished:
        try:
            effects = self.peer.publish(message.value, message.name, trio.current_time())
        except (LocalError, ValueError) as error:
            return ClientPublished(None, _clip(f"cannot publish: {error}"))
        node.apply(effects)
        return ClientPublished(content_key(message.value))

    async def _search(self, node: Node, message: ClientSearch) -> ClientSearchResult:
        criteria = Criteria(key=message.key) if message.key is not None else None
        if criteria is None:
            words = keywords_of(" ".join(message.keywords))
            if not words:
                return ClientSearchResult(None, message.mode, False, error="no usable keywords")
            criteria = Criteria(keywords=words)
        result, tally, error = await self.run_search(
            node,
            message.mode,
            criteria,
            ttl=message.ttl,
            walkers=message.walkers,
            want=message.want,
        )
        if result is None:
            return ClientSearchResult(None, message.mode, False, error=_clip(error))
        return search_reply(result, tally)

    async def run_search(
        self,
        node: Node,
        mode: str,
        criteria: Criteria,
        *,
        ttl: int | None = None,
        walkers: int | None = None,
        want: int | None = None,
    ) -> tuple[SearchResult | None, dict[str, int], str]:
        """Start a search at this peer and wait for its result: (result, tally, error)."""
        if mode not in MODES:
            return None, {}, f"unknown mode {mode!r} (one of {', '.join(MODES)})"
        options: dict[str, int] = {}
        if ttl is not None:
            options["ttl"] = ttl
        if walkers is not None and mode in ("walk", "super-walk"):
            options["walkers"] = walkers
        if want is not None:
            options["want"] = want
        search = self.peer.search
        try:
            search_id, effects = search.start(mode, criteria, trio.current_time(), **options)
        except (LocalError, ValueError) as error:
            return None, {}, f"search refused: {error}"
        node.apply(effects)
        found = await self._wait(search_id, search.results)
        if found is None:
            return None, {}, f"search did not finish within {self.timeout:g} s"
        tally = dict.fromkeys(KINDS, 0)
        for wire_id in found.wire_ids:
            for kind, count in self.tally.counts(wire_id).items():
                tally[kind] += count
        return found, tally, ""

    async def _wait(self, ident: str, table: dict[str, R]) -> R | None:
        if ident not in table:
            done = self.waiting[ident] = trio.Event()
            try:
                with trio.move_on_after(self.timeout):
                    await done.wait()
            finally:
                del self.waiting[ident]
        return table.get(ident)

    async def _fetch(self, node: Node, message: ClientFetch) -> ClientFetchResult:
        key = message.key
        peer = self.peer
        if message.holder is None:
            item = peer.search.store.get(key)
            if item is not None and content_key(item.value) == key:
                return ClientFetchResult(key, item.value, peer.contact)
            if message.mode not in MODES:
                return ClientFetchResult(key, None, error=_clip(f"unknown mode {message.mode!r}"))
        failures: list[FetchFailure] = []
        tried: set[PeerId] = {peer.id}
        # A first search that stops at the first hit is cheapest; only if every holder
        # it found fails is a second one asked for several holders.
        for want in (1, WIDER_WANT):
            if message.holder is not None:
                holders = [message.holder]
            else:
                result, _tally, error = await self.run_search(
                    node, message.mode, Criteria(key=key), want=want
                )
                if result is None:
                    return ClientFetchResult(key, None, failures=tuple(failures), error=error)
                holders = prefix_diverse([hit.holder for hit in result.hits])
                if not holders:
                    break  # nobody holds it within reach: a wider search would not help
            for holder in holders:
                if holder.id in tried or len(failures) >= MAX_FETCH_FAILURES:
                    continue
                if message.holder is None and peer.membership.distrusts(
                    holder.id, trio.current_time()
                ):
                    continue  # caught lying since its hit came (by a fetch of this search)
                tried.add(holder.id)
                fetched = await self._fetch_from(node, key, holder)
                if isinstance(fetched, FetchFailure):
                    failures.append(fetched)
                    continue
                return ClientFetchResult(key, fetched, holder, tuple(failures))
            if message.holder is not None or message.mode in ("flood", "super-flood"):
                break  # one named holder; or a flood, which already brought every hit
        why = "every holder failed" if failures else "no holder found"
        return ClientFetchResult(key, None, failures=tuple(failures), error=why)

    async def _fetch_from(self, node: Node, key: str, holder: Contact) -> bytes | FetchFailure:
        """Fetch from one holder; the core verifies the bytes against the key."""
        try:
            request_id, effects = self.peer.search.start_fetch(key, holder, trio.current_time())
        except (LocalError, ValueError) as error:
            return FetchFailure(holder, "refused", _clip(f"fetch refused: {error}"))
        node.apply(effects)
        result = await self._wait(request_id, self.peer.search.fetches)
        if result is None:
            return FetchFailure(holder, "timeout", _clip(f"no fetch result from {holder}"))
        if result.error is not None:
            return fetch_failure(result)
        assert result.value is not None
        return result.value
