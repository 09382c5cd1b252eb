"""Limits of the search core (issue 8, item 5): a per-neighbor query rate, bounded
query-id caches, bounded pending walkers and searches.  Each limit is exceeded by a
hostile neighbor and shows in a counter, while a well-behaved neighbor is still served.
"""

from __future__ import annotations

import attrs
import networkx as nx
import pytest

from overlay.core.config import PeerConfig
from overlay.core.peer import Peer
from overlay.protocol.messages import Query, WalkCheck, WalkStep
from search.config import SearchConfig
from search.errors import TooManySearches
from search.ratelimit import NeighborBuckets
from search.store import Criteria
from tests.search.helpers import sent_messages, wired_peers


def _star(search: SearchConfig) -> dict[int, Peer]:
    """Peer 0 in the middle, linked to 1, 2 and 3, all with ``search`` settings."""
    return wired_peers(nx.star_graph(3), seed=4, config=PeerConfig(search=search))


def _query(peer: Peer, number: int, ttl: int = 3) -> Query:
    return Query(f"{number:032x}", peer.contact, None, ("x",), ttl)


def _step(peer: Peer, number: int, walker: int = 0) -> WalkStep:
    return WalkStep(f"{number:032x}", peer.contact, None, ("x",), 64, 1, walker, 4)


def test_token_buckets_allow_a_burst_then_the_rate_and_stay_bounded() -> None:
    buckets = NeighborBuckets()
    allowed = [buckets.allow("a", 0.0, 10.0, 5.0, 2) for _ in range(8)]
    assert allowed == [True] * 5 + [False] * 3
    assert buckets.allow("a", 0.1, 10.0, 5.0, 2)  # 0.1 s at 10/s: one token back
    assert not buckets.allow("a", 0.1, 10.0, 5.0, 2)
    assert buckets.allow("b", 0.1, 10.0, 5.0, 2)  # another sender has its own bucket
    assert buckets.allow("c", 0.1, 10.0, 5.0, 2)
    assert len(buckets) == 2  # bounded: the least recently heard ("a") went
    assert all(buckets.allow("z", 0.0, 0.0, 1.0, 1) for _ in range(100))  # rate 0: no limit


def test_token_buckets_forget_senders_whose_buckets_have_refilled() -> None:
    # Under churn a peer hears from many senders that then die: a refilled bucket is
    # the same as none, so the table holds only senders of the last burst / rate seconds.
    buckets = NeighborBuckets()
    rate, burst = 50.0, 100.0  # the defaults: refilled within 2 s
    for n in range(10_000):  # a new sender every 0.1 s, each sending 3 queries
        now = n * 0.1
        assert all(buckets.allow(f"peer{n}", now, rate, burst, 1024) for _ in range(3))
        assert len(buckets) <= 21  # senders of the last 2 s, not up to the 1024 of the bound
    # A sender that emptied its bucket is kept (still limited) until it has refilled ...
    assert sum(buckets.allow("busy", 2000.0, rate, burst, 1024) for _ in range(150)) == 100
    buckets.allow("other", 2001.0, rate, burst, 1024)
    assert "busy" in buckets
    assert sum(buckets.allow("busy", 2001.0, rate, burst, 1024) for _ in range(150)) == 50
    # ... and forgotten once it has (on the next call, by anyone).
    buckets.allow("other", 2004.0, rate, burst, 1024)
    assert "busy" not in buckets


def test_a_neighbor_over_its_query_rate_is_dropped_and_counted_while_others_are_served() -> None:
    peers = _star(SearchConfig(query_rate=10.0, query_burst=20.0))
    hub, hostile, honest = peers[0], peers[1], peers[2]
    forwarded = 0
    for number in range(100):  # a hundred fresh ids at once: the hub would flood them all
        effects = hub.receive(_query(hostile, number), hostile.contact, 0.0)
        forwarded += len(sent_messages(effects, Query))
    counters = hub.snapshot().counters
    assert counters["search.rate_limited"] == 80
    assert counters["search.queries_handled"] == 20
    assert forwarded == 20 * 2  # only the burst went on, to 2 and 3
    # The well-behaved neighbor's query goes on at once ...
    assert len(sent_messages(hub.receive(_query(honest, 1000), honest.contact, 0.0), Query)) == 2
    # ... and so does a copy of a query the hostile one was refused: it was not marked seen.
    assert len(sent_messages(hub.receive(_query(honest, 99), honest.contact, 0.0), Query)) == 2
    # A second later the hostile neighbor has ten tokens again, no more.
    later = [hub.receive(_query(hostile, 200 + n), hostile.contact, 1.0) for n in range(15)]
    assert sum(1 for effects in later if sent_messages(effects, Query)) == 10
    assert hub.snapshot().counters["search.rate_limited"] == 85


def test_walker_steps_are_charged_to_the_neighbor_that_sent_them() -> None:
    peers = _star(SearchConfig(query_rate=5.0, query_burst=10.0))
    hub, hostile, honest = peers[0], peers[1], peers[2]
    moved = sum(
        len(sent_messages(hub.receive(_step(hostile, n), hostile.contact, 0.0), WalkStep))
        for n in range(50)
    )
    assert moved == 10
    assert hub.snapshot().counters["search.rate_limited"] == 40
    assert sent_messages(hub.receive(_step(honest, 7), honest.contact, 0.0), WalkStep)


def test_the_query_id_cache_is_bounded_and_counts_what_it_pushes_out() -> None:
    peers = _star(SearchConfig(seen_size=64, query_rate=0.0))
    hub, hostile, honest = peers[0], peers[1], peers[2]
    for number in range(1000):
        hub.receive(_query(hostile, number, ttl=1), hostile.contact, number * 0.001)
    assert len(hub.search.flooding.seen) == 64
    assert hub.snapshot().counters["search.seen_evicted"] == 1000 - 64
    # Still serving: a fresh query from another neighbor is forwarded.
    assert sent_messages(hub.receive(_query(honest, 5000), honest.contact, 2.0), Query)


def test_query_id_caches_plateau_at_their_lifetime_under_a_steady_load() -> None:
    # A soak's peers see a few fresh query ids a second for hours: the caches must level
    # off at (rate x lifetime), far below their size bound, and stay there.
    config = SearchConfig(query_rate=0.0)
    assert config.seen_seconds <= 30.0
    peers = _star(config)
    hub, neighbor = peers[0], peers[1]
    rate = 5  # fresh ids a second, each as a flood and as a walker
    plateau = rate * config.seen_seconds + 1
    sizes: list[int] = []
    for n in range(rate * 600):  # ten minutes of fake time
        now = n / rate
        hub.receive(_query(neighbor, n, ttl=2), neighbor.contact, now)
        hub.receive(_step(neighbor, 10**6 + n), neighbor.contact, now)
        hub.handle_timer(now)
        walking = hub.search.walking
        sizes.append(max(len(hub.search.flooding.seen), len(walking.seen), len(walking.memory)))
    assert max(sizes) <= plateau < config.seen_size
    assert min(sizes[-rate * 60 :]) >= plateau - 2 * rate  # full, not emptied: a plateau


def test_pending_walkers_are_bounded_and_the_excess_is_counted() -> None:
    peers = _star(SearchConfig(max_held_walkers=8, query_rate=0.0))
    hub, hostile, honest = peers[0], peers[1], peers[2]
    # Walkers at their check hop are held while the hub asks their origin.
    checks = 0
    for walker in range(100):
        step = attrs.evolve(_step(hostile, 1, walker), hops=4)
        checks += len(sent_messages(hub.receive(step, hostile.contact, 0.0), WalkCheck))
    assert len(hub.search.walking.held) == 8
    assert checks == 8
    assert hub.snapshot().counters["search.walk.dropped_full"] == 92
    # Held walkers give up after their deadline, and the slots are free again.
    hub.handle_timer(10.0)
    assert len(hub.search.walking.held) == 0
    step = attrs.evolve(_step(honest, 2), hops=4)
    assert sent_messages(hub.receive(step, honest.contact, 10.0), WalkCheck)


def test_searches_a_peer_runs_at_once_are_bounded() -> None:
    peer = wired_peers(
        nx.path_graph(2), seed=2, config=PeerConfig(search=SearchConfig(max_searches=3))
    )[0]
    for _ in range(3):
        peer.search.start_flood(Criteria(keywords=("x",)), 0.0)
    with pytest.raises(TooManySearches):
        peer.search.start_flood(Criteria(keywords=("x",)), 0.0)
    assert peer.snapshot().counters["search.refused_busy"] == 1
    peer.handle_timer(60.0)  # they end on their timers; room again
    peer.search.start_flood(Criteria(keywords=("x",)), 60.0)


def test_the_defaults_are_limits() -> None:
    config = PeerConfig().search
    assert config.query_rate > 0 and config.query_burst >= 1
    assert config.seen_size and config.max_held_walkers and config.max_searches
