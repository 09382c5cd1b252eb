"""One task of the flood-vs-walk sweep: a topology, a loss rate, modes, queries.

A task builds its graph and one :class:`~overlay.sim.static.StaticNetwork` and sends
every query of every configuration through it, one after another: building a
network of 10,000 peer cores costs a second (62,586: ten), a query costs
milliseconds, so reuse is what makes 1,000 queries per configuration affordable.
Items of every (placement, ratio) it needs are placed under distinct labels in
the same network, and each configuration searches the same seeded query stream.

Tasks run on Dask workers (:mod:`benchmarks.engine`: a local cluster of one process
per core, or a cluster given by its scheduler's address); a task depends on nothing
but itself (its graph, placement, query stream and network come from seeds named
after it), so its rows are the same on any worker, and it reports its progress through
the :class:`~benchmarks.engine.TaskProgress` it is handed.

Metrics (per configuration, over its queries):

* success rate: the origin got at least one hit;
* hops to the first hit (mean, 95th percentile, histogram), successes only;
* messages per query, by kind: ``query`` (flood copies and walk steps), ``check``
  (walk checks and verdicts), ``hit``; *search messages* are query + check, the
  cost Lv et al. count; lost messages count too, they were sent;
* messages per peer per query: messages per query / peers in the graph;
* duplicate ratio: receptions of a query by a peer that already had it, per query
  message sent;
* load: messages addressed to each peer; peak load is the most one peer got in
  one query (mean and max over queries); the distribution over peers of the
  whole run is kept as percentiles for the load plot;
* visited: distinct peers that received the query;
* the simulator's delivered messages per wall-clock second while the
  configuration ran (its speed, reported for every run), and per CPU second of the
  worker (the same figure without the other programs sharing the machine).

Lossless floods are simulated once per query, not once per TTL.  Without loss and
with equal latencies a flood of TTL t is exactly the part of a flood of TTL T > t
that carries ``hops < t`` (every peer is first reached along a shortest path, and a
peer d hops away forwards iff d < t; its hit travels back d hops), so the task
simulates only the TTL the stop rule ends at (:func:`lossless_flood_ttl`, known
before any flood runs) while recording each message's hop count, and derives the
smaller TTLs' rows from those records (:class:`FloodLevels`).  The derived row of
the simulated TTL itself is checked against the simulator's own count, query by
query, so a derivation that drifted from the simulator would stop the run.
Derived rows say ``derived_from_ttl``; their speed figures are the simulated run's.
On the 10,000-peer graphs this saves the TTL 1-3 floods: a third of the power-law
graph's flood messages.
"""

from __future__ import annotations

import contextlib
import gc
import hashlib
import json
import math
import random
import time
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import attrs
import networkx as nx

from benchmarks.engine import NO_PROGRESS, TaskProgress
from benchmarks.placement import QueryStream, place, zipf_popularity
from benchmarks.topologies import TopologySpec, build_topology
from overlay.protocol.effects import Effect, Send
from overlay.protocol.identity import Address
from overlay.protocol.messages import Query, QueryHit
from overlay.sim.static import StaticNetwork
from search.config import SearchConfig
from search.outcome import QueryOutcome

WALK_TTL = 1024
"""Walker TTL in hops (Lv et al.'s): long enough that a lone walker finds a 0.1% item."""
FLOOD_STOP = 0.99
"""Flood TTLs stop at the first one whose success rate reaches this: larger TTLs
only cost more (a flood's ball grows with its TTL) and they are what makes a
sweep of 10,000-peer floods slow (a TTL-5 flood of p2p-Gnutella04 sends ~47,000
messages, a TTL-7 flood of p2p-Gnutella31 ~220,000)."""


@attrs.frozen
class ModeSpec:
    """A search mode with its parameters, e.g. flood TTL 3 or 32 walkers checking every 4."""

    mode: str
    ttl: int | None = None
    walkers: int | None = None
    check: int | None = None

    @property
    def name(self) -> str:
        if self.mode == "flood":
            return f"flood ttl={self.ttl}"
        if self.mode == "walk":
            return f"walk k={self.walkers}"
        return "expanding ring"


@attrs.frozen
class Task:
    """A unit of work for one worker process (one network, one loss rate)."""

    table: str
    topology: TopologySpec
    loss: float
    configs: tuple[tuple[str, float], ...]
    """(placement strategy, replication ratio) pairs, each run with every mode."""
    modes: tuple[ModeSpec, ...]
    queries: int
    seed: int
    data_dir: Path | None = None
    derive_floods: bool = True
    """Simulate lossless floods at their stop TTL only and derive the smaller TTLs
    (see the module docstring); False simulates every TTL (the tests compare both)."""

    @property
    def label(self) -> str:
        kinds = sorted({mode.mode for mode in self.modes})
        return f"{self.table}: {self.topology.name} loss={self.loss:g} {'+'.join(kinds)}"

    def planned_queries(self) -> int:
        return len(self.configs) * len(self.modes) * self.queries


TIMING_FIELDS = frozenset(
    {"wall_seconds", "cpu_seconds", "build_seconds", "delivered_per_second",
     "delivered_per_cpu_second"}
)  # fmt: skip
"""The fields of a row that measure the machine, not the search: they change from run to
run.  Every other field is a function of the task (its seeds), wherever it ran."""


def measured(row: dict[str, Any]) -> dict[str, Any]:
    """``row`` without its :data:`TIMING_FIELDS`: what the same seeds must reproduce."""
    return {key: value for key, value in row.items() if key not in TIMING_FIELDS}


def rows_digest(rows: list[dict[str, Any]]) -> str:
    """SHA-256 of the rows' :func:`measured` fields, in order: two runs with equal digests
    gave the same rows (a result file records it, so runs compare at a glance)."""
    text = json.dumps([measured(row) for row in rows], sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()


def stable_seed(*parts: object) -> int:
    """A seed from names, the same in every process and on every machine (unlike hash())."""
    return zlib.crc32("/".join(str(part) for part in parts).encode())


class LoadMeter:
    """Counts messages per destination peer, per query, on top of the tracker's counts.

    It replaces the static network's effect hook with one that feeds the query
    tracker exactly as the network's own hook does and also counts destinations.
    """

    def __init__(self, net: StaticNetwork) -> None:
        self.tracker = net.tracker
        self.load: dict[Address, int] = {}
        net.sim.on_effect = self.on_effect

    def on_effect(self, _now: float, _source: Address, effect: Effect) -> None:
        if type(effect) is Send:
            self.tracker.on_message(effect.message)
            load = self.load
            to = effect.to
            load[to] = load.get(to, 0) + 1

    def take(self) -> dict[Address, int]:
        load, self.load = self.load, {}
        return load


def percentile(values: list[int] | list[float], fraction: float) -> float:
    """Nearest-rank percentile of ``values`` (sorted or not)."""
    ordered = sorted(values)
    rank = max(1, math.ceil(fraction * len(ordered)))
    return float(ordered[rank - 1])


@attrs.define
class Meter:
    """Accumulates one configuration's queries into one row."""

    success: int = 0
    hops: list[int] = attrs.field(factory=list)
    messages: dict[str, int] = attrs.field(factory=dict)
    duplicates: int = 0
    visited: int = 0
    peaks: list[int] = attrs.field(factory=list)
    per_peer: dict[Address, int] = attrs.field(factory=dict)
    queries: int = 0

    def add(self, outcome: QueryOutcome, load: dict[Address, int]) -> None:
        first = outcome.result.first_hit
        self.add_counts(
            success=outcome.success,
            first_hops=first.hops if first is not None else None,
            messages=outcome.messages,
            duplicates=outcome.duplicates,
            visited=len(outcome.visited),
            load=load,
        )

    def add_counts(
        self,
        *,
        success: bool,
        first_hops: int | None,
        messages: dict[str, int],
        duplicates: int,
        visited: int,
        load: dict[Address, int],
    ) -> None:
        self.queries += 1
        if success:
            self.success += 1
            if first_hops is not None:
                self.hops.append(first_hops)
        for kind, count in messages.items():
            self.messages[kind] = self.messages.get(kind, 0) + count
        self.duplicates += duplicates
        self.visited += visited
        self.peaks.append(max(load.values(), default=0))
        per_peer = self.per_peer
        for peer, count in load.items():
            per_peer[peer] = per_peer.get(peer, 0) + count

    def row(self, peers: int) -> dict[str, Any]:
        n = max(1, self.queries)
        kinds = {kind: self.messages.get(kind, 0) / n for kind in ("query", "check", "hit")}
        total = sum(self.messages.values()) / n
        histogram: dict[str, int] = {}
        for hops in self.hops:
            histogram[str(hops)] = histogram.get(str(hops), 0) + 1
        loads = [count / n for count in self.per_peer.values()]
        loads.extend([0.0] * (peers - len(loads)))
        loads.sort()
        quantiles = (
            [loads[min(len(loads) - 1, round(q / 100 * (len(loads) - 1)))] for q in range(101)]
            if loads
            else []
        )
        return {
            "queries": self.queries,
            "success_rate": self.success / n,
            "hops_mean": sum(self.hops) / len(self.hops) if self.hops else None,
            "hops_p95": percentile(self.hops, 0.95) if self.hops else None,
            "messages_per_query": total,
            "search_messages_per_query": kinds["query"] + kinds["check"],
            "query_messages_per_query": kinds["query"],
            "check_messages_per_query": kinds["check"],
            "hit_messages_per_query": kinds["hit"],
            "messages_per_peer_per_query": total / peers,
            "duplicate_ratio": (
                self.duplicates / self.messages["query"] if self.messages.get("query") else 0.0
            ),
            "peak_load_mean": sum(self.peaks) / n,
            "peak_load_max": max(self.peaks, default=0),
            "visited_mean": self.visited / n,
            "hops_histogram": dict(sorted(histogram.items(), key=lambda kv: int(kv[0]))),
            "load_percentiles": [round(value, 4) for value in quantiles],
        }


class FloodLevels:
    """The messages of one lossless flood by level, to derive every smaller TTL's figures.

    A query message's level is its ``hops`` + 1 (it was sent by a peer ``hops`` away,
    so a flood of TTL t sends it iff level <= t); a hit's level is its ``hops``, the
    holder's distance (a holder answers a flood of TTL t iff it is within t).  It
    replaces the network's effect hook while installed, feeding the query tracker as
    the network's own hook does.
    """

    def __init__(self, net: StaticNetwork) -> None:
        self.net = net
        self.tracker = net.tracker
        self.records: list[tuple[Address, int, bool]] = []

    def on_effect(self, _now: float, _source: Address, effect: Effect) -> None:
        if type(effect) is Send:
            message = effect.message
            self.tracker.on_message(message)
            kind = type(message)
            if kind is Query:
                self.records.append((effect.to, message.hops + 1, False))  # type: ignore[attr-defined]
            elif kind is QueryHit:
                self.records.append((effect.to, message.hops, True))  # type: ignore[attr-defined]

    def derive(self, origin: Address, top: int, local_hit: bool) -> list[dict[str, Any]]:
        """The figures of floods of TTL 1..``top`` from the records of one of TTL ``top``
        (``local_hit``: the origin holds the item itself); clears the records."""
        records, self.records = self.records, []
        per_level = {False: [0] * (top + 1), True: [0] * (top + 1)}
        first_level: dict[Address, int] = {}
        loads: dict[Address, list[int]] = {}
        nearest_hit = top + 1
        for to, level, hit in records:
            per_level[hit][level] += 1
            if hit:
                nearest_hit = min(nearest_hit, level)
            elif level < first_level.get(to, top + 1):
                first_level[to] = level
            counts = loads.get(to)
            if counts is None:
                counts = loads[to] = [0] * (top + 1)
            counts[level] += 1
        first_level.pop(origin, None)  # copies back to the origin: duplicates, not visits
        reached = [0] * (top + 1)
        for level in first_level.values():
            reached[level] += 1
        figures: list[dict[str, Any]] = []
        queries = hits = visited = 0
        cumulative = {to: 0 for to in loads}
        for ttl in range(1, top + 1):
            queries += per_level[False][ttl]
            hits += per_level[True][ttl]
            visited += reached[ttl]
            load: dict[Address, int] = {}
            for to, counts in loads.items():
                total = cumulative[to] + counts[ttl]
                cumulative[to] = total
                if total:
                    load[to] = total
            success = local_hit or nearest_hit <= ttl
            figures.append(
                {
                    "success": success,
                    "first_hops": 0 if local_hit else (nearest_hit if success else None),
                    "messages": {"query": queries, "hit": hits, "check": 0, "fetch": 0},
                    "duplicates": queries - visited,
                    "visited": visited + 1,
                    "load": load,
                }
            )
        return figures


def lossless_flood_ttl(
    graph: nx.Graph, holders: list[list[int]], stream: list[tuple[int, int]], top: int = 7
) -> int:
    """The smallest TTL at which a lossless flood would answer FLOOD_STOP of ``stream``.

    Without loss and with equal latencies a flood of TTL t reaches exactly the peers
    within t hops (the static-mode tests check this against networkx), so a query
    succeeds iff a holder is that close: one breadth-first search per item answers
    for every TTL at once.  Lossy floods run TTLs 1..this one, so that they are
    compared with the lossless ones at the same TTLs and never run the 60,000- to
    220,000-message TTLs a lossy flood could only use to cover its losses.
    """
    distance: dict[int, dict[int, int]] = {}
    for item in {item for _, item in stream}:
        seen = dict.fromkeys(holders[item], 0)
        frontier = list(seen)
        for depth in range(1, top + 1):
            following = []
            for node in frontier:
                for other in graph.adj[node]:
                    if other not in seen:
                        seen[other] = depth
                        following.append(other)
            frontier = following
        distance[item] = seen
    for ttl in range(1, top + 1):
        found = sum(1 for source, item in stream if distance[item].get(source, top + 1) <= ttl)
        if found >= FLOOD_STOP * len(stream):
            return ttl
    return top


def _row_head(base: dict[str, Any], strategy: str, ratio: float, spec: ModeSpec) -> dict[str, Any]:
    """The fields naming a row's configuration: the task's, the placement's, the mode's."""
    return {
        **base,
        "placement": strategy,
        "replication_ratio": ratio,
        "mode": spec.mode,
        "mode_name": spec.name,
        "ttl": spec.ttl,
        "walkers": spec.walkers,
        "check_every": spec.check,
    }


def derived_flood_rows(
    net: StaticNetwork,
    stream: list[tuple[int, int]],
    names: list[str],
    top: int,
    *,
    progress: TaskProgress,
    peers: int,
) -> dict[int, dict[str, Any]]:
    """Rows of lossless floods of TTL 1..``top`` from one simulated flood of TTL ``top``
    per query (see the module docstring), by TTL."""
    sim = net.sim
    levels = FloodLevels(net)
    previous = sim.on_effect
    sim.on_effect = levels.on_effect
    meters = [Meter() for _ in range(top)]
    delivered, sent, lost = sim.delivered, sum(sim.sent.values()), sim.lost
    wall = time.perf_counter()
    cpu = time.process_time()
    try:
        for done, (source, item) in enumerate(stream, 1):
            outcome = net.query(source, "flood", key=names[item], ttl=top)
            first = outcome.result.first_hit
            figures = levels.derive(
                net.peer_of[source].address, top, first is not None and first.hops == 0
            )
            simulated = figures[-1]
            if (
                simulated["messages"]["query"] != outcome.messages["query"]
                or simulated["messages"]["hit"] != outcome.messages["hit"]
                or simulated["duplicates"] != outcome.duplicates
                or simulated["visited"] != len(outcome.visited)
                or simulated["success"] != outcome.success
            ):
                raise RuntimeError(
                    f"flood from {source}, TTL {top}: derived figures differ from the "
                    "simulator's; the derivation no longer holds"
                )
            for meter, figure in zip(meters, figures, strict=True):
                meter.add_counts(**figure)
            if done % 25 == 0:
                progress.advance(25 * top)
        progress.advance((len(stream) % 25) * top)
    finally:
        sim.on_effect = previous
    wall = time.perf_counter() - wall
    cpu = time.process_time() - cpu
    run_delivered = sim.delivered - delivered
    speed = {
        "delivered_per_second": round(run_delivered / wall, 1),
        "delivered_per_cpu_second": round(run_delivered / max(cpu, 1e-9), 1),
    }
    rows: dict[int, dict[str, Any]] = {}
    for ttl, meter in enumerate(meters, 1):
        row = meter.row(peers)
        if ttl == top:
            rows[ttl] = {
                **row,
                "wall_seconds": round(wall, 3),
                "sim_delivered": run_delivered,
                "sim_sent": sum(sim.sent.values()) - sent,
                "sim_lost": sim.lost - lost,
                "cpu_seconds": round(cpu, 3),
                **speed,
            }
        else:
            count = sum(meter.messages.values())  # lossless: every message sent arrived
            rows[ttl] = {
                **row,
                "derived_from_ttl": top,
                "wall_seconds": 0.0,
                "sim_delivered": count,
                "sim_sent": count,
                "sim_lost": 0,
                "cpu_seconds": 0.0,
                **speed,
            }
    return rows


@contextlib.contextmanager
def frozen_heap() -> Iterator[None]:
    """The objects alive now are left out of the cyclic collector for the block.

    A task's network lives for the whole task: the collector would rescan its 10^5-10^6
    long-lived objects over and over (~10% of the time).  A Dask worker runs task after
    task in one process, so the heap is thawed again even when the task fails."""
    gc.collect()
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()


def run_task(task: Task, progress: TaskProgress = NO_PROGRESS) -> list[dict[str, Any]]:
    """Run every configuration of ``task``; return one row per configuration run."""
    started = time.perf_counter()
    graph: nx.Graph = build_topology(task.topology, task.data_dir)
    nodes = sorted(graph.nodes)
    peers = len(nodes)
    search_config = SearchConfig(walk_ttl=WALK_TTL)
    net = StaticNetwork(
        graph,
        seed=stable_seed(task.seed, task.topology.name, "network", task.loss),
        loss=task.loss,
        search_config=search_config,
    )
    meter_hook = LoadMeter(net)
    popularity = zipf_popularity()
    labels: dict[tuple[str, float], list[str]] = {}
    placed: dict[tuple[str, float], list[list[int]]] = {}
    for strategy, ratio in task.configs:
        rng_seed = stable_seed(task.seed, task.topology.name, "placement", strategy, ratio)
        holders = place(strategy, popularity, nodes, ratio, random.Random(rng_seed))
        names = []
        for index, held in enumerate(holders):
            label = f"{strategy}/{ratio:g}/item{index}"
            net.place(label, held)
            names.append(label)
        labels[(strategy, ratio)] = names
        placed[(strategy, ratio)] = holders
    with frozen_heap():
        build_seconds = time.perf_counter() - started
        progress.start(task.planned_queries())
        rows: list[dict[str, Any]] = []
        base = {
            "table": task.table,
            "topology": task.topology.name,
            "topology_source": task.topology.describe(),
            "nodes": peers,
            "edges": graph.number_of_edges(),
            "mean_degree": 2 * graph.number_of_edges() / peers,
            "max_degree": max(degree for _, degree in graph.degree),
            "loss": task.loss,
            "build_seconds": round(build_seconds, 3),
        }
        sim = net.sim
        for strategy, ratio in task.configs:
            stream_seed = stable_seed(task.seed, task.topology.name, "queries", strategy, ratio)
            stream = QueryStream(nodes, popularity, stream_seed).take(task.queries)
            names = labels[(strategy, ratio)]
            flood_done = False
            flood_cap = 99
            if task.loss > 0 and any(spec.mode == "flood" for spec in task.modes):
                flood_cap = lossless_flood_ttl(graph, placed[(strategy, ratio)], stream)
            derived: dict[int, dict[str, Any]] | None = None
            flood_ttls = [spec.ttl for spec in task.modes if spec.mode == "flood"]
            if task.derive_floods and task.loss == 0 and flood_ttls:
                if flood_ttls != list(range(1, len(flood_ttls) + 1)):
                    raise ValueError(f"derived floods need TTLs 1..n, got {flood_ttls}")
                top = lossless_flood_ttl(graph, placed[(strategy, ratio)], stream, len(flood_ttls))
                derived = derived_flood_rows(
                    net, stream, names, top, progress=progress, peers=peers
                )
            for spec in task.modes:
                if spec.mode == "flood" and derived is not None:
                    if spec.ttl in derived:
                        rows.append({**_row_head(base, strategy, ratio, spec), **derived[spec.ttl]})
                    else:
                        progress.shrink(task.queries)
                    continue
                if spec.mode == "flood" and (flood_done or (spec.ttl or 0) > flood_cap):
                    progress.shrink(task.queries)
                    continue
                meter = Meter()
                delivered = sim.delivered
                sent = sum(sim.sent.values())
                lost = sim.lost
                wall = time.perf_counter()
                cpu = time.process_time()
                for done, (source, item) in enumerate(stream, 1):
                    outcome = net.query(
                        source,
                        spec.mode,
                        key=names[item],
                        ttl=spec.ttl,
                        walkers=spec.walkers,
                        check=spec.check,
                    )
                    meter.add(outcome, meter_hook.take())
                    if done % 25 == 0:
                        progress.advance(25)
                progress.advance(task.queries % 25)
                wall = time.perf_counter() - wall
                cpu = time.process_time() - cpu
                row = {
                    **_row_head(base, strategy, ratio, spec),
                    **meter.row(peers),
                    "wall_seconds": round(wall, 3),
                    "sim_delivered": sim.delivered - delivered,
                    "sim_sent": sum(sim.sent.values()) - sent,
                    "sim_lost": sim.lost - lost,
                    "cpu_seconds": round(cpu, 3),
                    "delivered_per_second": round((sim.delivered - delivered) / wall, 1),
                    "delivered_per_cpu_second": round(
                        (sim.delivered - delivered) / max(cpu, 1e-9), 1
                    ),
                }
                rows.append(row)
                if spec.mode == "flood" and row["success_rate"] >= FLOOD_STOP:
                    flood_done = True
    return rows
