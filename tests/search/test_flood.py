"""Flooding on static random graphs: reach, cost and duplicate suppression are exact."""

from __future__ import annotations

import random
from collections import Counter

import networkx as nx
import pytest

from overlay.protocol.identity import PeerId
from overlay.sim.static import StaticNetwork
from search.config import SearchConfig
from tests.search.helpers import random_connected_graph


def flood_cost(graph: nx.Graph, source: int, ttl: int) -> int:
    """deg(source) + sum of (deg(v) - 1) over nodes v at distance 1 .. ttl-1."""
    distance = nx.single_source_shortest_path_length(graph, source, cutoff=ttl)
    inner = [v for v, d in distance.items() if 1 <= d <= ttl - 1]
    return int(graph.degree(source)) + sum(int(graph.degree(v)) - 1 for v in inner)


@pytest.mark.parametrize("seed", [1, 2, 3, 4])
def test_flood_visits_exactly_the_ball_and_sends_exactly_the_predicted_queries(
    seed: int,
) -> None:
    graph = random_connected_graph(160, 0.035, seed)
    net = StaticNetwork(graph, seed=seed)
    handled: Counter[tuple[str, PeerId]] = Counter()
    first_copies: Counter[tuple[str, PeerId]] = Counter()

    def observe(wire_id: str, peer: PeerId, duplicate: bool) -> None:
        handled[wire_id, peer] += 1
        if not duplicate:
            first_copies[wire_id, peer] += 1
        net.tracker.on_visit(wire_id, peer, duplicate)

    for peer in net.peer_of.values():
        peer.search.observer = observe
    rng = random.Random(seed)
    for ttl in (1, 2, 3, 4):
        source = rng.choice(sorted(graph.nodes))
        outcome = net.query(source, "flood", keywords="nothing here", ttl=ttl)
        ball = nx.single_source_shortest_path_length(graph, source, cutoff=ttl)
        assert net.outcome_json(outcome)["visited"] == sorted(ball)
        assert outcome.messages["query"] == flood_cost(graph, source, ttl)
        assert not outcome.success and outcome.result.hits == ()
        # Every peer handles each query id once; every further copy is a counted duplicate.
        query_id = outcome.result.search_id
        assert all(first_copies[query_id, p] == 1 for p in outcome.visited)
        assert outcome.duplicates == sum(handled[query_id, p] for p in outcome.visited) - len(ball)
    duplicates = sum(p.search.counters.get("search.duplicate", 0) for p in net.peer_of.values())
    assert duplicates == sum(n - 1 for n in handled.values())


def test_hits_come_back_along_the_reverse_path_or_directly() -> None:
    graph = random_connected_graph(200, 0.03, 7)
    rng = random.Random(7)
    holders = rng.sample(sorted(graph.nodes), 12)
    source = next(n for n in sorted(graph.nodes) if n not in holders)
    distance = nx.single_source_shortest_path_length(graph, source, cutoff=4)
    in_ball = [h for h in holders if h in distance]
    assert in_ball, "the test needs holders within the ball"
    for direct, expected in (
        (False, sum(distance[h] for h in in_ball)),  # one message per hop back
        (True, len(in_ball)),  # one message per holder
    ):
        net = StaticNetwork(graph, seed=7, placement={"the item": holders})
        outcome = net.query(source, "flood", key="the item", ttl=4, direct=direct)
        report = net.outcome_json(outcome)
        assert sorted(hit["holder"] for hit in report["hits"]) == sorted(in_ball)
        assert outcome.messages["hit"] == expected
        assert report["first_hit_hops"] == min(distance[h] for h in in_ball)
        assert all(hit["hops"] == distance[hit["holder"]] for hit in report["hits"])


def test_ttl_defaults_to_seven_and_is_capped_at_ten() -> None:
    graph = nx.path_graph(30)
    net = StaticNetwork(graph, seed=1)
    assert net.outcome_json(net.query(0, "flood", keywords="x"))["visited"] == list(range(8))
    capped = net.query(0, "flood", keywords="x", ttl=25)
    assert net.outcome_json(capped)["visited"] == list(range(11))
    assert net.peer_of[0].search.counters["search.ttl_clamped"] == 1


def test_expanding_ring_stops_at_the_first_ring_with_a_hit() -> None:
    graph = nx.path_graph(20)
    net = StaticNetwork(graph, seed=3, placement={"far": [4]})
    outcome = net.query(0, "ring", key="far")
    assert outcome.success
    assert outcome.result.rings == (1, 3, 5)
    assert outcome.result.first_hit is not None and outcome.result.first_hit.hops == 4
    # rings of TTL 1, 3 and 5 on a path from its end: 1 + 3 + 5 query messages.
    assert outcome.messages["query"] == 1 + 3 + 5
    missing = net.query(0, "ring", key="absent")
    assert not missing.success
    assert missing.result.rings == (1, 3, 5, 7, 9, 10)
    assert net.outcome_json(missing)["visited"] == list(range(11))


def test_ring_on_a_random_graph_costs_no_more_than_the_flood_that_finds_it() -> None:
    graph = random_connected_graph(300, 0.02, 11)
    net = StaticNetwork(graph, seed=11, placement={"near": [5, 6, 7]})
    rng = random.Random(11)
    for _ in range(10):
        source = rng.choice(sorted(graph.nodes))
        ring = net.query(source, "ring", key="near")
        if not ring.success:
            continue
        hops = ring.result.rings[-1]
        flood = net.query(source, "flood", key="near", ttl=hops)
        assert flood.success
        assert ring.messages["query"] <= 2 * flood.messages["query"]


def test_a_search_reports_done_with_a_notify_and_a_result() -> None:
    graph = nx.cycle_graph(6)
    net = StaticNetwork(graph, seed=2, search_config=SearchConfig(hop_allowance=0.05))
    net.sim.keep_events = True
    outcome = net.query(0, "flood", keywords="x", ttl=2)
    done = [event for _, _, event in net.sim.events if event.kind == "search_done"]
    assert len(done) == 1 and outcome.result.search_id in done[0].detail
    assert outcome.result.search_id in net.peer_of[0].search.results
