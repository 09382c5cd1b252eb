"""State every part of a peer's search shares: who I am, my neighbors, my items, my
timers, my counters, and the searches I run as their origin.

Flooding, walking and fetching are separate modules; they meet here, not through
the network, as docs/design.md asks of the parts of a core.
"""

from __future__ import annotations

import heapq
import math
from collections import deque
from collections.abc import Callable, Mapping
from typing import Protocol, TypeVar

import attrs

from overlay.protocol.effects import Effect, Notify
from overlay.protocol.identity import Address, Contact, PeerId
from overlay.protocol.messages import QueryHit
from overlay.protocol.proofs import entry_statement, hit_statement, holds
from overlay.protocol.randomness import RandomSource
from overlay.protocol.signing import Signer, Verifier
from search.config import SearchConfig
from search.errors import TooManySearches
from search.outcome import FetchResult, Hit, SearchResult
from search.ratelimit import NeighborBuckets
from search.store import Criteria, Item, ItemStore

Observer = Callable[[str, PeerId, bool], None]
"""Called on every reception of a query or walker: (wire id, this peer, duplicate?)."""
Evidence = Callable[[PeerId, str], None]
"""Told what a peer did that bears on its standing: (peer, a refusal's counter or a
walker outcome).  The peer core plugs its ledger in (overlay.core.standing)."""
TimerCallback = Callable[[float, list[Effect]], None]
V = TypeVar("V")

FORGED_HIT = "search.hit.forged"
"""The counter (and standing evidence) of a hit whose holder's signature does not verify."""


class Linked(Protocol):
    """A neighbor, as search sees it: whom to send to."""

    @property
    def contact(self) -> Contact: ...


class Neighbors(Protocol):
    """What search needs of the peer's membership, and nothing more: the neighbors it
    floods and walks to, and whether a peer is distrusted (a hit naming one is dropped).

    The peer core hands in its :class:`~overlay.core.membership.Membership`; tests hand
    in anything with these two members.  Search never changes the view.
    """

    @property
    def active(self) -> Mapping[PeerId, Linked]: ...
    def distrusts(self, peer: PeerId, now: float) -> bool: ...


class SeenCache:
    """Query ids this peer has seen, with where each came from (the reverse path).

    Bounded and expiring: the oldest entry goes when the cache is full, and every
    entry goes ``seconds`` after it was made, so a flood of fresh ids can cost a
    peer at most ``size`` entries and never blocks a later query for good.
    """

    def __init__(self, size: int, seconds: float) -> None:
        self.size = size
        self.seconds = seconds
        self._entries: dict[str, tuple[Address | None, float]] | None = None
        # Both made on first use: an empty deque costs about 600 bytes and an empty dict
        # 64, and at simulator scale (100,000 peers with four caches each, most never
        # asked anything) that adds up.
        self._order: deque[tuple[float, str]] | None = None
        self.evicted = 0
        """Entries pushed out by a full cache before they expired (a flood of fresh ids)."""

    def __len__(self) -> int:
        entries = self._entries
        return len(entries) if entries is not None else 0

    def get(self, query_id: str, now: float) -> tuple[Address | None, float] | None:
        entries = self._entries
        entry = entries.get(query_id) if entries is not None else None
        if entry is None or entry[1] <= now:
            return None
        return entry

    def __contains__(self, query_id: object) -> bool:
        entries = self._entries
        return entries is not None and query_id in entries

    def seen(self, query_id: str, now: float) -> bool:
        return self.get(query_id, now) is not None

    def add(self, query_id: str, upstream: Address | None, now: float) -> None:
        """Remember ``query_id`` (arrived from ``upstream``; None: it is mine)."""
        self._prune(now)
        expires = now + self.seconds
        entries = self._entries
        if entries is None:
            entries = self._entries = {}
        entries[query_id] = (upstream, expires)
        if self._order is None:
            self._order = deque()
        self._order.append((expires, query_id))
        while len(entries) > self.size:
            before = len(entries)
            self._evict_oldest()
            self.evicted += before - len(entries)

    def _prune(self, now: float) -> None:
        order = self._order
        while order and order[0][0] <= now:
            self._evict_oldest()

    def _evict_oldest(self) -> None:
        entries = self._entries
        assert self._order is not None and entries is not None
        expires, query_id = self._order.popleft()
        entry = entries.get(query_id)
        if entry is not None and entry[1] == expires:
            del entries[query_id]


@attrs.define
class OriginSearch:
    """A search this peer runs as its origin (mode-specific state lives in subclasses)."""

    search_id: str
    mode: str
    criteria: Criteria
    started: float
    want: int
    wire_ids: list[str] = attrs.field(factory=list)
    hits: list[Hit] = attrs.field(factory=list)
    hit_keys: dict[tuple[str, PeerId], None] = attrs.field(factory=dict)
    done: bool = False

    @property
    def satisfied(self) -> bool:
        return len(self.hit_keys) >= self.want


class SearchContext:
    """The shared state of one peer's search component."""

    def __init__(
        self,
        me: Contact,
        config: SearchConfig,
        rng: RandomSource,
        view: Neighbors,
        store: ItemStore,
        *,
        signer: Signer,
        verifier: Verifier,
    ) -> None:
        self.me = me
        self.signer = signer
        """My own key: every hit I answer carries my signature."""
        self.verifier = verifier
        self.config = config
        self.rng = rng
        self.view = view
        """The peer's neighbors (its membership's active view)."""
        self.store = store
        self.counters: dict[str, int] = {}
        self.observer: Observer | None = None
        self.evidence: Evidence | None = None
        self.origins: dict[str, OriginSearch] = {}
        """Active searches of mine, by every wire id they use."""
        self.active: dict[str, OriginSearch] = {}
        """Active searches of mine, by search id."""
        self.finished: SeenCache = SeenCache(config.results_size * 4, config.seen_seconds)
        """Wire ids of my finished searches: a late hit for one is not an unknown one."""
        self.results: dict[str, SearchResult] = {}
        self.fetches: dict[str, FetchResult] = {}
        self.rates = NeighborBuckets()
        """Per-neighbor token buckets for fresh queries and walker steps."""
        # (time, sequence, callback), a heap; the list object is never replaced, so a
        # runtime may keep a reference to peek at its head cheaply.
        self.timers: list[tuple[float, int, TimerCallback]] = []
        self._timer_seq = 0

    # ------------------------------------------------------------------ helpers

    def count(self, name: str, amount: int = 1) -> None:
        self.counters[name] = self.counters.get(name, 0) + amount

    def new_id(self) -> str:
        """A fresh 128-bit id from the peer's own random source."""
        return f"{self.rng.getrandbits(128):032x}"

    def neighbors(self) -> list[Contact]:
        return [neighbor.contact for neighbor in self.view.active.values()]

    def my_hit(self, query_id: str, item: Item, hops: int) -> QueryHit:
        """My answer to query ``query_id`` with ``item``, signed for that query only."""
        signer = self.signer
        return QueryHit(
            query_id=query_id,
            key=item.key,
            name=item.name,
            size=item.size,
            holder=self.me,
            hops=hops,
            holder_key=signer.public_key,
            signature=signer.sign(hit_statement(query_id, item.key, item.name, item.size)),
        )

    def genuine(self, hit: QueryHit) -> bool:
        """Whether ``hit`` carries its holder's own signature (over this query id, or
        over an index entry the holder published): nobody names a holder for it."""
        holder = hit.holder.id
        if hit.epoch is None:
            statement = hit_statement(hit.query_id, hit.key, hit.name, hit.size)
        else:
            statement = entry_statement(holder, hit.key, hit.name, hit.size, hit.epoch)
        return holds(self.verifier, holder, hit.holder_key, statement, hit.signature)

    def within_rate(self, sender: Contact, now: float) -> bool:
        """Charge a fresh query or walker step to ``sender``; False (counted) when it is
        over its rate and the message must be dropped."""
        config = self.config
        if self.rates.allow(
            sender.id, now, config.query_rate, config.query_burst, config.rate_table_size
        ):
            return True
        self.count("search.rate_limited")
        return False

    def refuse(self, sender: Contact, why: str, counter: str, out: list[Effect]) -> None:
        """Drop bad input from ``sender``: count it and say so once, then go on."""
        self.count(counter)
        out.append(Notify("bad_input", sender.id, why))
        if self.evidence is not None:
            self.evidence(sender.id, counter)

    def walker_outcome(self, via: PeerId, returned: bool) -> None:
        """A walker first handed to neighbor ``via`` checked in, or was written off
        before its first check: evidence of whether ``via`` passes queries on."""
        if self.evidence is not None and via:
            self.evidence(via, "walker_returned" if returned else "walker_lost")

    # ------------------------------------------------------------------ timers

    def at(self, time: float, callback: TimerCallback) -> None:
        """Call ``callback(now, out)`` once ``time`` has come.  Callbacks check themselves
        whether they still apply, so nothing needs cancelling."""
        self._timer_seq += 1
        heapq.heappush(self.timers, (time, self._timer_seq, callback))

    def next_deadline(self) -> float:
        return self.timers[0][0] if self.timers else math.inf

    def handle_timer(self, now: float, out: list[Effect]) -> None:
        timers = self.timers
        while timers and timers[0][0] <= now:
            heapq.heappop(timers)[2](now, out)

    # ------------------------------------------------------------------ origin side

    def begin(self, search: OriginSearch) -> None:
        self.active[search.search_id] = search

    def add_wire_id(self, search: OriginSearch, wire_id: str, now: float) -> None:
        search.wire_ids.append(wire_id)
        self.origins[wire_id] = search

    def record_hit(self, search: OriginSearch, hit: Hit, out: list[Effect]) -> bool:
        """Keep ``hit`` if it is new (item and holder); True if it was."""
        identity = (hit.key, hit.holder.id)
        if identity in search.hit_keys:
            self.count("search.hit.repeated")
            return False
        if len(search.hits) >= self.config.max_hits_per_search:
            self.count("search.hit.over_bound")
            return False
        search.hit_keys[identity] = None
        search.hits.append(hit)
        if len(search.hits) == 1:
            out.append(Notify("search_hit", hit.holder.id, f"{search.mode} {search.search_id}"))
        return True

    def finish(self, search: OriginSearch, now: float, out: list[Effect], **extra: object) -> None:
        """Close a search: keep its result for the runtime and tell the world it is done."""
        if search.done:
            return
        search.done = True
        del self.active[search.search_id]
        for wire_id in search.wire_ids:
            self.origins.pop(wire_id, None)
            self.finished.add(wire_id, None, now)
        result = SearchResult(
            search_id=search.search_id,
            mode=search.mode,
            criteria=str(search.criteria),
            success=search.satisfied,
            hits=tuple(search.hits),
            started=search.started,
            finished=now,
            wire_ids=tuple(search.wire_ids),
            **extra,  # type: ignore[arg-type]
        )
        self.keep(self.results, search.search_id, result)
        self.count("search.succeeded" if result.success else "search.failed")
        out.append(
            Notify(
                "search_done",
                None,
                f"{search.mode} {search.search_id} success={result.success} "
                f"hits={len(result.hits)}",
            )
        )

    def keep(self, table: dict[str, V], key: str, value: V) -> None:
        """Store a result in a bounded table (the oldest goes first)."""
        table[key] = value
        while len(table) > self.config.results_size:
            del table[next(iter(table))]

    def check_capacity(self) -> None:
        if len(self.active) >= self.config.max_searches:
            self.count("search.refused_busy")
            raise TooManySearches(
                f"already running {len(self.active)} searches (max {self.config.max_searches})"
            )
