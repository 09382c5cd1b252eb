"""The simulator's model keys: a remembered verdict never stands for another key, other
data or a forgotten key (overlay.sim.keys)."""

from __future__ import annotations

import random

import pytest

from overlay.sim import keys
from overlay.sim.keys import ModelKeyring


def test_a_good_signature_verifies_again_and_only_for_what_it_signed() -> None:
    ring = ModelKeyring()
    alice = ring.new_pair(random.Random(1))
    bob = ring.new_pair(random.Random(2))
    signature = alice.sign(b"entry")
    assert ring.verify(alice.public_key, b"entry", signature)
    assert ring.verify(alice.public_key, b"entry", signature)  # remembered
    assert not ring.verify(alice.public_key, b"other entry", signature)
    assert not ring.verify(bob.public_key, b"entry", signature)
    assert not ring.verify(alice.public_key, b"entry", bytes(64))


def test_a_forgotten_key_verifies_nothing_it_verified_before() -> None:
    ring = ModelKeyring()
    alice = ring.new_pair(random.Random(1))
    signature = alice.sign(b"entry")
    assert ring.verify(alice.public_key, b"entry", signature)
    ring.forget(alice.public_key)
    assert not ring.verify(alice.public_key, b"entry", signature)


def test_the_remembered_verdicts_are_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(keys, "VERIFIED_SIZE", 3)
    ring = ModelKeyring()
    alice = ring.new_pair(random.Random(1))
    signed = [(data, alice.sign(data)) for data in (b"a", b"b", b"c", b"d", b"e")]
    for data, signature in signed:
        assert ring.verify(alice.public_key, data, signature)
    assert len(ring._verified) == 3
    # Pushed out of the memory, still good: verified afresh.
    assert ring.verify(alice.public_key, *signed[0])
