"""The simulated peers' random generator: seeded, per stream, with random.Random's semantics."""

from __future__ import annotations

import sys
from collections import Counter

import pytest
from hypothesis import given
from hypothesis import strategies as st

from overlay.sim.splitmix import SplitMix, mix64, stream_seed


def test_reference_values_of_splitmix64() -> None:
    # The first outputs for seed 1234567, as published with the reference C code
    # (Vigna's splitmix64.c, used to seed xoshiro).
    rng = SplitMix(1234567)
    assert [rng._next() for _ in range(3)] == [
        6457827717110365317,
        3203168211198807973,
        9817491932198370423,
    ]


def test_draws_are_pinned_so_a_faster_generator_keeps_every_seeded_run() -> None:
    # Drawn by the first version (one _next call per 64 bits); a seeded run's digest
    # depends on every one of these.
    rng = SplitMix(9)
    assert rng.sample(range(100), 5) == [87, 96, 33, 14, 82]  # few of many
    assert rng.sample(range(10), 7) == [3, 4, 5, 9, 8, 6, 2]  # a partial shuffle
    assert (rng.randrange(3), rng.choice("abcdefg")) == (1, "c")
    deck = list(range(8))
    rng.shuffle(deck)
    assert deck == [1, 4, 3, 0, 6, 2, 5, 7]
    assert rng._state == 11643393128411363048


def test_same_seed_same_stream_and_streams_differ() -> None:
    first = [SplitMix(stream_seed(7, 3)).random() for _ in range(3)]
    assert first == [SplitMix(stream_seed(7, 3)).random() for _ in range(3)]
    assert SplitMix(stream_seed(7, 4)).random() != first[0]
    assert SplitMix(stream_seed(8, 3)).random() != first[0]
    assert mix64(0) == 0 and mix64(1) != 1


def test_small_state() -> None:
    assert sys.getsizeof(SplitMix(1)) + sys.getsizeof(1 << 63) < 200


@given(st.integers(0, 2**64 - 1), st.integers(1, 10**6))
def test_randrange_and_choice_stay_in_range(seed: int, n: int) -> None:
    rng = SplitMix(seed)
    assert 0 <= rng.randrange(n) < n
    assert rng.choice("abc") in "abc"
    assert 0.0 <= rng.random() < 1.0
    assert 0 <= rng.getrandbits(128) < 2**128
    assert rng.paretovariate(1.2) >= 1.0


@given(st.integers(0, 2**64 - 1), st.integers(0, 60), st.data())
def test_sample_is_distinct_and_shuffle_a_permutation(
    seed: int, n: int, data: st.DataObject
) -> None:
    rng = SplitMix(seed)
    k = data.draw(st.integers(0, n))
    population = list(range(n))
    picked = rng.sample(population, k)
    assert len(picked) == k == len(set(picked)) and set(picked) <= set(population)
    rng.shuffle(population)
    assert sorted(population) == list(range(n))


def test_randrange_is_uniform_enough() -> None:
    rng = SplitMix(42)
    counts = Counter(rng.randrange(6) for _ in range(60_000))
    assert all(9_500 < counts[face] < 10_500 for face in range(6))


def test_bad_arguments_are_refused_as_random_random_refuses_them() -> None:
    rng = SplitMix(1)
    with pytest.raises(ValueError):
        rng.randrange(0)
    with pytest.raises(ValueError):
        rng.sample([1, 2], 3)
    with pytest.raises(IndexError):
        rng.choice([])
    with pytest.raises(ValueError):
        rng.getrandbits(-1)
