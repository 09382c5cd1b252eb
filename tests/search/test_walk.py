"""k random walks: bounded cost, success at 1% replication, and robustness to loss."""

from __future__ import annotations

import random

import networkx as nx
import pytest

from overlay.static import StaticNetwork
from tests.search.helpers import random_connected_graph


def test_a_walk_never_sends_more_than_k_times_ttl_steps_plus_its_checks() -> None:
    graph = random_connected_graph(300, 0.02, 5)
    net = StaticNetwork(graph, seed=5)
    for walkers, ttl, check in ((4, 20, 4), (8, 33, 5), (1, 7, 1)):
        outcome = net.query(0, "walk", keywords="absent", walkers=walkers, ttl=ttl, check=check)
        assert not outcome.success
        # Nothing to find: every walker walks its whole TTL, checking in as it goes.
        assert outcome.messages["query"] == walkers * ttl
        assert outcome.messages["check"] == 2 * walkers * ((ttl - 1) // check)
        assert outcome.result.relaunched == 0
    net = StaticNetwork(graph, seed=5, placement={"item": [10, 20, 30]})
    found = net.query(0, "walk", key="item", walkers=8, ttl=200)
    assert found.success
    assert found.messages["query"] <= 8 * 200
    # The origin stops its walkers at their next check after the hit.
    assert found.messages["query"] < 8 * 200 // 4


def test_a_step_never_goes_back_where_it_came_from_when_there_is_a_choice() -> None:
    net = StaticNetwork(nx.cycle_graph(50), seed=1)
    outcome = net.query(0, "walk", keywords="absent", walkers=1, ttl=30, check=100)
    visited = net.outcome_json(outcome)["visited"]
    # On a cycle a non-backtracking walk goes round one way: 30 steps, 31 distinct nodes.
    assert len(visited) == 31 and outcome.duplicates == 0
    assert visited in (list(range(31)), [0, *range(30, 50)])


def test_a_walk_on_a_leaf_goes_back_because_it_must() -> None:
    net = StaticNetwork(nx.path_graph(3), seed=1)
    outcome = net.query(0, "walk", keywords="absent", walkers=1, ttl=6, check=100)
    assert outcome.messages["query"] == 6
    # 0 -> 1 -> 2 -> 1 -> 0 -> 1 -> 2: every reception after the first two is a revisit.
    assert outcome.duplicates == 4


@pytest.fixture(scope="module")
def big_graph() -> nx.Graph:
    return nx.random_regular_graph(4, 10_000, seed=42)


def placement_1_percent(graph: nx.Graph, keys: int, seed: int) -> dict[str, list[int]]:
    rng = random.Random(seed)
    nodes = sorted(graph.nodes)
    return {f"item-{i}": rng.sample(nodes, len(nodes) // 100) for i in range(keys)}


def success_rate(net: StaticNetwork, queries: int, seed: int, keys: int) -> float:
    rng = random.Random(seed)
    nodes = sorted(net.graph.nodes)
    found = 0
    for q in range(queries):
        outcome = net.query(rng.choice(nodes), "walk", key=f"item-{q % keys}", walkers=32)
        assert outcome.messages["query"] <= (32 + outcome.result.relaunched) * 256
        found += outcome.success
    return found / queries


def test_32_walkers_find_a_key_on_1_percent_of_10000_peers(big_graph: nx.Graph) -> None:
    net = StaticNetwork(big_graph, seed=1, placement=placement_1_percent(big_graph, 50, 1))
    assert success_rate(net, 200, seed=1, keys=50) >= 0.99


def test_under_10_percent_loss_checking_walks_still_succeed(big_graph: nx.Graph) -> None:
    net = StaticNetwork(
        big_graph, seed=2, loss=0.10, placement=placement_1_percent(big_graph, 50, 2)
    )
    assert success_rate(net, 200, seed=2, keys=50) >= 0.95
    relaunched = sum(
        p.search.counters.get("search.walk.relaunched", 0) for p in net.peer_of.values()
    )
    assert relaunched > 0  # the origins did replace walkers lost on the way


def test_without_relaunching_loss_costs_many_walks(big_graph: nx.Graph) -> None:
    """The relaunch is what carries the test above: switch it off and walks fail."""
    from search.config import SearchConfig

    net = StaticNetwork(
        big_graph,
        seed=2,
        loss=0.10,
        placement=placement_1_percent(big_graph, 50, 2),
        search_config=SearchConfig(relaunch_factor=0),
    )
    assert success_rate(net, 100, seed=2, keys=50) < 0.95
