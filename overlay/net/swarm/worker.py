"""A worker process of ``overlay swarm``: many peers in one ``trio.run``.

Started by the parent (:mod:`overlay.tools.swarm`) as ``python -m overlay.net.swarm.worker``.  It
prints one JSON line per peer it started (``{"peer": "HOST:PORT", "id": ...}``), then
``{"ready": n}``; it carries out the control lines on its standard input
(:func:`overlay.net.swarm.control.handle_control_line`: crash a peer, add one, answer a
batched stats request); it leaves gracefully when its standard input closes (or on
SIGINT/SIGTERM) and prints ``{"left": n}``.  Standard input as the stop signal means a
worker whose parent dies (even by SIGKILL) stops too: no orphans.

This module imports only what running peers needs (trio, the node and peer, the
runtime options).  What only the parent uses (networkx for the summary, rich for the
status line and the view, the simulator) stays out of it: every worker would pay for
those imports in resident memory, about 19 MB each (an idle worker: 51 MB with them,
32.5 MB without), for nothing (``tests/overlay/net/swarm/test_worker.py`` checks it).
For the same reason the modules it imports load some standard modules only when they
are used (:mod:`tracemalloc` in :mod:`overlay.net.memtrace`, for instance).
"""

from __future__ import annotations

import argparse
import functools
import itertools
import logging
import random
import signal
import sys
from collections.abc import Sequence
from pathlib import Path

import attrs
import trio

from overlay.core.config import PeerConfig
from overlay.net import memtrace
from overlay.net.faults import watch_partition_file
from overlay.net.first_seen import FirstSeen
from overlay.net.gc_rounds import keep_collector_quiet
from overlay.net.handshake_gate import HandshakeGate
from overlay.net.keys import KeyPair, derived_key
from overlay.net.node import Node, open_listeners
from overlay.net.options import (
    add_runtime_arguments,
    fault_injectors,
    peer_config_of,
    swarm_node_config_of,
)
from overlay.net.peer_node import keyed_peer, link_security, peer_node
from overlay.net.swarm.control import emit, for_each_stdin_line, handle_control_line
from overlay.net.swarm.setup import (
    LOOPBACK_PEERS,
    loopback_host,
    peer_capacity,
    room_for_weak_peers,
    seed_plan,
    seeded_items,
    super_peer_config,
)
from overlay.protocol.errors import LocalError, OverlayError
from overlay.protocol.identity import Address

log = logging.getLogger("overlay.tools.swarm")


@attrs.frozen
class Seeding:
    """What a worker's share of ``--items`` is computed from (see
    :func:`overlay.net.swarm.setup.seed_plan`)."""

    items: int
    copies: int
    seed: int
    total: int
    offset: int

    def holdings(self, count: int) -> dict[int, list[tuple[bytes, str]]]:
        """Items to publish, by local peer index."""
        items = seeded_items(self.items, self.seed)
        mine: dict[int, list[tuple[bytes, str]]] = {}
        for item, holders in zip(
            items, seed_plan(self.items, self.copies, self.total, self.seed), strict=True
        ):
            for index in holders:
                if self.offset <= index < self.offset + count:
                    mine.setdefault(index - self.offset, []).append(item)
        return mine


async def run_worker(
    bootstrap: Address,
    count: int,
    seed: int,
    spread: float,
    *,
    host: str = "127.0.0.1",
    seeding: Seeding | None = None,
    layer: SuperPeers | None = None,
    runtime: argparse.Namespace | None = None,
    first_seen: Path | None = None,
    keys: tuple[int, int] | None = None,
    spread_hosts: bool = False,
) -> None:
    """Run ``count`` peers until told to stop.  ``keys`` is (key seed, swarm-wide index
    of the first peer): peer ``i`` proves ``derived_key(key seed, first + i)``; without
    it, the worker's ``seed`` and the local index.  Peers added later get fresh keys.
    ``spread_hosts``: peer ``i`` listens on :func:`loopback_host` of its swarm-wide index
    rather than on ``host``."""
    ids = random.Random(seed)
    # One generator for every peer of this worker, as in the simulator: a Mersenne
    # Twister's state is 2.5 KiB, which one per peer would add to each peer's memory.
    # Peer keys (so ids) come from the seed and the peer's index (derived_key).
    rng = random.Random(ids.getrandbits(64))
    sightings = FirstSeen() if first_seen is not None else None
    holdings = seeding.holdings(count) if seeding is not None else {}
    with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async with trio.open_nursery() as nursery:
            stop = trio.Event()

            nodes: list[Node] = []
            added = itertools.count(count)  # indices of added peers: never a seeded one

            async def add_peer() -> None:
                node = await start_peer(next(added))
                nodes.append(node)
                emit({"peer": str(node.contact.address), "id": node.contact.id})

            async def until_stdin_closes() -> None:
                # Lines are control lines (overlay.net.swarm.control.handle_control_line):
                # crash a peer, add one, answer a stats request; anything else, or the
                # end of input, means stop.
                async def handle(line: bytes) -> bool:
                    if not await handle_control_line(line, nodes, add_peer, emit):
                        return False
                    # Let crashed peers go: under churn (benchmarks/soak.py), keeping
                    # every node ever started would grow the worker without bound.
                    nodes[:] = [node for node in nodes if not node.stopping]
                    return True

                await for_each_stdin_line(handle)
                stop.set()

            async def until_signal() -> None:
                async for _ in signals:
                    break
                stop.set()

            nursery.start_soon(until_stdin_closes)
            nursery.start_soon(until_signal)
            if memtrace.trim_period() > 0:
                nursery.start_soon(
                    memtrace.release_free_memory_periodically, memtrace.trim_period()
                )
            nursery.start_soon(keep_collector_quiet)  # overlay.collector
            trace_to = memtrace.requested()  # a soak's diagnostic, off by default
            if trace_to is not None:
                memtrace.start()
                nursery.start_soon(
                    memtrace.dump_periodically, trace_to, lambda: f"peers={len(nodes)}"
                )
            runtime_args = runtime or _no_runtime()
            make_faults, partition = fault_injectors(runtime_args, seed)
            if runtime_args.partition_file is not None:
                nursery.start_soon(watch_partition_file, runtime_args.partition_file, partition)
            node_config = swarm_node_config_of(runtime_args)
            if layer is not None and getattr(runtime_args, "max_connections", None) is None:
                node_config = room_for_weak_peers(node_config, super_peer_config(1))

            # One bound on handshakes for all of this process's peers: it is the
            # process's CPU that a storm of handshakes starves.
            gate = HandshakeGate(node_config.gate_limits())

            async def start_peer(index: int) -> Node:
                key_seed, first = keys if keys is not None else (seed, 0)
                where = loopback_host((first + index) % LOOPBACK_PEERS) if spread_hosts else host
                listeners, address = await open_listeners(where, 0)
                config = (
                    PeerConfig()
                    if layer is None
                    else super_peer_config(peer_capacity(layer.capacity_seed, layer.first + index))
                )
                # Keys come from the worker's seed and the peer's index: the same ids
                # run after run (predictable by design, see overlay.net.keys).
                key = derived_key(key_seed, first + index) if index < count else KeyPair.generate()
                peer = keyed_peer(
                    address, peer_config_of(runtime_args, config), rng, key, bootstrap=bootstrap
                )
                for value, name in holdings.get(index, ()):
                    try:
                        peer.search.publish(value, name)  # before it starts: no one to tell
                    except LocalError as error:  # its store is full: it holds fewer
                        log.error("peer %s: not seeding %s: %s", peer.id, name, error)
                if sightings is not None:
                    peer.search.observer = sightings.observe
                security = link_security(key, runtime_args.plaintext)
                node = peer_node(
                    peer, node_config, security=security, faults=make_faults(), gate=gate
                )
                await nursery.start(node.serve, listeners)
                return node

            # Each peer starts in a task of its own, at its time in the spread: started
            # one after another, every start waited its turn behind the traffic of the
            # peers already up (several scheduler rounds each), and a worker of 500 peers
            # on a loaded machine took 20 to 45 s to start them all, most of a 1,000-peer
            # swarm's join time.  They are listed in index order once all are up.
            started: list[Node | None] = [None] * count
            begun = trio.current_time()

            async def start_in_turn(index: int) -> None:
                if spread > 0:
                    await trio.sleep_until(begun + spread * index / count)
                if not stop.is_set():
                    started[index] = await start_peer(index)

            async with trio.open_nursery() as starting:
                for index in range(count):
                    starting.start_soon(start_in_turn, index)
            for node in started:
                if node is not None:
                    nodes.append(node)
                    emit({"peer": str(node.contact.address), "id": node.contact.id})
            emit({"ready": len(nodes)})
            await stop.wait()
            async with trio.open_nursery() as leaving:
                for node in nodes:
                    leaving.start_soon(node.leave)
            if sightings is not None and first_seen is not None:
                sightings.write(first_seen)
            emit({"left": len(nodes)})
            nursery.cancel_scope.cancel()


@attrs.frozen
class SuperPeers:
    """A worker's share of ``--super-peers``: its peers' capacities are drawn by
    :func:`peer_capacity` from the swarm's capacity seed and their swarm-wide index."""

    capacity_seed: int
    first: int
    """Swarm-wide index of this worker's first peer."""


def _no_runtime() -> argparse.Namespace:
    """The runtime options of a worker started without any (all defaults, no faults)."""
    parser = argparse.ArgumentParser()
    add_runtime_arguments(parser)
    return parser.parse_args([])


def worker_main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m overlay.net.swarm.worker", description=__doc__)
    parser.add_argument("--bootstrap", type=Address.parse, required=True)
    parser.add_argument("--count", type=int, required=True)
    parser.add_argument("--host", default="127.0.0.1", help="address the peers listen on")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--spread", type=float, default=0.0, help="seconds to stagger starts")
    parser.add_argument("--items", type=int, default=0, help="items the swarm seeds")
    parser.add_argument("--copies", type=int, default=1, help="peers holding each item")
    parser.add_argument("--items-seed", type=int, default=1, help="the swarm's --seed")
    parser.add_argument("--total", type=int, default=0, help="peers in the whole swarm")
    parser.add_argument("--offset", type=int, default=0, help="index of this worker's first peer")
    parser.add_argument("--super-peers", action="store_true", help="run the super-peer layer")
    parser.add_argument("--capacity-seed", type=int, default=1, help="seed of the capacities")
    parser.add_argument("--first", type=int, default=0, help="swarm-wide index of my first peer")
    parser.add_argument("--first-seen", type=Path, default=None, help="see overlay.net.first_seen")
    parser.add_argument("--key-seed", type=int, default=None, help="seed of the peers' keys")
    parser.add_argument("--key-first", type=int, default=0, help="key index of my first peer")
    parser.add_argument(
        "--spread-hosts", action="store_true", help="each peer on its own 127.1.x.y (loopback)"
    )
    add_runtime_arguments(parser)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.ERROR, format="worker: %(message)s")
    seeding = (
        Seeding(args.items, args.copies, args.items_seed, args.total, args.offset)
        if args.items
        else None
    )
    layer = SuperPeers(args.capacity_seed, args.first) if args.super_peers else None
    try:
        trio.run(
            functools.partial(
                run_worker,
                args.bootstrap,
                args.count,
                args.seed,
                args.spread,
                host=args.host,
                seeding=seeding,
                layer=layer,
                runtime=args,
                first_seen=args.first_seen,
                keys=None if args.key_seed is None else (args.key_seed, args.key_first),
                spread_hosts=args.spread_hosts,
            )
        )
    except OverlayError as error:
        print(f"overlay swarm worker: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(worker_main())
