"""The search part of a peer core: its items, flooding, walks, the expanding ring and
fetching, behind one object the peer composes (``peer.search``).

A runtime (or a test) starts a search at its origin with :meth:`Search.start_flood`,
:meth:`Search.start_walk` or :meth:`Search.start_ring`; each returns the search id
and the effects to carry out.  When the search is over the peer emits
``Notify("search_done", ...)`` and the :class:`~search.outcome.SearchResult` waits in
:attr:`Search.results`.  Fetches work the same way with :attr:`Search.fetches`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from overlay.protocol.effects import Effect
from overlay.protocol.identity import Contact
from overlay.protocol.messages import (
    Fetch,
    FetchReply,
    Message,
    Query,
    QueryHit,
    SuperQuery,
    WalkCheck,
    WalkStep,
    WalkVerdict,
)
from overlay.protocol.randomness import RandomSource
from overlay.protocol.signing import Signer, Verifier
from search.config import SearchConfig
from search.context import FORGED_HIT, Neighbors, Observer, SearchContext
from search.fetch import Fetching
from search.flood import Flooding
from search.outcome import FetchResult, SearchResult
from search.store import Criteria, Item, ItemStore
from search.superlayer import SuperSearching
from search.walk import Walking


def criteria_of(key: str | None = None, keywords: str | tuple[str, ...] | None = None) -> Criteria:
    """Build what to search for from a key or from keywords (a string is split into words)."""
    if isinstance(keywords, str):
        return Criteria.for_words(keywords)
    return Criteria(key=key, keywords=tuple(keywords) if keywords is not None else ())


class Search:
    """One peer's search component.  Pure: no I/O, no clock, only the peer's random."""

    def __init__(
        self,
        me: Contact,
        rng: RandomSource,
        view: Neighbors,
        config: SearchConfig | None = None,
        *,
        signer: Signer,
        verifier: Verifier,
    ) -> None:
        config = config or SearchConfig()
        self.store = ItemStore(config.store_capacity)
        self.ctx = SearchContext(
            me, config, rng, view, self.store, signer=signer, verifier=verifier
        )
        self.flooding = Flooding(self.ctx)
        self.walking = Walking(self.ctx, self.flooding)
        self.fetching = Fetching(self.ctx)
        self.super_searching = SuperSearching(self.ctx, self.flooding)
        """Super-layer search; the peer plugs its attachment component in as ``layer``."""

    # ------------------------------------------------------------------ settings

    @property
    def config(self) -> SearchConfig:
        return self.ctx.config

    @config.setter
    def config(self, config: SearchConfig) -> None:
        """Replace the settings (the store keeps its items; bounds apply from now on)."""
        self.ctx.config = config
        self.store.capacity = config.store_capacity

    @property
    def observer(self) -> Observer | None:
        return self.ctx.observer

    @observer.setter
    def observer(self, observer: Observer | None) -> None:
        self.ctx.observer = observer

    @property
    def counters(self) -> dict[str, int]:
        evicted = (
            self.flooding.seen.evicted
            + self.walking.seen.evicted
            + self.super_searching.seen.evicted
        )
        if not evicted:
            return self.ctx.counters
        return {**self.ctx.counters, "search.seen_evicted": evicted}

    @property
    def results(self) -> dict[str, SearchResult]:
        return self.ctx.results

    @property
    def fetches(self) -> dict[str, FetchResult]:
        return self.ctx.fetches

    # ------------------------------------------------------------------ content

    def publish(self, value: bytes, name: str | None = None) -> Item:
        """Hold an item (raises StoreFull, ItemTooLarge)."""
        item = Item(value, name)
        self.store.add(item)
        return item

    # ------------------------------------------------------------------ searches

    def start_flood(
        self,
        criteria: Criteria,
        now: float,
        *,
        ttl: int | None = None,
        direct: bool | None = None,
        want: int | None = None,
    ) -> tuple[str, list[Effect]]:
        out: list[Effect] = []
        search_id = self.flooding.start_flood(criteria, now, out, ttl=ttl, direct=direct, want=want)
        return search_id, out

    def start_ring(
        self,
        criteria: Criteria,
        now: float,
        *,
        ttl: int | None = None,
        direct: bool | None = None,
        want: int | None = None,
    ) -> tuple[str, list[Effect]]:
        out: list[Effect] = []
        search_id = self.flooding.start_ring(criteria, now, out, ttl=ttl, direct=direct, want=want)
        return search_id, out

    def start_walk(
        self,
        criteria: Criteria,
        now: float,
        *,
        walkers: int | None = None,
        ttl: int | None = None,
        check: int | None = None,
        want: int | None = None,
    ) -> tuple[str, list[Effect]]:
        out: list[Effect] = []
        search_id = self.walking.start_walk(
            criteria, now, out, walkers=walkers, ttl=ttl, check=check, want=want
        )
        return search_id, out

    def start_super(
        self,
        criteria: Criteria,
        now: float,
        *,
        walkers: int = 0,
        ttl: int | None = None,
        want: int | None = None,
    ) -> tuple[str, list[Effect]]:
        """Search over the super layer: by flood (``walkers == 0``) or by walkers."""
        out: list[Effect] = []
        search_id = self.super_searching.start_super(
            criteria, now, out, walkers=walkers, ttl=ttl, want=want
        )
        return search_id, out

    def start(
        self, mode: str, criteria: Criteria, now: float, **options: Any
    ) -> tuple[str, list[Effect]]:
        """Start a search by mode name ("flood", "walk", "ring", "super-flood" or
        "super-walk")."""
        if mode == "super-flood":
            return self.start_super(criteria, now, walkers=0, **options)
        if mode == "super-walk":
            options.setdefault("walkers", self.config.walkers)
            return self.start_super(criteria, now, **options)
        if mode == "flood":
            return self.start_flood(criteria, now, **options)
        if mode == "walk":
            return self.start_walk(criteria, now, **options)
        if mode == "ring":
            return self.start_ring(criteria, now, **options)
        raise ValueError(f"unknown search mode {mode!r}")

    def start_fetch(self, key: str, holder: Contact, now: float) -> tuple[str, list[Effect]]:
        out: list[Effect] = []
        request_id = self.fetching.start_fetch(key, holder, now, out)
        return request_id, out

    def _on_hit(self, message: QueryHit, sender: Contact, now: float, out: list[Effect]) -> None:
        ctx = self.ctx
        if not ctx.genuine(message):
            # Checked by every peer that handles a hit, relays included: an honest relay
            # never passes a forged hit on, so whoever sent one is the liar, and it is
            # charged with it (a relay that did not check would be blamed in its place).
            ctx.refuse(
                sender,
                f"hit naming {message.holder} without that holder's signature",
                FORGED_HIT,
                out,
            )
            return
        search = ctx.origins.get(message.query_id)
        if search is not None and search.mode == "walk":
            self.walking.on_hit(search, message, now, out)
        elif search is not None and search.mode.startswith("super-"):
            self.super_searching.on_hit(search, message, now, out)
        else:
            self.flooding.on_hit(message, sender, now, out)

    # ------------------------------------------------------------------ timers

    def next_deadline(self) -> float:
        return self.ctx.next_deadline()

    def handle_timer(self, now: float, out: list[Effect]) -> None:
        self.ctx.handle_timer(now, out)


SearchHandler = Callable[[Search, Any, Contact, float, list[Effect]], None]


def _on_query(
    search: Search, message: Query, sender: Contact, now: float, out: list[Effect]
) -> None:
    search.flooding.on_query(message, sender, now, out)


def _on_hit(
    search: Search, message: QueryHit, sender: Contact, now: float, out: list[Effect]
) -> None:
    search._on_hit(message, sender, now, out)


def _on_step(
    search: Search, message: WalkStep, sender: Contact, now: float, out: list[Effect]
) -> None:
    search.walking.on_step(message, sender, now, out)


def _on_check(
    search: Search, message: WalkCheck, sender: Contact, now: float, out: list[Effect]
) -> None:
    search.walking.on_check(message, sender, now, out)


def _on_verdict(
    search: Search, message: WalkVerdict, sender: Contact, now: float, out: list[Effect]
) -> None:
    search.walking.on_verdict(message, sender, now, out)


def _on_fetch(
    search: Search, message: Fetch, sender: Contact, now: float, out: list[Effect]
) -> None:
    search.fetching.on_fetch(message, sender, now, out)


def _on_fetch_reply(
    search: Search, message: FetchReply, sender: Contact, now: float, out: list[Effect]
) -> None:
    search.fetching.on_reply(message, sender, now, out)


def _on_super_query(
    search: Search, message: SuperQuery, sender: Contact, now: float, out: list[Effect]
) -> None:
    search.super_searching.on_query(message, sender, now, out)


HANDLERS: dict[type[Message], SearchHandler] = {
    Query: _on_query,
    QueryHit: _on_hit,
    WalkStep: _on_step,
    WalkCheck: _on_check,
    WalkVerdict: _on_verdict,
    Fetch: _on_fetch,
    FetchReply: _on_fetch_reply,
    SuperQuery: _on_super_query,
}
"""The search component's handlers, which take the peer's :class:`Search`: one table for
every peer.  A table of bound methods in each peer cost about 0.9 KB a peer (the dict and
nine method objects), which a simulation of a million peers pays a million times."""
