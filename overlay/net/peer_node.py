"""A :class:`~overlay.core.peer.Peer` on the trio runtime: the glue that makes a generic
:class:`~overlay.net.node.Node` a peer's node.

It builds the peer's handshake (with its role and capacity), its stats reply, who it
keeps links to, who listens where, its farewell, and the client requests it serves
(:mod:`overlay.net.client_requests`).  The node itself knows none of this.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from overlay.core.config import PeerConfig
from overlay.core.peer import Peer, PeerSnapshot
from overlay.net.client_requests import ClientRequests
from overlay.net.faults import FaultInjector
from overlay.net.handshake_gate import HandshakeGate
from overlay.net.keys import HIT_VERIFIER, KeyPair
from overlay.net.node import Node, NodeConfig, stat_counters
from overlay.net.secure import PLAINTEXT, LinkIdentity, Security
from overlay.protocol.identity import Address, PeerId
from overlay.protocol.messages import (
    MAX_COUNTER_VALUE,
    MAX_STATS_ENTRIES_PER_WEAK,
    MAX_STATS_NEIGHBORS,
    MAX_STATS_PASSIVE,
    MAX_STATS_SUPER_NEIGHBORS,
    MAX_STATS_SUPER_TARGET,
    MAX_STATS_SUPERS,
    MAX_STATS_WEAK,
    Handshake,
    StatsReply,
)
from overlay.protocol.randomness import RandomSource
from overlay.protocol.wire import PROTOCOL_VERSION


def peer_stats(peer: Peer, node: Node) -> StatsReply:
    """The answer to a stats request: the core's snapshot plus the runtime's counters."""
    shot = peer.snapshot()
    counters = stat_counters(shot.counters, node)
    return StatsReply(
        id=shot.id,
        address=shot.address,
        role=shot.role,
        joined=shot.joined,
        neighbors=shot.neighbors[:MAX_STATS_NEIGHBORS],
        passive=shot.passive[:MAX_STATS_PASSIVE],
        known_hosts=min(shot.known_hosts, MAX_COUNTER_VALUE),
        counters=counters,
        **super_stats(shot),
    )


def super_stats(shot: PeerSnapshot) -> dict[str, Any]:
    """The super-peer fields of a stats reply, cut to the wire's bounds (a super peer
    serving more weak peers than a reply names lists the first ones, each with its count)."""
    weak = shot.weak_peers[:MAX_STATS_WEAK]
    return {
        "super_peers": shot.super_peers[:MAX_STATS_SUPERS],
        "weak_peers": weak,
        "index_entries": tuple(
            min(entries, MAX_STATS_ENTRIES_PER_WEAK) for entries in shot.index_entries[: len(weak)]
        ),
        "super_neighbors": shot.super_neighbors[:MAX_STATS_SUPER_NEIGHBORS],
        "index_size": min(shot.index_size, MAX_COUNTER_VALUE),
        "role_changes": min(shot.role_changes, MAX_COUNTER_VALUE),
        "super_target": min(shot.super_target, MAX_STATS_SUPER_TARGET),
        "item_count": min(shot.item_count, MAX_COUNTER_VALUE),
    }


def peer_identifier(peer: Peer) -> Callable[[Address], PeerId | None]:
    """Who the peer's views say listens on an address (views are small: a scan is cheap)."""
    membership = peer.membership

    def identify(address: Address) -> PeerId | None:
        for peer_id, neighbor in membership.active.items():
            if neighbor.contact.address == address:
                return peer_id
        for peer_id, (contact, _deadline) in membership.pending.items():
            if contact.address == address:
                return peer_id
        for peer_id, entry in membership.passive.items():
            if entry.contact.address == address:
                return peer_id
        return None

    return identify


def keyed_peer(
    address: Address,
    config: PeerConfig,
    rng: RandomSource,
    key: KeyPair,
    *,
    bootstrap: Address | None = None,
    join_via: Address | None = None,
    peer_class: type[Peer] = Peer,
) -> Peer:
    """A peer of the runtime: ``key`` is its identity (its id is the key's, it signs
    its hits and index entries with it) and it checks others' signatures with Ed25519
    (the process's one verifier, which remembers the signatures it found good)."""
    return peer_class(
        address,
        config,
        rng,
        signer=key,
        verifier=HIT_VERIFIER,
        bootstrap=bootstrap,
        join_via=join_via,
    )


def link_security(key: KeyPair, plaintext: bool = False) -> Security:
    """What a node's links prove: ``key`` by a Noise handshake, or nothing at all with
    ``--plaintext``."""
    return PLAINTEXT if plaintext else LinkIdentity(key)


def peer_node(
    peer: Peer,
    config: NodeConfig | None = None,
    *,
    security: Security,
    faults: FaultInjector | None = None,
    gate: HandshakeGate | None = None,
) -> Node:
    """A node that runs ``peer``: handshakes with its role, answers stats and client
    requests, leaves politely.  ``security``'s key must be the one behind ``peer.id``
    (build the peer with ``peer_id=key.peer_id``), or :data:`~overlay.net.secure.PLAINTEXT`."""
    client = ClientRequests(peer)
    return Node(
        peer,
        peer.contact,
        config,
        security=security,
        handshake=lambda: Handshake(
            PROTOCOL_VERSION, peer.contact, peer.role, peer.config.capacity
        ),
        stats=lambda node: peer_stats(peer, node),
        identify=peer_identifier(peer),
        keeps=lambda peer_id: (
            peer_id in peer.membership.active
            or peer_id in peer.membership.pending
            or (peer.supers is not None and peer.supers.relates(peer_id))
        ),
        farewell=peer.leave,
        client=client,
        faults=faults,
        gate=gate,
        # A peer with no neighbor (joining, or cut off) is what a forming swarm waits
        # for: its dials go first at the gate.
        urgent=lambda: not peer.membership.active,
    )
