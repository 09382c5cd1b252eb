"""Unit tests of the partial view, driving peer cores by hand with fake time."""

from __future__ import annotations

import random
from collections.abc import Sequence

import attrs

from overlay.core.config import MembershipConfig, PeerConfig
from overlay.core.membership import PassiveEntry, PassiveView
from overlay.core.peer import Peer
from overlay.protocol.effects import Close, Notify, Send
from overlay.protocol.identity import Address, Contact
from overlay.protocol.messages import (
    Disconnect,
    Heartbeat,
    Join,
    Leave,
    NeighborAccept,
    NeighborReject,
    NeighborRequest,
    PeerSample,
    Redirect,
    Register,
    ShuffleEntry,
    ShuffleReply,
    ShuffleRequest,
    Unregister,
)
from tests.harness import BOOTSTRAP, Hand
from tests.keys import model_peer

SMALL = PeerConfig(membership=MembershipConfig(target_degree=2, max_degree=4, passive_size=6))


def contact(n: int) -> Contact:
    return Contact(f"{n:032x}", Address("127.0.0.2", 9000 + n))


def lone_peer(config: PeerConfig = SMALL, seed: int = 1) -> Peer:
    return model_peer(Address("127.0.0.1", 8000), config, seed, bootstrap=BOOTSTRAP)


def sends(effects: Sequence[object]) -> list[Send]:
    return [e for e in effects if isinstance(e, Send)]


def link(peer: Peer, *others: Contact, now: float = 0.0) -> None:
    """Make ``others`` neighbors of ``peer`` as if they had asked."""
    for other in others:
        peer.receive(NeighborRequest(), other, now)


def test_start_registers_with_the_bootstrap() -> None:
    peer = lone_peer()
    effects = peer.start(0.0)
    assert effects == [Send(BOOTSTRAP, Register(16, "weak", 1))]


def test_sample_from_bootstrap_sends_joins_to_half_the_target_degree() -> None:
    config = PeerConfig(membership=MembershipConfig(target_degree=6))
    peer = lone_peer(config)
    peer.start(0.0)
    bootstrap = Contact("f" * 32, BOOTSTRAP)
    sample = tuple(contact(n) for n in range(10))
    joins = sends(peer.receive(PeerSample(sample), bootstrap, 0.1))
    assert len(joins) == 3
    assert all(isinstance(s.message, Join) for s in joins)
    assert {s.to for s in joins} <= {c.address for c in sample}
    assert set(peer.membership.passive) == {c.id for c in sample}


def test_a_sample_from_anyone_but_the_bootstrap_is_ignored() -> None:
    peer = lone_peer()
    peer.start(0.0)
    effects = peer.receive(PeerSample((contact(2), contact(3))), contact(1), 0.1)
    assert effects == []
    assert not peer.membership.passive
    assert peer.membership.counters["sample_from_non_bootstrap"] == 1


def test_join_at_a_peer_under_its_target_just_links() -> None:
    peer = lone_peer()
    effects = peer.receive(Join(), contact(1), 0.0)
    assert Send(contact(1).address, NeighborAccept(1)) in effects
    assert list(peer.membership.active) == [contact(1).id]


def test_join_at_a_full_peer_splits_one_of_its_links() -> None:
    peer = lone_peer()  # target degree 2
    link(peer, contact(1), contact(2))
    effects = peer.receive(Join(), contact(3), 1.0)
    redirects = [s for s in sends(effects) if isinstance(s.message, Redirect)]
    assert len(redirects) == 1
    victim = redirects[0].to
    assert victim in {contact(1).address, contact(2).address}
    assert redirects[0].message == Redirect(contact(3))
    assert Send(contact(3).address, NeighborAccept(2)) in effects
    # Degree unchanged: one link traded for the newcomer.
    assert len(peer.membership.active) == 2
    assert contact(3).id in peer.membership.active


def test_redirect_replaces_the_splitter_by_the_newcomer() -> None:
    peer = lone_peer()
    link(peer, contact(1), contact(2))
    effects = peer.receive(Redirect(contact(3)), contact(1), 1.0)
    assert set(peer.membership.active) == {contact(2).id, contact(3).id}
    assert Send(contact(3).address, NeighborAccept(2)) in effects


def test_redirect_from_a_non_neighbor_is_ignored() -> None:
    peer = lone_peer()
    link(peer, contact(2))
    assert sends(peer.receive(Redirect(contact(3)), contact(1), 1.0)) == []
    assert set(peer.membership.active) == {contact(2).id}


def test_full_peer_rejects_a_normal_request_but_takes_an_urgent_one() -> None:
    peer = lone_peer()  # max degree 4
    link(peer, *(contact(n) for n in range(1, 5)))
    assert sends(peer.receive(NeighborRequest(urgent=False), contact(9), 1.0)) == [
        Send(contact(9).address, NeighborReject())
    ]
    effects = peer.receive(NeighborRequest(urgent=True), contact(9), 1.0)
    evicted = [s for s in sends(effects) if isinstance(s.message, Disconnect)]
    assert len(evicted) == 1
    assert len(peer.membership.active) == 4
    assert contact(9).id in peer.membership.active


def test_a_silent_neighbor_is_declared_dead_and_replaced_from_the_passive_view() -> None:
    config = PeerConfig(
        membership=MembershipConfig(
            target_degree=2, max_degree=4, heartbeat_period=1.0, failure_timeout=3.0
        )
    )
    peer = lone_peer(config)
    peer.start(0.0)
    link(peer, contact(1), contact(2))
    peer.membership.passive.clear()
    bootstrap = Contact("f" * 32, BOOTSTRAP)
    peer.receive(PeerSample((contact(5),)), bootstrap, 0.0)
    now = 0.0
    sent: list[Send] = []
    while now < 5.0:
        now = peer.next_deadline()
        sent += sends(peer.handle_timer(now))
        sent += sends(peer.receive(Heartbeat(2), contact(1), now))  # 2 stays silent
    active = peer.membership.active
    assert contact(2).id not in active
    assert contact(1).id in active
    assert contact(2).id in peer.membership.tombstones
    # The replacement request went to the only passive entry, and to nobody dead.
    requests = [s.to for s in sent if isinstance(s.message, NeighborRequest)]
    assert contact(5).address in requests
    assert contact(2).address not in requests


def test_heartbeats_go_to_every_neighbor_with_my_degree() -> None:
    peer = lone_peer()
    peer.start(0.0)
    link(peer, contact(1), contact(2))
    effects = peer.handle_timer(peer.membership.tick_at)
    beats = [s for s in sends(effects) if isinstance(s.message, Heartbeat)]
    assert {s.to for s in beats} == {contact(1).address, contact(2).address}
    assert all(s.message == Heartbeat(2) for s in beats)


def test_heartbeat_from_a_stranger_gets_a_disconnect() -> None:
    peer = lone_peer()
    effects = peer.receive(Heartbeat(3), contact(7), 0.0)
    assert sends(effects) == [Send(contact(7).address, Disconnect("not a neighbor"))]
    assert not peer.membership.active


def test_leave_says_goodbye_to_neighbors_and_bootstrap() -> None:
    peer = lone_peer()
    link(peer, contact(1), contact(2))
    effects = peer.leave(1.0)
    assert Send(contact(1).address, Leave()) in effects
    assert Send(contact(2).address, Leave()) in effects
    assert Send(BOOTSTRAP, Unregister()) in effects
    assert Close(contact(1).address) in effects
    assert peer.next_deadline() == float("inf")


def test_a_leaving_neighbor_is_forgotten_and_not_taken_back_from_stale_caches() -> None:
    peer = lone_peer()
    link(peer, contact(1), contact(2))
    effects = peer.receive(Leave(), contact(1), 1.0)
    assert contact(1).id not in peer.membership.active
    assert Notify("neighbor_down", contact(1).id, "left") in effects
    peer.receive(ShuffleReply((ShuffleEntry(contact(1), 0),)), contact(2), 1.5)
    assert contact(1).id not in peer.membership.passive


def test_shuffle_goes_to_the_oldest_passive_entry_and_carries_myself_fresh() -> None:
    config = PeerConfig(membership=MembershipConfig(shuffle_length=3, passive_size=10))
    peer = lone_peer(config)
    peer.start(0.0)
    bootstrap = Contact("f" * 32, BOOTSTRAP)
    peer.receive(PeerSample(tuple(contact(n) for n in range(1, 6))), bootstrap, 0.0)
    peer.membership.pending.clear()
    passive = peer.membership.passive
    passive[contact(4).id] = attrs.evolve(passive[contact(4).id], age=9)
    effects = peer.handle_timer(peer.membership.shuffle_at)
    shuffles = [s for s in sends(effects) if isinstance(s.message, ShuffleRequest)]
    assert len(shuffles) == 1
    request = shuffles[0]
    assert request.to == contact(4).address
    assert isinstance(request.message, ShuffleRequest)
    assert request.message.entries[0] == ShuffleEntry(peer.contact, 0)
    assert len(request.message.entries) == 3
    assert contact(4).id not in peer.membership.passive  # put back only if it answers


def test_shuffle_reply_merges_into_the_cache_without_exceeding_it() -> None:
    config = PeerConfig(membership=MembershipConfig(passive_size=4))
    peer = lone_peer(config)
    entries = tuple(ShuffleEntry(contact(n), n) for n in range(1, 10))
    peer.receive(ShuffleRequest(entries), contact(20), 0.0)
    assert len(peer.membership.passive) == 4
    assert peer.membership.passive[contact(1).id].age == 1  # ages travel with entries


def test_shuffle_request_is_answered_without_the_asker() -> None:
    peer = lone_peer()
    link(peer, contact(1), contact(2))
    effects = peer.receive(ShuffleRequest((ShuffleEntry(contact(1), 0),)), contact(1), 0.0)
    replies = [s.message for s in sends(effects) if isinstance(s.message, ShuffleReply)]
    assert len(replies) == 1
    assert all(e.contact != contact(1) for e in replies[0].entries)


def test_a_shuffle_reply_from_a_non_neighbor_closes_its_link_but_not_a_neighbors() -> None:
    peer = lone_peer()
    link(peer, contact(1))
    reply = ShuffleReply((ShuffleEntry(contact(5), 0),))
    assert Close(contact(2).address) in peer.receive(reply, contact(2), 0.0)
    assert not any(isinstance(e, Close) for e in peer.receive(reply, contact(1), 0.0))


def test_the_answered_side_of_an_exchange_closes_nothing() -> None:
    """Only the side that asked closes: it has read the answer, and a request that
    arrives right behind it on the same link is not cut off."""
    peer = lone_peer()
    effects = peer.receive(ShuffleRequest((ShuffleEntry(contact(5), 0),)), contact(2), 0.0)
    assert [type(s.message) for s in sends(effects)] == [ShuffleReply]
    assert not any(isinstance(e, Close) for e in effects)


def test_the_bootstrap_link_closes_once_its_sample_is_in_and_a_refusal_closes_too() -> None:
    peer = lone_peer()
    peer.start(0.0)
    bootstrap = Contact("f" * 32, BOOTSTRAP)
    effects = peer.receive(PeerSample((contact(2), contact(3))), bootstrap, 0.1)
    assert effects[-1] == Close(BOOTSTRAP)
    asked = {s.to for s in sends(effects) if isinstance(s.message, Join)}
    refuser = contact(2) if contact(2).address in asked else contact(3)
    refused = peer.receive(NeighborReject(), refuser, 0.2)
    assert Close(refuser.address) in refused
    assert refuser.id not in peer.membership.pending


def test_degree_never_exceeds_the_maximum_whatever_arrives() -> None:
    peer = lone_peer()
    rng = random.Random(3)
    kinds = [Join(), NeighborRequest(True), NeighborRequest(False), NeighborAccept(1)]
    for step in range(500):
        peer.receive(rng.choice(kinds), contact(rng.randrange(1, 40)), step * 0.01)
        assert len(peer.membership.active) <= SMALL.membership.max_degree


def test_an_isolated_peer_goes_back_to_the_bootstrap() -> None:
    config = PeerConfig(
        membership=MembershipConfig(
            target_degree=2, heartbeat_period=1.0, failure_timeout=2.0, bootstrap_retry=1.0
        )
    )
    peer = lone_peer(config)
    peer.start(0.0)
    link(peer, contact(1))
    peer.membership.passive.clear()
    peer.membership.known_hosts.clear()
    registered = []
    now = 0.0
    while now < 6.0:
        now = peer.next_deadline()
        registered += [s for s in sends(peer.handle_timer(now)) if isinstance(s.message, Register)]
    assert not peer.membership.active
    assert registered, "an isolated peer with empty caches must ask the bootstrap again"


# ---------------------------------------------------------------------- several cores by hand


def test_three_peers_join_through_the_bootstrap_into_a_symmetric_triangle() -> None:
    hand = Hand(seed=4, config=SMALL)
    hand.add_bootstrap()
    peers = [hand.add_peer() for _ in range(3)]
    hand.advance(10.0)
    for peer in peers:
        assert len(peer.membership.active) == 2, peer.membership.active
        for other in peer.membership.active:
            other_peer = next(p for p in peers if p.id == other)
            assert peer.id in other_peer.membership.active
    assert len(hand.bootstrap or []) == 3


def test_a_lost_accept_is_undone_by_the_heartbeat_rule() -> None:
    hand = Hand(seed=5, config=SMALL)
    a = hand.add_peer()
    b = hand.add_peer()
    # b asks a; a accepts, but the accept is lost: a lists b, b does not list a.
    hand._emit(a.contact, a.receive(NeighborRequest(), b.contact, 0.0))
    hand.drop_all()
    assert b.id in a.membership.active and a.id not in b.membership.active
    hand._emit(a.contact, a.handle_timer(a.membership.tick_at))  # a heartbeats b
    hand.deliver_all()
    assert hand.sent_by(b.address, Disconnect), "b must refuse a link it does not list"
    # a dropped the half link; it may then have asked b properly: either way the
    # link is symmetric again.
    assert (b.id in a.membership.active) == (a.id in b.membership.active)


def test_the_passive_view_keeps_a_dicts_order_and_ages_its_entries() -> None:
    """The passive view's lists behave as the dict they replaced: an entry put again keeps
    its place, a removed one leaves the others in order, and the oldest (the first of
    equals) is the one a shuffle picks."""
    view = PassiveView()
    for n in range(1, 5):
        view.put(contact(n), n % 3, own=n == 2, group=f"g{n}")
    view.put(contact(3), 7, own=True, group="moved")  # again: same place, new fields
    assert list(view) == [contact(n).id for n in range(1, 5)]
    assert view[contact(3).id] == PassiveEntry(contact(3), 7, True, "moved")
    assert view.is_own(contact(2).id) and not view.is_own(contact(1).id)
    view.discard(contact(2).id)
    view.discard(contact(9).id)  # absent: nothing happens
    assert list(view) == [contact(1).id, contact(3).id, contact(4).id]
    view.put(contact(5), 7, own=False, group="g5")  # as old as contact 3, but later
    oldest = view.age_all()
    assert view.contacts[oldest] == contact(3)
    assert [entry.age for entry in view.values()] == [2, 8, 2, 8]
    assert contact(3).id in view and contact(2).id not in view and len(view) == 4
