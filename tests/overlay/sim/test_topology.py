"""Snapshots to graphs and figures."""

from __future__ import annotations

import math
import random

import attrs
import networkx as nx

from overlay.core.peer import PeerSnapshot
from overlay.protocol.identity import Address
from overlay.sim.topology import (
    average_path_length,
    clustering,
    expected_path_length,
    graph_of,
    member_graph,
    summarize,
)


def shots_of(graph: nx.Graph, joined: bool = True) -> list[PeerSnapshot]:
    return [
        PeerSnapshot(
            id=f"{node:032x}",
            address=Address("127.0.0.1", 1000 + node),
            role="weak",
            joined=joined,
            neighbors=tuple(f"{n:032x}" for n in sorted(graph.neighbors(node))),
            passive=(),
            known_hosts=0,
        )
        for node in sorted(graph.nodes)
    ]


def test_a_cycle_is_one_component_of_degree_two() -> None:
    summary = summarize(shots_of(nx.cycle_graph(10)), peers=10)
    assert summary["components"] == 1
    assert summary["degree"] == {"min": 2, "mean": 2.0, "max": 2}
    assert summary["clustering"] == 0.0
    assert math.isclose(
        summary["avg_path_length"], nx.average_shortest_path_length(nx.cycle_graph(10))
    )
    assert summary["asymmetric_links"] == 0
    assert summary["expected_path_length"] is None  # undefined for d <= 2


def test_two_triangles_are_two_components_with_full_clustering() -> None:
    graph = nx.disjoint_union(nx.complete_graph(3), nx.complete_graph(3))
    summary = summarize(shots_of(graph), peers=6)
    assert summary["components"] == 2
    assert summary["largest_component_fraction"] == 0.5
    assert summary["clustering"] == 1.0


def test_entries_naming_dead_peers_are_dangling_and_one_sided_links_counted() -> None:
    shots = shots_of(nx.path_graph(3))
    # Peer 2 is dead: its snapshot is missing, peer 1 still lists it.
    alive = shots[:2]
    summary = summarize(alive, peers=3, dead={shots[2].id})
    assert summary["dangling_entries"] == 1
    assert summary["alive"] == 2
    one_sided = [shots[0], attrs.evolve(shots[1], neighbors=())]
    assert summarize(one_sided, peers=2)["asymmetric_links"] == 1


def test_peers_still_joining_are_not_components() -> None:
    shots = shots_of(nx.path_graph(3)) + shots_of(nx.empty_graph(range(5, 6)), joined=False)
    assert graph_of(shots).number_of_nodes() == 3
    summary = summarize(shots, peers=4)
    assert summary["components"] == 1
    assert summary["joining"] == 1


def test_sampled_path_length_is_close_to_exact_on_a_large_random_graph() -> None:
    graph = nx.random_regular_graph(6, 2000, seed=1)
    exact = nx.average_shortest_path_length(graph)
    assert abs(average_path_length(graph, random.Random(2)) - exact) < 0.05
    expected = expected_path_length(2000, 6.0)
    assert expected is not None and abs(expected - exact) < 0.5


def test_the_lean_graph_gives_the_figures_of_the_graph_with_ids() -> None:
    """Numbers in the ids' sorted order, nodes and edges in the same order: the same
    components, the same sampled nodes, the same floats, ties between components
    included (two components of 120 nodes: the first one found is the largest)."""
    rng = random.Random(5)
    first = nx.random_regular_graph(4, 120, seed=1)
    second = nx.relabel_nodes(nx.random_regular_graph(5, 120, seed=2), lambda n: n + 500)
    graph = nx.union(first, second)
    order = list(graph.nodes)
    rng.shuffle(order)  # snapshots in an order that is not the ids' order
    shots = {shot.id: shot for shot in shots_of(graph)}
    snapshots = [shots[f"{node:032x}"] for node in order]
    full, lean = graph_of(snapshots), member_graph(snapshots)
    assert sorted(dict(full.degree).values()) == sorted(dict(lean.degree).values())
    assert [len(c) for c in nx.connected_components(full)] == [
        len(c) for c in nx.connected_components(lean)
    ]
    for sample in (50, 5_000):
        assert clustering(full, random.Random(3), sample=sample) == clustering(
            lean, random.Random(3), sample=sample
        )
    for sources in (10, 500):
        assert average_path_length(full, random.Random(4), sources=sources) == (
            average_path_length(lean, random.Random(4), sources=sources)
        )
    assert not any(lean.nodes[node] for node in lean)  # no attributes
