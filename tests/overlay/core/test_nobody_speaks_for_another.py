"""Nobody speaks for another: every handler acts for its sender only.

The sender of a message is the connection it came on (over TCP, the id its handshake
proved; in these tests, whoever the test says).  Each test has Mallory send a
message that names, or would act for, the victim Vic, and shows that Vic's standing
with the receiver is unchanged, and the links the receiver chose stay.
"""

from __future__ import annotations

from overlay.core.config import MembershipConfig, PeerConfig
from overlay.core.peer import Peer
from overlay.protocol.effects import Send
from overlay.protocol.identity import Address, Contact
from overlay.protocol.messages import (
    Disconnect,
    Heartbeat,
    Join,
    Leave,
    NeighborAccept,
    NeighborRequest,
    Redirect,
    ShuffleEntry,
    ShuffleRequest,
)
from tests.harness import BOOTSTRAP
from tests.keys import model_peer

CONFIG = PeerConfig(membership=MembershipConfig(target_degree=4, max_degree=8))
VIC = Contact("1" * 32, Address("10.1.0.1", 9000))
MALLORY = Contact("6" * 32, Address("10.66.0.1", 9000))


def honest(n: int) -> Contact:
    return Contact(f"{0x100 + n:032x}", Address(f"10.{10 + n}.0.1", 9000))


def receiver() -> Peer:
    """A peer with Vic and two others as neighbors, and Mallory too."""
    peer = model_peer(Address("10.0.0.1", 8000), CONFIG, 5, bootstrap=BOOTSTRAP)
    for contact in (VIC, honest(1), honest(2), MALLORY):
        peer.receive(NeighborRequest(), contact, 0.0)
    return peer


def vics_standing(peer: Peer) -> tuple[object, ...]:
    m = peer.membership
    neighbor = m.active.get(VIC.id)
    return (
        neighbor is not None and neighbor.contact,
        neighbor is not None and neighbor.last_heard,
        VIC.id in m.tombstones,
        VIC.id in m.blacklist,
        peer.standing.faults_of(VIC.id),
    )


def test_leave_disconnect_and_heartbeat_act_for_the_sender_only() -> None:
    peer = receiver()
    before = vics_standing(peer)
    for now, message in enumerate((Heartbeat(3), Disconnect("gone"), Leave()), start=1):
        peer.receive(message, MALLORY, float(now))
        assert vics_standing(peer) == before, message
    assert MALLORY.id not in peer.membership.active
    assert MALLORY.id in peer.membership.tombstones, "Mallory's Leave buried Mallory"


def test_a_stranger_claiming_vics_address_cannot_move_or_drop_vic() -> None:
    peer = receiver()
    before = vics_standing(peer)
    liar = Contact(MALLORY.id, VIC.address)  # Mallory's id, Vic's address
    for message in (Leave(), Disconnect(), Heartbeat(1), Join(), NeighborRequest(True)):
        peer.receive(message, liar, 1.0)
    assert vics_standing(peer) == before


def test_a_shuffle_cannot_move_vic_to_mallorys_address() -> None:
    peer = receiver()
    peer.receive(Disconnect(), VIC, 1.0)  # Vic is now in the passive view
    assert peer.membership.passive[VIC.id].contact == VIC
    forged = Contact(VIC.id, MALLORY.address)
    peer.receive(ShuffleRequest((ShuffleEntry(forged, 0),)), MALLORY, 2.0)
    assert peer.membership.passive[VIC.id].contact == VIC


def test_a_redirect_only_ends_the_senders_own_link() -> None:
    peer = receiver()
    newcomer = honest(7)
    effects = peer.receive(Redirect(newcomer), MALLORY, 1.0)
    assert MALLORY.id not in peer.membership.active
    assert VIC.id in peer.membership.active, "Vic keeps its link"
    assert Send(newcomer.address, NeighborAccept(len(peer.membership.active))) in effects
    # Mallory, a stranger now, redirects again: nothing at all changes.
    before = dict(peer.membership.active)
    assert peer.receive(Redirect(honest(8)), MALLORY, 2.0) == []
    assert dict(peer.membership.active) == before


def test_joins_and_urgent_requests_never_displace_the_links_a_peer_chose() -> None:
    peer = model_peer(Address("10.0.0.1", 8000), CONFIG, 5, bootstrap=BOOTSTRAP)
    m = peer.membership
    chosen = [honest(n) for n in range(CONFIG.membership.own_slots)]
    for contact in chosen:  # the peer asked these itself
        m._ask(contact, NeighborRequest(), 0.0, [], own=True)
        peer.receive(NeighborAccept(4), contact, 0.1)
    assert m.own_count() == len(chosen)
    for n in range(40):  # a flood of strangers
        stranger = Contact(f"{0x900 + n:032x}", Address(f"10.{100 + n}.0.1", 9000))
        peer.receive(Join() if n % 2 else NeighborRequest(urgent=True), stranger, 1.0 + n)
        peer.receive(NeighborAccept(1), stranger, 1.0 + n)
    assert all(c.id in m.active for c in chosen)
    strangers = [p for p in m.active if p not in {c.id for c in chosen}]
    # Strangers take only the free places up to the open limit, never a chosen one.
    assert len(strangers) <= m._open_limit() - len(chosen)
    assert len(m.active) <= m._open_limit()


def test_links_a_peer_chose_that_last_become_anchors_asked_first_after_a_restart() -> None:
    peer = model_peer(Address("10.0.0.1", 8000), CONFIG, 5, bootstrap=BOOTSTRAP)
    m = peer.membership
    peer.start(0.0)
    chosen, stranger = honest(1), honest(2)
    m._ask(chosen, NeighborRequest(), 0.0, [], own=True)
    peer.receive(NeighborAccept(4), chosen, 0.1)
    peer.receive(NeighborRequest(), stranger, 0.1)  # a link it did not choose
    now = 0.1
    while now < CONFIG.membership.anchor_age + 5.0:
        now += 1.0
        peer.receive(Heartbeat(4), chosen, now)
        peer.receive(Heartbeat(4), stranger, now)
        if peer.next_deadline() <= now:
            peer.handle_timer(now)
    assert list(m.anchors.values()) == [chosen]
    # The runtime keeps them in --state and seeds them before the next start.
    again = model_peer(Address("10.0.0.1", 8000), CONFIG, 6, bootstrap=BOOTSTRAP)
    again.membership.anchors.update(m.anchors)
    effects = again.start(0.0)
    sent = [e for e in effects if type(e) is Send]
    assert sent[0] == Send(chosen.address, NeighborRequest(urgent=True))
    assert chosen.id in again.membership.own_asks
