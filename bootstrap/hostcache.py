r"""The bootstrap node's state: which peers are alive, as a pure state machine.

Peers ``Register`` under a lease and refresh it (every third of the lease); a
peer that stops refreshing expires.  Every registration is answered with a
sample of the other live peers (never the asker, never more than asked, never
more than :data:`overlay.protocol.messages.MAX_SAMPLE`) and the known super peers.
The bootstrap decides nothing about the overlay: it only hands out contacts.

What a registration may claim, and what stops a liar (see docs/design.md, "Trust"):

* **Who it is.**  The sender is the connection's proven key (the runtime's
  handshake), never a field: a peer registers, refreshes and ``Unregister``\ s
  only itself.
* **Where it is.**  The runtime tells the cache the connection's source address
  (``source``); rate limits and blame fall on its address prefix (a /24, an IPv6
  /64: :func:`overlay.core.admission.prefix_of`), which one operator cannot
  multiply as cheaply as keys.  Newcomers (ids the cache does not hold) are
  rate limited per source prefix, refreshes per id, both with token buckets in
  bounded tables; a refused registration, or any message the cache does not
  expect, costs the sender's id and prefix a token each.
* **What it is.**  Samples are drawn *spread across prefixes*: every prefix
  counts the same however many registrations it holds, and none gets more than
  ``max(1, want // prefixes)`` places, so one /24 full of fake registrations gets
  at most one place in a sample of 16 once honest peers sit on ten other /24s.
  A super peer is *listed* only once it has held the role, refreshing its lease,
  for ``super_seniority`` seconds (honest super peers serve for minutes; a burst
  of fresh "super" registrations does not qualify), and the list gives one prefix
  at most ``supers_per_prefix`` places whatever few prefixes it spans.  While no
  super peer has served that long (a fresh overlay), the newer ones are listed,
  or the first layer could never be found.  A claimed capacity is kept only up
  to ``max_capacity``: it is the peer's word, and nothing is ranked by it.

The cache is bounded: when it is full, a new peer is answered but not recorded
(the peers already known keep their places; a full cache is still a good sample).
"""

from __future__ import annotations

import math
from typing import TypeVar

import attrs

from overlay.core.admission import prefix_of
from overlay.protocol import validate
from overlay.protocol.effects import Effect, Send
from overlay.protocol.identity import Contact, PeerId
from overlay.protocol.messages import MAX_SAMPLE, Message, PeerSample, Register, Unregister
from overlay.protocol.randomness import RandomSource

K = TypeVar("K")


@attrs.frozen
class HostCacheConfig:
    lease: float = attrs.field(default=60.0, validator=validate.real(0.01, 86400))
    """Peers refresh every third of it; a crashed peer stays in samples at most this long,
    so under heavy churn a shorter lease means fewer dead contacts handed to newcomers."""
    max_entries: int = attrs.field(default=200_000, validator=validate.integer(1, 10_000_000))
    max_super_peers: int = attrs.field(default=16, validator=validate.integer(0, MAX_SAMPLE))
    register_burst: float = attrs.field(default=10.0, validator=validate.real(1, 1e6))
    """Registrations one peer (one proven id) may make at once ..."""
    register_rate: float = attrs.field(default=1.0, validator=validate.real(0.0, 1e6))
    """... and per second after that (a peer refreshes every lease/3 seconds)."""
    newcomer_burst: float = attrs.field(default=64.0, validator=validate.real(1, 1e6))
    """Registrations of ids the cache does not hold yet that one source prefix (a /24)
    may make at once ...  Enough for a test swarm of dozens on one host to start
    together; a flood of fresh keys from one /24 is what it stops."""
    newcomer_rate: float = attrs.field(default=8.0, validator=validate.real(0.0, 1e6))
    """... and per second after that."""
    max_capacity: int = attrs.field(default=1000, validator=validate.integer(0, 1_000_000))
    """Claimed capacities are kept up to this (a claim is only a claim)."""
    super_seniority: float = attrs.field(default=30.0, validator=validate.real(0.0, 86400))
    """A super peer is listed once it has held the role this long without its lease
    lapsing: longer than a burst of registrations takes, shorter than an honest super
    peer serves (while none has, the newer ones are listed: a fresh overlay)."""
    supers_per_prefix: int = attrs.field(default=2, validator=validate.integer(1, MAX_SAMPLE))
    """Most places one address prefix (a /24) takes in a super-peer list, however few
    prefixes the listed super peers span (the bootstrap's own prefix excepted: a LAN,
    or a swarm on one host, is one prefix by construction)."""
    sweep_period: float = attrs.field(default=5.0, validator=validate.real(0.01, 3600))
    rate_table_size: int = attrs.field(default=200_000, validator=validate.integer(1, 10_000_000))
    """Ids, and separately source prefixes, whose registration rate is tracked at once;
    past it, new ones are refused until the sweep forgets idle ones (a flood of fresh keys
    or addresses cannot grow the tables)."""


@attrs.define(slots=True)
class HostEntry:
    contact: Contact
    role: str
    capacity: int
    expires: float
    prefix: str
    super_since: float = math.inf
    """When it registered as a super peer (its lease unbroken since); inf while weak."""


@attrs.frozen
class HostRecord:
    """One saved entry (what ``overlay bootstrap --state`` writes and reloads)."""

    contact: Contact
    role: str
    capacity: int
    expires: float
    super_since: float = math.inf


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


class _Groups:
    """Peer ids grouped by address prefix, for samples spread across prefixes."""

    def __init__(self) -> None:
        self._members: dict[str, _SampleSet] = {}
        self._prefixes = _SampleSet()

    def __len__(self) -> int:
        return sum(len(members) for members in self._members.values())

    def __bool__(self) -> bool:
        return bool(self._members)

    def add(self, peer: PeerId, prefix: str) -> None:
        members = self._members.get(prefix)
        if members is None:
            members = self._members[prefix] = _SampleSet()
            self._prefixes.add(prefix)
        members.add(peer)

    def discard(self, peer: PeerId, prefix: str) -> None:
        members = self._members.get(prefix)
        if members is None:
            return
        members.discard(peer)
        if not len(members):
            del self._members[prefix]
            self._prefixes.discard(prefix)

    def sample(
        self,
        rng: RandomSource,
        want: int,
        exclude: PeerId,
        per_prefix: int = MAX_SAMPLE,
        uncapped: str = "",
    ) -> list[PeerId]:
        """Up to ``want`` distinct ids other than ``exclude``, every prefix weighing the
        same and none holding more than ``max(1, want // prefixes)`` of the places, nor
        more than ``per_prefix`` (but the ``uncapped`` one)."""
        count = len(self._prefixes)
        if want <= 0 or count == 0:
            return []
        if count > want:
            # Draw a few spare prefixes: one may hold only the asker.
            prefixes = self._prefixes.sample(rng, min(count, want + 2), exclude="")
            each = 1
        else:
            prefixes = self._prefixes.sample(rng, count, exclude="")
            each = max(1, want // count)
        picked: list[PeerId] = []
        members = self._members
        for prefix in prefixes:
            group = members[prefix]
            places = each if prefix == uncapped else max(1, min(each, per_prefix))
            if places == 1 and len(group) == 1:
                # The usual case on the Internet (and in the simulator): one peer per
                # prefix, taken without a draw.
                only = group._ids[0]
                if only != exclude:
                    picked.append(only)
            else:
                picked.extend(group.sample(rng, places, exclude))
            if len(picked) >= want:
                break
        return picked[:want]


@attrs.define(slots=True)
class _Bucket:
    tokens: float
    updated: float


class HostCache:
    """Live peers with O(1) register and expire, and samples spread across prefixes."""

    def __init__(self, me: Contact, config: HostCacheConfig, rng: RandomSource) -> None:
        self.me = me
        self.config = config
        self.rng = rng
        self._entries: dict[PeerId, HostEntry] = {}
        self._live = _Groups()
        # Kept apart so answering a registration never scans the whole cache.
        self._supers = _Groups()
        """Super peers that have served ``super_seniority``: the ones listed."""
        self._juniors = _Groups()
        """Super peers newer than that (listed only while none has served so long)."""
        self._junior_ids: dict[PeerId, None] = {}
        """The same, for the sweep that moves them up when their time comes."""
        self._buckets: dict[PeerId, _Bucket] = {}
        """Registration tokens per proven id."""
        self._prefix_buckets: dict[str, _Bucket] = {}
        """Tokens for newcomers, per source prefix."""
        self.next_sweep = math.inf
        self.counters: dict[str, int] = {}
        self._my_prefix = prefix_of(me.address.host)
        """Peers on the bootstrap's own prefix (its LAN, one host's swarm) are not capped
        in super lists: the membership does not cap its own prefix either."""

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

    def receive(
        self, message: Message, sender: Contact, now: float, *, source: str | None = None
    ) -> list[Effect]:
        """Act on ``message`` from ``sender`` (its id proven by the runtime's handshake).

        ``source`` is the host the connection comes from, as the runtime saw it; None
        means the sender's claimed host (the simulator, where the two are the same).
        """
        prefix = prefix_of(source if source is not None else sender.address.host)
        if type(message) is Register:
            return self.on_register(message, sender, now, prefix)
        if type(message) is Unregister:
            self.remove(sender.id)  # only ever the sender itself
            return []
        self._count("unexpected_message")
        self.charge(sender.id, prefix, now)
        return []

    def link_lost(self, _peer: PeerId, _now: float) -> list[Effect]:
        return []  # a peer's lease, not its connection, says whether it is alive

    # ------------------------------------------------------------------ operations

    def on_register(
        self, message: Register, sender: Contact, now: float, prefix: str | None = None
    ) -> list[Effect]:
        if prefix is None:
            prefix = prefix_of(sender.address.host)
        if not self._admit(sender.id, prefix, now):
            self._count("registrations_refused")
            return []
        self._count("registrations")
        self.add(sender, message.role, message.capacity, now + self.config.lease, prefix, now=now)
        sample = self.sample(message.want, exclude=sender.id)
        supers = tuple(self.super_peers(exclude=sender.id))
        return [Send(sender.address, PeerSample(tuple(sample), supers, self.config.lease))]

    def add(
        self,
        contact: Contact,
        role: str,
        capacity: int,
        expires: float,
        prefix: str | None = None,
        *,
        now: float | None = None,
        super_since: float | None = None,
    ) -> None:
        """Record (or refresh) ``contact``; ``prefix`` is where it registered from (by
        default the prefix of the host it claims), ``now`` when (by default a lease
        before ``expires``).  A super peer keeps the time it first registered as one
        while its lease holds (``super_since`` gives it, for a restored entry)."""
        config = self.config
        if prefix is None:
            prefix = prefix_of(contact.address.host)
        if now is None:
            now = expires - config.lease
        capacity = min(capacity, config.max_capacity)
        peer = contact.id
        entry = self._entries.get(peer)
        if entry is not None:
            self._unlist(peer, entry.prefix)
            if entry.prefix != prefix:
                self._live.discard(peer, entry.prefix)
                self._live.add(peer, prefix)
            if role != "super" or entry.role != "super":
                entry.super_since = math.inf
            entry.contact, entry.role, entry.capacity, entry.expires, entry.prefix = (
                contact,
                role,
                capacity,
                expires,
                prefix,
            )
        elif len(self._entries) >= config.max_entries:
            self._count("cache_full")
            return
        else:
            entry = self._entries[peer] = HostEntry(contact, role, capacity, expires, prefix)
            self._live.add(peer, prefix)
        if role != "super":
            return
        if entry.super_since == math.inf:
            entry.super_since = now if super_since is None else super_since
        if now - entry.super_since >= config.super_seniority:
            self._supers.add(peer, prefix)
        else:
            self._juniors.add(peer, prefix)
            self._junior_ids[peer] = None

    def _unlist(self, peer: PeerId, prefix: str) -> None:
        self._supers.discard(peer, prefix)
        if peer in self._junior_ids:
            del self._junior_ids[peer]
            self._juniors.discard(peer, prefix)

    def _promote_seniors(self, now: float) -> None:
        """Super peers that have now served ``super_seniority`` are listed from now on."""
        entries, seniority = self._entries, self.config.super_seniority
        ready = [p for p in self._junior_ids if now - entries[p].super_since >= seniority]
        for peer in ready:
            prefix = entries[peer].prefix
            self._unlist(peer, prefix)
            self._supers.add(peer, prefix)

    def remove(self, peer: PeerId) -> None:
        entry = self._entries.pop(peer, None)
        if entry is None:
            return
        self._live.discard(peer, entry.prefix)
        self._unlist(peer, entry.prefix)

    def expire(self, now: float) -> int:
        gone = [peer for peer, entry in self._entries.items() if entry.expires <= now]
        for peer in gone:
            self.remove(peer)
        if self._junior_ids:
            self._promote_seniors(now)
        # Forget idle rate-limit buckets too, so the tables stay bounded.
        config = self.config
        for table, burst, rate in (
            (self._buckets, config.register_burst, config.register_rate),
            (self._prefix_buckets, config.newcomer_burst, config.newcomer_rate),
        ):
            full = burst / max(rate, 1e-9)
            for key in [k for k, b in table.items() if now - b.updated > full]:
                del table[key]
        return len(gone)

    def sample(self, want: int, exclude: PeerId) -> list[Contact]:
        """Up to ``want`` live peers other than ``exclude``, spread across prefixes."""
        picked = self._live.sample(self.rng, min(want, MAX_SAMPLE), exclude)
        return [self._entries[p].contact for p in picked]

    def super_peers(self, exclude: PeerId) -> list[Contact]:
        """At most ``max_super_peers`` live super peers that have served
        ``super_seniority`` (the newer ones while none has), spread across prefixes."""
        config = self.config
        listed = self._supers if self._supers else self._juniors
        picked = listed.sample(
            self.rng, config.max_super_peers, exclude, config.supers_per_prefix, self._my_prefix
        )
        return [self._entries[p].contact for p in picked]

    def charge(self, peer: PeerId, prefix: str, now: float) -> None:
        """Misbehaviour: it costs the proven id and the source prefix a token each (never
        a claimed id: the sender is whoever the handshake proved)."""
        self._count("charged")
        self._take(self._buckets, peer, now, self.config.register_burst, self.config.register_rate)
        self._take(
            self._prefix_buckets,
            prefix,
            now,
            self.config.newcomer_burst,
            self.config.newcomer_rate,
        )

    def records(self) -> list[HostRecord]:
        return [
            HostRecord(e.contact, e.role, e.capacity, e.expires, e.super_since)
            for e in self._entries.values()
        ]

    def restore(self, records: list[HostRecord]) -> None:
        for record in records:
            self.add(
                record.contact,
                record.role,
                record.capacity,
                record.expires,
                super_since=None if record.super_since == math.inf else record.super_since,
            )

    def _admit(self, peer: PeerId, prefix: str, now: float) -> bool:
        config = self.config
        if not self._take(self._buckets, peer, now, config.register_burst, config.register_rate):
            return False
        if peer in self._entries:
            return True  # a refresh: the peer's own bucket is its limit
        if self._take(
            self._prefix_buckets, prefix, now, config.newcomer_burst, config.newcomer_rate
        ):
            return True
        self._count("newcomers_refused_for_prefix")
        return False

    def _take(self, table: dict[K, _Bucket], key: K, now: float, burst: float, rate: float) -> bool:
        """Take a token from ``key``'s bucket; False if it has none (or the table is full)."""
        bucket = table.get(key)
        if bucket is None:
            if len(table) >= self.config.rate_table_size:
                return False
            bucket = table[key] = _Bucket(burst, now)
        bucket.tokens = min(burst, bucket.tokens + (now - bucket.updated) * rate)
        bucket.updated = now
        if bucket.tokens < 1.0:
            return False
        bucket.tokens -= 1.0
        return True

    def _count(self, key: str) -> None:
        self.counters[key] = self.counters.get(key, 0) + 1
