"""The bootstrap's host cache as a pure state machine, with fake time."""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Sequence

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bootstrap.hostcache import HostCache, HostCacheConfig
from overlay.protocol.effects import Send
from overlay.protocol.identity import Address, Contact
from overlay.protocol.messages import MAX_SAMPLE, Leave, PeerSample, Register, Unregister

ME = Contact("e" * 32, Address("127.0.0.1", 7000))


def peer(n: int) -> Contact:
    return Contact(f"{n:032x}", Address("127.0.0.3", 1000 + n))


def cache(**kwargs: float) -> HostCache:
    return HostCache(ME, HostCacheConfig(**kwargs), random.Random(7))  # type: ignore[arg-type]


def sample_of(effects: Sequence[object]) -> PeerSample:
    assert len(effects) == 1
    effect = effects[0]
    assert isinstance(effect, Send) and isinstance(effect.message, PeerSample)
    return effect.message


def test_register_answers_with_a_sample_that_never_names_the_asker() -> None:
    hosts = cache()
    for n in range(10):
        hosts.receive(Register(0), peer(n), 0.0)
    for n in range(10):
        sample = sample_of(hosts.receive(Register(5), peer(n), 1.0))
        assert len(sample.peers) == 5
        assert peer(n) not in sample.peers
        assert len(set(sample.peers)) == 5


def test_sample_is_never_more_than_asked_nor_more_than_the_cap() -> None:
    hosts = cache()
    for n in range(200):
        hosts.add(peer(n), "weak", 1, 100.0)
    assert len(hosts.sample(3, exclude="")) == 3
    assert len(hosts.sample(10_000, exclude="")) == MAX_SAMPLE
    assert hosts.sample(0, exclude="") == []


def test_sample_is_uniform() -> None:
    hosts = cache()
    for n in range(20):
        hosts.add(peer(n), "weak", 1, 100.0)
    counts: Counter[str] = Counter()
    for _ in range(4000):
        counts.update(c.id for c in hosts.sample(2, exclude=peer(0).id))
    assert peer(0).id not in counts
    # 8000 draws over 19 peers: about 421 each; a biased sampler would be far off.
    assert min(counts.values()) > 330 and max(counts.values()) < 520


def test_leases_expire_and_refresh() -> None:
    hosts = cache(lease=10.0, sweep_period=1.0)
    hosts.start(0.0)
    hosts.receive(Register(0), peer(1), 0.0)
    hosts.receive(Register(0), peer(2), 0.0)
    hosts.receive(Register(0), peer(2), 8.0)  # refreshed
    hosts.handle_timer(11.0)
    assert peer(1).id not in hosts
    assert peer(2).id in hosts
    hosts.handle_timer(19.0)
    assert peer(2).id not in hosts


def test_unregister_forgets_at_once() -> None:
    hosts = cache()
    hosts.receive(Register(0), peer(1), 0.0)
    hosts.receive(Unregister(), peer(1), 0.5)
    assert len(hosts) == 0


def test_super_peers_are_advertised_to_others() -> None:
    hosts = cache()
    hosts.receive(Register(0, "super", 50), peer(1), 0.0)
    assert sample_of(hosts.receive(Register(4), peer(2), 0.0)).super_peers == (peer(1),)
    assert sample_of(hosts.receive(Register(4, "super"), peer(1), 0.0)).super_peers == ()


def test_registrations_are_rate_limited_per_address() -> None:
    hosts = cache(register_burst=3.0, register_rate=1.0)
    answers = [hosts.receive(Register(1), peer(1), 0.0) for _ in range(10)]
    assert sum(1 for a in answers if a) == 3
    assert hosts.counters["registrations_refused"] == 7
    assert hosts.receive(Register(1), peer(2), 0.0), "other addresses are unaffected"
    assert hosts.receive(Register(1), peer(1), 1.5), "tokens come back with time"


def test_a_full_cache_still_answers_but_records_no_more() -> None:
    hosts = cache(max_entries=5)
    for n in range(8):
        assert hosts.receive(Register(2), peer(n), 0.0)
    assert len(hosts) == 5
    assert hosts.counters["cache_full"] == 3


def test_a_full_rate_table_refuses_new_ids_until_idle_ones_are_forgotten() -> None:
    """The rate table is bounded (a flood of fresh keys cannot grow it); past it, a new
    id is refused until the sweep forgets idle buckets.  (The simulator sizes its
    bootstrap's table for its population: overlay.sim.scenario.bootstrap_config_for.)"""
    hosts = cache(rate_table_size=3, register_burst=2.0, register_rate=1.0)
    answered = [bool(hosts.receive(Register(1), peer(n), 0.0)) for n in range(5)]
    assert answered == [True, True, True, False, False]
    assert hosts.receive(Register(1), peer(1), 0.5), "a tracked id is still served"
    hosts.expire(10.0)  # idle for a full bucket's refill: forgotten
    assert hosts.receive(Register(1), peer(4), 10.0)


def test_records_restore_into_an_equal_cache() -> None:
    hosts = cache()
    for n in range(6):
        hosts.receive(Register(0, "super" if n % 2 else "weak", n), peer(n), 0.0)
    again = cache()
    again.restore(hosts.records())
    assert sorted(again.records(), key=lambda r: r.contact.id) == sorted(
        hosts.records(), key=lambda r: r.contact.id
    )


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["add", "remove"]), st.integers(0, 30)), max_size=80))
def test_add_and_remove_keep_the_sampling_index_consistent(ops: list[tuple[str, int]]) -> None:
    hosts = cache()
    live: set[str] = set()
    for op, n in ops:
        if op == "add":
            hosts.add(peer(n), "weak", 1, 100.0)
            live.add(peer(n).id)
        else:
            hosts.remove(peer(n).id)
            live.discard(peer(n).id)
    assert len(hosts) == len(live)
    assert {c.id for c in hosts.sample(MAX_SAMPLE, exclude="")} == (
        live if len(live) <= MAX_SAMPLE else {c.id for c in hosts.sample(MAX_SAMPLE, "")}
    )


# ------------------------------------------------------------------ attacks on the cache


def at(n: int, host: str) -> Contact:
    return Contact(f"{n:032x}", Address(host, 9000))


ATTACK_AT = 60.0
"""When the attack starts: the honest peers have registered (and refreshed) a minute."""


def poisoned(
    seconds: float = 15.0, supers: int = 10
) -> tuple[HostCache, list[Contact], list[Contact]]:
    """40 honest peers (``supers`` of them super) on 40 /24s, registered and refreshing
    for a minute; then 400 registrations from fresh keys on one /24 within ``seconds``,
    every one claiming to be a mighty super peer."""
    hosts = cache()
    hosts.start(0.0)
    honest = [at(n, f"10.{n}.0.1") for n in range(40)]
    for now in (0.0, 20.0, 40.0, ATTACK_AT):
        hosts.handle_timer(now)
        for n, contact in enumerate(honest):
            hosts.receive(Register(0, "super" if n < supers else "weak", 5), contact, now)
    fakes = [at(10_000 + n, f"203.0.113.{n % 250 + 1}") for n in range(400)]
    for n, fake in enumerate(fakes):
        now = ATTACK_AT + seconds * n / 400
        hosts.handle_timer(now)
        hosts.receive(Register(16, "super", 1_000_000), fake, now)
    return hosts, honest, fakes


def newcomer_lists(
    hosts: HostCache, fake_ids: set[str], start: float, rounds: int = 200
) -> tuple[float, float]:
    """The worst attacker-held share of a newcomer's sample and of its super-peer list,
    over ``rounds`` newcomers (each a fresh id on its own /24) asking from ``start``
    on, 0.05 s apart."""
    worst_sample = worst_supers = 0.0
    for round_ in range(rounds):
        now = start + round_ * 0.05
        hosts.handle_timer(now)
        newcomer = at(90_000 + round_, f"10.{100 + round_ % 150}.{round_ // 150}.1")
        sample = sample_of(hosts.receive(Register(16), newcomer, now))
        peers = [c for c in sample.peers if c.id != newcomer.id]
        worst_sample = max(worst_sample, sum(c.id in fake_ids for c in peers) / len(peers))
        supers = sample.super_peers
        assert supers, "a newcomer always hears of some super peer"
        worst_supers = max(worst_supers, sum(c.id in fake_ids for c in supers) / len(supers))
    return worst_sample, worst_supers


def test_a_flood_of_registrations_from_one_prefix_is_rate_limited() -> None:
    hosts, _honest, fakes = poisoned()
    recorded = [f for f in fakes if f.id in hosts]
    # 64 at once, then 8 a second: 184 in 15 s, the rest refused, and not recorded.
    assert 150 <= len(recorded) <= 190
    assert hosts.counters["newcomers_refused_for_prefix"] == 400 - len(recorded)
    # Refreshes of peers it holds are not newcomers: each is limited on its own.
    assert hosts.receive(Register(0, "super"), recorded[0], 20.0)


@pytest.mark.parametrize("supers", [10, 3, 1])
def test_one_prefix_full_of_fakes_gets_at_most_a_tenth_of_a_newcomers_lists(
    supers: int,
) -> None:
    """However few honest super peers there are (the 60-peer swarm has about 3), fresh
    "super" registrations are not listed: they have not served ``super_seniority``."""
    hosts, _honest, fakes = poisoned(supers=supers)
    fake_ids = {f.id for f in fakes}
    end_of_burst = ATTACK_AT + 15.0
    worst_sample, worst_supers = newcomer_lists(hosts, fake_ids, end_of_burst)
    assert worst_sample <= 0.1
    assert worst_supers == 0.0  # the bar is 10%
    # And no claim of capacity is kept beyond the cap.
    assert max(r.capacity for r in hosts.records()) == HostCacheConfig().max_capacity


def test_fakes_that_keep_refreshing_are_listed_but_their_prefix_holds_two_places() -> None:
    hosts, _honest, fakes = poisoned(supers=3)
    recorded = [f for f in fakes if f.id in hosts]
    seniority = HostCacheConfig().super_seniority
    now = ATTACK_AT + 15.0
    while now < ATTACK_AT + seniority + 20.0:  # they refresh like honest super peers
        now += 10.0
        hosts.handle_timer(now)
        for fake in recorded:
            hosts.receive(Register(0, "super", 1_000_000), fake, now)
    lists = [hosts.super_peers(exclude="") for _ in range(50)]
    fake_ids = {f.id for f in fakes}
    assert max(sum(c.id in fake_ids for c in listed) for listed in lists) == 2
    assert all(len(listed) == 5 for listed in lists), "3 honest, 2 of the attacker's /24"


def test_a_super_peer_is_listed_once_it_has_served_its_seniority() -> None:
    hosts = cache(lease=30.0, sweep_period=1.0, super_seniority=20.0)
    hosts.start(0.0)
    old, new, asker = peer(1), peer(2), peer(3)
    hosts.receive(Register(0, "super"), old, 0.0)
    # A fresh overlay: nobody has served yet, so the newest are listed.
    assert hosts.super_peers(exclude=asker.id) == [old]
    hosts.handle_timer(10.0)
    hosts.receive(Register(0, "super"), old, 10.0)
    hosts.receive(Register(0, "super"), new, 10.0)
    assert len(hosts.super_peers(exclude=asker.id)) == 2, "still nobody has served"
    hosts.handle_timer(20.0)
    assert hosts.super_peers(exclude=asker.id) == [old], "old has served: new waits"
    hosts.receive(Register(0, "super"), old, 20.0)
    hosts.receive(Register(0, "super"), new, 20.0)
    hosts.handle_timer(30.0)
    assert {c.id for c in hosts.super_peers(exclude=asker.id)} == {old.id, new.id}


def test_seniority_starts_again_after_a_weak_spell_or_a_lapsed_lease() -> None:
    hosts = cache(lease=30.0, sweep_period=1.0, super_seniority=20.0)
    hosts.start(0.0)
    senior, flip, lapsed = at(1, "10.1.0.1"), at(2, "10.2.0.1"), at(3, "10.3.0.1")
    for contact in (senior, flip, lapsed):
        hosts.receive(Register(0, "super"), contact, 0.0)
    hosts.receive(Register(0, "weak"), flip, 10.0)
    hosts.receive(Register(0, "super"), flip, 15.0)  # a super peer again from 15 s
    for now in (10.0, 20.0):
        hosts.handle_timer(now)
        hosts.receive(Register(0, "super"), senior, now)
    hosts.receive(Register(0, "super"), flip, 25.0)
    hosts.handle_timer(31.0)  # lapsed's lease ran out ...
    hosts.receive(Register(0, "super"), lapsed, 31.0)  # ... so it starts afresh
    hosts.handle_timer(32.0)
    assert hosts.super_peers(exclude="") == [senior]
    hosts.handle_timer(35.0)
    assert {c.id for c in hosts.super_peers(exclude="")} == {senior.id, flip.id}
    hosts.receive(Register(0, "super"), senior, 40.0)
    hosts.receive(Register(0, "super"), flip, 45.0)
    hosts.handle_timer(51.0)
    assert len(hosts.super_peers(exclude="")) == 3


def test_unregister_and_leave_act_for_the_sender_only() -> None:
    hosts = cache()
    victim, liar = at(1, "10.1.0.1"), at(2, "10.2.0.1")
    hosts.receive(Register(0), victim, 0.0)
    hosts.receive(Register(0), liar, 0.0)
    # The liar claims the victim's address: still only the liar is forgotten.
    impostor = Contact(liar.id, victim.address)
    hosts.receive(Unregister(), impostor, 1.0)
    assert victim.id in hosts and liar.id not in hosts
    hosts.receive(Leave(), at(3, "10.3.0.1"), 1.0)
    assert victim.id in hosts


def test_misbehaviour_is_charged_to_the_proven_id_and_the_source_prefix() -> None:
    hosts = cache(register_burst=3.0, register_rate=0.0, newcomer_burst=3.0, newcomer_rate=0.0)
    liar = at(1, "10.1.0.1")  # claims an address on 10.1.0.0/24 ...
    victim = at(2, "10.1.0.2")
    for _ in range(3):  # ... but its connection comes from 192.0.2.7
        hosts.receive(Leave(), liar, 0.0, source="192.0.2.7")
    assert hosts.counters["charged"] == 3
    assert not hosts.receive(Register(0), liar, 1.0, source="192.0.2.9"), "the id paid"
    other = at(3, "192.0.2.50")
    assert not hosts.receive(Register(0), other, 1.0, source="192.0.2.50"), "so did its /24"
    # The claimed address and prefix are nobody's fault: a peer there is served.
    assert hosts.receive(Register(0), victim, 1.0, source="10.1.0.2")
