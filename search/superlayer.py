"""Search over the super layer: a weak peer hands its query to one of its super peers,
super peers answer from their indexes and pass it on among themselves.

This is the search of a super-peer network (Yang and Garcia-Molina, ICDE 2003;
Gnutella 0.6 ultrapeers answer for their leaves from the leaves' routing tables):
a query costs messages only among the super peers, about one in ``ratio + 1``
peers, and each super peer it reaches answers for all of its weak peers at once.

* ``super-flood``: the entry super peer floods the query to its super-layer
  neighbors with a TTL; repeats of an id are dropped, as in a flat flood.
* ``super-walk``: the entry super peer starts ``walkers`` random walkers among
  super peers; a walker stops at the first super peer that answers (each covers
  dozens of weak peers, so one answering super peer is usually enough) or when its
  TTL runs out.

Weak peers never forward in these modes: a ``SuperQuery`` reaching a weak peer is
refused, as is one from a peer that is neither one of my weak peers nor one of my
super-layer neighbors.  Hits go straight to the origin and name the holder, which
the origin fetches from as before.
"""

from __future__ import annotations

from typing import Protocol

import attrs

from overlay.protocol.effects import Effect, Send
from overlay.protocol.identity import Contact, PeerId, Role
from overlay.protocol.messages import MAX_WALK_TTL_FIELD, QueryHit, SuperQuery
from search.context import OriginSearch, SearchContext, SeenCache
from search.flood import Flooding
from search.index import SuperIndex
from search.store import Criteria

DEFAULT_SUPER_WALK_TTL = 32
DEFAULT_SUPER_FLOOD_TTL = 2
"""Hops beyond the entry super peer.  Each super peer answers for some 2 x ratio weak
peers, so two hops (the entry's neighbors and theirs, a few dozen super peers) already
see about a thousand peers' indexes; flooding the whole layer would mostly cost
duplicates."""


class SuperLayer(Protocol):
    """What super-layer search needs of the peer's super-peer layer."""

    @property
    def role(self) -> Role: ...
    @property
    def index(self) -> SuperIndex: ...

    def super_neighbors(self) -> list[Contact]: ...
    def my_supers(self) -> list[Contact]: ...
    def serves(self, peer: PeerId) -> bool: ...


@attrs.define
class SuperSearch(OriginSearch):
    ttl: int = 0
    walkers: int = 0


class SuperSearching:
    """Origin and relay side of super-layer searches."""

    def __init__(self, ctx: SearchContext, flooding: Flooding) -> None:
        self.ctx = ctx
        self.flooding = flooding
        self.layer: SuperLayer | None = None
        self.seen = SeenCache(ctx.config.seen_size, ctx.config.seen_seconds)

    # ------------------------------------------------------------------ origin side

    def start_super(
        self,
        criteria: Criteria,
        now: float,
        out: list[Effect],
        *,
        walkers: int = 0,
        ttl: int | None = None,
        want: int | None = None,
    ) -> str:
        """Start a super-layer search: a flood (``walkers == 0``) or ``walkers`` walkers."""
        ctx = self.ctx
        ctx.check_capacity()
        config = ctx.config
        if ttl is None:
            ttl = DEFAULT_SUPER_FLOOD_TTL if walkers == 0 else DEFAULT_SUPER_WALK_TTL
        ttl = max(1, min(ttl, config.max_ttl if walkers == 0 else config.max_walk_ttl))
        search = SuperSearch(
            search_id=ctx.new_id(),
            mode="super-flood" if walkers == 0 else "super-walk",
            criteria=criteria,
            started=now,
            want=want if want is not None else config.want_hits,
            ttl=ttl,
            walkers=walkers,
        )
        ctx.begin(search)
        ctx.add_wire_id(search, search.search_id, now)
        self.flooding._local_hits(search, now, out)
        if search.satisfied and walkers > 0:
            ctx.finish(search, now, out)
            return search.search_id
        query = SuperQuery(
            query_id=search.search_id,
            origin=ctx.me,
            key=criteria.key,
            keywords=criteria.keywords,
            ttl=min(ttl, MAX_WALK_TTL_FIELD),
            hops=0,
            walkers=walkers,
        )
        layer = self.layer
        if layer is not None and layer.role == "super":
            self._relay(query, ctx.me, True, now, out)
        else:
            supers = layer.my_supers() if layer is not None else []
            if not supers:
                ctx.count("search.super.no_super_peer")
                ctx.finish(search, now, out)
                return search.search_id
            out.append(Send(ctx.rng.choice(supers).address, query))
        # Out and back over the super layer, plus the hop from the weak peer and the
        # hit's direct hop back.
        deadline = now + (2 * ttl + 2) * config.hop_allowance

        def expire(when: float, out: list[Effect]) -> None:
            ctx.finish(search, when, out)

        ctx.at(deadline, expire)
        return search.search_id

    def on_hit(
        self, search: OriginSearch, message: QueryHit, now: float, out: list[Effect]
    ) -> None:
        self.flooding.on_hit_for_me(search, message, now, out)
        if search.satisfied and search.mode == "super-walk":
            self.ctx.finish(search, now, out)

    # ------------------------------------------------------------------ relay side

    def on_query(self, message: SuperQuery, sender: Contact, now: float, out: list[Effect]) -> None:
        ctx = self.ctx
        layer = self.layer
        if layer is None or layer.role != "super":
            ctx.refuse(
                sender,
                "SuperQuery to a weak peer (weak peers never forward)",
                "role.query_to_weak",
                out,
            )
            return
        if not layer.serves(sender.id):
            ctx.refuse(
                sender,
                "SuperQuery from a peer I neither serve nor link to",
                "role.query_from_stranger",
                out,
            )
            return
        if len(message.keywords) > ctx.config.max_keywords:
            ctx.refuse(
                sender,
                f"query with {len(message.keywords)} keywords (max {ctx.config.max_keywords})",
                "search.refused.keywords",
                out,
            )
            return
        entry = sender.id in layer.index.by_owner
        self._relay(message, sender, entry, now, out)

    def _relay(
        self, message: SuperQuery, sender: Contact, entry: bool, now: float, out: list[Effect]
    ) -> None:
        ctx = self.ctx
        layer = self.layer
        assert layer is not None
        walking = message.walkers > 0
        query_id = message.query_id
        duplicate = self.seen.seen(query_id, now)
        if ctx.observer is not None:
            ctx.observer(query_id, ctx.me.id, duplicate)
        if duplicate and not walking:
            ctx.count("search.duplicate")
            return
        if not ctx.within_rate(sender, now):
            return
        if not duplicate:
            self.seen.add(query_id, sender.address, now)
        ctx.count("search.super.queries_handled")
        answered = self._answer(message, now, out)
        ttl = min(message.ttl, ctx.config.max_walk_ttl if walking else ctx.config.max_ttl)
        if ttl <= 1 and not entry:
            return
        neighbors = [c for c in layer.super_neighbors() if c.id != sender.id]
        if not neighbors:
            neighbors = layer.super_neighbors()
        if not neighbors:
            return
        hops = min(message.hops + 1, MAX_WALK_TTL_FIELD)  # a forged 65535 must not overflow
        next_ttl = max(1, ttl - 1) if not entry else ttl
        if not walking:
            forward = attrs.evolve(message, ttl=next_ttl, hops=hops)
            for contact in neighbors:
                out.append(Send(contact.address, forward))
            return
        if entry:
            # The entry super peer starts the walkers (it has answered for its own weak
            # peers already, so they always start).
            step = attrs.evolve(message, ttl=next_ttl, hops=hops, walkers=1)
            for _ in range(min(message.walkers, ctx.config.walkers)):
                out.append(Send(ctx.rng.choice(neighbors).address, step))
            return
        if answered:
            ctx.count("search.super.walker_stopped")
            return
        out.append(
            Send(ctx.rng.choice(neighbors).address, attrs.evolve(message, ttl=next_ttl, hops=hops))
        )

    def _answer(self, message: SuperQuery, now: float, out: list[Effect]) -> bool:
        ctx = self.ctx
        layer = self.layer
        assert layer is not None
        limit = ctx.config.max_hits_per_query
        hops = min(message.hops + 1, MAX_WALK_TTL_FIELD)
        origin = message.origin
        count = 0
        for item in ctx.store.matching(key=message.key, keywords=message.keywords)[:limit]:
            if origin.id != ctx.me.id:
                out.append(Send(origin.address, ctx.my_hit(message.query_id, item, hops)))
            count += 1
        for lease, entry in layer.index.matching(message.key, message.keywords, limit - count):
            holder = lease.owner
            if holder.id == origin.id:
                continue
            # The weak peer's own signature on its entry, passed on as it came: I answer
            # for my weak peers, but only with what they said.
            out.append(
                Send(
                    origin.address,
                    QueryHit(
                        query_id=message.query_id,
                        key=entry.key,
                        name=entry.name,
                        size=entry.size,
                        holder=holder,
                        hops=hops,
                        holder_key=lease.public_key,
                        signature=entry.signature,
                        epoch=entry.epoch,
                    ),
                )
            )
            count += 1
        if count:
            ctx.count("search.super.answered")
        return count > 0
