"""Identity keys: ids certified by keys, signatures checked, keys kept across restarts."""

from __future__ import annotations

from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from overlay.net.keys import (
    Ed25519Verifier,
    KeyFileError,
    KeyPair,
    derived_key,
    load_or_create_key,
)
from overlay.protocol.identity import PEER_ID_PATTERN, peer_id_of


def test_an_id_is_certified_by_its_key() -> None:
    key = KeyPair.generate()
    assert key.peer_id == peer_id_of(key.public_key)
    assert PEER_ID_PATTERN.fullmatch(key.peer_id)
    assert KeyPair.generate().peer_id != key.peer_id


def test_a_signature_verifies_only_for_its_key_and_data() -> None:
    key, other = KeyPair.generate(), KeyPair.generate()
    signature = key.sign(b"item-key|query-1")
    verifier = Ed25519Verifier()
    assert verifier.verify(key.public_key, b"item-key|query-1", signature)
    assert not verifier.verify(key.public_key, b"item-key|query-2", signature)
    assert not verifier.verify(other.public_key, b"item-key|query-1", signature)
    assert not verifier.verify(key.public_key, b"item-key|query-1", bytes(64))
    assert not verifier.verify(b"short", b"item-key|query-1", signature)


def test_a_remembering_verifier_gives_the_same_answers_and_stays_bounded(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    key = KeyPair.generate()
    verifier = Ed25519Verifier(remember=2)
    signed = [(b"hit-%d" % n, key.sign(b"hit-%d" % n)) for n in range(3)]
    data, signature = signed[0]
    assert verifier.verify(key.public_key, data, signature)
    # A forgery next to a remembered good signature is still checked, and refused.
    assert not verifier.verify(key.public_key, data, bytes(64))
    assert not verifier.verify(key.public_key, b"hit-9", signature)

    def no_arithmetic(raw: bytes) -> None:
        raise AssertionError("checked again")

    with monkeypatch.context() as patch:
        patch.setattr(Ed25519PublicKey, "from_public_bytes", no_arithmetic)
        assert verifier.verify(key.public_key, data, signature)  # answered from memory
    for data, signature in signed[1:]:
        assert verifier.verify(key.public_key, data, signature)
    assert len(verifier) == 2  # the oldest went first
    with monkeypatch.context() as patch:
        patch.setattr(Ed25519PublicKey, "from_public_bytes", no_arithmetic)
        with pytest.raises(AssertionError, match="checked again"):
            verifier.verify(key.public_key, *signed[0])


def test_seeded_keys_are_reproducible_and_distinct() -> None:
    assert derived_key(7, 3).peer_id == derived_key(7, 3).peer_id
    assert derived_key(7, 3).peer_id != derived_key(7, 4).peer_id
    assert derived_key(7, 3).peer_id != derived_key(8, 3).peer_id


def test_a_kept_key_gives_the_same_id_after_a_restart(tmp_path: Path) -> None:
    first = load_or_create_key(tmp_path / "state")
    again = load_or_create_key(tmp_path / "state")
    assert again.peer_id == first.peer_id
    assert (tmp_path / "state" / "identity.key").stat().st_mode & 0o777 == 0o600


def test_a_damaged_key_file_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "identity.key").write_bytes(b"too short")
    with pytest.raises(KeyFileError, match="32 bytes"):
        load_or_create_key(tmp_path)


def test_peer_id_of_refuses_what_is_not_a_key() -> None:
    with pytest.raises(ValueError, match="32 raw bytes"):
        peer_id_of(b"x" * 31)
