"""Benchmark: what one peer costs in memory, hosted the way a swarm worker hosts it.

Starts a bootstrap in a child process (so that its host cache is not counted), then,
in this process, ``--peers`` peers on 127.0.0.1 with a swarm worker's configuration
(:func:`overlay.net.options.swarm_node_config_of` over the default runtime options),
lets them settle for ``--settle`` seconds and records, in
``benchmarks/results/peer_memory.json``:

* ``rss_per_peer_kib``: resident memory grown since before the first peer, over the
  number of peers (what a peer costs beyond an empty process: the interpreter and its
  libraries are in the baseline);
* ``traced_per_peer_kib``: the same from :mod:`tracemalloc` (Python allocations only;
  the rest of the RSS is allocator slack and fragmentation);
* ``rss_per_peer_kib_after_malloc_trim``: the same once the C allocator has given
  back the free pages it held (:func:`overlay.net.memtrace.release_free_memory`);
* ``sessions_per_peer`` and ``aead_objects_kept_per_peer``: Noise sessions, and the
  ChaCha20-Poly1305 objects they keep built (:class:`overlay.net.secure.Session`);
* ``top_sites``: the allocation sites (``file:line``) that grew most, per peer;
* ``connections_per_peer``, ``degree`` and ``connections_to_non_neighbors_per_peer``:
  what those bytes are spread over;
* the machine, its load before and after, and the command.

Tracing adds its own bookkeeping to the RSS (about as much again as the peers' own
allocations), so take the RSS figure from a ``--no-trace`` run and the breakdown from a
traced one; ``--before FILE`` keeps an earlier result's figures under ``before``.

Run: ``python -m benchmarks.peer_memory [--peers N] [--settle S]`` (about
``settle + peers/100`` seconds; under ``flock /tmp/bench.lock`` on a shared machine).
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import random
import signal
import tracemalloc
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import attrs
import trio

from benchmarks.harness import Run, listening, module_command, started
from bootstrap.server import BootstrapServer, serve_bootstrap
from overlay.core.config import PeerConfig
from overlay.core.peer import Peer
from overlay.net import memtrace
from overlay.net.keys import derived_key
from overlay.net.node import Node, open_listeners
from overlay.net.options import add_runtime_arguments, peer_config_of, swarm_node_config_of
from overlay.net.peer_node import keyed_peer, link_security, peer_node
from overlay.net.secure import PLAINTEXT
from overlay.protocol.identity import Address

RESULT = Path(__file__).resolve().parent / "results" / "peer_memory.json"
REPO = Path(__file__).resolve().parent.parent
TOP_SITES = 20


def resident_bytes() -> int:
    rss = memtrace.rss_bytes()
    if rss is None:
        raise RuntimeError("no VmRSS in /proc/self/status")
    return rss


async def serve_bootstrap_here(plaintext: bool) -> None:
    """The bootstrap's process (``--serve-bootstrap``; a child, so that its host cache is
    not counted): a bootstrap with default settings and a fixed seed, until terminated
    (started from here rather than ``overlay bootstrap`` so that the measurement depends
    on the runtime and the core only)."""

    async def report(task_status: trio.TaskStatus[BootstrapServer]) -> None:
        await serve_bootstrap(
            "127.0.0.1",
            0,
            seed=0,
            security=PLAINTEXT if plaintext else None,
            task_status=task_status,
        )

    async with trio.open_nursery() as nursery:
        server: BootstrapServer = await nursery.start(report)
        print(f"bootstrap listening on {server.address}", flush=True)


def _runtime_defaults(plaintext: bool) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_runtime_arguments(parser)
    return parser.parse_args(["--plaintext"] if plaintext else [])


def top_sites(
    after: tracemalloc.Snapshot, before: tracemalloc.Snapshot, peers: int
) -> list[dict[str, Any]]:
    sites = []
    for stat in after.compare_to(before, "lineno")[:TOP_SITES]:
        frame = stat.traceback[0]
        sites.append(
            {
                "site": f"{os.path.relpath(frame.filename, REPO)}:{frame.lineno}",
                "kib_per_peer": round(stat.size_diff / peers / 1024, 2),
                "blocks_per_peer": round(stat.count_diff / peers, 1),
            }
        )
    return sites


def top_files(
    after: tracemalloc.Snapshot, before: tracemalloc.Snapshot, peers: int
) -> dict[str, float]:
    """KiB per peer by the file that allocated it (trio's own files, the project's...)."""
    return {
        os.path.relpath(stat.traceback[0].filename, REPO): round(stat.size_diff / peers / 1024, 2)
        for stat in after.compare_to(before, "filename")[:TOP_SITES]
    }


def _without_tracemalloc(snapshot: tracemalloc.Snapshot) -> tracemalloc.Snapshot:
    return snapshot.filter_traces((tracemalloc.Filter(False, tracemalloc.__file__),))


def link_shape(nodes: Sequence[Node], peers: Sequence[Peer]) -> dict[str, float]:
    count = len(nodes)
    connections = sum(len(node.connections) for node in nodes)
    degree = sum(len(peer.membership.active) for peer in peers)
    non_neighbors = 0
    for node, peer in zip(nodes, peers, strict=True):
        neighbors = {n.contact.address for n in peer.membership.active.values()}
        non_neighbors += sum(len(c) for a, c in node.links.items() if a not in neighbors)
    return {
        "connections_per_peer": round(connections / count, 2),
        "degree": round(degree / count, 2),
        "connections_to_non_neighbors_per_peer": round(non_neighbors / count, 2),
    }


def cipher_objects(nodes: Sequence[Node]) -> dict[str, float]:
    """Per peer: links with a Noise session, and the AEAD objects they keep built (a
    tree from before sessions built them on use kept both: 2 a session)."""
    sessions = [c.session for node in nodes for c in node.connections if c.session is not None]
    count = len(nodes)
    return {
        "sessions_per_peer": round(len(sessions) / count, 2),
        "aead_objects_kept_per_peer": round(
            sum(getattr(s, "ciphers_kept", 2) for s in sessions) / count, 2
        ),
    }


async def measure(args: argparse.Namespace) -> dict[str, Any]:
    extra = ["--plaintext"] if args.plaintext else []
    command = module_command("benchmarks.peer_memory", "--serve-bootstrap", *extra)
    async with started(command, listening("bootstrap"), stop=signal.SIGTERM, grace=10) as child:
        return await measure_peers(args, child.ready.address)


async def measure_peers(args: argparse.Namespace, bootstrap: Address) -> dict[str, Any]:
    runtime = _runtime_defaults(args.plaintext)
    node_config = swarm_node_config_of(runtime)
    if args.read_size:
        node_config = attrs.evolve(node_config, read_size=args.read_size)
    peer_config = peer_config_of(runtime, PeerConfig())
    ids = random.Random(args.seed)
    rng = random.Random(ids.getrandbits(64))  # one for all, as a swarm worker has
    nodes: list[Node] = []
    peers: list[Peer] = []
    async with trio.open_nursery() as nursery:
        await trio.sleep(0.2)
        gc.collect()
        rss_before = resident_bytes()
        if args.trace:
            tracemalloc.start(1)
            before = _without_tracemalloc(tracemalloc.take_snapshot())
        for _ in range(args.peers):
            listeners, address = await open_listeners("127.0.0.1", 0)
            key = derived_key(args.seed, len(peers))
            peer = keyed_peer(address, peer_config, rng, key, bootstrap=bootstrap)
            node = peer_node(peer, node_config, security=link_security(key, runtime.plaintext))
            await nursery.start(node.serve, listeners)
            nodes.append(node)
            peers.append(peer)
            await trio.sleep(args.spread / args.peers)
        await trio.sleep(args.settle)
        gc.collect()
        rss_after = resident_bytes()
        # What of that is the C allocator's free space (ended links' and handshakes'
        # OpenSSL state freed among live blocks) rather than live memory.
        trimmed = memtrace.release_free_memory()
        rss_trimmed = resident_bytes()
        record: dict[str, Any] = {
            "rss_before_bytes": rss_before,
            "rss_per_peer_kib": round((rss_after - rss_before) / args.peers / 1024, 1),
            "rss_per_peer_kib_after_malloc_trim": (
                round((rss_trimmed - rss_before) / args.peers / 1024, 1) if trimmed else None
            ),
            **link_shape(nodes, peers),
            **cipher_objects(nodes),
            "joined": sum(1 for peer in peers if peer.membership.active),
        }
        if args.trace:
            after = _without_tracemalloc(tracemalloc.take_snapshot())
            grown = sum(stat.size_diff for stat in after.compare_to(before, "filename"))
            record["traced_per_peer_kib"] = round(grown / args.peers / 1024, 1)
            record["top_sites"] = top_sites(after, before, args.peers)
            record["top_files"] = top_files(after, before, args.peers)
            tracemalloc.stop()
        for node in nodes:
            node.stop()
        nursery.cancel_scope.cancel()
    return record


def parse(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--peers", type=int, default=200)
    parser.add_argument("--settle", type=float, default=20.0, help="seconds after the last start")
    parser.add_argument("--spread", type=float, default=1.0, help="seconds to start them all over")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--no-trace", dest="trace", action="store_false")
    parser.add_argument("--output", type=Path, default=RESULT)
    parser.add_argument(
        "--before", type=Path, help="an earlier result, kept under 'before' (without its sites)"
    )
    parser.add_argument("--read-size", type=int, default=0, help="bytes per read (0: default)")
    parser.add_argument("--serve-bootstrap", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--plaintext", action="store_true", help="links without Noise")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse(argv)
    if args.serve_bootstrap:
        trio.run(serve_bootstrap_here, args.plaintext)
        return 0
    recording = Run.begin("-m benchmarks.peer_memory", argv)
    record = trio.run(measure, args)
    figures = {
        "peers": args.peers,
        "settle_seconds": args.settle,
        "traced": args.trace,
        "links": "plaintext" if args.plaintext else "noise",
        **record,
    }
    before = None
    if args.before is not None:
        earlier = json.loads(args.before.read_text())
        before = {k: v for k, v in earlier.items() if k not in ("top_sites", "before")}
    result = recording.write(args.output, figures, before=before)
    print(json.dumps({k: v for k, v in result.items() if k != "top_sites"}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
