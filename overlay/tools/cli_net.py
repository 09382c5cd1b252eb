"""``overlay bootstrap``, ``overlay peer`` and ``overlay swarm``: the protocol on real TCP.

Each command prints the address it listens on as its first line of output, then
runs until SIGINT or SIGTERM, when it shuts down gracefully: a peer says goodbye
to its neighbors and the bootstrap and flushes those messages, a bootstrap saves
its state; every listening socket is closed before the process exits.
"""

from __future__ import annotations

import argparse
import logging
import random
import signal
import sys
from pathlib import Path
from typing import Any

import trio
from rich.console import Console
from rich.logging import RichHandler

from bootstrap.server import serve_bootstrap
from overlay.core.config import PeerConfig
from overlay.core.peer import Peer
from overlay.net.faults import watch_partition_file
from overlay.net.gc_rounds import keep_collector_quiet
from overlay.net.keys import KeyPair, load_or_create_key
from overlay.net.node import Node, open_listeners
from overlay.net.options import (
    add_bootstrap_arguments,
    add_plaintext_argument,
    add_runtime_arguments,
    add_super_peers_argument,
    check_runtime_arguments,
    fault_injectors,
    host_cache_config_of,
    node_config_of,
    peer_config_of,
)
from overlay.net.peer_node import keyed_peer, link_security, peer_node
from overlay.net.peer_state import load_peer_state, save_peer_state
from overlay.net.secure import PLAINTEXT
from overlay.net.swarm.setup import room_for_weak_peers, super_peer_config
from overlay.protocol.errors import OverlayError
from overlay.protocol.identity import Address, Contact
from overlay.tools.cli import address_argument
from overlay.tools.crawl import fetch_stats, list_members
from overlay.tools.swarm import register_swarm

log = logging.getLogger("overlay.tools.cli_net")

STATE_SAVE_PERIOD = 5.0
JOIN_TIMEOUT = 60.0
FIRST_PROBE = 1.0
"""Seconds after start before a peer that has not joined checks whether anyone answers
where it was told to join; the checks then back off, doubling up to MAX_PROBE_GAP."""
MAX_PROBE_GAP = 30.0
PROBE_TIMEOUT = 2.0


class JoinTimedOut(OverlayError):
    """Nothing answered where the peer was told to join, for ``--join-timeout`` seconds."""


def register(subparsers: Any) -> None:
    boot: argparse.ArgumentParser = subparsers.add_parser(
        "bootstrap",
        help="run a bootstrap node (the host cache peers join through)",
        description="Serve the host cache on TCP.  With --state, the cache is saved "
        "atomically every few seconds and on shutdown, and reloaded on start.",
    )
    boot.add_argument("--host", default="127.0.0.1", help="address to listen on")
    boot.add_argument("--port", type=int, default=7000, help="port (0: any free port)")
    boot.add_argument("--state", type=Path, default=None, help="state file to keep")
    add_bootstrap_arguments(boot)
    add_plaintext_argument(boot)
    boot.set_defaults(run=run_bootstrap)

    peer: argparse.ArgumentParser = subparsers.add_parser(
        "peer",
        help="run one peer",
        description="Run one peer: join through the bootstrap (or --join, any live peer) "
        "and keep a random neighbor list until SIGINT/SIGTERM, then leave gracefully.",
    )
    peer.add_argument(
        "--bootstrap",
        type=address_argument,
        default=None,
        metavar="HOST:PORT",
        help="join through this bootstrap",
    )
    peer.add_argument("--host", default="127.0.0.1", help="address to listen on")
    peer.add_argument("--port", type=int, default=0, help="port (0: any free port)")
    peer.add_argument("--capacity", type=int, default=1, help="capacity (super peer election)")
    peer.add_argument(
        "--state",
        type=Path,
        default=None,
        metavar="DIR",
        help="keep the key (so the id), known hosts and anchors here",
    )
    peer.add_argument(
        "--join",
        type=address_argument,
        default=None,
        metavar="HOST:PORT",
        help="join via this peer",
    )
    peer.add_argument("--seed", type=int, default=None, help="seed of the peer's random source")
    peer.add_argument(
        "--join-timeout",
        type=float,
        default=JOIN_TIMEOUT,
        metavar="SECONDS",
        help="give up (exit status 1) when nothing has answered at the bootstrap (or --join) "
        f"for this long and no saved host is known (default {JOIN_TIMEOUT:g}; 0: keep trying)",
    )
    add_super_peers_argument(
        peer, "run the super-peer layer (the peer may be elected super peer; --capacity counts)"
    )
    add_runtime_arguments(peer)
    peer.set_defaults(run=run_peer)

    register_swarm(subparsers)


def log_to_stderr() -> None:
    """Keep standard output for what scripts read (the address line, ``--json``): the
    rich log handler set up by :mod:`overlay.tools.cli` writes to stdout otherwise."""
    for handler in logging.getLogger().handlers:
        if isinstance(handler, RichHandler):
            handler.console = Console(stderr=True)


def run_bootstrap(args: argparse.Namespace) -> int:
    log_to_stderr()
    try:
        host_cache_config_of(args)
    except ValueError as error:
        print(f"overlay bootstrap: {error}", file=sys.stderr)
        return 2
    try:
        trio.run(_bootstrap_main, args)
    except OverlayError as error:
        print(f"overlay bootstrap: {error}", file=sys.stderr)
        return 1
    return 0


async def _bootstrap_main(args: argparse.Namespace) -> None:
    with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async with trio.open_nursery() as nursery:
            server = await nursery.start(
                lambda task_status: serve_bootstrap(
                    args.host,
                    args.port,
                    state=args.state,
                    config=host_cache_config_of(args),
                    security=PLAINTEXT if args.plaintext else None,
                    task_status=task_status,
                )
            )
            print(f"bootstrap {server.cache.me.id} listening on {server.address}", flush=True)
            nursery.start_soon(keep_collector_quiet)
            async for _ in signals:
                break
            nursery.cancel_scope.cancel()  # serve_bootstrap saves the state on its way out


def run_peer(args: argparse.Namespace) -> int:
    log_to_stderr()
    if args.bootstrap is None and args.join is None:
        print("overlay peer: give --bootstrap HOST:PORT or --join HOST:PORT", file=sys.stderr)
        return 2
    if args.join_timeout < 0:
        print("overlay peer: --join-timeout must be >= 0 (0: keep trying)", file=sys.stderr)
        return 2
    if not 0 <= args.capacity <= 1_000_000:
        print("overlay peer: --capacity must be in [0, 1000000]", file=sys.stderr)
        return 2
    usage = check_runtime_arguments(args)
    if usage is not None:
        print(f"overlay peer: {usage}", file=sys.stderr)
        return 2
    try:
        trio.run(_peer_main, args)
    except OverlayError as error:
        print(f"overlay peer: {error}", file=sys.stderr)
        return 1
    return 0


async def _peer_main(args: argparse.Namespace) -> None:
    state_dir: Path | None = args.state
    saved = load_peer_state(state_dir) if state_dir is not None else None
    # With --state the key (so the id) survives restarts; without, a fresh one per run.
    key = load_or_create_key(state_dir) if state_dir is not None else KeyPair.generate()
    if saved is not None and saved.id != key.peer_id:
        log.warning(
            "peer state in %s names id %s, but its key proves %s: using the key's",
            state_dir,
            saved.id,
            key.peer_id,
        )
    with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        listeners, address = await open_listeners(args.host, args.port)
        config = (
            super_peer_config(args.capacity)
            if args.super_peers
            else PeerConfig(capacity=args.capacity)
        )
        peer = keyed_peer(
            address,
            peer_config_of(args, config),
            random.Random(args.seed),
            key,
            bootstrap=args.bootstrap,
            join_via=args.join,
        )
        if saved is not None:
            seed_known_hosts(peer, [*saved.known_hosts, *saved.anchors])
            restore_anchors(peer, saved.anchors)
        make_faults, partition = fault_injectors(args, args.seed)
        node_config = node_config_of(args)
        if args.max_connections is None:
            node_config = room_for_weak_peers(node_config, peer.config)
        security = link_security(key, args.plaintext)
        node = peer_node(peer, node_config, security=security, faults=make_faults())
        async with trio.open_nursery() as nursery:
            if args.partition_file is not None:
                nursery.start_soon(watch_partition_file, args.partition_file, partition)
            await nursery.start(node.serve, listeners)
            print(f"peer {peer.id} listening on {address}", flush=True)
            nursery.start_soon(keep_collector_quiet)
            if state_dir is not None:
                nursery.start_soon(_save_periodically, state_dir, peer)
            gave_up: list[str] = []
            finished = trio.Event()

            async def until_signal() -> None:
                async for _ in signals:
                    break
                finished.set()

            nursery.start_soon(until_signal)
            if not peer.membership.known_hosts:  # saved hosts may take it in: no deadline
                nursery.start_soon(_watch_join, node, peer, args, gave_up, finished)
            await finished.wait()
            anchors = anchors_of(peer)  # before leaving: leaving empties the views
            await node.leave()
            nursery.cancel_scope.cancel()
        if gave_up:
            raise JoinTimedOut(gave_up[0])
        if state_dir is not None:
            _save(state_dir, peer, anchors)


async def _watch_join(
    node: Node, peer: Peer, args: argparse.Namespace, gave_up: list[str], finished: trio.Event
) -> None:
    """Until the peer joins or someone answers where it joins through, say so on stderr,
    checking again after 1, 2, 4, ... seconds (at most :data:`MAX_PROBE_GAP`); after
    ``--join-timeout`` seconds of that, give up: the peer leaves and the command fails."""
    target: Address = args.bootstrap if args.bootstrap is not None else args.join
    began = trio.current_time()
    gap = FIRST_PROBE
    membership = peer.membership
    while not membership.ever_joined:
        with trio.move_on_after(gap):
            await node.wait_until(lambda: membership.ever_joined)
        if membership.ever_joined:
            return
        try:
            if args.bootstrap is not None:
                await list_members(target, PROBE_TIMEOUT)
            else:
                await fetch_stats(target, PROBE_TIMEOUT)
        except OverlayError as error:
            waited = trio.current_time() - began
            if args.join_timeout and waited >= args.join_timeout:
                gave_up.append(f"{error}; gave up after {waited:.0f} s (--join-timeout)")
                finished.set()
                return
            gap = min(2 * gap, MAX_PROBE_GAP)
            print(f"overlay peer: {error}; trying again in {gap:g} s", file=sys.stderr, flush=True)
            continue
        return  # it answers: the peer is registered (the first one has no one to join yet)


def seed_known_hosts(peer: Peer, hosts: list[Any]) -> None:
    """Put saved known hosts back before start: the membership's repair asks them
    when the bootstrap cannot be reached."""
    membership = peer.membership
    limit = membership.config.known_hosts_size
    for contact in hosts[-limit:] if limit else []:
        if contact.id != peer.id:
            membership.known_hosts[contact.id] = contact


def anchors_of(peer: Peer) -> list[Contact]:
    """The anchors to keep: the core's (own links that lasted, ``Membership.anchors``),
    topped up with current neighbors (those it chose itself first) up to
    ``anchors_size``, so a peer stopped before any link lasted still keeps whom it had."""
    membership = peer.membership
    limit = membership.config.anchors_size
    kept = list(membership.anchors.values())
    neighbors = sorted(membership.active.values(), key=lambda neighbor: not neighbor.own)
    for neighbor in neighbors:
        if len(kept) >= limit:
            break
        if neighbor.contact.id not in membership.anchors:
            kept.append(neighbor.contact)
    return kept[:limit]


def restore_anchors(peer: Peer, anchors: list[Contact]) -> None:
    """Give saved anchors back to the core (it asks them first at start)."""
    membership = peer.membership
    limit = membership.config.anchors_size
    for contact in anchors[-limit:] if limit else []:
        if contact.id != peer.id:
            membership.anchors[contact.id] = contact


def _save(directory: Path, peer: Peer, anchors: list[Contact] | None = None) -> None:
    try:
        hosts = list(peer.membership.known_hosts.values())
        kept = anchors if anchors is not None else anchors_of(peer)
        save_peer_state(directory, peer.id, hosts, kept)
    except OSError as error:
        log.error("cannot save peer state to %s: %s", directory, error)


async def _save_periodically(directory: Path, peer: Peer) -> None:
    last: list[Any] | None = None
    while True:
        await trio.sleep(STATE_SAVE_PERIOD)
        hosts = list(peer.membership.known_hosts.values())
        if hosts != last:
            _save(directory, peer)
            last = hosts
