"""Who a peer is: an id derived from its public key, the address it listens on, and its role.

Ids are self-certifying (as in S/Kademlia and libp2p): a peer's id is the first
128 bits of SHA-256 of its Ed25519 public key (:func:`peer_id_of`), so whoever
claims an id can be asked to prove it by signing with the key behind it.
"""

from __future__ import annotations

import hashlib
import re
from typing import Final, Literal, get_args

import attrs

from overlay.protocol import validate
from overlay.protocol.randomness import RandomSource

PeerId = str
"""A peer's id: 128 bits as 32 lowercase hex digits (readable in logs and JSON)."""

PUBLIC_KEY_BYTES = 32
"""An Ed25519 public key in its raw encoding (RFC 8032)."""

Role = Literal["weak", "super"]
"""What a peer is in the overlay: every peer starts weak; the election makes some super."""
ROLES: Final[tuple[Role, ...]] = get_args(Role)

PEER_ID_PATTERN = re.compile(r"[0-9a-f]{32}")
MAX_HOST_LENGTH = 253  # the longest DNS name


def new_peer_id(rng: RandomSource) -> PeerId:
    """Draw a fresh id from the injected random source (never the global one).

    For ids that need no proof: a one-shot client's own handle, or the simulator
    where keys are modelled.
    """
    return f"{rng.getrandbits(128):032x}"


def peer_id_of(public_key: bytes) -> PeerId:
    """The id that a public key certifies: SHA-256 of the raw key, first 128 bits in hex."""
    if type(public_key) is not bytes or len(public_key) != PUBLIC_KEY_BYTES:
        raise ValueError(f"a public key is {PUBLIC_KEY_BYTES} raw bytes")
    return hashlib.sha256(public_key).hexdigest()[:32]


def check_peer_id(_instance: object, attribute: attrs.Attribute[str], value: object) -> None:
    """attrs validator: a string of exactly 32 lowercase hex digits."""
    if type(value) is not str or PEER_ID_PATTERN.fullmatch(value) is None:
        raise validate.invalid(attribute, value, "a peer id of 32 lowercase hex digits")


@attrs.frozen(cache_hash=True, order=True)
class Address:
    """A listen address.  Hosts are names or IPs; the simulator uses synthetic IPs."""

    host: str = attrs.field(validator=validate.ascii_text(1, MAX_HOST_LENGTH))
    port: int = attrs.field(validator=validate.integer(1, 65535))

    def __str__(self) -> str:
        return f"{self.host}:{self.port}"

    @classmethod
    def parse(cls, text: str) -> Address:
        """Parse ``HOST:PORT`` (as typed on a command line)."""
        host, sep, port = text.rpartition(":")
        if not sep or not host or not port.isdigit():
            raise ValueError(f"expected HOST:PORT, got {text!r}")
        return cls(host, int(port))


@attrs.frozen(cache_hash=True)
class Contact:
    """How to reach a peer: its id and its listen address."""

    id: PeerId = attrs.field(validator=check_peer_id)
    address: Address = attrs.field(validator=attrs.validators.instance_of(Address))

    def __str__(self) -> str:
        return f"{self.id[:8]}@{self.address}"
