"""Search parameters, with the defaults a user gets when they say nothing.

The defaults follow the issue (flood TTL 7 capped at 10; 16 walkers of 256 hops that
check back every 4 hops and stop at the first hit), which are also the settings of
Lv, Cao, Cohen, Li and Shenker, "Search and replication in unstructured peer-to-peer
networks" (ICS 2002), so that the benchmarks can be compared with theirs.
"""

from __future__ import annotations

import attrs

from overlay.protocol import validate
from overlay.protocol.messages import MAX_FLOOD_TTL_FIELD, MAX_KEYWORDS_FIELD, MAX_WALK_TTL_FIELD


@attrs.frozen
class SearchConfig:
    """Parameters of :class:`search.component.Search`.  Times are in the runtime's seconds."""

    flood_ttl: int = attrs.field(default=7, validator=validate.integer(1, MAX_FLOOD_TTL_FIELD))
    max_ttl: int = attrs.field(default=10, validator=validate.integer(1, MAX_FLOOD_TTL_FIELD))
    """Hard cap on a flood's TTL: larger values, ours or the network's, are clamped."""
    direct_hits: bool = attrs.field(default=False, validator=validate.boolean)
    """Flood hits go straight to the origin instead of back along the reverse path."""
    walkers: int = attrs.field(default=16, validator=validate.integer(1, 4096))
    walk_ttl: int = attrs.field(default=256, validator=validate.integer(1, MAX_WALK_TTL_FIELD))
    max_walk_ttl: int = attrs.field(default=4096, validator=validate.integer(1, MAX_WALK_TTL_FIELD))
    check_every: int = attrs.field(default=4, validator=validate.integer(1, MAX_WALK_TTL_FIELD))
    want_hits: int = attrs.field(default=1, validator=validate.integer(1, 4096))
    """Distinct hits (item and holder) after which walks and rings stop."""
    relaunch_factor: int = attrs.field(default=4, validator=validate.integer(0, 1000))
    """A walk may relaunch up to ``relaunch_factor * walkers`` walkers that went silent
    (lost messages, crashed peers); this bounds its cost under heavy loss."""
    hop_allowance: float = attrs.field(default=0.1, validator=validate.real(0.001, 60.0))
    """Time allowed per hop: a flood of TTL t or a ring waits ``2 t`` of these for hits,
    a walker silent for ``check_every + 2`` of them is presumed lost."""
    max_keywords: int = attrs.field(default=8, validator=validate.integer(1, MAX_KEYWORDS_FIELD))
    """Longer keyword lists from the network are refused (and counted)."""
    max_hits_per_query: int = attrs.field(default=8, validator=validate.integer(1, 1024))
    """Most hits one peer answers one query with (a keyword query can match many items)."""
    max_hits_per_search: int = attrs.field(default=256, validator=validate.integer(1, 1 << 20))
    """Distinct hits a search of mine keeps; later ones are counted and dropped (hostile
    peers could otherwise invent hits without end while a flood waits for answers)."""
    seen_size: int = attrs.field(default=8192, validator=validate.integer(1, 1 << 24))
    seen_seconds: float = attrs.field(default=30.0, validator=validate.real(0.001, 86400.0))
    """How long a peer remembers a query id (duplicate suppression and reverse path).
    A flood is over within ``2 max_ttl hop_allowance`` (2 s by default) and a walk
    within seconds, so 30 s outlives both with room for a stalled peer; longer only
    makes every peer hold more: the caches hold the ids of the last ``seen_seconds``
    and plateau there (a soak measured about 3 ids a second per peer)."""
    max_held_walkers: int = attrs.field(default=256, validator=validate.integer(1, 1 << 20))
    """Walkers a peer holds at once while their origin answers a check."""
    max_searches: int = attrs.field(default=256, validator=validate.integer(1, 1 << 20))
    """Searches and fetches one peer runs at once as their origin."""
    results_size: int = attrs.field(default=1024, validator=validate.integer(1, 1 << 20))
    """Finished searches and fetches whose results are kept for the runtime to read."""
    fetch_timeout: float = attrs.field(default=5.0, validator=validate.real(0.001, 3600.0))
    query_rate: float = attrs.field(default=50.0, validator=validate.real(0.0, 1e6))
    """Fresh queries and walker steps per second one neighbor may hand me (0: no limit);
    above it they are dropped and counted (:mod:`search.ratelimit`)."""
    query_burst: float = attrs.field(default=100.0, validator=validate.real(1.0, 1e6))
    """... in bursts of up to this many."""
    rate_table_size: int = attrs.field(default=1024, validator=validate.integer(1, 1 << 20))
    """Senders whose rate is tracked at once (the least recently heard goes first)."""
    store_capacity: int = attrs.field(default=4096, validator=validate.integer(0, 1 << 24))

    def __attrs_post_init__(self) -> None:
        if self.flood_ttl > self.max_ttl:
            raise ValueError("flood_ttl must not exceed max_ttl")
        if self.walk_ttl > self.max_walk_ttl:
            raise ValueError("walk_ttl must not exceed max_walk_ttl")
