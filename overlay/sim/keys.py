"""Model keys for the simulator: the same decisions as Ed25519, at the cost of one hash.

A simulated peer gets a :class:`ModelKeyPair` from the run's :class:`ModelKeyring`:
a 32-byte secret drawn from the run's seeded generator, a public key derived from it
(so the peer's id, :func:`overlay.protocol.identity.peer_id_of` of that key, is
reproducible), and a "signature" that is a hash of the secret and the data.  Only
the keyring, which the simulator holds and hands to every core as its verifier,
maps a public key back to its secret, so a core can check any signature but can
make only its own: a forged or unsigned message is refused in the simulator exactly
where Ed25519 refuses it over TCP.  Sizes are Ed25519's (32-byte keys, 64-byte
signatures), so frames and validators are the same in both worlds.

It is a model, not cryptography: anything holding the keyring could forge.  Adversarial
cores in tests get a key pair of their own like anyone, never the keyring.
"""

from __future__ import annotations

import hashlib
import random

from overlay.protocol.identity import PUBLIC_KEY_BYTES, PeerId, peer_id_of
from overlay.protocol.signing import SIGNATURE_BYTES

_PUBLIC_TAG = b"overlay-model-public-key"
VERIFIED_SIZE = 65_536
"""Good signatures a keyring remembers (see :attr:`ModelKeyring._verified`)."""


def seeded_secret(seed: int, number: int) -> bytes:
    """The secret of the ``number``-th peer started in a run of ``seed``.

    Derived from the seed and the number alone, so every worker of a parallel run can
    register every peer's key (and so check any peer's signature) while only the worker
    that runs the peer uses it to sign.
    """
    return hashlib.sha256(f"overlay-model-secret:{seed}:{number}".encode()).digest()


def _signature(secret: bytes, data: bytes) -> bytes:
    return hashlib.sha512(secret + data).digest()


class ModelKeyPair:
    """A simulated peer's key pair: a :class:`overlay.protocol.signing.Signer`."""

    __slots__ = ("_secret", "public_key")

    def __init__(self, secret: bytes) -> None:
        self._secret = secret
        self.public_key: bytes = hashlib.sha256(_PUBLIC_TAG + secret).digest()

    @property
    def peer_id(self) -> PeerId:
        return peer_id_of(self.public_key)

    def sign(self, data: bytes) -> bytes:
        return _signature(self._secret, data)


class ModelKeyring:
    """Every model key of one run: makes key pairs and checks their signatures
    (a :class:`overlay.protocol.signing.Verifier`)."""

    __slots__ = ("_secrets", "_verified")

    def __init__(self) -> None:
        self._secrets: dict[bytes, bytes] = {}
        self._verified: dict[bytes, tuple[bytes, bytes]] = {}
        """Signatures already found good, with the key and data they were good for: an
        index entry is checked by every super peer its publisher attaches to, and in
        one run they all share this keyring.  Bounded (the oldest goes first)."""

    def new_pair(self, rng: random.Random) -> ModelKeyPair:
        """A fresh key pair whose secret comes from ``rng`` (a seeded source)."""
        return self.pair_of(rng.getrandbits(256).to_bytes(32, "big"))

    def pair_of(self, secret: bytes) -> ModelKeyPair:
        """The key pair of ``secret``, from now on recognised by :meth:`verify`."""
        pair = ModelKeyPair(secret)
        self._secrets[pair.public_key] = secret
        return pair

    def forget(self, public_key: bytes) -> None:
        """Stop recognising a key (its peer is gone for good; keeps the table bounded)."""
        self._secrets.pop(public_key, None)

    def verify(self, public_key: bytes, data: bytes, signature: bytes) -> bool:
        if type(public_key) is not bytes or len(public_key) != PUBLIC_KEY_BYTES:
            return False
        if type(signature) is not bytes or len(signature) != SIGNATURE_BYTES:
            return False
        secret = self._secrets.get(public_key)
        if secret is None:
            return False  # unknown, or forgotten: whatever was verified before
        verified = self._verified
        known = verified.get(signature)
        if known is not None and known[0] == public_key and known[1] == data:
            return True
        if _signature(secret, data) != signature:
            return False
        verified[signature] = (public_key, data)
        if len(verified) > VERIFIED_SIZE:
            del verified[next(iter(verified))]
        return True
