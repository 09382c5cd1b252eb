"""A Sybil attacker for benchmarks/sybil.py: an honest peer core with hostile search conduct.

:class:`ForgingPeer` is the ordinary :class:`overlay.core.peer.Peer` in every respect but
three, so it joins through the bootstrap, heartbeats, shuffles and keeps its links like
anyone, and everything it sends is a valid frame (only its behaviour is hostile):

* a flooded :class:`Query` is neither forwarded nor remembered; the attacker answers it
  at once with a :class:`QueryHit` naming itself as holder of whatever was asked for
  (back along the reverse path, or straight to the origin when the query says so);
* a :class:`WalkStep` likewise: a forged hit to the walk's origin, and the walker dies
  there (no step onward, no check with the origin);
* a :class:`Fetch` gets ``found=True`` and bytes that are not the value (their SHA-256
  is not the key), so every forged hit fails the requester's hash check.
"""

from __future__ import annotations

import hashlib
import random
from typing import Final

from overlay.core.config import PeerConfig
from overlay.core.peer import Peer
from overlay.protocol.effects import Effect, Send
from overlay.protocol.identity import Address, Contact
from overlay.protocol.messages import (
    MAX_FLOOD_TTL_FIELD,
    MAX_NAME,
    MAX_WALK_TTL_FIELD,
    Fetch,
    FetchReply,
    Message,
    Query,
    QueryHit,
    WalkStep,
)
from overlay.protocol.proofs import hit_statement
from overlay.protocol.signing import Signer, Verifier

GARBAGE_SIZE: Final = 64


def garbage_for(key: str) -> bytes:
    """The bytes an attacker serves for ``key``: fixed per key, never its value."""
    return hashlib.sha256(b"forged " + key.encode()).digest() * (GARBAGE_SIZE // 32)


def forged_key(keywords: tuple[str, ...]) -> str:
    """A key for a keyword query's forged hit (no value has it; the name does the lying)."""
    return hashlib.sha256(" ".join(keywords).encode()).hexdigest()


class ForgingPeer(Peer):
    """A peer that forges a hit for every query, drops every query and walker, and serves
    garbage; counts what it did in :attr:`attack_counters`."""

    def __init__(
        self,
        address: Address,
        config: PeerConfig,
        rng: random.Random,
        *,
        signer: Signer,
        verifier: Verifier,
        bootstrap: Address | None,
        join_via: Address | None = None,
    ) -> None:
        # Its own key, honestly: it lies about content, not about who it is.
        super().__init__(
            address,
            config,
            rng,
            signer=signer,
            verifier=verifier,
            bootstrap=bootstrap,
            join_via=join_via,
        )
        self.attack_counters: dict[str, int] = {}

    def receive(self, message: Message, sender: Contact, now: float) -> list[Effect]:
        kind = type(message)
        if kind is Query:
            assert isinstance(message, Query)
            back = message.origin.address if message.direct else sender.address
            hops = min(message.hops + 1, MAX_FLOOD_TTL_FIELD)
            return [self._forge(back, message.query_id, message.key, message.keywords, hops)]
        if kind is WalkStep:
            assert isinstance(message, WalkStep)
            hops = min(message.hops, MAX_WALK_TTL_FIELD)
            address = message.origin.address
            return [self._forge(address, message.query_id, message.key, message.keywords, hops)]
        if kind is Fetch:
            assert isinstance(message, Fetch)
            self._count("attack.garbage_served")
            reply = FetchReply(message.request_id, message.key, True, garbage_for(message.key))
            return [Send(sender.address, reply)]
        return super().receive(message, sender, now)

    def _forge(
        self, to: Address, query_id: str, key: str | None, keywords: tuple[str, ...], hops: int
    ) -> Effect:
        self._count("attack.hits_forged")
        forged = key if key is not None else forged_key(keywords)
        name = " ".join(keywords)[:MAX_NAME] or None
        hit = QueryHit(
            query_id=query_id,
            key=forged,
            name=name,
            size=GARBAGE_SIZE,
            holder=self.contact,
            hops=hops,
            holder_key=self.signer.public_key,
            signature=self.signer.sign(hit_statement(query_id, forged, name, GARBAGE_SIZE)),
        )
        return Send(to, hit)

    def _count(self, key: str) -> None:
        self.attack_counters[key] = self.attack_counters.get(key, 0) + 1
