"""The graphs the flood-vs-walk benchmark searches, built the same way every time.

Lv, Cao, Cohen, Li and Shenker (ICS 2002) compared search on a random graph, a
power-law random graph and a Gnutella crawl of about 10,000 nodes each; we use the
same three kinds so that our numbers can be set beside theirs:

* ``random``: an Erdos-Renyi G(n, m) graph of 10,000 nodes and mean degree 4,
  largest component (flooding wastes least here: few short cycles, no hubs);
* ``power-law``: a Chung-Lu random graph whose expected degrees follow a power law
  of exponent 2.1 (the exponent Faloutsos et al. and the Gnutella crawls show),
  largest component, about 10,000 nodes;
* ``gnutella04`` and ``gnutella31``: the SNAP crawls p2p-Gnutella04 (10,876 peers)
  and p2p-Gnutella31 (62,586 peers), read as undirected graphs (overlay links are
  symmetric), largest component.

Every graph is relabelled 0..n-1 in sorted order, so a seed names the same peers
on every machine.  The crawls live in the repository, gzipped, in
``benchmarks/data/gnutella`` (where they come from and how to cite them:
``benchmarks/data/gnutella/README.md``), so a fresh clone has them; a missing file
(``--data DIR`` pointing elsewhere) is a clear :class:`DataMissing` error, never a
silent skip.
"""

from __future__ import annotations

import functools
from collections import deque
from pathlib import Path

import attrs
import networkx as nx

from overlay.sim.static import read_topology

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATA_DIR = REPO_ROOT / "benchmarks" / "data" / "gnutella"
"""The SNAP crawls, in the repository (a fresh clone has them)."""

CRAWL_FILES = {
    "gnutella04": "p2p-Gnutella04.txt.gz",
    "gnutella08": "p2p-Gnutella08.txt.gz",
    "gnutella31": "p2p-Gnutella31.txt.gz",
}


class DataMissing(FileNotFoundError):
    """A Gnutella crawl the benchmark needs is not where it should be."""


@attrs.frozen
class TopologySpec:
    """How to build one named topology: a generator and its parameters, or a crawl.

    ``sample`` (crawls only) keeps just the first ``sample`` peers a breadth-first
    search from the best-connected peer meets: ``--quick`` uses it to search a small
    piece of the real crawl, so the quick run still reads the real files.
    """

    name: str
    kind: str
    nodes: int = 0
    mean_degree: float = 0.0
    exponent: float = 0.0
    seed: int = 1
    sample: int | None = None

    def describe(self) -> str:
        if self.kind == "random":
            return f"G(n, m), n={self.nodes}, mean degree {self.mean_degree:g}"
        if self.kind == "power-law":
            return (
                f"Chung-Lu, n={self.nodes}, exponent {self.exponent:g}, "
                f"mean expected degree {self.mean_degree:g}"
            )
        sampled = f", BFS sample of {self.sample}" if self.sample else ""
        return f"{CRAWL_FILES[self.name]}, undirected{sampled}"


FULL_TOPOLOGIES = (
    TopologySpec("random", "random", nodes=10_000, mean_degree=4.0),
    # 15,000 Chung-Lu nodes leave a largest component of about 9,800: the many
    # low-weight nodes a power law of exponent 2.1 makes stay isolated.
    TopologySpec("power-law", "power-law", nodes=15_000, mean_degree=3.5, exponent=2.1),
    TopologySpec("gnutella04", "crawl"),
    TopologySpec("gnutella31", "crawl"),
)

QUICK_TOPOLOGIES = (
    TopologySpec("random", "random", nodes=200, mean_degree=4.0),
    TopologySpec("power-law", "power-law", nodes=300, mean_degree=3.5, exponent=2.1),
    TopologySpec("gnutella04", "crawl", sample=200),
    TopologySpec("gnutella31", "crawl", sample=200),
)


def largest_component(graph: nx.Graph) -> nx.Graph:
    """The largest connected component, relabelled 0..n-1 in sorted node order.

    Searches from a peer cut off from every copy would count as failures of the
    search method when they are failures of the graph.
    """
    largest = max(nx.connected_components(graph), key=lambda c: (len(c), -min(c)))
    sub = graph.subgraph(largest).copy()
    return nx.convert_node_labels_to_integers(sub, ordering="sorted")


def random_graph(nodes: int, mean_degree: float, seed: int) -> nx.Graph:
    edges = round(nodes * mean_degree / 2)
    return largest_component(nx.gnm_random_graph(nodes, edges, seed=seed))


def power_law_graph(nodes: int, exponent: float, mean_degree: float, seed: int) -> nx.Graph:
    """Chung-Lu: node i has expected degree proportional to (i + 1) ** (-1 / (exponent - 1)).

    That weight sequence has a degree distribution P(k) ~ k ** -exponent; the graph
    is otherwise random, which is what Lv et al.'s PLRG is.
    """
    weights = [(i + 1.0) ** (-1.0 / (exponent - 1.0)) for i in range(nodes)]
    scale = mean_degree * nodes / sum(weights)
    expected = [w * scale for w in weights]
    return largest_component(nx.expected_degree_graph(expected, seed=seed, selfloops=False))


def crawl_path(name: str, data_dir: Path | None = None) -> Path:
    directory = data_dir or DEFAULT_DATA_DIR
    path = directory / CRAWL_FILES[name]
    if not path.is_file():
        raise DataMissing(
            f"{path} not found: the Gnutella crawls live in the repository, in "
            f"{DEFAULT_DATA_DIR}; --data DIR points elsewhere"
        )
    return path


def bfs_sample(graph: nx.Graph, size: int) -> nx.Graph:
    """The first ``size`` nodes a BFS from the highest-degree node meets (connected)."""
    start = max(graph.nodes, key=lambda node: (graph.degree[node], -node))
    seen = {start}
    queue = deque([start])
    while queue and len(seen) < size:
        node = queue.popleft()
        for other in sorted(graph.adj[node]):
            if other not in seen and len(seen) < size:
                seen.add(other)
                queue.append(other)
    return largest_component(graph.subgraph(seen))


@functools.lru_cache(maxsize=2)
def build_topology(spec: TopologySpec, data_dir: Path | None = None) -> nx.Graph:
    """The graph of ``spec`` (cached: a worker running several tasks on one graph
    builds it once; callers must not modify it)."""
    if spec.kind == "random":
        return random_graph(spec.nodes, spec.mean_degree, spec.seed)
    if spec.kind == "power-law":
        return power_law_graph(spec.nodes, spec.exponent, spec.mean_degree, spec.seed)
    if spec.kind == "crawl":
        graph = read_topology(crawl_path(spec.name, data_dir))
        # A BFS stays inside one component: a sample needs no component pass first.
        return bfs_sample(graph, spec.sample) if spec.sample else largest_component(graph)
    raise ValueError(f"unknown topology kind {spec.kind!r}")
