"""The real network agrees: a live swarm over TCP against the simulator on its topology.

    python benchmarks/live_vs_sim.py [--peers 300] [--queries 200] [--reach-sizes 100 200]
        [--floods 25] [--out benchmarks/results/live_vs_sim.json]

Two measurements (issue 6, item 4):

**Messages per query, live against simulated.**  An ``overlay swarm`` of ``--peers``
peers runs on loopback with ``--items`` items each on a fraction ``--replication`` of
the peers, and writes its current topology as an edge list after every stats poll
(``--topology-out``: peers numbered in start order, which is how the swarm's item
plan, :func:`overlay.net.swarm.setup.seed_plan`, names holders).  Once every peer has joined one
component, the script runs ``--queries`` floods and then as many walks over TCP (each
asked of its origin through the client protocol, with the peers' default search
settings: flood TTL 7; 16 walkers of 256 hops checking every 4).  Floods run
``--concurrency`` at a time (a flood's cost does not depend on timing, and each one
waits 1.4 s for late hits); walks run ``--walk-concurrency`` at a time, one by default,
as the simulator runs them: a walk's cost depends on when hits and checks reach the
origin, and other searches sharing the two cores would only add delay to that.
The messages a batch cost are network-wide counts: the ``node.sent.<Kind>`` counters
of every peer, read by a stats request before and after the batch (one peer's own
tally would miss what the others forwarded).  Then the simulator's static mode
(:class:`overlay.sim.static.StaticNetwork`) replays the same queries (same origins, same
keys) on the topology file as it stood before the batch, with the same placement, and
the two figures are compared: they agree when the live messages per query are within
10% of the simulated ones.  Messages count every search message: flood copies or walk
steps, checks and verdicts, and hits.  A flood on a static topology is exactly
countable (TTL ``t`` from ``o``: ``deg(o)`` plus ``deg(v) - 1`` for every peer closer
than ``t``, plus ``d(o, h)`` hit messages for every holder within ``t``), so the
replay's flood figure is also checked against that formula.  Walks are random: the
replay runs the same walks ``--sim-repeats`` times and gives the standard error of
its mean; the live batch's is estimated from the replay's spread per query, and the
difference is also given in combined standard errors.  Live walks are not lock-step
as simulated ones are (a hit or a check may reach the origin after other walkers
have taken several steps), which costs them a few percent more; the simulator's
equal link latencies are its model, not a fit to loopback.  The topology keeps
moving while the queries run (the membership protocol sheds and adds links now and
then): each query is replayed on the topology file current when it started, and
the links changed over each batch are recorded.

**How long a flood takes to reach every peer** of swarms of each of ``--reach-sizes``
peers: ``overlay swarm --first-seen DIR`` makes every peer note when it first saw each
query id (:mod:`overlay.net.first_seen`: ``time.monotonic``, one clock for all processes
on Linux); ``--floods`` floods for an absent item, one at a time from random peers;
for each, the reach time is the last peer's first sighting minus the origin's (the
moment it sent the flood).  Median and 95th percentile (nearest rank) are recorded;
the goal is a median under 300 ms at 200 peers.

Every run records the machine, its load average before and after, and the exact
command.  A benchmark: it asserts nothing (``tests/benchmarks/test_live_vs_sim.py``
runs it small and checks its structure and the flood formula).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import random
import signal
import statistics
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import networkx as nx
import trio

from benchmarks.harness import Child, Listening, Run, as_typed, listening, overlay_command, started
from overlay.net.first_seen import read_first_seen
from overlay.net.swarm.setup import copies_for, seed_plan, seeded_items
from overlay.protocol.errors import OverlayError
from overlay.protocol.identity import Address
from overlay.protocol.messages import StatsReply
from overlay.sim.static import StaticNetwork, TopologyError, read_topology
from overlay.tools.cli_search import search_via
from overlay.tools.swarm import collect_stats, sent_by_kind
from search.config import SearchConfig
from search.outcome import KIND_OF
from search.store import content_key

RESULTS = Path(__file__).resolve().parent / "results" / "live_vs_sim.json"
AGREEMENT = 0.10
REACH_GOAL_SECONDS = 0.3
STATS_TIMEOUT = 15.0
"""Generous: on a loaded machine a peer may take seconds to answer a stats request, and
a poll that misses a peer would miss its counters."""
KIND_OF_NAME = {kind.__name__: counted for kind, counted in KIND_OF.items()}
"""Wire message names by the kind an outcome counts them under (query, check, hit)."""
SEARCH_KINDS = ("query", "check", "hit")


def _progress(text: str) -> None:
    print(f"live_vs_sim: {text}", file=sys.stderr, flush=True)


# ---------------------------------------------------------------------- the swarm


class SwarmTopology:
    """A ``--topology-out`` file: the graph (nodes numbered in start order) and who is who."""

    def __init__(self, path: Path) -> None:
        self.graph = read_topology(path)
        self.ids: dict[int, str] = {}
        self.addresses: dict[int, Address] = {}
        for line in path.read_text(encoding="utf-8").splitlines():
            parts = line.split()
            if len(parts) == 5 and parts[:2] == ["#", "node"]:
                node = int(parts[2])
                self.ids[node] = parts[3]
                self.addresses[node] = Address.parse(parts[4])
        self.graph.add_nodes_from(self.ids)  # peers with no link yet are peers too

    def complete(self, peers: int) -> bool:
        return (
            len(self.ids) == peers
            and set(self.ids) == set(range(peers))
            and nx.is_connected(self.graph)
        )


class LiveSwarm:
    """An ``overlay swarm`` subprocess: run for a block (:meth:`running`), waited for,
    stopped with its summary."""

    def __init__(self, args: Sequence[str], workdir: Path) -> None:
        self.topology_path = workdir / "topology.edgelist"
        self.command = overlay_command(
            "swarm",
            "--port",
            "0",
            "--duration",
            "3600",
            "--json",
            "--topology-out",
            str(self.topology_path),
            *args,
        )
        self.child: Child[Listening] | None = None
        self._latest: tuple[int, SwarmTopology] | None = None

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[None]:
        """The swarm runs for the block; SIGINT (its graceful stop) at the end."""
        async with started(
            self.command,
            listening("bootstrap"),
            ready_on="stderr",
            stop=signal.SIGINT,
            grace=120,
        ) as child:
            self.child = child
            yield

    async def converged(self, peers: int, timeout: float) -> tuple[SwarmTopology, float]:
        """Wait until the topology file shows every peer in one component."""
        started = time.monotonic()
        with trio.fail_after(timeout):
            while True:
                assert self.child is not None
                if self.child.process.returncode is not None:
                    raise RuntimeError(f"the swarm exited: {self.child.stderr_tail[-2000:]!r}")
                try:
                    topology = SwarmTopology(self.topology_path)
                except (TopologyError, ValueError, OSError):
                    topology = None
                if topology is not None and topology.complete(peers):
                    return topology, time.monotonic() - started
                await trio.sleep(0.5)

    def topology(self) -> SwarmTopology:
        """The topology file as it is now (parsed again only when it changed)."""
        stamp = self.topology_path.stat().st_mtime_ns
        if self._latest is None or self._latest[0] != stamp:
            self._latest = (stamp, SwarmTopology(self.topology_path))
        return self._latest[1]

    async def settled(self, timeout: float, poll: float = 2.0) -> tuple[SwarmTopology, float]:
        """Wait until the number of links stops moving: a swarm that has just formed
        has more links than its target degree and sheds them over the next seconds."""
        started = time.monotonic()
        counts: list[int] = []
        with trio.move_on_after(timeout):
            while True:
                counts.append(self.topology().graph.number_of_edges())
                recent = counts[-4:]
                if len(recent) == 4 and max(recent) - min(recent) <= 0.02 * max(recent):
                    break
                await trio.sleep(poll)
        return self.topology(), time.monotonic() - started

    async def stop(self) -> dict[str, Any]:
        """Stop it now (as the end of :meth:`running` would); its JSON summary."""
        child = self.child
        assert child is not None
        await child.stop()
        try:
            summary: dict[str, Any] = json.loads(child.stdout)
        except ValueError:
            summary = {"error": child.stderr_tail[-2000:]}
        return summary


def _kinds(replies: Sequence[StatsReply]) -> dict[str, int]:
    """Search messages sent, network-wide, by kind (query, check, hit)."""
    totals = dict.fromkeys(SEARCH_KINDS, 0)
    for name, count in sent_by_kind(replies).items():
        kind = KIND_OF_NAME.get(name)
        if kind in totals:
            totals[kind] += count
    return totals


def _counter_total(replies: Sequence[StatsReply], name: str) -> int:
    return sum(c.value for r in replies for c in r.counters if c.name == name)


def _edges(topology: SwarmTopology) -> set[tuple[int, int]]:
    return {(min(u, v), max(u, v)) for u, v in topology.graph.edges}


async def live_batch(
    swarm: LiveSwarm,
    mode: str,
    queries: Sequence[tuple[int, int]],
    keys: Sequence[str],
    concurrency: int,
) -> dict[str, Any]:
    """Run ``queries`` (origin node, item) over TCP; messages per query, network-wide.

    Each query notes the topology file current when it started (the swarm rewrites it
    after every stats poll, once a second), so that the replay can put it on the
    graph it ran on.
    """
    before_topology = swarm.topology()
    addresses = [before_topology.addresses[n] for n in sorted(before_topology.addresses)]
    replies, unanswered_before = await collect_stats(addresses, STATS_TIMEOUT)
    sent_before = _kinds(replies)
    limited_before = _counter_total(replies, "search.rate_limited")
    results: list[dict[str, Any]] = []
    limiter = trio.CapacityLimiter(concurrency)
    started = time.monotonic()

    async def one(origin: int, item: int) -> None:
        async with limiter:
            current = swarm.topology()
            via = current.addresses.get(origin, before_topology.addresses[origin])
            try:
                found = await search_via(via, mode, key=keys[item])
            except OverlayError as error:
                results.append({"origin": origin, "item": item, "error": str(error)})
                return
            results.append(
                {
                    "origin": origin,
                    "item": item,
                    "success": found.success,
                    "error": found.error,
                    "topology": current,
                }
            )

    async with trio.open_nursery() as nursery:
        for origin, item in queries:
            nursery.start_soon(one, origin, item)
    seconds = time.monotonic() - started
    await trio.sleep(1.0)  # the last hits and verdicts land before the counters are read
    replies, unanswered_after = await collect_stats(addresses, STATS_TIMEOUT)
    sent_after = _kinds(replies)
    after_topology = swarm.topology()
    sent = {kind: sent_after[kind] - sent_before[kind] for kind in SEARCH_KINDS}
    n = len(queries)
    edges_before, edges_after = _edges(before_topology), _edges(after_topology)
    return {
        "mode": mode,
        "queries": n,
        "concurrency": concurrency,
        "wall_seconds": round(seconds, 2),
        "success_rate": sum(1 for r in results if r.get("success")) / n,
        "errors": sum(1 for r in results if r.get("error")),
        "messages": sent,
        "messages_per_query": sum(sent.values()) / n,
        "search_messages_per_query": (sent["query"] + sent["check"]) / n,
        "stats_unanswered": unanswered_before + unanswered_after,
        "rate_limited": _counter_total(replies, "search.rate_limited") - limited_before,
        "topology": {
            "edges_before": len(edges_before),
            "edges_after": len(edges_after),
            "edges_changed": len(edges_before ^ edges_after),
        },
        "_replay": [(r["topology"], r["origin"], r["item"]) for r in results if "topology" in r],
    }


# ---------------------------------------------------------------------- the replay


def flood_formula(graph: nx.Graph, origin: int, ttl: int, holders: Sequence[int]) -> dict[str, int]:
    """A flood's exact cost on a static topology with equal latencies.

    Every peer closer than ``ttl`` forwards the query to all its neighbors but the one
    it came from (the origin to all of them); each holder within ``ttl`` (other than the
    origin) answers with one hit that travels back ``d(origin, holder)`` hops.
    """
    distance = nx.single_source_shortest_path_length(graph, origin, cutoff=ttl)
    query = graph.degree(origin) + sum(
        graph.degree(v) - 1 for v, d in distance.items() if 0 < d < ttl
    )
    hit = sum(distance[h] for h in holders if h != origin and h in distance)
    return {"query": query, "check": 0, "hit": hit}


def _mean_and_spread(values: Sequence[float]) -> tuple[float, float]:
    """Mean and standard deviation (0 for a single value)."""
    return statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else 0.0


def sim_replay(
    mode: str,
    queries: Sequence[tuple[SwarmTopology, int, int]],
    *,
    plan: Sequence[Sequence[int]],
    items: Sequence[tuple[bytes, str]],
    repeats: int,
    seed: int,
) -> dict[str, Any]:
    """The same queries in the static simulator: each (topology, origin, item) on the
    topology it ran on live, with the same placement, ``repeats`` times."""
    config = SearchConfig()
    totals: list[float] = []
    per_kind = dict.fromkeys(SEARCH_KINDS, 0)
    success = 0
    formula_total = 0
    started = time.perf_counter()
    for repeat in range(repeats):
        networks: dict[int, StaticNetwork] = {}
        for topology, origin, item in queries:
            net = networks.get(id(topology))
            if net is None:
                net = StaticNetwork(topology.graph, seed=seed + repeat, search_config=config)
                for (value, name), holders in zip(items, plan, strict=True):
                    net.place(name, holders, value=value)
                networks[id(topology)] = net
            outcome = net.query(origin, mode, key=content_key(items[item][0]))
            counted = {kind: outcome.messages.get(kind, 0) for kind in SEARCH_KINDS}
            for kind in SEARCH_KINDS:
                per_kind[kind] += counted[kind]
            totals.append(sum(counted.values()))
            success += outcome.success
            if mode == "flood" and repeat == 0:
                formula = flood_formula(topology.graph, origin, config.flood_ttl, plan[item])
                formula_total += sum(formula.values())
    runs = len(totals)
    mean, spread = _mean_and_spread(totals)
    result: dict[str, Any] = {
        "mode": mode,
        "queries": len(queries),
        "topologies": len({id(topology) for topology, _, _ in queries}),
        "repeats": repeats,
        "success_rate": success / runs,
        "messages": {kind: count / repeats for kind, count in per_kind.items()},
        "messages_per_query": mean,
        "messages_per_query_stdev": spread,
        "messages_per_query_standard_error": spread / math.sqrt(runs),
        "search_messages_per_query": (per_kind["query"] + per_kind["check"]) / runs,
        "cpu_seconds": round(time.perf_counter() - started, 2),
    }
    if mode == "flood":
        result["formula_messages_per_query"] = formula_total / len(queries)
    return result


def compare(live: dict[str, Any], sim: dict[str, Any]) -> dict[str, Any]:
    """Live against simulated messages per query, with the noise to read it by.

    The live batch gives one network-wide total, not a figure per query, so its
    standard error is estimated from the replay's spread per query (the same queries
    on the same graph): stdev / sqrt(live queries).  A flood's figures differ only as
    far as the graph moved under them.
    """
    ratio = live["messages_per_query"] / sim["messages_per_query"]
    # A flood's cost is a function of the graph and the origin, and both sides ran the
    # same origins: only walks (random) differ by chance.
    random_cost = live["mode"] != "flood"
    live_error = (
        sim["messages_per_query_stdev"] / math.sqrt(live["queries"]) if random_cost else 0.0
    )
    noise = math.hypot(live_error, sim["messages_per_query_standard_error"])
    difference = live["messages_per_query"] - sim["messages_per_query"]
    return {
        "mode": live["mode"],
        "live_messages_per_query": live["messages_per_query"],
        "sim_messages_per_query": sim["messages_per_query"],
        "live_over_sim": ratio,
        "agree_within_10_percent": abs(ratio - 1.0) <= AGREEMENT,
        "live_standard_error_estimate": live_error,
        "difference_in_standard_errors": difference / noise if random_cost and noise > 0 else None,
    }


async def messages_comparison(args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    peers: int = args.peers
    seed: int = args.seed
    items = seeded_items(args.items, seed)
    keys = [content_key(value) for value, _ in items]
    plan = seed_plan(args.items, copies_for(args.replication, peers), peers, seed)
    rng = random.Random(f"live vs sim queries {seed}")
    streams = {
        mode: [(rng.randrange(peers), rng.randrange(args.items)) for _ in range(args.queries)]
        for mode in ("flood", "walk")
    }
    swarm_args = [
        "--peers",
        str(peers),
        "--seed",
        str(seed),
        "--items",
        str(args.items),
        "--replication",
        repr(args.replication),
        "--no-super-peers",  # flat searches, replayed on the flat topology
        "--no-searches",  # only this script's queries
        *args.swarm_arg,
    ]
    swarm = LiveSwarm(swarm_args, workdir)
    result: dict[str, Any] = {"swarm_command": as_typed(swarm.command)}
    async with swarm.running():
        try:
            _progress(f"waiting for {peers} peers to join one component")
            topology, waited = await swarm.converged(peers, args.join_timeout)
            result["converged_after_seconds"] = round(waited, 1)
            result["peers"] = peers
            result["mean_degree"] = 2 * topology.graph.number_of_edges() / peers
            _progress(f"converged after {waited:.1f} s; mean degree {result['mean_degree']:.2f}")
            topology, waited = await swarm.settled(args.settle)
            result["settled_after_seconds"] = round(waited, 1)
            result["mean_degree_settled"] = 2 * topology.graph.number_of_edges() / peers
            _progress(
                f"links settled after {waited:.1f} s more; mean degree "
                f"{result['mean_degree_settled']:.2f}"
            )
            live: dict[str, dict[str, Any]] = {}
            for mode, stream in streams.items():
                _progress(f"{len(stream)} {mode} queries over TCP")
                concurrency = args.concurrency if mode == "flood" else args.walk_concurrency
                live[mode] = await live_batch(swarm, mode, stream, keys, concurrency)
                _progress(
                    f"{mode}: {live[mode]['messages_per_query']:.1f} messages per query, "
                    f"success {live[mode]['success_rate']:.3f}"
                )
        finally:
            result["swarm_summary"] = {
                key: value
                for key, value in (await swarm.stop()).items()
                if key in ("peers", "alive", "components", "degree", "wall_seconds", "error")
            }
    result["live"] = {}
    result["sim"] = {}
    result["agreement"] = []
    for mode in streams:
        replay = live[mode].pop("_replay")
        repeats = 1 if mode == "flood" else args.sim_repeats
        _progress(f"replaying the {mode} queries in the simulator ({repeats}x)")
        sim = sim_replay(mode, replay, plan=plan, items=items, repeats=repeats, seed=seed)
        result["live"][mode] = live[mode]
        result["sim"][mode] = sim
        result["agreement"].append(compare(live[mode], sim))
    result["items"] = {
        "count": args.items,
        "replication": args.replication,
        "holders_per_item": len(plan[0]),
    }
    return result


# ---------------------------------------------------------------------- flood reach


def nearest_rank(values: Sequence[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[max(1, math.ceil(fraction * len(ordered))) - 1]


async def flood_reach(args: argparse.Namespace, peers: int, workdir: Path) -> dict[str, Any]:
    """Time ``--floods`` floods to reach every peer of a ``peers``-peer swarm."""
    seen_dir = workdir / f"first-seen-{peers}"
    swarm = LiveSwarm(
        ["--peers", str(peers), "--seed", str(args.seed), "--first-seen", str(seen_dir)],
        workdir / f"reach-{peers}",
    )
    swarm.topology_path.parent.mkdir(parents=True, exist_ok=True)
    rng = random.Random(f"flood reach {args.seed} {peers}")
    flood_ids: list[str] = []
    errors = 0
    async with swarm.running():
        try:
            _progress(f"reach: waiting for {peers} peers to join one component")
            topology, waited = await swarm.converged(peers, args.join_timeout)
            topology, _ = await swarm.settled(args.settle)
            _progress(f"reach: {args.floods} floods over {peers} peers")
            for n in range(args.floods):
                via = topology.addresses[rng.randrange(peers)]
                try:
                    found = await search_via(via, "flood", keywords=f"absent probe {n}")
                except OverlayError:
                    errors += 1
                    continue
                if found.search_id is not None:
                    flood_ids.append(found.search_id)
        finally:
            await swarm.stop()
    seen, dropped = read_first_seen(seen_dir)
    times: list[float] = []
    reached: list[int] = []
    for flood_id in flood_ids:
        sightings = seen.get(flood_id, {})
        reached.append(len(sightings))
        if len(sightings) == peers:
            times.append(max(sightings.values()) - min(sightings.values()))
    result: dict[str, Any] = {
        "peers": peers,
        "converged_after_seconds": round(waited, 1),
        "floods": len(flood_ids),
        "client_errors": errors,
        "reached_every_peer": len(times),
        "reached_min": min(reached, default=0),
        "sightings_dropped": dropped,
        "reach_seconds": [round(t, 4) for t in times],
    }
    if times:
        result["median_seconds"] = statistics.median(times)
        result["p95_seconds"] = nearest_rank(times, 0.95)
        result["max_seconds"] = max(times)
    return result


# ---------------------------------------------------------------------- main


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--peers", type=int, default=300)
    parser.add_argument("--queries", type=int, default=200, help="floods, and as many walks")
    parser.add_argument("--items", type=int, default=20)
    parser.add_argument(
        "--replication", type=float, default=0.05, help="fraction of peers holding each item"
    )
    parser.add_argument("--concurrency", type=int, default=8, help="floods in flight at once")
    parser.add_argument("--walk-concurrency", type=int, default=1, help="walks in flight at once")
    parser.add_argument("--sim-repeats", type=int, default=5, help="replays of the walks")
    parser.add_argument("--reach-sizes", type=int, nargs="*", default=[100, 200])
    parser.add_argument("--floods", type=int, default=25, help="floods timed per reach size")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--join-timeout", type=float, default=180.0)
    parser.add_argument(
        "--settle",
        type=float,
        default=60.0,
        help="most seconds to wait after convergence for the number of links to settle",
    )
    parser.add_argument(
        "--swarm-arg",
        action="append",
        default=[],
        help="extra argument for `overlay swarm` (repeat; e.g. --swarm-arg=--query-rate=500)",
    )
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--json", action="store_true", help="print the result on stdout")
    args = parser.parse_args(argv)
    if args.peers < 2 or args.queries < 1 or args.items < 1 or args.floods < 1:
        parser.error("--peers >= 2, --queries, --items and --floods >= 1")
    return args


async def run(args: argparse.Namespace) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="live_vs_sim-") as tmp:
        workdir = Path(tmp)
        comparison = await messages_comparison(args, workdir)
        reach = [await flood_reach(args, size, workdir) for size in args.reach_sizes]
    return {"comparison": comparison, "flood_reach": reach}


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    recording = Run.begin("benchmarks/live_vs_sim.py", argv)
    result = trio.run(run, args)
    reach_goal = next((r for r in result["flood_reach"] if r["peers"] == 200), None)
    figures = {
        **result,
        "claims": {
            "messages_agree_within_10_percent": all(
                a["agree_within_10_percent"] for a in result["comparison"]["agreement"]
            ),
            "flood_reaches_200_peers_under_300_ms_median": (
                reach_goal.get("median_seconds", math.inf) < REACH_GOAL_SECONDS
                if reach_goal is not None
                else None
            ),
        },
    }
    report = recording.write(args.out, figures)
    if args.json:
        print(json.dumps(report))
    else:
        for row in result["comparison"]["agreement"]:
            print(
                f"{row['mode']}: live {row['live_messages_per_query']:.1f} vs sim "
                f"{row['sim_messages_per_query']:.1f} messages per query "
                f"(x{row['live_over_sim']:.3f}; agree: {row['agree_within_10_percent']})"
            )
        for reach in result["flood_reach"]:
            if "median_seconds" in reach:
                print(
                    f"flood reach, {reach['peers']} peers: median "
                    f"{1000 * reach['median_seconds']:.0f} ms, p95 "
                    f"{1000 * reach['p95_seconds']:.0f} ms over {reach['reached_every_peer']} "
                    "floods"
                )
        print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
