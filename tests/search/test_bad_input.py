"""Bad input from the network is clamped, dropped or refused, counted, and harms no one."""

from __future__ import annotations

from typing import Any

import networkx as nx
import pytest

from overlay.core.peer import Peer
from overlay.protocol.effects import Notify
from overlay.protocol.identity import Contact
from overlay.protocol.messages import (
    MAX_KEYWORDS_FIELD,
    Query,
    QueryHit,
    WalkCheck,
    WalkStep,
    WalkVerdict,
)
from overlay.sim.static import StaticNetwork
from search.store import Criteria, content_key
from tests.keys import signed_hit
from tests.search.helpers import sent_messages, wired_peers


@pytest.fixture
def star() -> dict[int, Peer]:
    """Peer 0 in the middle, linked to 1, 2 and 3."""
    return wired_peers(nx.star_graph(3), seed=1)


def query(origin: Contact, query_id: str, **fields: object) -> Query:
    base: dict[str, object] = {
        "query_id": query_id,
        "origin": origin,
        "key": None,
        "keywords": ("x",),
        "ttl": 3,
    }
    base.update(fields)
    return Query(**base)  # type: ignore[arg-type]


QID = "0123456789abcdef0123456789abcdef"


def test_a_ttl_over_the_cap_is_clamped_and_counted(star: dict[int, Peer]) -> None:
    hub, leaf = star[0], star[1]
    effects = hub.receive(query(leaf.contact, QID, ttl=200), leaf.contact, 0.0)
    forwarded = sent_messages(effects, Query)
    assert len(forwarded) == 2  # to 2 and 3, not back to 1
    assert all(
        isinstance(message, Query) and message.ttl == hub.search.config.max_ttl - 1
        for _, message in forwarded
    )
    assert hub.snapshot().counters["search.ttl_clamped"] == 1


def test_a_repeated_id_is_dropped_and_counted(star: dict[int, Peer]) -> None:
    hub, one, two = star[0], star[1], star[2]
    assert sent_messages(hub.receive(query(one.contact, QID), one.contact, 0.0), Query)
    again = hub.receive(query(one.contact, QID), two.contact, 0.1)
    assert again == []
    assert hub.snapshot().counters["search.duplicate"] == 1
    assert hub.snapshot().counters["search.queries_handled"] == 1


def test_a_hit_for_an_unknown_query_is_dropped_and_counted(star: dict[int, Peer]) -> None:
    hub, leaf = star[0], star[1]
    hit = signed_hit(leaf.signer, QID, content_key(b"v"), "v", 1, leaf.contact, 1)
    effects = hub.receive(hit, leaf.contact, 0.0)
    assert sent_messages(effects, QueryHit) == []
    assert [e.kind for e in effects if type(e) is Notify] == ["bad_input"]
    assert hub.snapshot().counters["search.dropped.unknown_hit"] == 1


def test_an_oversized_keyword_list_is_refused_and_counted(star: dict[int, Peer]) -> None:
    hub, leaf = star[0], star[1]
    limit = hub.search.config.max_keywords
    words = tuple(f"w{i}" for i in range(limit + 1))
    for message in (
        query(leaf.contact, QID, keywords=words),
        WalkStep(QID, leaf.contact, None, words, 10, 1, 0),
    ):
        effects = hub.receive(message, leaf.contact, 0.0)
        assert sent_messages(effects, type(message)) == []
    assert hub.snapshot().counters["search.refused.keywords"] == 2
    # Beyond the wire's own bound the message cannot even be built (nor decoded).
    with pytest.raises(ValueError):
        query(leaf.contact, QID, keywords=tuple(f"w{i}" for i in range(MAX_KEYWORDS_FIELD + 1)))


def test_a_check_for_an_unknown_walk_is_answered_stop(star: dict[int, Peer]) -> None:
    hub, leaf = star[0], star[1]
    effects = hub.receive(WalkCheck(QID, 3, 4), leaf.contact, 0.0)
    (verdict,) = [m for _, m in sent_messages(effects, WalkVerdict)]
    assert isinstance(verdict, WalkVerdict) and verdict.proceed is False
    assert hub.snapshot().counters["search.check.unknown"] == 1


def test_bad_input_disturbs_no_other_query() -> None:
    graph = nx.random_regular_graph(4, 400, seed=9)
    placement = {"wanted": [17, 230, 301]}

    def run(with_garbage: bool) -> tuple[dict[str, dict[str, Any]], dict[str, int]]:
        net = StaticNetwork(graph, seed=9, placement=placement)
        if with_garbage:
            bad_peer = net.peer_of[399]
            bad = bad_peer.contact
            junk = "f" * 32

            def garbage() -> None:
                for node in [*sorted(graph.adj[0]), 5, 6, 7]:
                    peer = net.peer_of[node]
                    net._carry_out(peer, peer.receive(query(bad, junk, ttl=99), bad, net.sim.now))
                    peer.receive(query(bad, junk, ttl=99), bad, net.sim.now)
                    peer.receive(
                        signed_hit(bad_peer.signer, "e" * 32, content_key(b"x"), None, 1, bad, 1),
                        bad,
                        net.sim.now,
                    )
                    peer.receive(
                        query(bad, "d" * 32, keywords=tuple("abcdefghij")), bad, net.sim.now
                    )

            net.sim.at(0.03, garbage)  # while the real queries are in flight
        reports = {
            mode: net.outcome_json(net.query(0, mode, key="wanted", ttl=ttl))
            for mode, ttl in (("flood", 5), ("ring", 5), ("walk", None))
        }
        counters: dict[str, int] = {}
        for peer in net.peer_of.values():
            for name, value in peer.search.counters.items():
                counters[name] = counters.get(name, 0) + value
        return reports, counters

    clean, clean_counters = run(False)
    dirty, dirty_counters = run(True)
    for mode in ("flood", "ring"):
        assert dirty[mode]["success"] and dirty[mode] == clean[mode]
    assert dirty["walk"]["success"]
    assert dirty_counters["search.ttl_clamped"] > clean_counters.get("search.ttl_clamped", 0)
    assert dirty_counters["search.dropped.unknown_hit"] >= 7
    assert dirty_counters["search.refused.keywords"] >= 7
    assert dirty_counters["search.duplicate"] > clean_counters["search.duplicate"]


def test_a_hit_that_does_not_answer_the_query_is_not_counted_as_one() -> None:
    peers = wired_peers(nx.path_graph(2), seed=4)
    origin, other = peers[0], peers[1]
    search_id, _ = origin.search.start_flood(Criteria.for_words("free manual"), 0.0, ttl=1)
    wrong = signed_hit(other.signer, search_id, content_key(b"x"), "free song", 1, other.contact, 1)
    right = signed_hit(
        other.signer, search_id, content_key(b"y"), "The Free Manual", 1, other.contact, 1
    )
    origin.receive(wrong, other.contact, 0.01)
    origin.receive(right, other.contact, 0.02)
    origin.handle_timer(10.0)
    result = origin.search.results[search_id]
    assert [hit.name for hit in result.hits] == ["The Free Manual"]
    assert origin.snapshot().counters["search.hit.mismatched"] == 1
