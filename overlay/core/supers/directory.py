"""What a peer knows of the super peers it has heard of, whatever its own role.

A weak peer picks the super peers it attaches to from here; a super peer picks its
super-layer neighbors from here; both write what they learn (from the bootstrap,
beats, refusals, role changes) and whom they found dead.  It is the one table the two
sides share, so each reads and writes it through the methods below.
"""

from __future__ import annotations

import math
from collections.abc import Container

import attrs

from overlay.core.config import SuperConfig
from overlay.protocol.identity import Contact, PeerId
from overlay.protocol.messages import MAX_LOAD, MAX_SUPER_INFO, SuperInfo

_NEVER = math.inf
MAX_CANDIDATES = 32
"""Super peers known at once (the one heard of least recently goes first)."""
MAX_DEAD = 4 * MAX_CANDIDATES
"""Most peers remembered as dead at once: anyone can claim to be a stranger's super
peer and say it is not one, so this table must not grow with what others say."""
FORGET_AFTER = 3
"""Unanswered requests in a row after which a known super peer is forgotten."""


@attrs.define(slots=True)
class Known:
    """A super peer I have heard of (a candidate to attach or link to)."""

    contact: Contact
    load: int
    heard: float
    failures: int = 0


class Directory:
    """The super peers I have heard of, their loads and failures, and the ones I shun."""

    def __init__(self, me: PeerId, config: SuperConfig) -> None:
        self.me = me
        self.config = config
        self.known: dict[PeerId, Known] = {}
        self.dead: dict[PeerId, float] = {}
        """Super peers I found dead, until when I will not try them again (at most
        ``MAX_DEAD``: see :meth:`shun`)."""
        self.heard_any = False
        """Have I ever heard of a super peer?  Then the layer exists, and I do not found
        another one."""

    def learn(self, contact: Contact, load: int, now: float) -> None:
        peer = contact.id
        if peer == self.me or self.dead.get(peer, -_NEVER) > now:
            return
        self.heard_any = True
        known = self.known.get(peer)
        if known is not None:
            known.contact, known.load, known.heard = contact, load, now
            return
        if len(self.known) >= MAX_CANDIDATES:
            oldest = min(self.known.values(), key=lambda k: k.heard)
            del self.known[oldest.contact.id]
        self.known[peer] = Known(contact, load, now)

    def answered(self, contact: Contact, load: int, now: float) -> None:
        """``contact`` accepted me: alive, known, and with no failure against it."""
        self.dead.pop(contact.id, None)
        self.learn(contact, load, now)
        self.known[contact.id].failures = 0

    def unanswered(self, peer: PeerId, now: float) -> None:
        """``peer`` did not answer a request: lost, or dead.  Try others first, this one
        again later, and forget it after a few silences in a row."""
        known = self.known.get(peer)
        if known is not None:
            known.failures += 1
            if known.failures >= FORGET_AFTER:
                del self.known[peer]
        self.shun(peer, now + self.config.period)

    def forget(self, peer: PeerId) -> None:
        """``peer`` is not a super peer (or will not have me): no candidate any more."""
        self.known.pop(peer, None)

    def shun(self, peer: PeerId, until: float) -> None:
        """Do not try ``peer`` again before ``until``.  The oldest entry goes when the
        table is full: forgetting one only means trying a dead peer once more."""
        dead = self.dead
        dead.pop(peer, None)
        dead[peer] = until
        if len(dead) > MAX_DEAD:
            del dead[next(iter(dead))]

    def bury(self, peer: PeerId, now: float) -> None:
        """Do not try ``peer`` again for a while.  Not for long, and it stays known: under
        loss a live super peer is sometimes taken for dead, and a weak peer that knows few
        super peers must be able to come back to it; a dead one fails one more request
        and is forgotten then."""
        self.shun(peer, now + self.config.failure_timeout)

    def revive(self, peer: PeerId) -> None:
        """``peer`` is alive after all (another super peer names it)."""
        self.dead.pop(peer, None)

    def shunned(self, peer: PeerId, now: float) -> bool:
        return self.dead.get(peer, -_NEVER) > now

    def expire(self, now: float) -> None:
        """Forget the shunned peers whose time is up."""
        if self.dead:
            for peer in [p for p, until in self.dead.items() if until <= now]:
                del self.dead[peer]

    def candidates(self, now: float, *taken: Container[PeerId]) -> list[Known]:
        """The known super peers not shunned at ``now`` and in none of ``taken``, in the
        order I learnt them (the order random picks draw from)."""
        dead = self.dead
        return [
            known
            for peer, known in self.known.items()
            if dead.get(peer, -_NEVER) <= now and not any(peer in table for table in taken)
        ]

    def infos(self) -> tuple[SuperInfo, ...]:
        """The super peers heard of most recently, for a peer that took me for one."""
        known = sorted(self.known.values(), key=lambda k: -k.heard)[:MAX_SUPER_INFO]
        return tuple(SuperInfo(k.contact, min(k.load, MAX_LOAD)) for k in known)
