"""Who a peer is: a random 128-bit id, the address it listens on, and its role."""

from __future__ import annotations

import random
import re
from typing import Final, Literal, get_args

import attrs

from overlay.protocol import validate

PeerId = str
"""A peer's id: 128 random bits as 32 lowercase hex digits (readable in logs and JSON)."""

Role = Literal["weak", "super"]
"""What a peer is in the overlay: every peer starts weak; the election makes some super."""
ROLES: Final[tuple[Role, ...]] = get_args(Role)

PEER_ID_PATTERN = re.compile(r"[0-9a-f]{32}")
MAX_HOST_LENGTH = 253  # the longest DNS name


def new_peer_id(rng: random.Random) -> PeerId:
    """Draw a fresh id from the injected random source (never the global one)."""
    return f"{rng.getrandbits(128):032x}"


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
