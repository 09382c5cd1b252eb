"""Roles: who is a super peer, when to promote and demote, and who replaces a dead one.

There is no coordinator.  Each decision is local and uses only what a peer hears:

* **Growth and shrinkage follow the load.**  A super peer serves at most
  ``max_load`` attachments; every super peer estimates the mean load of the super
  layer by averaging its own with its super-layer neighbors' estimates (carried
  on every beat).  On target, each super peer serves ``k * ratio`` attachments.
  When the estimate is off by more than ``tolerance`` (hysteresis), each super
  peer acts with a probability equal to the relative error: it asks its
  successor to become a super peer (overloaded) or steps down (underloaded).  In
  expectation this corrects the whole error in one round, and because most super
  peers do nothing in a given round the layer does not overshoot and oscillate.
  A super peer that refuses attachments for lack of room counts as fully
  overloaded.  This is Gnutella 0.6's rule in spirit (a leaf becomes an ultrapeer
  when ultrapeers lack leaf slots), with the target ratio of Yang and
  Garcia-Molina (ICDE 2003) as the set point.
* **Back-off.**  After acting, a super peer waits ``settle_periods`` so the
  estimates can catch up; a peer that stepped down may not be promoted again for
  ``demotion_backoff`` seconds (doubling with every demotion), so roles do not
  flap.
* **Founding.**  A peer that has heard of no super peer at all ``seed_wait``
  seconds after starting asks the bootstrap once more, and if there is still
  none, founds the layer with probability 1 / (ratio + 1).  Later growth is by
  promotion, as above.
* **Replacement.**  Every super peer names a *successor* among its eligible weak
  peers: highest capacity, then lowest id.  The name rides on every beat and is
  sticky (it only changes when the successor leaves), so every weak peer of the
  cluster knows it long before it is needed.  When the super peer dies, the
  successor promotes itself the moment it notices, and the others attach to it:
  the election was held while everyone could still talk, so no message need
  arrive, in any order, for there to be exactly one winner.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Final

import attrs

from overlay.core.config import SuperConfig
from overlay.protocol.identity import Contact, PeerId, Role
from overlay.protocol.randomness import RandomSource

STARVED_WAIT_PERIODS = 2
"""Periods a starved super peer waits after acting before it asks for another promotion."""
WEAK: Final[Role] = "weak"
SUPER: Final[Role] = "super"


@attrs.frozen
class Candidate:
    """A weak peer as its super peer sees it, for the successor election."""

    contact: Contact
    capacity: int
    eligible: bool


def elect(candidates: Iterable[Candidate]) -> Candidate | None:
    """The winner among eligible candidates: highest capacity, then lowest id.

    A total order on (capacity, id), so every peer computing it over the same
    candidates gets the same winner whatever order they were heard in.
    """
    best: Candidate | None = None
    for candidate in candidates:
        if not candidate.eligible:
            continue
        if best is None or (-candidate.capacity, candidate.contact.id) < (
            -best.capacity,
            best.contact.id,
        ):
            best = candidate
    return best


class Election:
    """A peer's role and the rules that change it.  Pure: the caller passes ``now``."""

    def __init__(self, me: PeerId, capacity: int, config: SuperConfig, rng: RandomSource) -> None:
        self.me = me
        self.capacity = capacity
        self.config = config
        self.rng = rng
        self.role: Role = WEAK
        self.started = 0.0
        self.role_changes = 0
        self.demotions = 0
        self.backoff_until = 0.0
        self.quiet_until = 0.0
        """A super peer takes no load decision before this (settling after the last)."""
        self.acted_at = 0.0
        """When this peer last changed role or asked for a promotion."""
        self.successor: Candidate | None = None
        self.low_since: float | None = None
        """Since when the layer has looked underloaded without a break."""

    @property
    def is_super(self) -> bool:
        return self.role == SUPER

    def start(self, now: float) -> None:
        self.started = now

    def eligible(self, now: float) -> bool:
        """May this peer become a super peer now (capacity, uptime, back-off)?"""
        config = self.config
        return (
            self.capacity >= config.min_capacity
            and now - self.started >= config.min_uptime
            and now >= self.backoff_until
        )

    def promote(self, now: float) -> bool:
        """Become a super peer; False if already one."""
        if self.role == SUPER:
            return False
        self.role = SUPER
        self.role_changes += 1
        self.successor = None
        self.quiet_until = now + self.config.settle_periods * self.config.period
        self.acted_at = now
        return True

    def demote(self, now: float) -> bool:
        """Step down to weak; the back-off doubles with every demotion."""
        if self.role != SUPER:
            return False
        self.role = WEAK
        self.role_changes += 1
        self.demotions += 1
        self.successor = None
        self.low_since = None
        self.backoff_until = now + self.config.demotion_backoff * 2 ** (self.demotions - 1)
        return True

    def should_found(self) -> bool:
        """Found the super layer (nobody has heard of a super peer)?  A coin of 1/(ratio+1)."""
        return self.rng.random() < 1.0 / (self.config.ratio + 1)

    def load_decision(
        self, now: float, estimate: float, supers_known: int, starved: bool
    ) -> str | None:
        """A super peer's periodic decision: "promote" (ask the successor), "demote" or None.

        ``estimate`` is the layer's mean load as this super peer sees it;
        ``supers_known`` the super-layer neighbors it has (the last super peer standing
        never steps down); ``starved``: it refused attachments for lack of room lately.

        A super peer that sees fewer than k super peers, itself included, counts as fully
        overloaded too, whatever its load: below k super peers no weak peer can have k.
        Load alone misses this in a small overlay (one founder among 45 peers serves 44
        attachments, on target for k = 2 and a ratio of 20, yet each weak peer has one).
        """
        if not self.is_super:
            return None
        config = self.config
        short = supers_known + 1 < config.k
        if now < self.quiet_until and not (
            (starved or short) and now >= self.acted_at + STARVED_WAIT_PERIODS * config.period
        ):
            # Settling.  Refusals for lack of room, or too few super peers, are no
            # estimate, though: then a super peer waits only a couple of periods (a
            # founder is full at once in a large overlay, alone in a small one, and the
            # whole settling time would leave weak peers short of super peers).
            return None
        target = config.target_load
        error = 1.0 if starved or short else (estimate - target) / target
        decision: str | None = None
        if -error > config.tolerance:
            if self.low_since is None:
                self.low_since = now
        else:
            self.low_since = None
        # Stepping down needs the layer to look underloaded for a whole settling time:
        # right after a crash the survivors' estimates dip while replacements, still
        # nearly empty, fill up, and a demotion then would only cost another re-homing.
        sustained = (
            self.low_since is not None
            and now - self.low_since >= config.settle_periods * config.period
        )
        if error > config.tolerance:
            if self.successor is not None and self.rng.random() < min(1.0, error):
                decision = "promote"
        elif sustained and supers_known > 0 and self.rng.random() < -error:
            decision = "demote"
        if decision is not None:
            self.quiet_until = now + config.settle_periods * config.period
            self.acted_at = now
        return decision

    def choose_successor(self, candidates: Iterable[Candidate]) -> Candidate | None:
        """Name the successor, sticky: keep the current one while it is still a candidate."""
        pool = list(candidates)
        current = self.successor
        if current is not None:
            for candidate in pool:
                if candidate.contact.id == current.contact.id and candidate.eligible:
                    self.successor = candidate
                    return candidate
        self.successor = elect(pool)
        return self.successor
