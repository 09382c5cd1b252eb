"""Per-peer search state is bounded and expires; silent walkers are replaced."""

from __future__ import annotations

import networkx as nx

from overlay.protocol.messages import WalkCheck, WalkStep, WalkVerdict
from search.config import SearchConfig
from search.context import SeenCache
from search.store import Criteria
from tests.search.helpers import sent_messages, wired_peers

QID = "c" * 32


def test_seen_cache_is_bounded_and_expires() -> None:
    cache = SeenCache(size=3, seconds=10.0)
    for i in range(5):
        cache.add(f"{i:032x}", None, float(i))
    assert len(cache) == 3
    assert not cache.seen(f"{0:032x}", 5.0) and cache.seen(f"{4:032x}", 5.0)
    assert cache.seen(f"{2:032x}", 11.9) and not cache.seen(f"{2:032x}", 12.0)
    cache.add(f"{9:032x}", None, 30.0)  # everything older has expired and goes
    assert len(cache) == 1


def test_a_peer_holds_a_bounded_number_of_walkers() -> None:
    peers = wired_peers(nx.path_graph(3), seed=5)
    origin, middle = peers[0], peers[1]
    middle.search.config = SearchConfig(max_held_walkers=1)
    for walker in (0, 1):
        step = WalkStep(QID, origin.contact, None, ("x",), 10, 4, walker, 4)
        effects = middle.receive(step, origin.contact, 0.0)
        assert len(sent_messages(effects, WalkCheck)) == (1 if walker == 0 else 0)
    assert middle.snapshot().counters["search.walk.dropped_full"] == 1
    # The held walker goes on when its origin says so, never back where it came from
    # while it has another way to go.
    effects = middle.receive(WalkVerdict(QID, 0, True), origin.contact, 0.05)
    ((to, message),) = sent_messages(effects, WalkStep)
    assert to == peers[2].address and isinstance(message, WalkStep) and message.hops == 5
    # A verdict for a walker not held here is counted and ignored.
    assert (
        sent_messages(middle.receive(WalkVerdict(QID, 0, True), origin.contact, 0.1), WalkStep)
        == []
    )
    assert middle.snapshot().counters["search.verdict.unknown"] == 1


def test_a_held_walker_whose_origin_never_answers_stops() -> None:
    peers = wired_peers(nx.path_graph(3), seed=5)
    origin, middle = peers[0], peers[1]
    middle.receive(WalkStep(QID, origin.contact, None, ("x",), 10, 4, 0, 4), origin.contact, 0.0)
    assert middle.handle_timer(middle.next_deadline()) == []
    assert middle.snapshot().counters["search.walk.check_timeout"] == 1
    assert not middle.search.walking.held


def test_the_origin_replaces_a_walker_that_stops_checking_in() -> None:
    peers = wired_peers(nx.path_graph(3), seed=6)
    origin = peers[0]
    search_id, effects = origin.search.start_walk(
        Criteria.for_words("x"), 0.0, walkers=1, ttl=40, check=4
    )
    ((_, first),) = sent_messages(effects, WalkStep)
    assert isinstance(first, WalkStep) and first.walker == 0
    # The walker checks in once at hop 4, then falls silent (its messages lost).
    (verdict,) = [
        m
        for _, m in sent_messages(
            origin.receive(WalkCheck(search_id, 0, 4), peers[1].contact, 0.1), WalkVerdict
        )
    ]
    assert isinstance(verdict, WalkVerdict) and verdict.proceed
    relaunched: list[WalkStep] = []
    now = 0.1
    while not relaunched and now < 5.0:
        now = origin.next_deadline()
        relaunched = [
            m
            for _, m in sent_messages(origin.handle_timer(now), WalkStep)
            if isinstance(m, WalkStep)
        ]
    assert [step.walker for step in relaunched] == [1]
    assert now <= 0.1 + 2 * (4 + 2) * origin.search.config.hop_allowance
    # The written-off walker is told to stop if it turns up after all.
    (late,) = [
        m
        for _, m in sent_messages(
            origin.receive(WalkCheck(search_id, 0, 8), peers[1].contact, now), WalkVerdict
        )
    ]
    assert isinstance(late, WalkVerdict) and not late.proceed
