"""Keys for tests: model key pairs from one keyring (the simulator's model, overlay.sim.keys),
and hits and index entries signed the way an honest holder signs them."""

from __future__ import annotations

import random

from overlay.core.config import PeerConfig
from overlay.core.peer import Peer
from overlay.protocol.identity import Address, Contact, PeerId
from overlay.protocol.messages import IndexItem, QueryHit
from overlay.protocol.proofs import entry_statement, hit_statement
from overlay.protocol.signing import Signer
from overlay.sim.keys import ModelKeyPair, ModelKeyring

KEYRING = ModelKeyring()
"""The verifier every test core is handed; it knows every key :func:`model_key` made."""


def model_key(seed: int | str) -> ModelKeyPair:
    """The model key pair of seed ``seed`` (the same seed, the same key and id)."""
    return KEYRING.new_pair(random.Random(seed))


def signed_hit(  # noqa: PLR0917 (the fields of a hit, in their order)
    signer: Signer,
    query_id: str,
    key: str,
    name: str | None,
    size: int,
    holder: Contact,
    hops: int = 0,
) -> QueryHit:
    """A hit for ``query_id`` signed with ``signer`` (the holder's key, when honest)."""
    return QueryHit(
        query_id=query_id,
        key=key,
        name=name,
        size=size,
        holder=holder,
        hops=hops,
        holder_key=signer.public_key,
        signature=signer.sign(hit_statement(query_id, key, name, size)),
    )


def signed_entry(  # noqa: PLR0917 (the fields of an entry, in their order)
    signer: Signer, holder: PeerId, key: str, name: str | None, size: int, epoch: int = 0
) -> IndexItem:
    """An index entry of ``holder``'s signed with ``signer``."""
    statement = entry_statement(holder, key, name, size, epoch)
    return IndexItem(key, name, size, epoch, signer.sign(statement))


def keyed_contact(seed: int | str, address: Address) -> tuple[ModelKeyPair, Contact]:
    """A model key pair and the contact its id certifies, at ``address``."""
    key = model_key(seed)
    return key, Contact(key.peer_id, address)


def model_peer(
    address: Address, config: PeerConfig, seed: int, *, bootstrap: Address | None = None
) -> Peer:
    """A peer core whose random source and model key both come from ``seed``."""
    return Peer(
        address,
        config,
        random.Random(seed),
        signer=model_key(seed),
        verifier=KEYRING,
        bootstrap=bootstrap,
    )
