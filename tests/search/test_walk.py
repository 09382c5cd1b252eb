"""k random walks: bounded cost, success at 1% replication, and robustness to loss."""

from __future__ import annotations

import random

import networkx as nx
import pytest

from overlay.protocol.messages import QueryHit, WalkCheck, WalkStep
from overlay.sim.static import StaticNetwork
from search.store import Criteria, Item
from search.walk import WalkMemory
from tests.search.helpers import random_connected_graph, sends, sent_messages, wired_peers

QID = "d" * 32


def test_a_walk_never_sends_more_than_k_times_ttl_steps_plus_its_checks() -> None:
    graph = random_connected_graph(300, 0.02, 5)
    net = StaticNetwork(graph, seed=5)
    origin = net.peer_of[0].search
    for walkers, ttl, check in ((4, 20, 4), (8, 33, 5), (1, 7, 1)):
        visits = origin.counters.get("search.walk.steps_handled", 0)
        outcome = net.query(0, "walk", keywords="absent", walkers=walkers, ttl=ttl, check=check)
        visits = origin.counters.get("search.walk.steps_handled", 0) - visits
        assert not outcome.success
        # Nothing to find: every walker walks its whole TTL, checking in as it goes, with a
        # check and its verdict on the wire except where a walker is back at its origin
        # at a check (the origin answers itself).
        assert outcome.messages["query"] == walkers * ttl
        unsent = 2 * walkers * ((ttl - 1) // check) - outcome.messages["check"]
        assert unsent % 2 == 0 and 0 <= unsent <= 2 * visits
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
    assert visited in (list(range(31)), [0, *range(20, 50)])


def test_a_walk_on_a_leaf_goes_back_because_it_must() -> None:
    net = StaticNetwork(nx.path_graph(3), seed=1)
    outcome = net.query(0, "walk", keywords="absent", walkers=1, ttl=6, check=100)
    assert outcome.messages["query"] == 6
    # 0 -> 1 -> 2 -> 1 -> 0 -> 1 -> 2: every reception after the first two is a revisit.
    assert outcome.duplicates == 4


def test_the_origin_spreads_its_walkers_evenly_over_its_links() -> None:
    peers = wired_peers(nx.star_graph(4), seed=3)  # node 0, degree 4
    _, effects = peers[0].search.start_walk(Criteria.for_words("absent"), 0.0, walkers=16)
    targets = [to for to, _ in sent_messages(effects, WalkStep)]
    # State keeping: each round of launches uses every link once, so 4 walkers each.
    assert sorted(targets.count(peers[n].address) for n in range(1, 5)) == [4, 4, 4, 4]


def test_a_relay_sends_the_walkers_of_one_query_to_neighbors_that_have_not_had_it() -> None:
    peers = wired_peers(nx.star_graph(4), seed=4)  # relay 0; neighbors 1..4
    relay = peers[0]
    node_of = {peer.address: node for node, peer in peers.items()}

    def relay_walker(query_id: str, walker: int, sender: int) -> int:
        step = WalkStep(query_id, peers[1].contact, None, ("absent",), 50, 1, walker, 4)
        ((to, _),) = sent_messages(relay.receive(step, peers[sender].contact, 0.0), WalkStep)
        return node_of[to]

    # Three walkers from 1: never back to 1, and each to a neighbor not used yet.
    assert sorted(relay_walker(QID, walker, 1) for walker in range(3)) == [2, 3, 4]
    # A neighbor that sent us a walker has had the query: the next goes elsewhere.
    other = "e" * 32
    relay_walker(other, 0, 2)
    assert relay_walker(other, 1, 3) in (1, 4)


def test_walk_memory_is_bounded_and_expires() -> None:
    memory = WalkMemory(size=3, seconds=10.0)
    for i in range(5):
        memory.note(f"{i:032x}", f"{i:032x}", float(i))
    assert len(memory) == 3
    memory.note("f" * 32, "9" * 32, 20.0)  # everything older has expired and goes
    assert len(memory) == 1


def test_a_walker_that_finds_a_hit_checks_with_its_origin_at_once() -> None:
    peers = wired_peers(nx.path_graph(3), seed=5)
    origin, holder = peers[0], peers[1]
    item = Item(b"value", "wanted thing")
    holder.search.store.add(item)
    step = WalkStep(QID, origin.contact, item.key, (), 50, 1, 0, 4)  # hop 1: no check due
    effects = holder.receive(step, origin.contact, 0.0)
    hits = sent_messages(effects, QueryHit)
    checks = sent_messages(effects, WalkCheck)
    # The hit goes first, then the check, both to the origin; the walker waits.
    assert [to for to, _ in hits + checks] == [origin.address, origin.address]
    assert [type(send.message) for send in sends(effects)] == [QueryHit, WalkCheck]
    assert sent_messages(effects, WalkStep) == []
    assert holder.snapshot().counters["search.walk.check_on_hit"] == 1


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
