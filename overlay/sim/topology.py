"""Snapshots of who neighbors whom, as networkx graphs, and the figures users read.

The same summary is printed by ``overlay sim`` and ``overlay swarm``: it is
computed here from :class:`overlay.core.peer.PeerSnapshot` records, whichever world
they came from.
"""

from __future__ import annotations

import math
import random
from collections import Counter, deque
from collections.abc import Iterable, Mapping
from typing import Any

import networkx as nx

from overlay.core.peer import PeerSnapshot
from overlay.protocol.identity import PeerId

PATH_SAMPLE_SOURCES = 200
"""Above this many nodes, the average path length is estimated from BFS trees of
this many random sources (exact below)."""
CLUSTERING_SAMPLE = 5_000
"""Above this many nodes, clustering is averaged over this many random nodes."""


def graph_of(snapshots: Iterable[PeerSnapshot], alive: set[PeerId] | None = None) -> nx.Graph:
    """The undirected neighbor graph among live, joined peers.

    A link counts when either end lists the other; links to peers outside
    ``alive`` (dead peers, if given) are left out, since they carry nothing.
    """
    shots = list(snapshots)
    members = {s.id for s in shots if s.joined} if alive is None else alive
    graph = nx.Graph()
    for shot in shots:
        if shot.id not in members:
            continue
        graph.add_node(shot.id, role=shot.role, address=str(shot.address))
        for other in shot.neighbors:
            if other in members:
                graph.add_edge(shot.id, other)
    return graph


class _ThinGraph(nx.Graph):  # type: ignore[misc]  # (networkx is untyped)
    """An undirected graph whose nodes and edges all share one empty attribute dict.

    networkx's own recipe for a graph without attributes (the "ThinGraph" of
    ``nx.Graph``'s documentation): a dict per node and per edge is a third of a large
    graph's memory, and the summary reads none.  Read only: nothing may set an
    attribute on it."""

    _no_attributes: dict[str, Any] = {}

    def _shared_attributes(self) -> dict[str, Any]:
        return self._no_attributes

    node_attr_dict_factory = _shared_attributes
    edge_attr_dict_factory = _shared_attributes


def member_graph(snapshots: list[PeerSnapshot]) -> nx.Graph:
    """The graph :func:`graph_of` makes, lean: each joined peer is the number of its id
    among them in sorted order, and nodes and edges have no attributes.

    The summary's figures are the same on either: nodes and edges are added in the same
    order (so components come out in the same order), and numbers sort as the ids do
    (so the same nodes are sampled).  At 100,000 peers it takes about a third of the
    memory: ints shared by every mention, no string ids, no attribute dicts."""
    members = sorted({s.id for s in snapshots if s.joined})
    number = {peer: index for index, peer in enumerate(members)}
    del members
    graph = _ThinGraph()
    for shot in snapshots:
        me = number.get(shot.id)
        if me is None:
            continue
        graph.add_node(me)
        for other in shot.neighbors:
            them = number.get(other)
            if them is not None:
                graph.add_edge(me, them)
    return graph


def degree_stats(degrees: list[int]) -> dict[str, float]:
    if not degrees:
        return {"min": 0, "mean": 0.0, "max": 0}
    return {"min": min(degrees), "mean": sum(degrees) / len(degrees), "max": max(degrees)}


def average_path_length(
    graph: nx.Graph,
    rng: random.Random,
    *,
    sources: int = PATH_SAMPLE_SOURCES,
    components: list[set[Any]] | None = None,
) -> float:
    """Mean shortest-path length within the largest component.

    Exact (a breadth-first search from every node) up to ``sources`` nodes, else
    estimated from that many random sources.  The searches run over plain adjacency
    lists: networkx's subgraph views cost ten times as much, and the live view calls
    this every refresh.  ``components`` saves recomputing them when the caller has them.
    """
    if components is None:
        components = list(nx.connected_components(graph)) if graph.number_of_nodes() else []
    if not components:
        return 0.0
    largest = max(components, key=len)
    if len(largest) < 2:
        return 0.0
    adjacency = {node: list(graph.adj[node]) for node in largest}
    nodes = sorted(largest)
    roots = nodes if len(nodes) <= sources else rng.sample(nodes, sources)
    total = pairs = 0
    for root in roots:
        distance = {root: 0}
        queue = deque([root])
        while queue:
            node = queue.popleft()
            step = distance[node] + 1
            for other in adjacency[node]:
                if other not in distance:
                    distance[other] = step
                    queue.append(other)
        total += sum(distance.values())
        pairs += len(distance) - 1
    return total / pairs if pairs else 0.0


def clustering(graph: nx.Graph, rng: random.Random, *, sample: int = CLUSTERING_SAMPLE) -> float:
    """Average clustering, over ``sample`` random nodes when there are more."""
    if graph.number_of_nodes() == 0:
        return 0.0
    nodes = sorted(graph.nodes)
    if len(nodes) > sample:
        nodes = rng.sample(nodes, sample)
    return float(nx.average_clustering(graph, nodes=nodes))


def summarize(
    snapshots: list[PeerSnapshot],
    *,
    peers: int,
    dead: set[PeerId] | None = None,
    messages: Mapping[str, int] | None = None,
    seed: int = 0,
) -> dict[str, Any]:
    """The summary of one moment of an overlay (``--json`` prints exactly this).

    ``peers`` counts every peer the run ever started; ``snapshots`` are the live
    ones; ``dead`` names peers known to have crashed or left, for counting view
    entries that still name them (``dangling_entries``: active views;
    ``dangling_passive_entries``: the passive caches, which Cyclon cleans lazily).
    """
    rng = random.Random(seed)
    alive_ids = {s.id for s in snapshots}
    graph = member_graph(snapshots)
    components = list(nx.connected_components(graph)) if graph.number_of_nodes() else []
    largest = max((len(c) for c in components), default=0)
    member_shots = [s for s in snapshots if s.joined]
    degrees = [len(s.neighbors) for s in member_shots]
    mean_degree = sum(degrees) / len(degrees) if degrees else 0.0
    dead = dead or set()
    dangling = sum(1 for s in snapshots for n in s.neighbors if n not in alive_ids)
    dangling_passive = sum(1 for s in snapshots for n in s.passive if n in dead)
    asymmetric = 0
    by_id = {s.id: s for s in snapshots}
    for shot in snapshots:
        for other in shot.neighbors:
            peer = by_id.get(other)
            if peer is not None and shot.id not in peer.neighbors:
                asymmetric += 1
    roles = Counter({"super": 0, "weak": 0})
    roles.update(s.role for s in snapshots)
    supers = super_layer_figures(snapshots, alive_ids)
    return {
        "peers": peers,
        "alive": len(snapshots),
        "joining": len(snapshots) - len(member_shots),
        "components": len(components),
        "largest_component_fraction": largest / len(member_shots) if member_shots else 0.0,
        "degree": degree_stats(degrees),
        "degree_histogram": dict(sorted(Counter(degrees).items())),
        "clustering": clustering(graph, rng),
        "avg_path_length": average_path_length(graph, rng, components=components),
        "expected_path_length": expected_path_length(len(member_shots), mean_degree),
        "dangling_entries": dangling,
        "dangling_passive_entries": dangling_passive,
        "asymmetric_links": asymmetric,
        "roles": dict(sorted(roles.items())),
        **supers,
        "messages": dict(sorted((messages or {}).items())),
    }


def super_layer_figures(snapshots: list[PeerSnapshot], alive: set[PeerId]) -> dict[str, Any]:
    """The super-peer figures of issue 5, from snapshots alone.

    * ``unattached_weak``: live weak peers attached to fewer than k live super peers;
    * ``index_coverage``: of the (live weak peer, item) pairs, the fraction present in
      the index of at least one of that weak peer's live super peers (None when no
      peer runs the super layer).  By key where the snapshots name keys (the core's
      own, in the simulator); by count where they carry counts only (stats replies
      over TCP): an index mirrors what its owner published, so a super peer holding as
      many entries for a weak peer as it has items covers them all;
    * ``stale_index_entries``: index entries, at live super peers, naming dead peers;
    * ``role_changes``: role changes of the live peers, in all and at most per peer;
    * ``super_components``: connected components of the graph among live super peers.
    """
    by_id = {s.id: s for s in snapshots}
    live_supers = {s.id for s in snapshots if s.role == "super"}
    entries_at = {peer: _entries_by_owner(by_id[peer]) for peer in live_supers}
    unattached = 0
    pairs = 0
    covered = 0
    layered = False
    for shot in snapshots:
        if shot.super_target == 0:
            continue
        layered = True
        if shot.role != "weak":
            continue
        mine = [p for p in shot.super_peers if p in live_supers]
        if len(mine) < shot.super_target:
            unattached += 1
        if shot.items:
            held: set[str] = set()
            for peer in mine:
                held.update(by_id[peer].index_holdings.get(shot.id, ()))
            pairs += len(shot.items)
            covered += sum(1 for key in shot.items if key in held)
        elif shot.item_count:
            best = max((entries_at[peer].get(shot.id, 0) for peer in mine), default=0)
            pairs += shot.item_count
            covered += min(best, shot.item_count)
    stale = 0
    graph = nx.Graph()
    for peer in live_supers:
        graph.add_node(peer)
        for owner, entries in entries_at[peer].items():
            if owner not in alive:
                stale += entries
        shot = by_id[peer]
        for other in shot.super_neighbors:
            if other in live_supers:
                graph.add_edge(peer, other)
    changes = [s.role_changes for s in snapshots]
    return {
        "unattached_weak": unattached,
        "index_coverage": (covered / pairs if pairs else 1.0) if layered else None,
        "stale_index_entries": stale,
        "role_changes": sum(changes),
        "max_role_changes": max(changes, default=0),
        "super_components": nx.number_connected_components(graph) if live_supers else 0,
    }


def _entries_by_owner(shot: PeerSnapshot) -> dict[PeerId, int]:
    """A super peer's index entries per weak peer, from its keys or from its counts."""
    if shot.index_holdings:
        return {owner: len(keys) for owner, keys in shot.index_holdings.items()}
    return dict(zip(shot.weak_peers, shot.index_entries, strict=False))


def expected_path_length(nodes: int, mean_degree: float) -> float | None:
    """ln(N) / ln(d - 1): the path length of a random graph of mean degree d (None if d <= 2)."""
    if nodes < 2 or mean_degree <= 2.0:
        return None
    return math.log(nodes) / math.log(mean_degree - 1.0)
