"""What a search cost, network-wide, over TCP: every peer's own count, gathered after.

The simulator sees every message and counts a search's cost over the whole network
(:class:`search.outcome.QueryTracker`); over TCP no one does.  So every peer keeps a
small tally of the search messages it sent, by query id and kind (query, hit, check,
fetch: :data:`search.outcome.KIND_OF`, the simulator's categories), and answers a
:class:`~overlay.protocol.messages.TallyRequest` from it.  ``overlay search`` and the
swarm add the answers up (:func:`gather`): the same figure, with the same meaning, as
``overlay sim query`` prints.  A message counts when the core hands it to the runtime,
as the simulator counts a ``Send``: messages lost on the way cost all the same.

:class:`SearchTally` is bounded (:data:`TALLY_SIZE` query ids) and forgets an id
:data:`TALLY_SECONDS` after its first message.  Every peer that forwards a flood
tallies it, so the tally holds about (floods a second, network-wide) x
:data:`TALLY_SECONDS` ids at every peer: it was once kept 600 s in 330 bytes an id
(an ``OrderedDict`` of dicts), and under a soak's 3 ids a second that grew each of
a swarm worker's peers by over half a megabyte in ten minutes.

:func:`gather` needs no bootstrap: it asks the origin first, then every peer named as
a link by a peer that sent something for the search.  Any peer that sent something got
the query from a peer that sent it, over a link, so the walk reaches them all (as long
as the links still stand when it asks: it asks right after the search).  It keeps
asking, every :data:`SETTLE_PAUSE` seconds, until two rounds agree: walkers that are
still out when the origin has its answer stop at their next check, and their last
steps count too.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from typing import Final

import attrs
import trio

from overlay.net.client import ask
from overlay.protocol.errors import OverlayError
from overlay.protocol.identity import Address, Contact
from overlay.protocol.messages import (
    MAX_TALLY_IDS,
    MAX_TALLY_LINKS,
    Message,
    QueryTally,
    StatCounter,
    TallyReply,
    TallyRequest,
)
from search.outcome import KINDS, counted_as

log = logging.getLogger("overlay.net.search_tally")

TALLY_SIZE: Final = 1024
"""Query ids a peer keeps a tally for (the oldest goes first): 17 fresh ids a second
for :data:`TALLY_SECONDS`, several times what a soak sends; under 200 KiB, ids included."""
TALLY_SECONDS: Final = 60.0
"""How long after its first message a query id's tally is kept.  A search's messages
are all sent within the 20 s its origin waits for it
(:data:`overlay.net.client_requests.CLIENT_TIMEOUT`), and the gathering starts as soon
as it ends: 60 s leaves the gathering as long again and more."""
_KIND_INDEX: Final = {kind: index for index, kind in enumerate(KINDS, start=1)}
"""Where each kind's count sits in an entry (after the first message's time)."""
_NO_COUNTS: Final = (0,) * len(KINDS)
MAX_TALLY_PEERS: Final = 20_000
"""Most peers one gathering asks (liars naming links cannot make it ask more)."""
TALLY_TIMEOUT: Final = 2.0
"""Per peer asked."""
TALLY_CONCURRENCY: Final = 64
SETTLE_PAUSE: Final = 0.3
SETTLE_ROUNDS: Final = 10
"""Most rounds of asking before the figures are taken as they are."""


class SearchTally:
    """The search messages one peer sent, by query id and kind (bounded, expiring)."""

    __slots__ = ("_last", "_tallies", "keep", "size")

    def __init__(self, size: int = TALLY_SIZE, keep: float = TALLY_SECONDS) -> None:
        self.size = size
        self.keep = keep
        self._tallies: dict[str, list[float]] = {}
        """Per query id, oldest first: the time of its first message, then a count per
        kind in :data:`KINDS` order.  A plain dict and a flat list: about 100 bytes an
        id besides the id, where an ``OrderedDict`` of (time, dict) took 330."""
        self._last: tuple[Message, list[float], int] | None = None
        """The message counted last, with its id's entry and its kind's place in it."""

    def again(self, message: Message) -> bool:
        """Count one more copy of ``message`` if it is the message counted last; False
        (nothing counted) otherwise.  A flooded query is one object handed to every
        neighbor: its copies after the first need no lookup, and no clock."""
        last = self._last
        if last is None or last[0] is not message:
            return False
        last[1][last[2]] += 1
        return True

    def sent(self, message: Message, now: float) -> None:
        """Count ``message`` if it is a search message (anything else costs one lookup)."""
        counted = counted_as(message)
        if counted is None:
            return
        wire_id, kind = counted
        entry = self._tallies.get(wire_id)
        if entry is None:
            self._expire(now)
            entry = self._tallies[wire_id] = [now, *_NO_COUNTS]
            if len(self._tallies) > self.size:
                del self._tallies[next(iter(self._tallies))]
        index = _KIND_INDEX[kind]
        entry[index] += 1
        self._last = (message, entry, index)

    def counts(self, wire_id: str) -> dict[str, int]:
        """What was sent for ``wire_id``, by kind (empty: nothing, or forgotten)."""
        entry = self._tallies.get(wire_id)
        if entry is None:
            return {}
        return {kind: int(entry[index]) for kind, index in _KIND_INDEX.items() if entry[index]}

    def answer(self, query_ids: Iterable[str], now: float) -> tuple[QueryTally, ...]:
        """The tallies of those ``query_ids`` this peer sent anything for."""
        self._expire(now)
        found = []
        for query_id in dict.fromkeys(query_ids):
            counts = self.counts(query_id)
            if counts:
                found.append(QueryTally(query_id, counters_of(counts)))
        return tuple(found[:MAX_TALLY_IDS])

    def _expire(self, now: float) -> None:
        tallies = self._tallies
        for _ in range(len(tallies)):
            oldest = next(iter(tallies))
            if now - tallies[oldest][0] <= self.keep:
                break
            del tallies[oldest]

    def __len__(self) -> int:
        return len(self._tallies)


def counters_of(counts: dict[str, int]) -> tuple[StatCounter, ...]:
    return tuple(StatCounter(kind, counts[kind]) for kind in KINDS if counts.get(kind))


def tally_reply(
    tally: SearchTally, request: TallyRequest, links: Iterable[Contact], now: float
) -> TallyReply:
    """A peer's answer: its tallies, and the contacts it has links to (bounded)."""
    named: dict[str, Contact] = {}
    for contact in links:
        if len(named) >= MAX_TALLY_LINKS:
            break
        named.setdefault(contact.id, contact)
    return TallyReply(tally.answer(request.query_ids, now), tuple(named.values()))


# ---------------------------------------------------------------------- the asking side


@attrs.frozen
class NetworkTally:
    """A search's messages as every peer that answered reported them."""

    by_id: dict[str, dict[str, int]]
    """Per query id, messages sent by kind, summed over the peers."""
    asked: int
    answered: int
    senders: int
    """Peers that sent at least one message for the ids asked about."""

    def messages(self, wire_ids: Iterable[str]) -> dict[str, int]:
        """Messages by kind (every kind of :data:`KINDS`) over ``wire_ids``, with the total."""
        total = dict.fromkeys(KINDS, 0)
        for wire_id in wire_ids:
            for kind, count in self.by_id.get(wire_id, {}).items():
                total[kind] = total.get(kind, 0) + count
        total["total"] = sum(total[kind] for kind in KINDS)
        return total


async def _ask_one(
    address: Address, ids: Sequence[str], timeout: float
) -> tuple[list[QueryTally], tuple[Contact, ...]]:
    """One peer's tallies for ``ids`` (asked :data:`MAX_TALLY_IDS` at a time) and links."""
    tallies: list[QueryTally] = []
    links: tuple[Contact, ...] = ()
    for start in range(0, len(ids), MAX_TALLY_IDS):
        chunk = tuple(ids[start : start + MAX_TALLY_IDS])
        reply = await ask(address, TallyRequest(chunk), TallyReply, timeout)
        asked = set(chunk)
        tallies += [t for t in reply.tallies if t.query_id in asked]
        links = links or reply.links
    return tallies, links


async def gather_once(
    start: Iterable[Address],
    wire_ids: Sequence[str],
    *,
    timeout: float = TALLY_TIMEOUT,
    limit: int = MAX_TALLY_PEERS,
) -> NetworkTally:
    """Ask ``start`` (the origin, or every peer one knows) and then, breadth-first, the
    links of every peer that sent something for ``wire_ids``; add up what they say."""
    by_id: dict[str, dict[str, int]] = {}
    asked: set[Address] = set()
    answered = 0
    senders = 0
    limiter = trio.CapacityLimiter(TALLY_CONCURRENCY)
    ids = list(dict.fromkeys(wire_ids))

    async with trio.open_nursery() as nursery:

        def visit(address: Address) -> None:
            if address not in asked and len(asked) < limit:
                asked.add(address)
                nursery.start_soon(one, address)

        async def one(address: Address) -> None:
            nonlocal answered, senders
            async with limiter:
                try:
                    tallies, links = await _ask_one(address, ids, timeout)
                except OverlayError as error:
                    log.debug("tally: %s: %s", address, error)
                    return
            answered += 1
            if not tallies:
                return
            senders += 1
            for tally in tallies:
                sums = by_id.setdefault(tally.query_id, {})
                for counter in tally.counters:
                    sums[counter.name] = sums.get(counter.name, 0) + counter.value
            for contact in links:
                visit(contact.address)

        for address in start:
            visit(address)
    return NetworkTally(by_id, len(asked), answered, senders)


async def gather(
    start: Sequence[Address],
    wire_ids: Sequence[str],
    *,
    timeout: float = TALLY_TIMEOUT,
    pause: float = SETTLE_PAUSE,
    rounds: int = SETTLE_ROUNDS,
) -> NetworkTally:
    """:func:`gather_once` until two rounds in a row agree (at most ``rounds``)."""
    last = await gather_once(start, wire_ids, timeout=timeout)
    for _ in range(rounds - 1):
        await trio.sleep(pause)
        now = await gather_once(start, wire_ids, timeout=timeout)
        if now.by_id == last.by_id:
            return now
        last = now
    return last
