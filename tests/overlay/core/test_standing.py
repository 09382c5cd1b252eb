"""Hostile neighbours in the core: standing, the blacklist and the per-prefix cap.

The ledger alone first (overlay/core/standing.py), then whole peer cores wired by hand
(tests/harness.py) with fake time: a neighbour that serves forged content, a
neighbour that drops every walker, attackers of one /24 trying to surround a peer.
"""

from __future__ import annotations

import random

import attrs
import pytest

from overlay.core.config import MembershipConfig, PeerConfig, StandingConfig
from overlay.core.peer import Peer
from overlay.core.standing import WALKER_LOST, WALKER_RETURNED, Standing
from overlay.protocol.effects import Send
from overlay.protocol.identity import Address, Contact
from overlay.protocol.messages import (
    Disconnect,
    FetchReply,
    Join,
    NeighborAccept,
    NeighborReject,
    NeighborRequest,
    Query,
    Redirect,
    WalkStep,
)
from search.config import SearchConfig
from search.errors import ContentMismatch
from search.store import Criteria
from tests.harness import BOOTSTRAP, Hand
from tests.keys import keyed_contact, model_peer, signed_hit

ATTACKER = "a" * 32


# --------------------------------------------------------------------------- the ledger


def test_one_value_failing_its_hash_check_is_enough() -> None:
    standing = Standing(StandingConfig())
    standing.record(ATTACKER, "search.fetch.mismatch")
    assert standing.take_distrusted() == [ATTACKER]
    assert standing.take_distrusted() == []  # each peer once
    assert standing.counters["standing.forged_content"] == 1


def test_refusals_add_up_and_fade() -> None:
    config = StandingConfig(fault_limit=4.0, fault_half_life=10.0)
    standing = Standing(config)
    for _ in range(3):
        standing.record(ATTACKER, "role.query_to_weak")
    assert standing.take_distrusted() == []
    assert standing.faults_of(ATTACKER) == pytest.approx(3.0)
    standing.now = 20.0  # two half-lives: 3 became 0.75
    assert standing.faults_of(ATTACKER) == pytest.approx(0.75)
    standing.record(ATTACKER, "role.query_to_weak")
    assert standing.take_distrusted() == []
    for _ in range(3):
        standing.record(ATTACKER, "search.refused.keywords")
    assert standing.take_distrusted() == [ATTACKER]


def test_a_neighbour_that_loses_every_walker_is_distrusted_after_the_evidence() -> None:
    config = StandingConfig(walker_evidence=8, walker_loss_limit=0.9)
    standing = Standing(config)
    for _ in range(7):
        standing.record(ATTACKER, WALKER_LOST)
    assert standing.take_distrusted() == []
    standing.record(ATTACKER, WALKER_LOST)
    assert standing.take_distrusted() == [ATTACKER]


def test_an_honest_neighbour_losing_half_its_walkers_downstream_is_not() -> None:
    standing = Standing(StandingConfig())
    rng = random.Random(4)
    for _ in range(2000):
        standing.record("b" * 32, WALKER_LOST if rng.random() < 0.5 else WALKER_RETURNED)
    assert standing.take_distrusted() == []
    assert standing.counters["standing.walkers_lost"] > 900


def test_the_ledger_is_bounded_and_can_be_turned_off() -> None:
    standing = Standing(StandingConfig(size=4))
    for number in range(10):
        standing.record(f"{number:032x}", "search.hit.mismatched")
    assert len(standing.records) == 4
    assert list(standing.records) == [f"{n:032x}" for n in range(6, 10)]
    off = Standing(StandingConfig(enabled=False))
    off.record(ATTACKER, "search.fetch.mismatch")
    assert off.take_distrusted() == [] and not off.records


# --------------------------------------------------------------------------- whole cores

CONFIG = PeerConfig(
    membership=MembershipConfig(target_degree=3, max_degree=5, blacklist_seconds=60.0),
    search=SearchConfig(walkers=4, check_every=2),
)


def linked_hand(peers: int, config: PeerConfig = CONFIG) -> Hand:
    hand = Hand(seed=3, config=config)
    hand.add_bootstrap()
    for _ in range(peers):
        hand.add_peer()
    hand.advance(20.0)
    return hand


def test_a_neighbour_serving_forged_content_is_replaced_and_kept_out() -> None:
    hand = linked_hand(8)
    target = CONFIG.membership.target_degree
    # A victim at its target degree, so that losing the attacker leaves it short and it
    # repairs (one above it, holding a headroom link, would not need to).
    victim = next(p for p in hand.peers.values() if len(p.membership.active) == target)
    attacker_id = next(iter(victim.membership.active))
    attacker = victim.membership.active[attacker_id].contact
    key = "0" * 64
    request_id, _effects = victim.search.start_fetch(key, attacker, hand.now)
    hand.drop_all()
    out = victim.receive(FetchReply(request_id, key, True, b"forged"), attacker, hand.now)

    assert isinstance(victim.search.fetches[request_id].error, ContentMismatch)
    assert attacker_id not in victim.membership.active
    assert attacker_id in victim.membership.blacklist
    assert Send(attacker.address, Disconnect("distrusted")) in out
    asks = [e for e in out if isinstance(e, Send) and isinstance(e.message, NeighborRequest)]
    assert asks and all(a.to != attacker.address for a in asks), "repair asks someone else"
    assert victim.snapshot().counters["standing.replaced"] == 1

    # The attacker cannot come back while blacklisted, by any door...
    for door in (NeighborRequest(True), Join()):
        answer = victim.receive(door, attacker, hand.now + 1)
        assert Send(attacker.address, NeighborReject()) in answer
    victim.receive(NeighborAccept(3), attacker, hand.now + 1)
    assert attacker_id not in victim.membership.active
    # ... and is let in again once the blacklist has expired.
    later = hand.now + 61.0
    victim.handle_timer(later)
    victim.receive(NeighborRequest(True), attacker, later)
    assert attacker_id in victim.membership.active


def test_a_neighbour_that_drops_every_walker_is_replaced() -> None:
    hand = linked_hand(10)
    origin = next(iter(hand.peers.values()))
    dropper_id = next(iter(origin.membership.active))
    dropper = hand.peers[origin.membership.active[dropper_id].contact.address]
    honest = [p for p in origin.membership.active if p != dropper_id]
    # Walkers and queries to the dropper are swallowed: neither answered nor passed on.
    hand.swallow = lambda e: e.to == dropper.address and isinstance(e.message, WalkStep | Query)
    for round_ in range(40):
        if dropper_id in origin.membership.blacklist:
            break
        _search_id, effects = origin.search.start_walk(
            Criteria.for_words(f"nothing {round_}"), hand.now
        )
        hand._emit(origin.contact, effects)
        hand.advance(3.0)
    assert dropper_id in origin.membership.blacklist
    assert dropper_id not in origin.membership.active
    assert not set(honest) & set(origin.membership.blacklist), "an honest neighbour blamed"
    counters = origin.snapshot().counters
    assert counters["standing.walkers_lost"] >= 8
    assert counters["standing.walkers_returned"] > 0


# --------------------------------------------------------------------------- the prefix cap

ME = Address("127.0.0.1", 8000)


def attacker(number: int) -> Contact:
    return Contact(f"{0xA0 + number:032x}", Address(f"127.66.0.{number + 1}", 9000))


def lone(membership: MembershipConfig | None = None) -> Peer:
    config = PeerConfig(membership=membership or MembershipConfig())
    peer = model_peer(ME, config, 1, bootstrap=BOOTSTRAP)
    peer.start(0.0)
    return peer


def test_attackers_of_one_prefix_get_at_most_two_links() -> None:
    peer = lone()
    answers = [peer.receive(NeighborRequest(True), attacker(n), 1.0) for n in range(6)]
    linked = [c.id for c in map(attacker, range(6)) if c.id in peer.membership.active]
    assert len(linked) == 2
    assert all(Send(attacker(n).address, NeighborReject()) in answers[n] for n in range(2, 6))
    assert peer.snapshot().counters["refused.prefix_full"] == 4
    # A join, an accept and a redirect from the same prefix are refused alike.
    peer.receive(Join(), attacker(6), 1.0)
    accept = peer.receive(NeighborAccept(1), attacker(7), 1.0)
    assert Send(attacker(7).address, Disconnect("full")) in accept
    honest = Contact("c" * 32, Address("10.1.2.3", 9000))
    peer.receive(NeighborRequest(), honest, 1.0)
    peer.receive(Redirect(attacker(8)), honest, 1.0)
    assert len([p for p in peer.membership.active if p.startswith("000")]) == 2


def test_other_prefixes_and_my_own_are_not_capped() -> None:
    peer = lone()
    others = [Contact(f"{0xB0 + n:032x}", Address(f"10.{n}.0.1", 9000)) for n in range(4)]
    mine = [Contact(f"{0xC0 + n:032x}", Address("127.0.0.1", 9100 + n)) for n in range(4)]
    for contact in others + mine:
        peer.receive(NeighborRequest(), contact, 1.0)
    assert len(peer.membership.active) == 8


def test_the_cap_is_a_setting() -> None:
    wide = lone(MembershipConfig(max_per_prefix=0))
    tight = lone(MembershipConfig(max_per_prefix=1))
    for n in range(4):
        wide.receive(NeighborRequest(), attacker(n), 1.0)
        tight.receive(NeighborRequest(), attacker(n), 1.0)
        # 127.66.1.x is another /24 of the same /16: a prefix of its own.
        other = attrs.evolve(attacker(n + 10), address=Address(f"127.66.1.{n + 1}", 9000))
        tight.receive(NeighborRequest(), other, 1.0)
    assert len(wide.membership.active) == 4
    assert len(tight.membership.active) == 2


def test_repair_does_not_ask_peers_of_a_full_prefix() -> None:
    peer = lone(MembershipConfig(target_degree=4, max_degree=6))
    for n in range(2):
        peer.receive(NeighborRequest(), attacker(n), 1.0)
    # The passive view knows only more attackers of that prefix.
    from overlay.core.membership import PassiveEntry

    for n in range(2, 8):
        peer.membership.passive[attacker(n).id] = PassiveEntry(attacker(n))
    out = peer.handle_timer(peer.next_deadline() + 10)
    asked = [e.to for e in out if isinstance(e, Send) and isinstance(e.message, NeighborRequest)]
    assert not any(to.host.startswith("127.66.0.") for to in asked)


# --------------------------------------------------------------------------- hits from liars


def test_hits_naming_a_distrusted_holder_are_not_hits() -> None:
    peer = lone()
    key = "1" * 64
    liar_key, liar = keyed_contact("liar", attacker(0).address)
    honest_key, honest = keyed_contact("honest", Address("10.1.2.3", 9000))
    for n in range(3):  # neighbors to walk through, or the walk ends at once
        peer.receive(
            NeighborRequest(), Contact(f"{0xB0 + n:032x}", Address(f"10.{n}.0.1", 9000)), 1.0
        )
    peer.membership.distrust(liar.id, 1.0, [])
    search_id, _effects = peer.search.start("walk", Criteria(key=key), 1.0)
    (wire_id,) = [w for w, s in peer.search.ctx.origins.items() if s.search_id == search_id]

    peer.receive(signed_hit(liar_key, wire_id, key, None, 6, liar, 1), liar, 1.1)
    assert peer.search.counters["search.hit.distrusted"] == 1
    assert search_id not in peer.search.results, "a liar's hit does not satisfy the walk"
    peer.receive(signed_hit(honest_key, wire_id, key, None, 6, honest, 2), honest, 1.2)
    (hit,) = peer.search.results[search_id].hits
    assert hit.holder == honest
