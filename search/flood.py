"""TTL-limited flooding and the expanding ring.

A peer forwards a query once to every neighbor except the one it came from, with
the TTL one lower; it drops every later copy of the same id, so each peer within
TTL hops handles a query exactly once.  With equal link latencies the first copy
comes along a shortest path, so a flood of TTL t reaches exactly the ball of
radius t around the origin and costs deg(origin) + sum of (deg(v) - 1) over the
peers v closer than t (each forwards to all but its sender), a figure the tests
check against networkx.

Hits go back along the reverse path (each peer remembers who sent it each id, as
Gnutella does, so the origin's address never needs to be reachable by holders),
or straight to the origin when the query says ``direct``.

The expanding ring (Lv et al., ICS 2002) floods with TTL 1, 3, 5, ... up to the
cap, each ring under a fresh id (peers would drop the same id as a repeat), and
stops at the first ring that brings enough hits.  Each ring waits ``2 t`` hop
allowances: t hops out and t hops back.
"""

from __future__ import annotations

import attrs

from overlay.protocol.effects import Effect, Send
from overlay.protocol.identity import Contact
from overlay.protocol.messages import MAX_FLOOD_TTL_FIELD, Query, QueryHit
from search.context import OriginSearch, SearchContext, SeenCache
from search.outcome import Hit
from search.store import Criteria, keywords_of


@attrs.define
class FloodSearch(OriginSearch):
    ttl: int = 0
    direct: bool = False
    rings: list[int] = attrs.field(factory=list)


class Flooding:
    """Flood relay and the origin side of floods and rings."""

    def __init__(self, ctx: SearchContext) -> None:
        self.ctx = ctx
        self.seen = SeenCache(ctx.config.seen_size, ctx.config.seen_seconds)

    # ------------------------------------------------------------------ origin side

    def clamp_ttl(self, ttl: int) -> int:
        cap = self.ctx.config.max_ttl
        if ttl > cap:
            self.ctx.count("search.ttl_clamped")
            return cap
        return ttl

    def _begin(
        self,
        mode: str,
        criteria: Criteria,
        now: float,
        out: list[Effect],
        *,
        ttl: int,
        direct: bool | None,
        want: int | None,
    ) -> FloodSearch:
        """Open a flood or ring search of mine and answer it from my own store first."""
        ctx = self.ctx
        ctx.check_capacity()
        config = ctx.config
        search = FloodSearch(
            search_id=ctx.new_id(),
            mode=mode,
            criteria=criteria,
            started=now,
            want=want if want is not None else config.want_hits,
            ttl=self.clamp_ttl(max(1, ttl)),
            direct=direct if direct is not None else config.direct_hits,
        )
        ctx.begin(search)
        self._local_hits(search, now, out)
        return search

    def start_flood(
        self,
        criteria: Criteria,
        now: float,
        out: list[Effect],
        *,
        ttl: int | None = None,
        direct: bool | None = None,
        want: int | None = None,
    ) -> str:
        ctx = self.ctx
        config = ctx.config
        ttl = config.flood_ttl if ttl is None else ttl
        search = self._begin("flood", criteria, now, out, ttl=ttl, direct=direct, want=want)
        self._send_ring(search, search.search_id, search.ttl, now, out)
        deadline = now + 2 * search.ttl * config.hop_allowance

        def expire(when: float, out: list[Effect]) -> None:
            ctx.finish(search, when, out)

        ctx.at(deadline, expire)
        return search.search_id

    def start_ring(
        self,
        criteria: Criteria,
        now: float,
        out: list[Effect],
        *,
        ttl: int | None = None,
        direct: bool | None = None,
        want: int | None = None,
    ) -> str:
        """Expanding ring: ``ttl`` (default: the cap) is the largest ring tried."""
        ctx = self.ctx
        config = ctx.config
        ttl = config.max_ttl if ttl is None else ttl
        search = self._begin("ring", criteria, now, out, ttl=ttl, direct=direct, want=want)
        if search.satisfied:
            ctx.finish(search, now, out, rings=())
            return search.search_id
        self._next_ring(search, now, out)
        return search.search_id

    def _next_ring(self, search: FloodSearch, now: float, out: list[Effect]) -> None:
        ctx = self.ctx
        previous = search.rings[-1] if search.rings else -1
        ring = min(previous + 2, search.ttl)
        search.rings.append(ring)
        wire_id = search.search_id if len(search.rings) == 1 else ctx.new_id()
        self._send_ring(search, wire_id, ring, now, out)

        def ring_over(when: float, out: list[Effect]) -> None:
            if search.done or search.rings[-1] != ring:
                return
            if ring >= search.ttl:
                ctx.finish(search, when, out, rings=tuple(search.rings))
            else:
                self._next_ring(search, when, out)

        ctx.at(now + 2 * ring * ctx.config.hop_allowance, ring_over)

    def _send_ring(
        self, search: FloodSearch, wire_id: str, ttl: int, now: float, out: list[Effect]
    ) -> None:
        ctx = self.ctx
        ctx.add_wire_id(search, wire_id, now)
        self.seen.add(wire_id, None, now)
        if ctx.observer is not None:
            ctx.observer(wire_id, ctx.me.id, False)
        criteria = search.criteria
        query = Query(
            query_id=wire_id,
            origin=ctx.me,
            key=criteria.key,
            keywords=criteria.keywords,
            ttl=ttl,
            hops=0,
            direct=search.direct,
        )
        for contact in ctx.neighbors():
            out.append(Send(contact.address, query))

    def _local_hits(self, search: OriginSearch, now: float, out: list[Effect]) -> None:
        ctx = self.ctx
        for item in ctx.store.matching(search.criteria)[: ctx.config.max_hits_per_query]:
            hit = Hit(item.key, item.name, item.size, ctx.me, 0, 0.0)
            ctx.record_hit(search, hit, out)

    def on_hit_for_me(
        self, search: OriginSearch, message: QueryHit, now: float, out: list[Effect]
    ) -> None:
        """A hit reached the origin (by the reverse path, directly, or from a walker)."""
        ctx = self.ctx
        hit = Hit(
            message.key,
            message.name,
            message.size,
            message.holder,
            message.hops,
            now - search.started,
        )
        criteria = search.criteria
        if criteria.key is not None:
            wrong = message.key != criteria.key
        else:
            words = keywords_of(message.name or "")
            wrong = not all(word in words for word in criteria.keywords)
        if wrong:
            # Not what was asked for: a confused or lying holder; never a hit.
            ctx.count("search.hit.mismatched")
            return
        if ctx.view.distrusts(message.holder.id, now):
            # A holder this peer has caught serving forged bytes (or otherwise distrusts):
            # its hits are not hits, or one liar answering first would satisfy every walk
            # and send every fetch to it again.
            ctx.count("search.hit.distrusted")
            return
        ctx.record_hit(search, hit, out)
        if search.mode == "ring" and search.satisfied and isinstance(search, FloodSearch):
            ctx.finish(search, now, out, rings=tuple(search.rings))

    # ------------------------------------------------------------------ relay side

    def on_query(self, message: Query, sender: Contact, now: float, out: list[Effect]) -> None:
        ctx = self.ctx
        config = ctx.config
        if len(message.keywords) > config.max_keywords:
            ctx.refuse(
                sender,
                f"query with {len(message.keywords)} keywords (max {config.max_keywords})",
                "search.refused.keywords",
                out,
            )
            return
        ttl = self.clamp_ttl(message.ttl)
        query_id = message.query_id
        if self.seen.seen(query_id, now):
            ctx.count("search.duplicate")
            if ctx.observer is not None:
                ctx.observer(query_id, ctx.me.id, True)
            return
        if not ctx.within_rate(sender, now):
            return  # not remembered as seen: a copy from a well-behaved neighbor still goes on
        self.seen.add(query_id, sender.address, now)
        ctx.count("search.queries_handled")
        if ctx.observer is not None:
            ctx.observer(query_id, ctx.me.id, False)
        hops = min(message.hops + 1, MAX_FLOOD_TTL_FIELD)
        matches = ctx.store.matching(key=message.key, keywords=message.keywords)
        if matches:
            back = message.origin.address if message.direct else sender.address
            for item in matches[: config.max_hits_per_query]:
                out.append(Send(back, ctx.my_hit(query_id, item, hops)))
            ctx.count("search.hits_answered")
        if ttl > 1:
            forward = Query(
                query_id,
                message.origin,
                message.key,
                message.keywords,
                ttl - 1,
                hops,
                message.direct,
            )
            came_from = sender.id
            for neighbor in ctx.view.active.values():
                contact = neighbor.contact
                if contact.id != came_from:
                    out.append(Send(contact.address, forward))

    def on_hit(self, message: QueryHit, sender: Contact, now: float, out: list[Effect]) -> None:
        ctx = self.ctx
        query_id = message.query_id
        search = ctx.origins.get(query_id)
        if search is not None:
            self.on_hit_for_me(search, message, now, out)
            return
        entry = self.seen.get(query_id, now)
        if entry is not None and entry[0] is not None:
            ctx.count("search.hit.relayed")
            out.append(Send(entry[0], message))
            return
        if ctx.finished.seen(query_id, now):
            ctx.count("search.hit.late")
            return
        ctx.refuse(sender, f"hit for unknown query {query_id}", "search.dropped.unknown_hit", out)
