"""The bootstrap node's state: which peers are alive, as a pure state machine.

Peers ``Register`` under a lease and refresh it (every third of the lease); a
peer that stops refreshing expires.  Every registration is answered with a
uniform random sample of the other live peers (never the asker, never more
than asked, never more than :data:`overlay.protocol.messages.MAX_SAMPLE`) and the known
super peers.  The bootstrap decides nothing about the overlay: it only hands
out contacts.

Registrations are rate limited per address with a token bucket, and the cache
is bounded: when it is full, a new peer is answered but not recorded (the
peers already known keep their places; a full cache is still a good sample).
"""

from __future__ import annotations

import math

import attrs

from overlay.protocol import validate
from overlay.protocol.effects import Effect, Send
from overlay.protocol.identity import Address, Contact, PeerId
from overlay.protocol.messages import MAX_SAMPLE, Message, PeerSample, Register, Unregister
from overlay.protocol.randomness import RandomSource


@attrs.frozen
class HostCacheConfig:
    lease: float = attrs.field(default=60.0, validator=validate.real(0.01, 86400))
    """Peers refresh every third of it; a crashed peer stays in samples at most this long,
    so under heavy churn a shorter lease means fewer dead contacts handed to newcomers."""
    max_entries: int = attrs.field(default=200_000, validator=validate.integer(1, 10_000_000))
    max_super_peers: int = attrs.field(default=16, validator=validate.integer(0, MAX_SAMPLE))
    register_burst: float = attrs.field(default=10.0, validator=validate.real(1, 1e6))
    """Registrations one address may make at once ..."""
    register_rate: float = attrs.field(default=1.0, validator=validate.real(0.0, 1e6))
    """... and per second after that (a peer refreshes every lease/3 seconds)."""
    sweep_period: float = attrs.field(default=5.0, validator=validate.real(0.01, 3600))
    rate_table_size: int = attrs.field(default=200_000, validator=validate.integer(1, 10_000_000))
    """Addresses whose registration rate is tracked at once; past it, new ones are refused
    until the sweep forgets idle ones (a flood of fresh addresses cannot grow the table)."""


@attrs.define(slots=True)
class HostEntry:
    contact: Contact
    role: str
    capacity: int
    expires: float


@attrs.frozen
class HostRecord:
    """One saved entry (what ``overlay bootstrap --state`` writes and reloads)."""

    contact: Contact
    role: str
    capacity: int
    expires: float


class _SampleSet:
    """A set of peer ids with O(1) add and remove and O(k) uniform samples.

    A list beside a slot dict: removal swaps the last id into the freed slot.
    """

    def __init__(self) -> None:
        self._ids: list[PeerId] = []
        self._slot: dict[PeerId, int] = {}

    def __len__(self) -> int:
        return len(self._ids)

    def add(self, peer: PeerId) -> None:
        if peer not in self._slot:
            self._slot[peer] = len(self._ids)
            self._ids.append(peer)

    def discard(self, peer: PeerId) -> None:
        slot = self._slot.pop(peer, None)
        if slot is None:
            return
        last = self._ids.pop()
        if last != peer:
            self._ids[slot] = last
            self._slot[last] = slot

    def sample(self, rng: RandomSource, want: int, exclude: PeerId) -> list[PeerId]:
        """Up to ``want`` distinct ids other than ``exclude``, uniformly."""
        ids = self._ids
        if want <= 0 or not ids:
            return []
        picked = rng.sample(ids, min(want + 1, len(ids)))
        return [p for p in picked if p != exclude][:want]


@attrs.define(slots=True)
class _Bucket:
    tokens: float
    updated: float


class HostCache:
    """Live peers with O(1) register, expire and uniform sampling."""

    def __init__(self, me: Contact, config: HostCacheConfig, rng: RandomSource) -> None:
        self.me = me
        self.config = config
        self.rng = rng
        self._entries: dict[PeerId, HostEntry] = {}
        self._live = _SampleSet()
        # Kept apart so answering a registration never scans the whole cache.
        self._supers = _SampleSet()
        self._buckets: dict[Address, _Bucket] = {}
        self.next_sweep = math.inf
        self.counters: dict[str, int] = {}

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, peer: object) -> bool:
        return peer in self._entries

    # ------------------------------------------------------------------ core surface

    def start(self, now: float) -> list[Effect]:
        self.next_sweep = now + self.config.sweep_period
        return []

    def next_deadline(self) -> float:
        return self.next_sweep

    def handle_timer(self, now: float) -> list[Effect]:
        if now >= self.next_sweep:
            self.next_sweep = now + self.config.sweep_period
            self.expire(now)
        return []

    def receive(self, message: Message, sender: Contact, now: float) -> list[Effect]:
        if type(message) is Register:
            return self.on_register(message, sender, now)
        if type(message) is Unregister:
            self.remove(sender.id)
            return []
        self._count("unexpected_message")
        return []

    def link_lost(self, _peer: PeerId, _now: float) -> list[Effect]:
        return []  # a peer's lease, not its connection, says whether it is alive

    # ------------------------------------------------------------------ operations

    def on_register(self, message: Register, sender: Contact, now: float) -> list[Effect]:
        if not self._admit(sender.address, now):
            self._count("registrations_refused")
            return []
        self._count("registrations")
        self.add(sender, message.role, message.capacity, now + self.config.lease)
        sample = self.sample(message.want, exclude=sender.id)
        supers = tuple(self.super_peers(exclude=sender.id))
        return [Send(sender.address, PeerSample(tuple(sample), supers, self.config.lease))]

    def add(self, contact: Contact, role: str, capacity: int, expires: float) -> None:
        entry = self._entries.get(contact.id)
        if entry is not None:
            entry.contact, entry.role, entry.capacity, entry.expires = (
                contact,
                role,
                capacity,
                expires,
            )
        elif len(self._entries) >= self.config.max_entries:
            self._count("cache_full")
            return
        else:
            self._entries[contact.id] = HostEntry(contact, role, capacity, expires)
            self._live.add(contact.id)
        if role == "super":
            self._supers.add(contact.id)
        else:
            self._supers.discard(contact.id)

    def remove(self, peer: PeerId) -> None:
        if self._entries.pop(peer, None) is None:
            return
        self._live.discard(peer)
        self._supers.discard(peer)

    def expire(self, now: float) -> int:
        gone = [peer for peer, entry in self._entries.items() if entry.expires <= now]
        for peer in gone:
            self.remove(peer)
        # Forget idle rate-limit buckets too, so the table stays bounded.
        full = self.config.register_burst / max(self.config.register_rate, 1e-9)
        for address in [a for a, b in self._buckets.items() if now - b.updated > full]:
            del self._buckets[address]
        return len(gone)

    def sample(self, want: int, exclude: PeerId) -> list[Contact]:
        """A uniform sample of ``want`` live peers other than ``exclude``."""
        picked = self._live.sample(self.rng, min(want, MAX_SAMPLE), exclude)
        return [self._entries[p].contact for p in picked]

    def super_peers(self, exclude: PeerId) -> list[Contact]:
        """A uniform sample of at most ``max_super_peers`` live super peers."""
        picked = self._supers.sample(self.rng, self.config.max_super_peers, exclude)
        return [self._entries[p].contact for p in picked]

    def records(self) -> list[HostRecord]:
        return [
            HostRecord(e.contact, e.role, e.capacity, e.expires) for e in self._entries.values()
        ]

    def restore(self, records: list[HostRecord]) -> None:
        for record in records:
            self.add(record.contact, record.role, record.capacity, record.expires)

    def _admit(self, address: Address, now: float) -> bool:
        config = self.config
        bucket = self._buckets.get(address)
        if bucket is None:
            if len(self._buckets) >= config.rate_table_size:
                return False
            bucket = self._buckets[address] = _Bucket(config.register_burst, now)
        bucket.tokens = min(
            config.register_burst, bucket.tokens + (now - bucket.updated) * config.register_rate
        )
        bucket.updated = now
        if bucket.tokens < 1.0:
            return False
        bucket.tokens -= 1.0
        return True

    def _count(self, key: str) -> None:
        self.counters[key] = self.counters.get(key, 0) + 1
