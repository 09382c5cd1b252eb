"""Search on a real swarm under injected message loss, and a partition healed.

    python benchmarks/faults.py [--peers 50] [--losses 0,0.2] [--searches 40]
        [--concurrency 8] [--no-partition] [--json] [--out benchmarks/results]
        [--only search,crash,super,bootstrap]

For each loss rate the script runs ``overlay swarm --loss P`` (every peer drops each
message it sends with probability P, see :mod:`overlay.net.faults`) with seeded items,
waits until every peer has joined one component, then runs ``--searches`` flood
searches (TTL 7) and as many walks (16 walkers) for seeded keys, from random peers,
through the client protocol (the client's own link is not faulted: only the overlay's
messages are).  The figure is the success rate of each mode against loss 0.

With the partition phase (loss 0 only), the swarm runs with ``--partition-file``; the
script then splits the peers in two halves by writing that file, waits until no link
crosses the halves, heals it by emptying the file and times the seconds until the
overlay is one component again (polling every peer's stats every half second).

The other parts (``--only``; each on its own ``overlay swarm --control``, driven by
lines on its input) time recoveries, polling every peer's stats every half second:

* ``crash``: a seeded random half of the peers crashed at once (``crash HOST:PORT``
  lines); seconds until the survivors are one component with no link to a crashed peer
  left and every degree in [1, max_degree];
* ``super``: with ``--super-peers``, once every weak peer is attached to k live super
  peers, the super peer with the most weak peers crashed; seconds until each of its weak
  peers is attached to k live super peers again and ``index_coverage`` >= 0.999;
* ``bootstrap``: once converged, the bootstrap stopped (``stop-bootstrap``), then
  ``NEWCOMERS`` peers started with ``overlay peer --join`` a random live peer; seconds
  until each has a neighbor and the whole overlay is one component.

Results go to ``faults.json`` under ``--out``; a run replaces only the parts it ran.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import random
import signal
import statistics
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import networkx as nx
import trio

from benchmarks.harness import (
    Child,
    Listening,
    Run,
    as_typed,
    listening,
    overlay_command,
    read_result,
    started,
    swarm_command,
    write_json,
)
from overlay.core.config import MembershipConfig, SuperConfig
from overlay.core.peer import PeerSnapshot
from overlay.net.faults import write_partition_file
from overlay.net.swarm.setup import seeded_items
from overlay.protocol.errors import OverlayError
from overlay.protocol.identity import Address, PeerId
from overlay.sim.topology import degree_stats, graph_of, super_layer_figures
from overlay.tools.cli_search import search_via
from overlay.tools.crawl import list_members
from overlay.tools.swarm import collect_stats, snapshot_of
from search.store import content_key

REPO = Path(__file__).resolve().parents[1]
SCRIPT = "benchmarks/faults.py"
SEED = 1
ITEMS = 20
REPLICATION = 0.04
JOIN_TIMEOUT = 120.0
SETTLE = 5.0
POLL = 0.5
PARTITION_TIMEOUT = 90.0


def _progress(text: str) -> None:
    print(f"faults: {text}", file=sys.stderr, flush=True)


async def _graph(addresses: Sequence[Address]) -> nx.Graph:
    replies, _ = await collect_stats(addresses, 5.0)
    return graph_of([snapshot_of(r) for r in replies])


async def _converge(bootstrap: Address, peers: int) -> tuple[list[Address], float]:
    started = time.monotonic()
    with trio.fail_after(JOIN_TIMEOUT):
        while len(members := await list_members(bootstrap)) < peers:
            await trio.sleep(POLL)
        addresses = [m.contact.address for m in members]
        while True:
            graph = await _graph(addresses)
            if graph.number_of_nodes() == peers and nx.is_connected(graph):
                return addresses, time.monotonic() - started
            await trio.sleep(POLL)


async def _searches(
    addresses: Sequence[Address], mode: str, count: int, concurrency: int, seed: int
) -> dict[str, Any]:
    keys = [content_key(value) for value, _ in seeded_items(ITEMS, SEED)]
    rng = random.Random(f"{seed} {mode}")
    plan = [(rng.choice(addresses), rng.choice(keys)) for _ in range(count)]
    outcomes: list[tuple[bool, float]] = []
    errors = 0
    limiter = trio.CapacityLimiter(concurrency)

    async def one(via: Address, key: str) -> None:
        nonlocal errors
        async with limiter:
            options: dict[str, Any] = {"ttl": 7} if mode == "flood" else {"walkers": 16}
            started = time.monotonic()
            try:
                result = await search_via(via, mode, key=key, **options)
            except OverlayError:
                errors += 1
                return
            outcomes.append((result.success, time.monotonic() - started))

    async with trio.open_nursery() as nursery:
        for via, key in plan:
            nursery.start_soon(one, via, key)
    found = sum(1 for ok, _ in outcomes if ok)
    return {
        "searches": count,
        "answered": len(outcomes),
        "client_errors": errors,
        "succeeded": found,
        "success_rate": found / count if count else None,
        "median_seconds": statistics.median([s for _, s in outcomes]) if outcomes else None,
    }


def _crossing(graph: nx.Graph, left: set[str]) -> int:
    return sum(1 for a, b in graph.edges if (a in left) != (b in left))


async def _partition(addresses: Sequence[Address], path: Path) -> dict[str, Any]:
    replies, _ = await collect_stats(addresses, 5.0)
    ordered = sorted(replies, key=lambda r: (r.address.port, r.id))
    half = ordered[: len(ordered) // 2]
    left_ids = {r.id for r in half}
    write_partition_file(path, [r.address for r in half])
    cut = time.monotonic()
    split_seconds = None
    with trio.move_on_after(PARTITION_TIMEOUT):
        while True:
            graph = await _graph(addresses)
            if _crossing(graph, left_ids) == 0:
                split_seconds = time.monotonic() - cut
                break
            await trio.sleep(POLL)
    components_during = nx.number_connected_components(await _graph(addresses))
    write_partition_file(path)  # healed
    healed = time.monotonic()
    merge_seconds = None
    with trio.move_on_after(PARTITION_TIMEOUT):
        while True:
            graph = await _graph(addresses)
            if graph.number_of_nodes() == len(addresses) and nx.is_connected(graph):
                merge_seconds = time.monotonic() - healed
                break
            await trio.sleep(POLL)
    return {
        "sides": [len(half), len(ordered) - len(half)],
        "seconds_until_no_link_crosses": split_seconds,
        "components_during": components_during,
        "seconds_to_one_component_after_heal": merge_seconds,
        "poll_seconds": POLL,
    }


async def run_one(args: argparse.Namespace, loss: float, partition: bool) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as scratch:
        partition_file = Path(scratch) / "partition"
        extra = [
            "--items", str(ITEMS), "--replication", str(REPLICATION),
            "--loss", repr(loss), "--fault-seed", str(args.seed),
        ]  # fmt: skip
        if partition:
            extra += ["--partition-file", str(partition_file)]
        async with _running_swarm(args, extra) as swarm:
            row: dict[str, Any] = {"loss": loss, "command": as_typed(swarm.command)}
            addresses, converged = await _converge(swarm.ready.address, args.peers)
            row["converged_seconds"] = converged
            _progress(f"loss {loss}: one component after {converged:.1f} s")
            await trio.sleep(args.settle)
            for mode in ("flood", "walk"):
                row[mode] = await _searches(
                    addresses, mode, args.searches, args.concurrency, args.seed
                )
                _progress(f"loss {loss}: {mode} {row[mode]}")
            if partition:
                row["partition"] = await _partition(addresses, partition_file)
                _progress(f"loss {loss}: partition {row['partition']}")
        summary = json.loads(swarm.stdout) if swarm.stdout.strip() else {}
        row["faults_and_limits"] = summary.get("faults_and_limits")
        row["components_at_end"] = summary.get("components")
        return row


async def run(args: argparse.Namespace) -> list[dict[str, Any]]:
    rows = []
    for loss in args.losses:
        rows.append(await run_one(args, loss, partition=args.partition and loss == 0.0))
    return rows


# ---------------------------------------------------------------------- crash, super, bootstrap

CRASH_TIMEOUT = 90.0
NEWCOMERS = 3


def _running_swarm(
    args: argparse.Namespace, extra: Sequence[str]
) -> contextlib.AbstractAsyncContextManager[Child[Listening]]:
    """``overlay swarm`` running (``ready.address``: its bootstrap); SIGTERMed at the end
    of the block, its JSON summary then in ``stdout``."""
    command = swarm_command(
        args.peers, SEED, "--processes", str(args.processes), "--interval", "3600", *extra
    )
    if "--super-peers" not in extra:  # every part but `super` measures the flat overlay
        command += ["--no-super-peers", *(() if "--items" in extra else ("--items", "0"))]
    _progress(as_typed(command))
    return started(
        command, listening("bootstrap"), ready_on="stderr", stop=signal.SIGTERM, grace=120
    )


async def _snapshots(addresses: Sequence[Address]) -> list[PeerSnapshot]:
    replies, _ = await collect_stats(addresses, 5.0)
    return [snapshot_of(r) for r in replies]


async def _crash_half(args: argparse.Namespace) -> dict[str, Any]:
    """Part ``crash``: half of the peers crashed at once; seconds until the survivors'
    links form one component, and until, besides, no survivor lists a crashed peer as a
    neighbor any more (each noticed its dead) and every degree is in [1, max_degree]."""
    max_degree = MembershipConfig().max_degree
    async with _running_swarm(args, ["--control"]) as swarm:
        addresses, converged = await _converge(swarm.ready.address, args.peers)
        await trio.sleep(args.settle)
        victims = set(random.Random(f"{args.seed} crash").sample(addresses, len(addresses) // 2))
        survivors = [a for a in addresses if a not in victims]
        dead = {s.id for s in await _snapshots(addresses) if s.address in victims}
        await swarm.send(*(f"crash {v}" for v in sorted(victims, key=str)))
        crashed = time.monotonic()
        _progress(f"crash: {len(victims)} of {len(addresses)} peers crashed")
        seconds = None
        connected = None
        polls = 0
        shots: list[PeerSnapshot] = []
        with trio.move_on_after(CRASH_TIMEOUT):
            while True:
                polls += 1
                shots = await _snapshots(survivors)
                graph = graph_of(shots, alive={s.id for s in shots})
                degrees = [d for _, d in graph.degree]
                whole = len(shots) == len(survivors) and nx.is_connected(graph)
                if whole and connected is None:
                    connected = time.monotonic() - crashed
                if (
                    whole
                    and not any(dead.intersection(s.neighbors) for s in shots)
                    and all(1 <= d <= max_degree for d in degrees)
                ):
                    seconds = time.monotonic() - crashed
                    break
                await trio.sleep(POLL)
        degrees = [d for _, d in graph_of(shots, alive={s.id for s in shots}).degree]
    return {
        "swarm_command": as_typed(swarm.command),
        "converged_seconds": converged,
        "crashed": len(victims),
        "survivors": len(survivors),
        "seconds_to_one_component": connected,
        "seconds_to_one_component_no_dead_neighbor_degrees_in_bounds": seconds,
        "degree_bounds": [1, max_degree],
        "survivor_degrees_then": degree_stats(degrees),
        "polls": polls,
        "poll_seconds": POLL,
    }


def _attached(shots: Sequence[PeerSnapshot]) -> dict[PeerId, list[PeerId]]:
    """Each live weak peer's live super peers."""
    supers = {s.id for s in shots if s.role == "super"}
    return {s.id: [p for p in s.super_peers if p in supers] for s in shots if s.role == "weak"}


async def _crash_super(args: argparse.Namespace) -> dict[str, Any]:
    """Part ``super``: once every weak peer is attached to k live super peers, the super
    peer with the most weak peers crashed; seconds until each of its weak peers is attached
    to k live super peers again and the index covers (>= 0.999) every weak peer's items."""
    k = SuperConfig().k
    extra = ["--control", "--super-peers", "--items", str(ITEMS)]
    extra += ["--replication", str(REPLICATION)]
    async with _running_swarm(args, extra) as swarm:
        addresses, converged = await _converge(swarm.ready.address, args.peers)
        started = time.monotonic()
        settled = None
        shots: list[PeerSnapshot] = []
        with trio.move_on_after(CRASH_TIMEOUT):
            while True:
                shots = await _snapshots(addresses)
                figures = super_layer_figures(shots, {s.id for s in shots})
                if len(shots) == len(addresses) and figures["unattached_weak"] == 0:
                    settled = time.monotonic() - started
                    break
                await trio.sleep(POLL)
        row: dict[str, Any] = {
            "swarm_command": as_typed(swarm.command),
            "converged_seconds": converged,
            "k": k,
            "seconds_until_layer_settled": settled,
        }
        if settled is None:
            return row
        attached = _attached(shots)
        supers_before = sum(1 for s in shots if s.role == "super")
        load = Counter(p for supers in attached.values() for p in supers)
        victim, orphans = load.most_common(1)[0]
        where = next(s.address for s in shots if s.id == victim)
        await swarm.send(f"crash {where}")
        crashed = time.monotonic()
        left = [a for a in addresses if a != where]
        _progress(f"super: crashed the super peer at {where} ({orphans} weak peers)")
        orphaned = {weak for weak, supers in attached.items() if victim in supers}
        reattached = None
        covered = None
        figures = {}
        with trio.move_on_after(CRASH_TIMEOUT):
            while True:
                shots = await _snapshots(left)
                now = _attached(shots)
                figures = super_layer_figures(shots, {s.id for s in shots})
                # An orphan elected super peer meanwhile needs no super peer of its own.
                done = all(len(now[w]) >= k for w in orphaned if w in now)
                if done and reattached is None:
                    reattached = time.monotonic() - crashed
                coverage = figures["index_coverage"]
                if done and coverage is not None and coverage >= 0.999:
                    covered = time.monotonic() - crashed
                    break
                await trio.sleep(POLL)
        row |= {
            "supers_before": supers_before,
            "weak_peers_of_crashed_super": orphans,
            "seconds_until_orphans_reattached_to_k": reattached,
            "seconds_until_reattached_and_index_coverage_0_999": covered,
            "supers_then": sum(1 for s in shots if s.role == "super"),
            "crashed_super_refuses_connections": await _refuses(where),
            "unattached_weak_then": figures.get("unattached_weak"),
            "index_coverage_then": figures.get("index_coverage"),
            "poll_seconds": POLL,
        }
        return row


def _newcomer(via: Address, seed: int) -> contextlib.AbstractAsyncContextManager[Child[Listening]]:
    """``overlay peer --join VIA`` running (``ready.address``: where it listens)."""
    command = overlay_command("peer", "--join", str(via), "--seed", str(seed), "--no-super-peers")
    return started(command, listening("peer"), stop=signal.SIGTERM, grace=15)


async def _refuses(address: Address) -> bool:
    try:
        stream = await trio.open_tcp_stream(address.host, address.port)
    except OSError:
        return True
    await stream.aclose()
    return False


async def _bootstrap_down(args: argparse.Namespace) -> dict[str, Any]:
    """Part ``bootstrap``: the swarm's bootstrap stopped once the overlay converged, then
    ``NEWCOMERS`` peers started with ``overlay peer --join`` a random live peer; seconds
    until each has a neighbor and the overlay, newcomers included, is one component."""
    async with _running_swarm(args, ["--control"]) as swarm, contextlib.AsyncExitStack() as peers:
        bootstrap = swarm.ready.address
        addresses, converged = await _converge(bootstrap, args.peers)
        await swarm.send("stop-bootstrap")
        with trio.fail_after(30):
            while not await _refuses(bootstrap):
                await trio.sleep(POLL)
        _progress(f"bootstrap: {bootstrap} refuses connections")
        rng = random.Random(f"{args.seed} bootstrap")
        started = time.monotonic()
        fresh: list[Address] = []
        for index in range(NEWCOMERS):
            peer = await peers.enter_async_context(
                _newcomer(rng.choice(addresses), args.seed + index)
            )
            fresh.append(peer.ready.address)
        joined = None
        degrees: list[int] = []
        with trio.move_on_after(CRASH_TIMEOUT):
            while True:
                shots = await _snapshots([*addresses, *fresh])
                graph = graph_of(shots, alive={s.id for s in shots})
                by_address = {s.address: s.id for s in shots}
                degrees = [graph.degree[by_address[a]] if a in by_address else 0 for a in fresh]
                if (
                    len(shots) == len(addresses) + len(fresh)
                    and min(degrees) >= 1
                    and nx.is_connected(graph)
                ):
                    joined = time.monotonic() - started
                    break
                await trio.sleep(POLL)
    return {
        "swarm_command": as_typed(swarm.command) + " (then `stop-bootstrap` on its input)",
        "converged_seconds": converged,
        "bootstrap_refused_connections": True,
        "newcomers": NEWCOMERS,
        "newcomer_command": "overlay peer --join <a random live peer>",
        "seconds_until_newcomers_joined_one_component": joined,
        "newcomer_degrees_then": degrees,
        "poll_seconds": POLL,
    }


PARTS = {"crash": _crash_half, "super": _crash_super, "bootstrap": _bootstrap_down}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--peers", type=int, default=50)
    parser.add_argument("--processes", type=int, default=2)
    parser.add_argument(
        "--losses", type=lambda t: [float(x) for x in t.split(",")], default=[0.0, 0.2]
    )
    parser.add_argument("--searches", type=int, default=40, help="per mode and loss rate")
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--settle", type=float, default=SETTLE, help="seconds to wait after convergence"
    )
    parser.add_argument("--no-partition", dest="partition", action="store_false")
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results")
    parser.add_argument("--json", action="store_true")
    parser.add_argument(
        "--only",
        type=lambda t: t.split(","),
        default=["search"],
        help="comma-separated parts: search (loss and partition), crash (half the peers), "
        "super (the busiest super peer), bootstrap (joins with the bootstrap down); "
        "default search.  Each part's figures replace its own in faults.json.",
    )
    args = parser.parse_args(argv)
    unknown = set(args.only) - {"search", *PARTS}
    if unknown:
        parser.error(f"unknown parts: {', '.join(sorted(unknown))}")
    path = args.out / "faults.json"
    # Each part is a run of its own (its own command, date, load, seconds): a run replaces
    # the parts it ran and keeps the others.  The search part's run is the file's top.
    result: dict[str, Any] = read_result(path) or {}
    for name, part in PARTS.items():
        if name in args.only:
            recording = Run.begin(SCRIPT, argv)
            result[name] = recording.record({**trio.run(part, args), "peers": args.peers})
            _progress(f"{name}: {result[name]}")
    if "search" in args.only:
        recording = Run.begin(SCRIPT, argv)
        result |= recording.record(_search_part(args))
    write_json(path, result)
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        for row in result.get("rows", []) if "search" in args.only else []:
            figures = {m: row[m]["success_rate"] for m in ("flood", "walk")}
            print(f"loss {row['loss']}: success {figures}", row.get("partition", ""))
        for name in PARTS:
            if name in args.only:
                print(f"{name}: {result[name]}")
    return 0


def _search_part(args: argparse.Namespace) -> dict[str, Any]:
    """The loss rows (and the partition), as the script measured them before the parts."""
    rows = trio.run(run, args)
    baseline = next((r for r in rows if r["loss"] == 0.0), None)
    for row in rows:
        for mode in ("flood", "walk"):
            base = baseline[mode]["success_rate"] if baseline else None
            rate = row[mode]["success_rate"]
            row[mode]["relative_to_loss_0"] = rate / base if base and rate is not None else None
    return {"peers": args.peers, "items": ITEMS, "replication": REPLICATION, "rows": rows}


if __name__ == "__main__":
    sys.exit(main())
