"""Sybil attackers on a real (loopback) overlay: honest search success against baseline.

    python benchmarks/sybil.py [--honest 80] [--attackers 20] [--searches 100]
        [--rounds 4] [--round-searches 50] [--concurrency 8] [--out benchmarks/results]

One process runs a bootstrap (127.0.0.1), ``--honest`` peers and later ``--attackers``
:class:`benchmarks.hostile_peer.ForgingPeer` s, each a real :func:`overlay.net.peer_node.peer_node`
on its own loopback address with default protocol parameters.

**Layout.**  Honest peer i listens on 127.10.i.1 (and 127.11.*, ... past 256), each in
its own /24, the way independent hosts on the Internet sit in different networks; the
attackers share one /24, 127.66.0.1 ... 127.66.0.N, as a single operator's addresses
would.  So the per-prefix neighbor cap (``MembershipConfig.max_per_prefix``, 2) binds
the attackers and never an honest peer; had the honest peers shared 127.0.0.1 the cap
would bind no one among them either (own prefix exempt), but the attackers' prefix
would still be foreign to all of them: the layout chosen is the realistic one, with no
prefix of honest peers larger than one.  The runtime's accepted-connection caps per
remote IP and per /24 (:mod:`overlay.core.admission`) are lifted (``one_host``): on
loopback every dialled connection leaves from 127.0.0.1, whatever address the dialler
listens on, so those caps would count the whole swarm as one host.

**Items.**  ``ITEMS`` seeded items (:func:`overlay.net.swarm.setup.seeded_items`), each held by
``REPLICATION`` (3%) of the honest peers, drawn at random.

**Searches.**  A search counts as a success when the client gets a value that passes
the hash check: ``overlay fetch --mode flood|walk`` (:func:`overlay.tools.cli_search.fetch_via`)
from a random honest peer for a random seeded key.  The peer searches, fetches from
the holders its hits name and verifies the bytes; so does the client.

**Phases.**  (1) baseline: ``--searches`` fetches per mode without attackers; (2) the
attackers join through the bootstrap and the script waits ``--settle`` seconds; (3)
``--rounds`` rounds of ``--round-searches`` fetches per mode.  Before the attack and
after each round it records: success per mode, honest peers with an attacker in their
active view (and the most attackers any one has), attackers distrusted by at least one
honest peer, honest peers distrusted by an honest peer (false positives), the honest
peers' standing counters, the process's RSS, and at the end whether every honest peer
still answers a stats request (none crashed).

Results go to ``sybil.json`` under ``--out``.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Final

if __package__ in (None, ""):  # run as a script: make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import attrs
import networkx as nx
import trio

from benchmarks.harness import Run
from benchmarks.hostile_peer import ForgingPeer
from bootstrap.server import BootstrapServer, serve_bootstrap
from overlay.core.config import PeerConfig
from overlay.core.peer import Peer
from overlay.net.keys import KeyPair
from overlay.net.node import Node, NodeConfig, one_host, open_listeners
from overlay.net.peer_node import keyed_peer, link_security, peer_node
from overlay.net.swarm.setup import seeded_items
from overlay.protocol.errors import OverlayError
from overlay.protocol.identity import Address, PeerId
from overlay.tools.cli_search import fetch_via
from overlay.tools.swarm import collect_stats
from search.store import content_key

REPO = Path(__file__).resolve().parents[1]
ITEMS: Final = 20
REPLICATION: Final = 0.03
ATTACK_PREFIX: Final = "127.66.0"
NODE: Final = one_host(NodeConfig())
JOIN_TIMEOUT: Final = 60.0
STANDING_KEYS: Final = (
    "standing.distrusted",
    "standing.forged_content",
    "standing.bad_input",
    "standing.walkers_lost",
    "standing.walkers_returned",
    "standing.replaced",
)


def _progress(text: str) -> None:
    print(f"sybil: {text}", file=sys.stderr, flush=True)


def honest_host(index: int) -> str:
    """Honest peer ``index``'s address: one /24 of its own."""
    return f"127.{10 + index // 256}.{index % 256}.1"


def attacker_host(index: int) -> str:
    return f"{ATTACK_PREFIX}.{index + 1}"


def rss_kib() -> int:
    """This process's resident memory (every peer of the run lives in it)."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


@attrs.define
class Swarm:
    bootstrap: Address
    honest: list[tuple[Peer, Node]] = attrs.field(factory=list)
    attackers: list[tuple[ForgingPeer, Node]] = attrs.field(factory=list)

    @property
    def attacker_ids(self) -> set[PeerId]:
        return {peer.id for peer, _ in self.attackers}

    @property
    def honest_ids(self) -> set[PeerId]:
        return {peer.id for peer, _ in self.honest}


async def start_bootstrap(nursery: trio.Nursery) -> Address:
    server: BootstrapServer = await nursery.start(
        lambda task_status: serve_bootstrap("127.0.0.1", 0, seed=0, task_status=task_status)
    )
    return server.address


async def start_peer(
    nursery: trio.Nursery, peer_class: type[Peer], host: str, bootstrap: Address, seed: str
) -> tuple[Any, Node]:
    listeners, address = await open_listeners(host, 0)
    key = KeyPair.generate()
    peer = keyed_peer(
        address, PeerConfig(), random.Random(seed), key, bootstrap=bootstrap, peer_class=peer_class
    )
    node = peer_node(peer, NODE, security=link_security(key))
    await nursery.start(node.serve, listeners)
    return peer, node


def connection_refusals(swarm: Swarm) -> int:
    """Connections the honest peers' runtimes refused or evicted for their limits."""
    return sum(
        value
        for _, node in swarm.honest
        for key, value in node.counters.items()
        if key.startswith("connections.") and ("refused" in key or "evicted" in key)
    )


def honest_graph(swarm: Swarm) -> nx.Graph:
    honest = swarm.honest_ids
    graph = nx.Graph()
    graph.add_nodes_from(honest)
    for peer, _ in swarm.honest:
        graph.add_edges_from(
            (peer.id, other) for other in peer.membership.active if other in honest
        )
    return graph


async def converge(swarm: Swarm) -> float:
    """Seconds until the honest peers form one component, each with a neighbor."""
    started = time.monotonic()
    with trio.fail_after(JOIN_TIMEOUT):
        while not nx.is_connected(honest_graph(swarm)):
            await trio.sleep(0.5)
    return time.monotonic() - started


def place_items(swarm: Swarm, rng: random.Random) -> list[str]:
    """Give each seeded item to REPLICATION of the honest peers; the keys."""
    peers = [peer for peer, _ in swarm.honest]
    copies = max(1, round(REPLICATION * len(peers)))
    keys = []
    for value, name in seeded_items(ITEMS, 1):
        for peer in rng.sample(peers, copies):
            peer.search.publish(value, name)  # the super layer is off: no effects
        keys.append(content_key(value))
    return keys


async def fetches(
    swarm: Swarm, keys: Sequence[str], mode: str, count: int, *, concurrency: int, seed: str
) -> dict[str, Any]:
    """``count`` verified fetches by ``mode`` from random honest peers for random keys."""
    rng = random.Random(seed)
    vias = [peer.address for peer, _ in swarm.honest]
    plan = [(rng.choice(vias), rng.choice(keys)) for _ in range(count)]
    attackers = swarm.attacker_ids
    seconds: list[float] = []
    tally = {"succeeded": 0, "client_errors": 0, "forged_holders_tried": 0, "honest_failed": 0}
    errors: dict[str, int] = {}
    limiter = trio.CapacityLimiter(concurrency)

    async def one(via: Address, key: str) -> None:
        async with limiter:
            started = time.monotonic()
            try:
                result = await fetch_via(via, key, mode=mode)
            except OverlayError as error:  # a ContentMismatch reaching the client included
                tally["client_errors"] += 1
                errors[type(error).__name__] = errors.get(type(error).__name__, 0) + 1
                return
            seconds.append(time.monotonic() - started)
            for failure in result.failures:
                forged = failure.holder.id in attackers
                tally["forged_holders_tried" if forged else "honest_failed"] += 1
            if result.value is not None:
                tally["succeeded"] += 1
            elif result.error:
                why = result.error.split(":")[0][:40]
                errors[why] = errors.get(why, 0) + 1

    async with trio.open_nursery() as nursery:
        for via, key in plan:
            nursery.start_soon(one, via, key)
    return {
        "searches": count,
        **tally,
        "why_failed": errors,
        "success_rate": tally["succeeded"] / count if count else None,
        "median_seconds": round(statistics.median(seconds), 3) if seconds else None,
    }


def exposure(swarm: Swarm) -> dict[str, Any]:
    """Who has attackers among its neighbors, who distrusts whom, the standing counters."""
    attackers, honest = swarm.attacker_ids, swarm.honest_ids
    per_peer = [
        sum(1 for other in peer.membership.active if other in attackers) for peer, _ in swarm.honest
    ]
    distrusted_attackers: set[PeerId] = set()
    framed: set[PeerId] = set()
    counters = dict.fromkeys(STANDING_KEYS, 0)
    for peer, _ in swarm.honest:
        blacklisted = set(peer.membership.blacklist)
        distrusted_attackers |= blacklisted & attackers
        framed |= blacklisted & honest
        for source in (peer.standing.counters, peer.membership.counters):
            for key in STANDING_KEYS:
                counters[key] += source.get(key, 0)
    attacker_links = [len(peer.membership.active) for peer, _ in swarm.attackers]
    return {
        "honest_with_attacker_neighbor": sum(1 for n in per_peer if n),
        "attacker_links_of_honest": sum(per_peer),
        "most_attacker_neighbors_of_one_peer": max(per_peer, default=0),
        "attackers_distrusted_by_some_honest_peer": len(distrusted_attackers),
        "honest_peers_distrusted_by_an_honest_peer": len(framed),
        "attacker_active_view_sizes_mean": (
            round(statistics.mean(attacker_links), 2) if attacker_links else None
        ),
        "honest_standing_counters": counters,
        "honest_one_component": nx.is_connected(honest_graph(swarm)),
        "honest_connections_refused_or_evicted": connection_refusals(swarm),
        "rss_kib": rss_kib(),
    }


async def search_round(
    swarm: Swarm, keys: Sequence[str], count: int, args: argparse.Namespace, label: str
) -> dict[str, Any]:
    row: dict[str, Any] = {"label": label}
    for mode in ("flood", "walk"):
        row[mode] = await fetches(
            swarm,
            keys,
            mode,
            count,
            concurrency=args.concurrency,
            seed=f"{args.seed} {label} {mode}",
        )
    row["after"] = exposure(swarm)
    _progress(
        f"{label}: flood {row['flood']['success_rate']}, walk {row['walk']['success_rate']}, "
        f"honest with an attacker neighbor {row['after']['honest_with_attacker_neighbor']}, "
        f"attackers distrusted {row['after']['attackers_distrusted_by_some_honest_peer']}"
    )
    return row


async def run(args: argparse.Namespace) -> dict[str, Any]:
    result: dict[str, Any] = {}
    async with trio.open_nursery() as nursery:
        swarm = Swarm(await start_bootstrap(nursery))
        for i in range(args.honest):
            swarm.honest.append(
                await start_peer(
                    nursery, Peer, honest_host(i), swarm.bootstrap, f"honest {args.seed} {i}"
                )
            )
        result["honest_converged_seconds"] = round(await converge(swarm), 2)
        keys = place_items(swarm, random.Random(f"{args.seed} placement"))
        await trio.sleep(args.settle)
        _progress(f"{args.honest} honest peers in one component; baseline")
        result["baseline"] = await search_round(swarm, keys, args.searches, args, "baseline")
        rss_before = rss_kib()
        for i in range(args.attackers):
            swarm.attackers.append(
                await start_peer(
                    nursery,
                    ForgingPeer,
                    attacker_host(i),
                    swarm.bootstrap,
                    f"attacker {args.seed} {i}",
                )
            )
        await trio.sleep(args.settle)
        result["attack_start"] = exposure(swarm)
        _progress(
            f"{args.attackers} attackers joined: "
            f"{result['attack_start']['honest_with_attacker_neighbor']} honest peers next to one"
        )
        rounds = []
        for r in range(args.rounds):
            rounds.append(
                await search_round(swarm, keys, args.round_searches, args, f"round {r + 1}")
            )
        result["rounds"] = rounds
        replies, failed = await collect_stats([peer.address for peer, _ in swarm.honest], 5.0)
        distrusted_in_stats = sum(
            c.value for reply in replies for c in reply.counters if c.name == "standing.distrusted"
        )
        result["end"] = {
            "honest_answering_stats": len(replies),
            "honest_not_answering": failed,
            "standing_distrusted_in_stats": distrusted_in_stats,
            "attack_counters": {
                key: sum(peer.attack_counters.get(key, 0) for peer, _ in swarm.attackers)
                for key in ("attack.hits_forged", "attack.garbage_served")
            },
            "rss_kib_before_attack": rss_before,
            "rss_kib_at_end": rss_kib(),
        }
        nursery.cancel_scope.cancel()
    return result


def summarize(result: dict[str, Any]) -> dict[str, Any]:
    base = result["baseline"]
    last = result["rounds"][-1] if result["rounds"] else None
    summary: dict[str, Any] = {}
    for mode in ("flood", "walk"):
        base_rate = base[mode]["success_rate"]
        per_round = [r[mode]["success_rate"] for r in result["rounds"]]
        overall = sum(r[mode]["succeeded"] for r in result["rounds"]) / max(
            1, sum(r[mode]["searches"] for r in result["rounds"])
        )
        summary[mode] = {
            "baseline_success": base_rate,
            "success_per_round": per_round,
            "success_under_attack": overall,
            "ratio_under_attack": overall / base_rate if base_rate else None,
            "ratio_last_round": (
                last[mode]["success_rate"] / base_rate if last is not None and base_rate else None
            ),
        }
    summary["honest_with_attacker_neighbor_per_round"] = [
        result["attack_start"]["honest_with_attacker_neighbor"]
    ] + [r["after"]["honest_with_attacker_neighbor"] for r in result["rounds"]]
    summary["goal"] = "success under attack >= 0.9 x baseline (issue 8, item 7)"
    return summary


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--honest", type=int, default=80)
    parser.add_argument("--attackers", type=int, default=20)
    parser.add_argument("--searches", type=int, default=100, help="per mode, baseline")
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--round-searches", type=int, default=50, help="per mode and round")
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--settle", type=float, default=10.0, help="seconds after joins")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    if not 1 <= args.attackers <= 254 or not 1 <= args.honest <= 256 * 50:
        parser.error("--attackers is 1..254 (one /24), --honest 1..12800")
    recording = Run.begin("benchmarks/sybil.py", argv)
    result = trio.run(run, args)
    figures = {
        "honest": args.honest,
        "attackers": args.attackers,
        "attacker_prefix": f"{ATTACK_PREFIX}.0/24",
        "honest_layout": "one /24 per honest peer (127.10.i.1)",
        "items": ITEMS,
        "replication": REPLICATION,
        "summary": summarize(result),
        **result,
    }
    result = recording.write(args.out / "sybil.json", figures)
    print(json.dumps(result if args.json else result["summary"], indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
