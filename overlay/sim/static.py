"""Static-topology mode: search on a graph read from a file, in the simulator.

The benchmarks compare flooding, random walks and the expanding ring on fixed
graphs (Gnutella crawls, random graphs), as Lv et al. did, so here membership
does not reshape the graph: every peer's neighbors are fixed to its neighbors in
the file (:meth:`~overlay.core.membership.Membership.fix_neighbors`: no heartbeats,
shuffles or repairs), there is no bootstrap, and links have one constant latency
unless jitter is asked for.  With equal latencies a flood's first copy reaches
each peer along a shortest path, which is what makes a flood's reach and cost
exact functions of the graph (the tests check them against networkx).

One :class:`StaticNetwork` (one :class:`~overlay.sim.simulator.Simulator`) serves many
queries, one after another: each query runs until its origin reports it done and
no message is left in flight, and :class:`~search.outcome.QueryTracker` counts
its messages and visits by query id.

Files:

* the topology is a networkx edge list of integer node ids (``# comments``
  allowed, extra columns ignored), read as an undirected graph: overlay links are
  symmetric; self-loops are dropped;
* the placement is JSON ``{"KEY": [node, ...]}``.  Each KEY is a label: the item
  placed on those nodes has the label's UTF-8 bytes as its value and the label as
  its name, so it can be found by its content key (``--key LABEL`` resolves the
  label to that key; a 64-hex key is used as is) and by the label's words.
"""

from __future__ import annotations

import gzip
import json
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, TextIO

import networkx as nx

from overlay.core.peer import Peer
from overlay.protocol.effects import Effect, Send
from overlay.protocol.identity import Address, Contact, PeerId
from overlay.sim.simulator import NetworkModel, Simulator, sim_address
from search.config import SearchConfig
from search.outcome import FetchResult, QueryOutcome, QueryTracker
from search.store import Criteria, Item, content_key, keywords_of

MAX_NODE = (1 << 24) - 1
"""Node ids map to synthetic addresses 10.a.b.c, so they must fit in 24 bits."""
MAX_QUERY_SECONDS = 100_000.0
"""Simulated time after which a query that never finishes is a bug, not a wait."""


class TopologyError(ValueError):
    """The topology or placement file cannot be used (with the file and the reason)."""


def read_topology(path: str | Path) -> nx.Graph:
    """Read an edge list of integer node ids as an undirected simple graph (a name
    ending in ``.gz`` is read through gzip, as the crawls in ``benchmarks/data`` are)."""
    graph = nx.Graph()
    try:
        with _open_text(Path(path)) as lines:
            for number, line in enumerate(lines, 1):
                text = line.split("#", 1)[0].split()
                if not text:
                    continue
                if len(text) < 2:
                    raise TopologyError(f"{path}:{number}: expected two node ids")
                try:
                    u, v = int(text[0]), int(text[1])
                except ValueError:
                    raise TopologyError(f"{path}:{number}: node ids are integers") from None
                graph.add_edge(u, v)
    except (OSError, EOFError) as error:
        raise TopologyError(f"{path}: {getattr(error, 'strerror', None) or error}") from None
    graph.remove_edges_from(list(nx.selfloop_edges(graph)))
    return graph


def _open_text(path: Path) -> TextIO:
    if path.suffix == ".gz":
        return gzip.open(path, "rt", encoding="utf-8")
    return open(path, encoding="utf-8")


def read_placement(path: str | Path) -> dict[str, list[int]]:
    """Read ``{"KEY": [node, ...]}``, checking its shape."""
    try:
        with open(path, encoding="utf-8") as file:
            data = json.load(file)
    except OSError as error:
        raise TopologyError(f"{path}: {error.strerror}") from None
    except json.JSONDecodeError as error:
        raise TopologyError(f"{path}: not JSON ({error})") from None
    if not isinstance(data, dict):
        raise TopologyError(f'{path}: expected an object {{"KEY": [node, ...]}}')
    placement: dict[str, list[int]] = {}
    for label, nodes in data.items():
        if not isinstance(nodes, list) or not all(type(n) is int for n in nodes):
            raise TopologyError(f"{path}: {label!r} must map to a list of node ids")
        placement[label] = nodes
    return placement


class StaticNetwork:
    """A fixed graph of peer cores in one simulator, ready to answer many queries."""

    def __init__(
        self,
        graph: nx.Graph,
        *,
        seed: int = 0,
        latency: float = 0.02,
        jitter: float = 0.0,
        loss: float = 0.0,
        search_config: SearchConfig | None = None,
        placement: Mapping[str, Iterable[int]] | None = None,
    ) -> None:
        self.graph = graph
        self.sim = Simulator(
            seed=seed,
            network=NetworkModel(latency=latency, jitter=jitter, loss=loss),
            with_bootstrap=False,
        )
        self.config = search_config or SearchConfig()
        self.tracker = QueryTracker()
        self.peer_of: dict[int, Peer] = {}
        self.node_of_id: dict[PeerId, int] = {}
        self.node_of_address: dict[Address, int] = {}
        self.labels: dict[str, str] = {}
        """Placement label -> content key of the item placed under it."""
        nodes = sorted(graph.nodes)
        for node in nodes:
            if type(node) is not int or not 0 <= node <= MAX_NODE:
                raise TopologyError(f"node ids must be integers in [0, {MAX_NODE}], got {node!r}")
            peer = self.sim.add_peer(address=sim_address(node))
            peer.search.config = self.config
            peer.search.observer = self.tracker.on_visit
            self.peer_of[node] = peer
            self.node_of_id[peer.id] = node
            self.node_of_address[peer.address] = node
        now = self.sim.now
        for node in nodes:
            neighbors = [self.peer_of[other].contact for other in sorted(graph.adj[node])]
            self.peer_of[node].membership.fix_neighbors(neighbors, now)
        self.sim.on_effect = self._on_effect
        for label, holders in (placement or {}).items():
            self.place(label, holders)

    @classmethod
    def from_files(
        cls, topology: str | Path, placement: str | Path | None = None, **options: Any
    ) -> StaticNetwork:
        graph = read_topology(topology)
        return cls(graph, placement=read_placement(placement) if placement else None, **options)

    # ------------------------------------------------------------------ content

    def place(self, label: str, nodes: Iterable[int], value: bytes | None = None) -> Item:
        """Put the item of ``label`` (value: the label's bytes unless given) on ``nodes``."""
        item = Item(value if value is not None else label.encode(), label)
        self.labels[label] = item.key
        for node in nodes:
            peer = self.peer_of.get(node)
            if peer is None:
                raise TopologyError(f"placement of {label!r}: node {node} is not in the graph")
            peer.search.store.add(item)
        return item

    def resolve_key(self, text: str) -> str:
        """A placement label's content key; a 64-hex key as is; else the text's SHA-256."""
        if text in self.labels:
            return self.labels[text]
        lowered = text.lower()
        if len(lowered) == 64 and all(c in "0123456789abcdef" for c in lowered):
            return lowered
        return content_key(text.encode())

    def node(self, contact: Contact) -> int:
        return self.node_of_id[contact.id]

    # ------------------------------------------------------------------ running

    def _on_effect(self, _now: float, _source: Address, effect: Effect) -> None:
        if type(effect) is Send:
            self.tracker.on_message(effect.message)

    def _carry_out(self, peer: Peer, effects: list[Effect]) -> None:
        """Hand effects a core returned outside of an event to the simulator.

        The simulator has no public call for this yet (asked of the lead); this is
        the one place that reaches into it.
        """
        self.sim.apply(peer.address, effects)

    def _in_flight(self) -> int:
        sim = self.sim
        return sum(sim.sent.values()) - sim.delivered - sim.lost

    def _run_while(self, busy: Any, step: float) -> None:
        sim = self.sim
        limit = sim.now + MAX_QUERY_SECONDS
        while busy():
            if sim.now > limit:
                raise RuntimeError("a query did not finish in simulated time; this is a bug")
            sim.run_until(sim.now + step)

    def query(
        self,
        source: int,
        mode: str,
        *,
        key: str | None = None,
        keywords: str | None = None,
        ttl: int | None = None,
        walkers: int | None = None,
        check: int | None = None,
        want: int | None = None,
        direct: bool | None = None,
        fetch: bool = False,
    ) -> QueryOutcome:
        """Run one search from ``source`` to its end and return its outcome.

        ``key`` is a placement label or a 64-hex key; ``keywords`` is text whose
        words must all match.  With ``fetch``, the first hit's value is fetched and
        verified too, and counted under "fetch".
        """
        if (key is None) == (keywords is None):
            raise ValueError("give a key or keywords, exactly one")
        peer = self.peer_of.get(source)
        if peer is None:
            raise ValueError(f"source {source} is not a node of the graph")
        if key is not None:
            criteria = Criteria.for_key(self.resolve_key(key))
        else:
            words = keywords_of(keywords or "")
            if not words:
                raise ValueError("keywords must contain at least one word")
            criteria = Criteria(keywords=words)
        options: dict[str, Any] = {"ttl": ttl, "want": want}
        if mode == "walk":
            options.update(walkers=walkers, check=check)
        else:
            options["direct"] = direct
        search = peer.search
        search_id, effects = search.start(mode, criteria, self.sim.now, **options)
        self._carry_out(peer, effects)
        step = self.config.hop_allowance
        self._run_while(lambda: search_id not in search.results, step)
        result = search.results[search_id]
        fetched: FetchResult | None = None
        extra: list[str] = []
        first = result.first_hit
        if fetch and first is not None:
            request_id, effects = search.start_fetch(first.key, first.holder, self.sim.now)
            self._carry_out(peer, effects)
            extra.append(request_id)
            self._run_while(lambda: request_id not in search.fetches, step)
            fetched = search.fetches[request_id]
        self._run_while(lambda: self._in_flight() > 0, step)
        return self.tracker.outcome(result, extra_ids=extra, fetch=fetched)

    def fetch(self, source: int, key: str, holder: int) -> FetchResult:
        """Fetch ``key`` (label or hex) from node ``holder`` for node ``source``."""
        peer = self.peer_of[source]
        request_id, effects = peer.search.start_fetch(
            self.resolve_key(key), self.peer_of[holder].contact, self.sim.now
        )
        self._carry_out(peer, effects)
        self._run_while(lambda: request_id not in peer.search.fetches, self.config.hop_allowance)
        self._run_while(lambda: self._in_flight() > 0, self.config.hop_allowance)
        self.tracker.forget([request_id])
        return peer.search.fetches[request_id]

    def outcome_json(self, outcome: QueryOutcome) -> dict[str, Any]:
        """The outcome as JSON, peers named by node id, with ``visited`` sorted."""
        out = outcome.to_json(self.node)
        out["visited"] = sorted(self.node_of_id[peer] for peer in outcome.visited)
        return out
