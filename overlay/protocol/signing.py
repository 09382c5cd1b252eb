"""What the core needs of keys: sign with its own, check another's.

The core never touches a cryptographic library: it is given a :class:`Signer`
(its own key) and a :class:`Verifier` (checks anyone's signature against a
public key).  The runtime injects Ed25519 (:mod:`overlay.net.keys`); the
simulator may inject a model that takes the same decisions at a fraction of the
cost.  Whatever the implementation, a public key certifies the id
:func:`overlay.protocol.identity.peer_id_of` derives from it.
"""

from __future__ import annotations

from typing import Protocol

SIGNATURE_BYTES = 64
"""An Ed25519 signature (RFC 8032); models use the same size so frames do not change."""


class Signer(Protocol):
    """A peer's own key pair."""

    @property
    def public_key(self) -> bytes:
        """The raw public key (32 bytes)."""
        ...

    def sign(self, data: bytes) -> bytes:
        """A signature over ``data`` (64 bytes)."""
        ...


class Verifier(Protocol):
    """Checks signatures made by any key."""

    def verify(self, public_key: bytes, data: bytes, signature: bytes) -> bool:
        """True only if ``signature`` is the key's signature over ``data``; never raises."""
        ...
