"""What a holder signs so that others may repeat its word, and how the word is checked.

A hit names a holder; whoever names it (the holder itself, a relaying peer, a super
peer answering from its index) must carry the holder's own signature, or a liar
could name honest peers as holders of anything.  Two statements exist, each a
msgpack array whose first element says which, so one can never pass for the other:

* a **hit statement**: ``["overlay-hit", query id, key, name, size]``, signed by a
  holder answering a query itself.  The query id is what makes it fresh: replayed
  for another query it does not verify.
* an **index-entry statement**: ``["overlay-index-entry", holder id, key, name, size,
  epoch]``, signed by a weak peer for each item it publishes to its super peers,
  who pass it on in their answers.  ``epoch`` is the weak peer's index sequence
  when it signed; a super peer can repeat an entry, but never invent one.

Checking a proof means: the public key hashes to the holder's id
(:func:`overlay.protocol.identity.peer_id_of`) and the signature verifies.
"""

from __future__ import annotations

import msgpack

from overlay.protocol.identity import PeerId, peer_id_of
from overlay.protocol.signing import Verifier

HIT_TAG = "overlay-hit"
INDEX_ENTRY_TAG = "overlay-index-entry"


def hit_statement(query_id: str, key: str, name: str | None, size: int) -> bytes:
    """What a holder signs when it answers query ``query_id`` with item ``key``."""
    packed: bytes = msgpack.packb([HIT_TAG, query_id, key, name, size])
    return packed


def entry_statement(holder: PeerId, key: str, name: str | None, size: int, epoch: int) -> bytes:
    """What a weak peer signs for one entry of the index it publishes."""
    packed: bytes = msgpack.packb([INDEX_ENTRY_TAG, holder, key, name, size, epoch])
    return packed


def holds(verifier: Verifier, holder: PeerId, public_key: bytes, statement: bytes,
          signature: bytes) -> bool:  # fmt: skip
    """Whether ``signature`` is ``holder``'s own over ``statement``: the key is the one
    the holder's id certifies, and it signed exactly this."""
    try:
        if peer_id_of(public_key) != holder:
            return False
    except ValueError:
        return False
    return verifier.verify(public_key, statement, signature)
