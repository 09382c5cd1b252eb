"""The bootstrap's host cache as a pure state machine, with fake time."""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Sequence

from hypothesis import given, settings
from hypothesis import strategies as st

from bootstrap.hostcache import HostCache, HostCacheConfig
from overlay.protocol.effects import Send
from overlay.protocol.identity import Address, Contact
from overlay.protocol.messages import MAX_SAMPLE, PeerSample, Register, Unregister

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
