"""The peer core's links are shared by its parts: membership must not close a link the
super-peer layer still uses (over TCP, one connection per peer carries both)."""

from __future__ import annotations

from overlay.core.config import MembershipConfig, PeerConfig, SuperConfig
from overlay.core.peer import Peer
from overlay.protocol.effects import Close
from overlay.protocol.messages import Disconnect
from tests.harness import Hand

CONFIG = PeerConfig(
    membership=MembershipConfig(),
    capacity=10,
    supers=SuperConfig(enabled=True, seed_wait=1.0, min_uptime=0.0, settle_periods=1),
)


def attached_pair() -> tuple[Hand, Peer, Peer]:
    """Four peers run until the layer forms; a weak peer and one of its super peers
    that is also its overlay neighbor."""
    hand = Hand(seed=7, config=CONFIG)
    hand.add_bootstrap()
    for _ in range(4):
        hand.add_peer()
    hand.advance(120)
    for weak in hand.peers.values():
        if weak.supers is None or weak.role != "weak":
            continue
        for super_id in weak.supers.attached:
            if super_id in weak.membership.active:
                return hand, weak, next(p for p in hand.peers.values() if p.id == super_id)
    raise AssertionError("no weak peer has its super peer as a neighbor")


def test_a_dropped_neighbor_that_is_my_super_peer_keeps_its_link() -> None:
    hand, weak, chief = attached_pair()
    effects = weak.receive(Disconnect("shedding"), chief.contact, hand.now)
    assert chief.id not in weak.membership.active  # membership did drop it
    assert Close(chief.address) not in effects  # ... but the link stays for the layer
    assert weak.supers is not None and chief.id in weak.supers.attached
    # The same drop from a peer the layer does not use closes the link as before.
    others = [p for p in hand.peers.values() if p.id in weak.membership.active]
    plain = [p for p in others if weak.supers is not None and not weak.supers.relates(p.id)]
    assert plain
    effects = weak.receive(Disconnect("shedding"), plain[0].contact, hand.now)
    assert Close(plain[0].address) in effects


def test_the_super_peer_keeps_the_link_to_its_weak_peer_too() -> None:
    hand, weak, chief = attached_pair()
    assert chief.supers is not None and chief.supers.relates(weak.id)
    assert chief.supers.relates_at(weak.address)
    assert weak.id in chief.membership.active
    effects = chief.receive(Disconnect("shedding"), weak.contact, hand.now)
    assert Close(weak.address) not in effects
