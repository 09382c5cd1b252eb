"""Ed25519 identity keys for the runtime (the ``cryptography`` library does the maths).

A peer's id is :func:`overlay.protocol.identity.peer_id_of` of its public key.
``overlay peer --state DIR`` keeps the private key in ``DIR/identity.key`` (raw
32 bytes, mode 0600) so the id survives restarts; ``overlay swarm --seed S``
derives reproducible keys with :func:`derived_key` so tests and benchmarks see
the same ids run after run.  Such keys are predictable by design: never use a
seeded key for a peer that strangers can reach.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Final

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
    PublicFormat,
)

from overlay.net.atomic_file import write_atomically
from overlay.protocol.identity import PUBLIC_KEY_BYTES, PeerId, peer_id_of

KEY_FILE = "identity.key"
PRIVATE_KEY_BYTES = 32


class KeyFileError(Exception):
    """A key file exists but cannot be used (wrong size or unreadable)."""


class KeyPair:
    """A peer's Ed25519 key pair: a :class:`overlay.protocol.signing.Signer`."""

    __slots__ = ("_private", "_public", "peer_id")

    def __init__(self, private: Ed25519PrivateKey) -> None:
        self._private = private
        self._public = private.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
        self.peer_id: PeerId = peer_id_of(self._public)

    @classmethod
    def generate(cls) -> KeyPair:
        return cls(Ed25519PrivateKey.generate())

    @classmethod
    def from_private_bytes(cls, raw: bytes) -> KeyPair:
        if len(raw) != PRIVATE_KEY_BYTES:
            raise KeyFileError(
                f"an Ed25519 private key is {PRIVATE_KEY_BYTES} bytes, not {len(raw)}"
            )
        return cls(Ed25519PrivateKey.from_private_bytes(raw))

    @property
    def public_key(self) -> bytes:
        return self._public

    def private_bytes(self) -> bytes:
        return self._private.private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption())

    def sign(self, data: bytes) -> bytes:
        return self._private.sign(data)


REMEMBERED_SIGNATURES: Final = 1024
"""Signatures the process-wide hit verifier remembers as good (the newest ones)."""


class Ed25519Verifier:
    """A :class:`overlay.protocol.signing.Verifier` backed by Ed25519.

    With ``remember`` > 0 it keeps the last ``remember`` (key, data, signature) triples
    that verified, and answers a triple it has seen with no curve arithmetic: the
    answer for the same bytes is the same.  Every peer of a process shares one such
    verifier (:data:`HIT_VERIFIER`): a hit travels back to its origin through several
    peers, each of which checks it, and in a swarm worker most of them are in one
    process, where an Ed25519 check (tens of times the cost of forwarding a query) was
    repeated at every hop.  Only good signatures are kept, so a forger's junk never
    displaces them, and the table is bounded, oldest out first.
    """

    __slots__ = ("_good", "_remember")

    def __init__(self, remember: int = 0) -> None:
        self._remember = remember
        self._good: dict[tuple[bytes, bytes, bytes], None] = {}

    def verify(self, public_key: bytes, data: bytes, signature: bytes) -> bool:
        if len(public_key) != PUBLIC_KEY_BYTES:
            return False
        triple = (public_key, data, signature)
        good = self._good
        if triple in good:
            return True
        try:
            Ed25519PublicKey.from_public_bytes(public_key).verify(signature, data)
        except (InvalidSignature, ValueError):
            return False
        if self._remember:
            if len(good) >= self._remember:
                del good[next(iter(good))]
            good[triple] = None
        return True

    def __len__(self) -> int:
        """How many good signatures it remembers."""
        return len(self._good)


HIT_VERIFIER: Final = Ed25519Verifier(remember=REMEMBERED_SIGNATURES)
"""The verifier every peer of this process checks hits and index entries with."""


def derived_key(seed: int, index: int) -> KeyPair:
    """A reproducible key for peer ``index`` of a seeded swarm (tests, benchmarks)."""
    material = hashlib.sha256(f"overlay-seeded-key:{seed}:{index}".encode()).digest()
    return KeyPair.from_private_bytes(material)


def load_or_create_key(directory: Path) -> KeyPair:
    """The key kept in ``directory`` (created, mode 0600, on first use)."""
    return load_or_create_key_file(directory / KEY_FILE)


def load_or_create_key_file(path: Path) -> KeyPair:
    """The key kept in the file ``path`` (created, mode 0600, on first use)."""
    directory = path.parent
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        key = KeyPair.generate()
        directory.mkdir(parents=True, exist_ok=True)
        write_atomically(path, key.private_bytes())
        os.chmod(path, 0o600)
        return key
    except OSError as error:
        raise KeyFileError(f"cannot read {path}: {error}") from error
    return KeyPair.from_private_bytes(raw)
