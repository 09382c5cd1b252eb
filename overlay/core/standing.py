"""A peer's standing ledger: what it has seen other peers do, and whom it no longer trusts.

Two kinds of evidence, both gathered by the core as a side effect of its work:

* **Faults.**  Every refusal of a peer's input (``bad_input``: a message out of
  place, a field over the peer's own limits, a reply nobody asked for) weighs 1.  A
  fetched value that fails its hash check weighs the whole limit at once: a key is
  the SHA-256 of its value, so a holder serving other bytes is lying, and a forged
  hit is exactly that.  So does a hit or an index entry that names a holder without
  that holder's signature (:data:`PROOF_OF_LYING`).  Weights decay with a half-life,
  so the rare refusal an honest peer earns in a race (a role change crossing a
  request) never adds up.
* **Walkers that vanish.**  The origin of a random walk knows which neighbor took
  each walker first, and hears from every walker at its first check.  A neighbor
  that drops the queries it is handed loses every walker it takes; an honest one
  loses only those that meet loss or another dropper within the first ``check``
  hops.  A neighbor through which at least ``walker_evidence`` walkers were lost
  and at most ``1 - walker_loss_limit`` of its recent walkers came back is
  distrusted.  Outcomes are counted in a window (halved when it fills), so old
  luck neither condemns nor shields a neighbor.  (Floods give no such evidence: a
  flood's copies all look alike to its origin.)

A peer that crosses either line is *distrusted*: the peer core drops it from the
active view and keeps it out for a while (``MembershipConfig.blacklist_seconds``,
:meth:`overlay.core.membership.Membership.distrust`), and the repair links to someone
else.  Not counted as faults: a holder that no longer has an item (it may have
removed it; counting it would let a forger frame honest peers by naming them as
holders), messages dropped for rate (that is the sender's load, not its conduct).

The ledger is bounded (``StandingConfig.size`` peers, the least recently judged goes
first) and pure: its clock is ``now``, which the peer sets before every event.
"""

from __future__ import annotations

import math
from typing import Final

import attrs

from overlay.core.config import StandingConfig
from overlay.protocol.identity import PeerId

WALKER_RETURNED: Final = "walker_returned"
WALKER_LOST: Final = "walker_lost"
FORGED_CONTENT: Final = "search.fetch.mismatch"
"""The counter under which a fetch's hash check failure is refused (search.fetch)."""
PROOF_OF_LYING: Final = frozenset(
    {
        FORGED_CONTENT,
        "search.hit.forged",
        "index.refused.forged_entry",
        "index.refused.foreign_key",
    }
)
"""Refusals that are proof, not suspicion, each weighing the whole limit at once: bytes
that fail their hash, a hit or an index entry without the named holder's signature
(every honest peer checks hits before relaying them, so the sender of a bad one made it
or passed it on unchecked), a key that does not certify the sender's id."""
FAULT_KINDS: Final = ("bad_input", "forged_content")


@attrs.define(slots=True)
class Record:
    """What one peer has done lately."""

    faults: float = 0.0
    faults_at: float = 0.0
    returned: float = 0.0
    lost: float = 0.0
    lost_total: int = 0


class Standing:
    """The ledger of one peer core."""

    def __init__(self, config: StandingConfig) -> None:
        self.config = config
        self.now = 0.0
        self.records: dict[PeerId, Record] = {}
        self.distrusted: dict[PeerId, None] = {}
        """Peers distrusted since the core last acted (:meth:`take_distrusted`)."""
        self.counters: dict[str, int] = {}

    def record(self, peer: PeerId, kind: str) -> None:
        """Note evidence ``kind`` about ``peer``: a walker outcome, or a refusal's counter."""
        if not self.config.enabled or not peer:
            return
        if kind in (WALKER_RETURNED, WALKER_LOST):
            self._walker(peer, kind == WALKER_RETURNED)
        elif kind in PROOF_OF_LYING:
            self._fault(peer, "forged_content", self.config.fault_limit)
        else:
            self._fault(peer, "bad_input", 1.0)

    def take_distrusted(self) -> list[PeerId]:
        """The peers distrusted since the last call (each once)."""
        peers = list(self.distrusted)
        self.distrusted.clear()
        return peers

    def faults_of(self, peer: PeerId) -> float:
        """``peer``'s weighted faults now (decayed), 0 if it has none on record."""
        record = self.records.get(peer)
        return self._decayed(record) if record is not None else 0.0

    # ------------------------------------------------------------------ internals

    def _record_of(self, peer: PeerId) -> Record:
        records = self.records
        record = records.pop(peer, None)
        if record is None:
            record = Record(faults_at=self.now)
            while len(records) >= self.config.size:
                del records[next(iter(records))]
        records[peer] = record  # most recently judged last
        return record

    def _decayed(self, record: Record) -> float:
        elapsed = max(0.0, self.now - record.faults_at)
        return record.faults * math.pow(0.5, elapsed / self.config.fault_half_life)

    def _fault(self, peer: PeerId, kind: str, weight: float) -> None:
        record = self._record_of(peer)
        record.faults = self._decayed(record) + weight
        record.faults_at = self.now
        self._count(f"standing.{kind}")
        if record.faults >= self.config.fault_limit:
            self._distrust(peer, record)

    def _walker(self, peer: PeerId, returned: bool) -> None:
        config = self.config
        record = self._record_of(peer)
        if returned:
            record.returned += 1.0
            self._count("standing.walkers_returned")
        else:
            record.lost += 1.0
            record.lost_total += 1
            self._count("standing.walkers_lost")
        if record.returned + record.lost > config.walker_window:
            record.returned /= 2.0
            record.lost /= 2.0
        share = record.lost / (record.returned + record.lost)
        if record.lost_total >= config.walker_evidence and share >= config.walker_loss_limit:
            self._distrust(peer, record)

    def _distrust(self, peer: PeerId, record: Record) -> None:
        self._count("standing.distrusted")
        self.distrusted[peer] = None
        # A clean slate for when the blacklist lets it back in: it earns its way out again.
        record.faults = 0.0
        record.returned = record.lost = 0.0
        record.lost_total = 0
        while len(self.distrusted) > self.config.size:
            del self.distrusted[next(iter(self.distrusted))]

    def _count(self, key: str) -> None:
        self.counters[key] = self.counters.get(key, 0) + 1
