"""A super peer's index of its weak peers' items: leases, numbered deltas, bounds.

Why an index at all: in a super-peer network a query only travels among super
peers, and each answers for the weak peers attached to it (Yang and
Garcia-Molina, "Designing a super-peer network", ICDE 2003; Gnutella 0.6
ultrapeers hold their leaves' query-routing tables for the same reason).  So the
index must follow the weak peers' content and membership closely:

* **Leases.**  A weak peer's entries live under a lease it refreshes; a weak peer
  that crashes stops refreshing and its entries go when the lease runs out, so a
  dead peer is never named for longer than one lease (plus the sweep period).
* **Numbered deltas.**  After the first full publish, changes travel as deltas
  numbered 1, 2, 3, ...  A delta whose number is not the next one, or a refresh
  announcing a number we never saw, means a change was lost: the super peer asks
  for a full resend (:class:`SequenceGap`) rather than guessing.
* **Identity.**  A lease belongs to the peer that was granted it; the owner is the
  connection a message arrives on, never a field, so a peer cannot publish for
  another (:class:`ForeignLease`).  The owner's public key, which must hash to its
  id (:class:`ForeignKey`), comes with the attachment, and every entry carries the
  owner's signature over it (:class:`ForgedEntry` otherwise): the index answers
  queries with those signatures, so the origin can check that the holder itself
  said so.
* **Bounds.**  At most ``max_items_per_weak`` items per weak peer and
  ``max_entries`` in all; over a bound a publish is refused whole
  (:class:`IndexOverBound`, :class:`IndexFull`) and the index is left as it was.

Every refusal is a typed :class:`IndexRefusal` whose message says what was wrong;
the caller counts it and tells the sender.
"""

from __future__ import annotations

from collections.abc import Iterable

import attrs

from overlay.protocol.errors import RemoteError
from overlay.protocol.identity import Contact, PeerId, peer_id_of
from overlay.protocol.messages import IndexItem
from overlay.protocol.proofs import entry_statement
from overlay.protocol.signing import Verifier
from search.store import keywords_of


class IndexRefusal(RemoteError):
    """An index message was refused; ``code`` is short and stable (for counters)."""

    code = "refused"


class UnknownLease(IndexRefusal):
    """No lease of that id (never granted, expired, or dropped)."""

    code = "unknown_lease"


class ForeignLease(IndexRefusal):
    """The lease exists but belongs to another peer: nobody publishes for someone else."""

    code = "foreign_lease"


class ForeignKey(IndexRefusal):
    """The public key offered with an attachment is not the one the sender's id certifies."""

    code = "foreign_key"


class ForgedEntry(IndexRefusal):
    """An entry without its publisher's valid signature: nobody indexes for another."""

    code = "forged_entry"


class IndexOverBound(IndexRefusal):
    """The publish would give one weak peer more items than a super peer keeps for one."""

    code = "over_bound"


class IndexFull(IndexRefusal):
    """The super peer's index is at its bound on entries."""

    code = "index_full"


class SequenceGap(IndexRefusal):
    """A change was lost: the super peer needs the whole index again."""

    code = "gap"

    def __init__(self, message: str, *, have: int) -> None:
        super().__init__(message)
        self.have = have


@attrs.define(slots=True)
class Lease:
    """One weak peer's entries at this super peer."""

    lease_id: str
    owner: Contact
    public_key: bytes
    """The owner's public key (its id is this key's hash): what its entries verify against."""
    capacity: int
    eligible: bool
    expires: float
    seq: int
    items: dict[str, IndexItem] = attrs.field(factory=dict)


class SuperIndex:
    """The index a super peer keeps of its weak peers.  Pure: no clock, no I/O."""

    def __init__(
        self,
        max_items_per_weak: int,
        max_entries: int,
        lease_seconds: float,
        *,
        verifier: Verifier,
    ) -> None:
        self.verifier = verifier
        self.max_items_per_weak = max_items_per_weak
        self.max_entries = max_entries
        self.lease_seconds = lease_seconds
        self.leases: dict[str, Lease] = {}
        self.by_owner: dict[PeerId, Lease] = {}
        self._by_key: dict[str, dict[PeerId, None]] = {}
        self._by_word: dict[str, dict[tuple[str, PeerId], None]] = {}
        self.entries = 0

    def __len__(self) -> int:
        return len(self.by_owner)

    # ------------------------------------------------------------------ leases

    def grant(
        self,
        lease_id: str,
        owner: Contact,
        *,
        public_key: bytes,
        capacity: int,
        eligible: bool,
        seq: int,
        items: Iterable[IndexItem],
        now: float,
    ) -> Lease:
        """A new attachment (or a re-attachment): its whole index under a fresh lease.

        Raises :class:`ForeignKey`, :class:`ForgedEntry`, :class:`IndexOverBound` or
        :class:`IndexFull`; then nothing changed.
        """
        if peer_id_of(public_key) != owner.id:
            raise ForeignKey(f"the key offered does not certify the sender's id {owner.id}")
        fresh = self._signed(owner.id, public_key, items)
        old = self.by_owner.get(owner.id)
        self._check_room(len(fresh), len(old.items) if old is not None else 0)
        if old is not None:
            self.drop(owner.id)
        lease = Lease(
            lease_id, owner, public_key, capacity, eligible, now + self.lease_seconds, seq
        )
        self.leases[lease_id] = lease
        self.by_owner[owner.id] = lease
        for item in fresh.values():
            self._add(lease, item)
        return lease

    def lease_of(self, lease_id: str, sender: PeerId) -> Lease:
        """The lease ``lease_id`` if ``sender`` owns it (raises UnknownLease, ForeignLease)."""
        lease = self.leases.get(lease_id)
        if lease is None:
            raise UnknownLease(f"no lease {lease_id} here (expired, dropped or never granted)")
        if lease.owner.id != sender:
            raise ForeignLease(
                f"lease {lease_id} belongs to {lease.owner.id}, not to the sender {sender}"
            )
        return lease

    def refresh(self, lease_id: str, sender: PeerId, seq: int, eligible: bool, now: float) -> Lease:
        """Renew a lease.  Raises SequenceGap (after renewing) if changes were missed."""
        lease = self.lease_of(lease_id, sender)
        lease.expires = now + self.lease_seconds
        lease.eligible = eligible
        if seq != lease.seq:
            raise SequenceGap(
                f"lease {lease_id} is at change {seq}, we hold {lease.seq}", have=lease.seq
            )
        return lease

    def replace(
        self, lease_id: str, sender: PeerId, seq: int, items: Iterable[IndexItem], now: float
    ) -> Lease:
        """A full resend: the owner's entries become exactly ``items``."""
        lease = self.lease_of(lease_id, sender)
        fresh = self._signed(sender, lease.public_key, items)
        self._check_room(len(fresh), len(lease.items))
        for key in list(lease.items):
            self._remove(lease, key)
        for item in fresh.values():
            self._add(lease, item)
        lease.seq = seq
        lease.expires = now + self.lease_seconds
        return lease

    def apply_delta(
        self,
        lease_id: str,
        sender: PeerId,
        seq: int,
        *,
        add: Iterable[IndexItem],
        remove: Iterable[str],
        now: float,
    ) -> Lease:
        """Apply change ``seq``.  Raises SequenceGap if it is not the next one."""
        lease = self.lease_of(lease_id, sender)
        if seq <= lease.seq:
            return lease  # a duplicate or an old change overtaken by a full resend
        if seq != lease.seq + 1:
            raise SequenceGap(
                f"change {seq} of lease {lease_id} after {lease.seq}: one was lost",
                have=lease.seq,
            )
        additions = {
            key: item
            for key, item in self._signed(sender, lease.public_key, add).items()
            if key not in lease.items
        }
        removals = [key for key in dict.fromkeys(remove) if key in lease.items]
        after = len(lease.items) + len(additions) - len(removals)
        if after > self.max_items_per_weak:
            raise IndexOverBound(
                f"lease {lease_id} would hold {after} items (max {self.max_items_per_weak})"
            )
        if self.entries + len(additions) - len(removals) > self.max_entries:
            raise IndexFull(f"the index holds its bound of {self.max_entries} entries")
        for key in removals:
            self._remove(lease, key)
        for item in additions.values():
            self._add(lease, item)
        lease.seq = seq
        lease.expires = now + self.lease_seconds
        return lease

    def drop(self, owner: PeerId) -> Lease | None:
        """Forget a weak peer (it detached, left, or its lease expired)."""
        lease = self.by_owner.pop(owner, None)
        if lease is None:
            return None
        del self.leases[lease.lease_id]
        for key in list(lease.items):
            self._remove(lease, key)
        return lease

    def expire(self, now: float) -> list[Lease]:
        """Drop every lease that ran out; return them."""
        gone = [lease for lease in self.by_owner.values() if lease.expires <= now]
        for lease in gone:
            self.drop(lease.owner.id)
        return gone

    def clear(self) -> None:
        for owner in list(self.by_owner):
            self.drop(owner)

    # ------------------------------------------------------------------ lookups

    def matching(
        self, key: str | None, keywords: tuple[str, ...], limit: int
    ) -> list[tuple[Lease, IndexItem]]:
        """Entries answering a query: (the holder's lease, item), at most ``limit``."""
        found: list[tuple[Lease, IndexItem]] = []
        if key is not None:
            for owner in self._by_key.get(key, ()):
                lease = self.by_owner[owner]
                found.append((lease, lease.items[key]))
                if len(found) >= limit:
                    break
            return found
        if not keywords:
            return found
        postings: list[dict[tuple[str, PeerId], None]] = []
        for word in keywords:
            posting = self._by_word.get(word)
            if posting is None:
                return found
            postings.append(posting)
        postings.sort(key=len)
        for entry in postings[0]:
            if all(entry in other for other in postings[1:]):
                lease = self.by_owner[entry[1]]
                found.append((lease, lease.items[entry[0]]))
                if len(found) >= limit:
                    break
        return found

    def holdings(self) -> dict[PeerId, frozenset[str]]:
        """Which keys this index holds for whom (what the coverage metric reads)."""
        return {owner: frozenset(lease.items) for owner, lease in self.by_owner.items()}

    # ------------------------------------------------------------------ internals

    def _signed(
        self, owner: PeerId, public_key: bytes, items: Iterable[IndexItem]
    ) -> dict[str, IndexItem]:
        """``items`` by key, once each has been shown to carry ``owner``'s signature."""
        verify = self.verifier.verify
        fresh: dict[str, IndexItem] = {}
        for item in items:
            statement = entry_statement(owner, item.key, item.name, item.size, item.epoch)
            if not verify(public_key, statement, item.signature):
                raise ForgedEntry(f"entry {item.key[:8]} does not carry {owner}'s signature")
            fresh[item.key] = item
        return fresh

    def _check_room(self, count: int, replacing: int) -> None:
        if count > self.max_items_per_weak:
            raise IndexOverBound(
                f"a publish of {count} items (max {self.max_items_per_weak} per weak peer)"
            )
        if self.entries - replacing + count > self.max_entries:
            raise IndexFull(f"the index holds its bound of {self.max_entries} entries")

    def _add(self, lease: Lease, item: IndexItem) -> None:
        owner = lease.owner.id
        lease.items[item.key] = item
        self._by_key.setdefault(item.key, {})[owner] = None
        if item.name:
            for word in keywords_of(item.name):
                self._by_word.setdefault(word, {})[(item.key, owner)] = None
        self.entries += 1

    def _remove(self, lease: Lease, key: str) -> None:
        owner = lease.owner.id
        item = lease.items.pop(key)
        holders = self._by_key[key]
        del holders[owner]
        if not holders:
            del self._by_key[key]
        if item.name:
            for word in keywords_of(item.name):
                posting = self._by_word[word]
                posting.pop((key, owner), None)
                if not posting:
                    del self._by_word[word]
        self.entries -= 1
