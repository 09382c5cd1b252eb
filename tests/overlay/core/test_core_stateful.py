"""A peer core driven by hostile neighbours, as a hypothesis state machine.

The neighbours send anything well-formed (the wire delivers nothing else): messages
out of order and out of context, duplicated, replayed from other senders, with ids
inside that name someone other than the sender (the peer itself among them), with
every list at its validator's bound, and answers to what the peer really asked
(accepts, hits, verdicts, fetch replies, index changes) that are sometimes true and
sometimes forged.  Timers fire at arbitrary increasing times (early ones included)
and links are lost at random.  Three flavours: membership only, membership with
searches under way, and the super-peer layer on (the peer a super peer in some runs).

After every step:

* nothing escaped ``receive``, ``handle_timer`` or ``link_lost`` (a refusal is a
  counter and a ``bad_input`` event, never an exception);
* the active view is within its maximum, without the peer itself, and holds at most
  ``max_per_prefix`` neighbours of any one foreign address prefix; the passive view is
  within its bound and disjoint from the active view;
* every table of the core is within the bound stated in :func:`bounds_of`, and
  :func:`test_every_table_of_the_core_has_a_stated_bound` fails when a new table
  appears without one.

Examples per run: ``CORE_FUZZ_EXAMPLES`` per flavour (default 15, so 45 runs of
``CORE_FUZZ_STEPS`` = 60 steps: about 5 s) for CI; a long run, e.g.
``CORE_FUZZ_EXAMPLES=300 pytest tests/overlay/core/test_core_stateful.py`` (900 runs, about
a minute and a half).  The tests at the end pin down, without hypothesis, each bound
this machine found missing.
"""

from __future__ import annotations

import math
import os
import random
from collections import Counter, deque
from collections.abc import Iterator
from typing import Any, cast

import attrs
import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
)

from overlay.core.config import MembershipConfig, PeerConfig, SuperConfig
from overlay.core.membership import PassiveEntry, address_group
from overlay.core.peer import Peer
from overlay.core.supers.directory import MAX_CANDIDATES, MAX_DEAD
from overlay.core.supers.weak_side import SPARES, PendingAttach
from overlay.protocol.effects import Effect, Send
from overlay.protocol.identity import Address, Contact
from overlay.protocol.messages import (
    MAX_NAME,
    MAX_SAMPLE,
    Attach,
    AttachAccept,
    AttachReject,
    Detach,
    Fetch,
    FetchReply,
    Heartbeat,
    IndexDelta,
    IndexPublish,
    IndexRefresh,
    IndexRefused,
    Join,
    Message,
    NeighborAccept,
    NeighborRequest,
    Query,
    QueryHit,
    ShuffleEntry,
    ShuffleReply,
    ShuffleRequest,
    SuperBeat,
    SuperInfo,
    SuperLink,
    SuperLinkAccept,
    SuperQuery,
    SuperUnlink,
    WalkCheck,
    WalkStep,
    WalkVerdict,
    all_message_types,
)
from search.config import SearchConfig
from search.errors import TooManySearches
from search.store import Criteria, StoreFull
from tests.keys import keyed_contact, model_key, model_peer, signed_entry, signed_hit
from tests.overlay.net.hostile import (
    forged_contact,
    messages_at_bounds,
    random_contact,
    random_id,
    random_key,
)
from tests.overlay.protocol.test_wire import any_message

EXAMPLES = int(os.environ.get("CORE_FUZZ_EXAMPLES", "15"))
STEPS = int(os.environ.get("CORE_FUZZ_STEPS", "60"))

EDGY_U16 = st.sampled_from([0, 1, 65534, 65535]) | st.integers(0, 65535)
"""A 16-bit field: its edges (where an increment overflows the validator) or anything."""

ME = Address("127.0.0.1", 8000)
BOOTSTRAP = Address("127.0.0.1", 7000)
_SENDER_ADDRESSES = [
    *(Address(f"127.66.0.{n + 1}", 9000) for n in range(6)),
    *(Address(f"10.{n + 1}.0.1", 9000) for n in range(3)),
    Address("127.0.0.1", 9100),  # my own /24: not capped
    BOOTSTRAP,  # the bootstrap may be hostile too
]
_SENDER_KEYS = [keyed_contact(f"sender-{n}", a) for n, a in enumerate(_SENDER_ADDRESSES)]
SENDERS = [contact for _key, contact in _SENDER_KEYS]
KEY_OF = {contact.id: key for key, contact in _SENDER_KEYS}
"""Each sender's key pair: what it signs its own hits and index entries with."""

MEMBERSHIP = MembershipConfig(
    target_degree=3,
    max_degree=5,
    passive_size=8,
    known_hosts_size=6,
    tombstones_size=8,
    max_per_prefix=2,
    blacklist_size=4,
)
SEARCH = SearchConfig(
    seen_size=16,
    max_held_walkers=4,
    max_searches=4,
    results_size=4,
    max_hits_per_search=6,
    store_capacity=6,
    walkers=3,
)
SUPERS = SuperConfig(
    enabled=True,
    ratio=2,
    k=2,
    super_degree=2,
    max_super_degree=3,
    max_index_entries=300,
    min_uptime=0.0,
    seed_wait=1.0,
)
FLAVOURS = {
    "membership": PeerConfig(membership=MEMBERSHIP, search=SEARCH),
    "search": PeerConfig(membership=MEMBERSHIP, search=SEARCH),
    "super": PeerConfig(membership=MEMBERSHIP, search=SEARCH, supers=SUPERS),
}


# --------------------------------------------------------------------------- the bounds


def bounds_of(peer: Peer, started: int = 0) -> Iterator[tuple[str, int, int]]:
    """Every table of the core: (name, size now, the bound it must stay within).

    The bounds are what the code enforces, written down: a failure names the table.
    Tables filled only by the peer's own user (its store, the searches it started) are
    bounded by the settings that cap those calls; ``started`` is how many searches and
    fetches the user started so far (each may leave up to two timers behind).
    """
    m, config = peer.membership, peer.config.membership
    types = len(all_message_types())
    yield "Peer._received", len(peer._received), types
    yield "Peer._dropped", len(peer._dropped or {}), types
    yield "Membership.active", len(m.active), config.max_degree
    yield "Membership._groups", len(m._groups), config.max_degree
    yield "Membership.passive", len(m.passive), config.passive_size
    yield "Membership.known_hosts", len(m.known_hosts), config.known_hosts_size
    # Requests come from repair (up to the target), a bootstrap sample (half the target,
    # only with none pending) and one exploration per shuffle while older ones are pending.
    explorations = math.ceil(config.request_timeout / config.shuffle_period) + 1
    # Anchors are asked at start, and one own slot at a time after that.
    yield "Membership.pending", len(m.pending), config.target_degree + explorations + 1
    yield "Membership.own_asks", len(m.own_asks), config.target_degree + explorations + 1
    yield "Membership.anchors", len(m.anchors), config.anchors_size
    yield "Membership.redirects", len(m.redirects), 4 * config.max_degree + 1
    yield "Membership.turned_away", len(m.turned_away), 4 * config.max_degree
    yield "Membership.turned_me_away", len(m.turned_me_away), 4 * config.max_degree
    yield "Membership.tombstones", len(m.tombstones), config.tombstones_size
    yield "Membership.blacklist", len(m.blacklist), config.blacklist_size
    yield "Membership.super_peers", len(m.super_peers), MAX_SAMPLE
    yield "Membership.counters", len(m.counters), 24
    standing = peer.standing
    yield "Standing.records", len(standing.records), peer.config.standing.size
    yield "Standing.distrusted", len(standing.distrusted), peer.config.standing.size
    yield "Standing.counters", len(standing.counters), 8

    search, ctx, s = peer.search, peer.search.ctx, peer.config.search
    yield "Search.store", len(search.store), s.store_capacity
    yield "SearchContext.active", len(ctx.active), s.max_searches
    # A ring uses one wire id per ring: TTL 1, 3, 5, ... up to the cap.
    yield "SearchContext.origins", len(ctx.origins), s.max_searches * (s.max_ttl // 2 + 1)
    for table in ctx.active.values():
        yield "OriginSearch.hits", len(table.hits), s.max_hits_per_search
        yield "OriginSearch.hit_keys", len(table.hit_keys), s.max_hits_per_search
        walkers = getattr(table, "walkers", None)
        if isinstance(walkers, dict):
            most = s.walkers * (1 + s.relaunch_factor)
            yield "WalkSearch.walkers", len(walkers), most
    yield "SearchContext.results", len(ctx.results), s.results_size
    yield "SearchContext.fetches", len(ctx.fetches), s.results_size
    for result in ctx.results.values():
        yield "SearchResult.hits", len(result.hits), s.max_hits_per_search
    yield "SearchContext.finished", len(ctx.finished), s.results_size * 4
    for name, seen in (
        ("Flooding.seen", search.flooding.seen),
        ("Walking.seen", search.walking.seen),
        ("SuperSearching.seen", search.super_searching.seen),
    ):
        yield name, len(seen), s.seen_size
        yield name + "._order", len(seen._order or ()), s.seen_size
    yield "Walking.held", len(search.walking.held), s.max_held_walkers
    yield "Fetching.pending", len(search.fetching.pending), s.max_searches
    # Held walkers share one sweep timer; every other timer belongs to a search or a
    # fetch the user started: nothing a neighbor sends adds one.
    yield "SearchContext.timers", len(ctx.timers), 1 + 2 * started
    yield "SearchContext.rates", len(ctx.rates), s.rate_table_size
    yield "Walking.memory", len(search.walking.memory), s.seen_size
    yield "SearchContext.counters", len(ctx.counters), 64

    supers = peer.supers
    if supers is None:
        return
    c = supers.config
    weak_side, super_side, directory = supers.weak_side, supers.super_side, supers.directory
    yield "WeakSide.attached", len(weak_side.attached), c.k
    yield "WeakSide.pending", len(weak_side.pending), c.k + SPARES + 1
    yield "Directory.known", len(directory.known), MAX_CANDIDATES
    yield "Directory.dead", len(directory.dead), MAX_DEAD
    yield "SuperSide.neighbors", len(super_side.neighbors), c.max_super_degree
    yield "SuperSide.linking", len(super_side.linking), c.super_degree
    yield "WeakSide.published", len(weak_side.published), c.max_items_per_weak
    yield "WeakSide.signed", len(weak_side.signed), c.max_items_per_weak
    yield "SuperContext.counters", len(supers.counters), 64
    index = super_side.index
    yield "SuperSide.index", len(index), c.max_load
    yield "SuperIndex.by_owner", len(index.by_owner), c.max_load
    yield "SuperIndex.leases", len(index.leases), c.max_load
    yield "SuperIndex.entries", index.entries, c.max_index_entries
    yield "SuperIndex._by_key", len(index._by_key), c.max_index_entries
    # A name of MAX_NAME characters has at most (MAX_NAME + 1) // 2 words.
    yield "SuperIndex._by_word", len(index._by_word), c.max_index_entries * (MAX_NAME + 1) // 2
    for lease in index.by_owner.values():
        yield "Lease.items", len(lease.items), c.max_items_per_weak


def check_core(peer: Peer, started: int = 0) -> None:
    for name, size, bound in bounds_of(peer, started):
        assert size <= bound, f"{name} holds {size}, over its bound of {bound}"
    m, config = peer.membership, peer.config.membership
    assert peer.id not in m.active
    assert not set(m.active) & set(m.passive), "a neighbour is also a passive entry"
    assert not set(m.active) & set(m.blacklist), "a distrusted peer is still a neighbour"
    mine = address_group(peer.address.host)
    groups: dict[str, int] = {}
    for neighbor in m.active.values():
        group = address_group(neighbor.contact.address.host)
        groups[group] = groups.get(group, 0) + 1
    # The counts the prefix cap reads are kept on every add and remove, not recounted.
    assert Counter(m._groups) == groups
    groups.pop(mine, None)
    assert all(count <= config.max_per_prefix for count in groups.values()), groups


# --------------------------------------------------------------------------- the machine


def contacts_in(value: object) -> Iterator[Contact]:
    """Every contact inside a message (to answer from the addresses the peer learnt)."""
    if type(value) is Contact:
        yield value
    elif isinstance(value, tuple):
        for item in value:
            yield from contacts_in(item)
    elif attrs.has(type(value)):
        for field in attrs.fields(cast(Any, type(value))):
            yield from contacts_in(getattr(value, field.name))


class HostileNeighbours(RuleBasedStateMachine):
    """One peer core; everyone else is the test."""

    def __init__(self) -> None:
        super().__init__()
        self.now = 0.0
        self.rng = random.Random(0)
        self.peer: Peer | None = None
        self.flavour = ""
        self.received: deque[tuple[Message, Contact]] = deque(maxlen=32)
        self.sent: deque[Send] = deque(maxlen=64)
        self.known: dict[Address, Contact] = {c.address: c for c in SENDERS}
        self.started = 0

    # ------------------------------------------------------------------ plumbing

    @property
    def core(self) -> Peer:
        assert self.peer is not None
        return self.peer

    def _take(self, effects: list[Effect]) -> None:
        for effect in effects:
            if isinstance(effect, Send):
                self.sent.append(effect)

    def _deliver(self, message: Message, sender: Contact) -> None:
        for contact in contacts_in(message):
            if len(self.known) < 256:
                self.known.setdefault(contact.address, contact)
        self.received.append((message, sender))
        self._take(self.core.receive(message, sender, self.now))

    def _sender_for(self, address: Address) -> Contact:
        """Who answers a message the peer sent to ``address``: whoever it thinks is there,
        or, now and then, someone claiming to be."""
        contact = self.known.get(address)
        if contact is None or self.rng.random() < 0.1:
            contact = Contact(random_id(self.rng), address)
        return contact

    def _sent_of(self, *kinds: type[Message]) -> list[Send]:
        """What the peer sent of these kinds, the most recent first."""
        return [s for s in reversed(self.sent) if isinstance(s.message, kinds)]

    def _served(self) -> list[Contact]:
        """Senders the peer serves as a super peer (weak peers, super-layer neighbours)."""
        supers = self.core.supers
        if supers is None or supers.role != "super":
            return []
        return [c for c in SENDERS if supers.serves(c.id)]

    # ------------------------------------------------------------------ set-up

    @initialize(
        flavour=st.sampled_from(sorted(FLAVOURS)),
        seed=st.integers(0, 2**32 - 1),
        promoted=st.booleans(),
    )
    def start(self, flavour: str, seed: int, promoted: bool) -> None:
        self.flavour = flavour
        self.rng = random.Random(seed)
        self.peer = model_peer(ME, FLAVOURS[flavour], seed, bootstrap=BOOTSTRAP)
        self._take(self.peer.start(self.now))
        if promoted and self.peer.supers is not None:
            out: list[Effect] = []
            self.peer.supers.promote(self.now, out)
            self._take(out)
        if flavour != "membership":
            for number in range(3):
                self.peer.publish(f"item {number}".encode(), f"song number {number}", self.now)

    # ------------------------------------------------------------------ hostile input

    @rule(message=any_message, sender=st.sampled_from(SENDERS))
    def anything(self, message: Message, sender: Contact) -> None:
        self._deliver(message, sender)

    @rule(which=st.integers(0, 15), sender=st.sampled_from(SENDERS))
    def lists_at_their_bounds(self, which: int, sender: Contact) -> None:
        known = [*SENDERS, self.core.contact]
        messages = messages_at_bounds(self.rng, known)
        self._deliver(messages[which % len(messages)], sender)

    @precondition(lambda self: bool(self.received))
    @rule(which=st.integers(0, 31), sender=st.none() | st.sampled_from(SENDERS))
    def replay(self, which: int, sender: Contact | None) -> None:
        """Deliver again something delivered before, from its sender or from another."""
        message, original = self.received[which % len(self.received)]
        self._deliver(message, sender or original)

    @precondition(lambda self: bool(self.sent))
    @rule(which=st.integers(0, 63), sender=st.sampled_from(SENDERS))
    def reflect(self, which: int, sender: Contact) -> None:
        """Send the peer one of its own messages back, out of every context."""
        self._deliver(self.sent[which % len(self.sent)].message, sender)

    @rule(sender=st.sampled_from(SENDERS), urgent=st.booleans(), join=st.booleans())
    def ask_to_be_a_neighbour(self, sender: Contact, urgent: bool, join: bool) -> None:
        self._deliver(Join() if join else NeighborRequest(urgent), sender)

    @rule(sender=st.sampled_from(SENDERS), degree=st.integers(0, 1024))
    def heartbeat(self, sender: Contact, degree: int) -> None:
        self._deliver(Heartbeat(degree), sender)

    @rule(
        sender=st.sampled_from(SENDERS),
        ttl=st.integers(0, 255),
        hops=st.integers(0, 255),
        direct=st.booleans(),
        forged=st.booleans(),
    )
    def flood_through(
        self, sender: Contact, ttl: int, hops: int, direct: bool, forged: bool
    ) -> None:
        origin = forged_contact(self.rng, [self.core.contact]) if forged else sender
        words = ("song",) if self.rng.random() < 0.5 else ("song", "number")
        self._deliver(Query(random_id(self.rng), origin, None, words, ttl, hops, direct), sender)

    @rule(
        sender=st.sampled_from(SENDERS),
        hops=st.integers(1, 65535),
        check=st.integers(1, 8),
        walker=st.integers(0, 3),
        origin=st.sampled_from(SENDERS),
    )
    def walker_through(
        self, sender: Contact, hops: int, check: int, walker: int, origin: Contact
    ) -> None:
        query_id = f"{walker + 1:032x}"  # a few ids only, so walkers meet again
        ttl = min(65535, hops + self.rng.randrange(8))
        step = WalkStep(query_id, origin, random_key(self.rng), (), ttl, hops, walker, check)
        self._deliver(step, sender)

    @rule(sender=st.sampled_from(SENDERS), hops=EDGY_U16, walkers=EDGY_U16, ttl=EDGY_U16)
    def super_query_through(self, sender: Contact, hops: int, walkers: int, ttl: int) -> None:
        served = self._served()
        if served and self.rng.random() < 0.7:
            sender = served[self.rng.randrange(len(served))]  # past the role checks
        origin = forged_contact(self.rng, [self.core.contact, *SENDERS])
        query = SuperQuery(random_id(self.rng), origin, None, ("song",), ttl, hops, walkers)
        self._deliver(query, sender)

    @rule(sender=st.sampled_from(SENDERS), count=st.integers(0, 32))
    def shuffle(self, sender: Contact, count: int) -> None:
        entries = tuple(
            ShuffleEntry(forged_contact(self.rng, [self.core.contact, *SENDERS]), 0)
            for _ in range(count)
        )
        request = self.rng.random() < 0.5
        self._deliver(ShuffleRequest(entries) if request else ShuffleReply(entries), sender)

    # ------------------------------------------------------------------ answers

    @precondition(lambda self: bool(self._sent_of(Join, NeighborRequest)))
    @rule(which=st.integers(0, 63), degree=st.integers(0, 1024))
    def accept_a_request(self, which: int, degree: int) -> None:
        asks = self._sent_of(Join, NeighborRequest)
        ask = asks[which % len(asks)]
        self._deliver(NeighborAccept(degree), self._sender_for(ask.to))

    @precondition(lambda self: bool(self._sent_of(ShuffleRequest)))
    @rule(which=st.integers(0, 63))
    def answer_a_shuffle(self, which: int) -> None:
        asks = self._sent_of(ShuffleRequest)
        ask = asks[which % len(asks)]
        entries = tuple(ShuffleEntry(forged_contact(self.rng, SENDERS), 1) for _ in range(8))
        self._deliver(ShuffleReply(entries), self._sender_for(ask.to))

    @precondition(lambda self: bool(self._sent_of(Query, WalkStep, SuperQuery)))
    @rule(
        which=st.just(0) | st.integers(0, 63),
        true=st.booleans(),
        hops=st.integers(0, 65535),
        copies=st.integers(1, 12),
    )
    def hits_for_a_query(self, which: int, true: bool, hops: int, copies: int) -> None:
        """Hits for a query the peer sent, true or not, each naming another holder."""
        asks = self._sent_of(Query, WalkStep, SuperQuery)
        ask = asks[which % len(asks)].message
        assert isinstance(ask, Query | WalkStep | SuperQuery)
        key = ask.key if ask.key is not None and true else random_key(self.rng)
        name = " ".join(ask.keywords) if true else "something else"
        for _ in range(copies):
            hit = self._hit(ask.query_id, key, name, hops)
            self._deliver(hit, self._sender_for(asks[which % len(asks)].to))

    def _hit(self, query_id: str, key: str, name: str, hops: int) -> QueryHit:
        """A hit naming another holder: signed by that holder, or (one in four) forged."""
        address = forged_contact(self.rng, [self.core.contact, *SENDERS]).address
        holder_key, holder = keyed_contact(self.rng.getrandbits(64), address)
        signer = holder_key if self.rng.random() < 0.75 else model_key(self.rng.getrandbits(64))
        return signed_hit(signer, query_id, key, name, 10, holder, hops)

    @precondition(lambda self: self.peer is not None and bool(self.peer.search.ctx.active))
    @rule(sender=st.sampled_from(SENDERS), copies=st.integers(1, 12), true=st.booleans())
    def hits_for_a_search_under_way(self, sender: Contact, copies: int, true: bool) -> None:
        """Hits for a search of the peer's still waiting for answers, many holders each."""
        search = next(reversed(self.core.search.ctx.active.values()))
        criteria = search.criteria
        for _ in range(copies):
            key = criteria.key if criteria.key is not None and true else random_key(self.rng)
            name = " ".join(criteria.keywords) if true else "something else"
            self._deliver(self._hit(search.wire_ids[-1], key, name, 1), sender)

    @rule(
        sender=st.sampled_from(SENDERS),
        origin=st.sampled_from(SENDERS),
        rounds=st.integers(1, 30),
        proceed=st.booleans(),
    )
    def hold_and_release(
        self, sender: Contact, origin: Contact, rounds: int, proceed: bool
    ) -> None:
        """A walker held for its check and answered at once, again and again, with no
        time passing: nothing a hold leaves behind may pile up."""
        for _ in range(rounds):
            self._deliver(WalkStep(f"{1:032x}", origin, None, ("song",), 64, 4, 0, 4), sender)
            self._deliver(WalkVerdict(f"{1:032x}", 0, proceed), origin)

    @rule(count=st.sampled_from([150]) | st.integers(1, 150), kind=st.integers(0, 5))
    def strangers(self, count: int, kind: int) -> None:
        """The same message from many identities the peer never met (one connection each,
        each claiming a fresh id): tables keyed by sender must not grow with them."""
        message: Message = [
            SuperUnlink("not a super peer"),
            AttachReject("not a super peer"),
            Detach("not attached"),
            NeighborRequest(True),
            WalkCheck(random_id(self.rng), 0, 4),
            FetchReply(random_id(self.rng), random_key(self.rng), False),
        ][kind]
        for _ in range(count):
            self._deliver(message, random_contact(self.rng))

    @rule(sender=st.sampled_from(SENDERS), count=st.integers(0, 128), seq=st.integers(0, 3))
    def attach_as_a_weak_peer(self, sender: Contact, count: int, seq: int) -> None:
        key = KEY_OF[sender.id]
        items = tuple(
            signed_entry(key, sender.id, random_key(self.rng), f"song w{self.rng.randrange(50)}", 1)
            for _ in range(count)
        )
        self._deliver(Attach(1, True, seq, items, key.public_key), sender)

    @precondition(lambda self: self.flavour == "super")
    @rule(sender=st.sampled_from(SENDERS))
    def link_in_the_super_layer(self, sender: Contact) -> None:
        self._deliver(SuperLink(self.rng.randrange(100)), sender)

    @precondition(lambda self: bool(self._sent_of(WalkCheck)))
    @rule(which=st.integers(0, 63), proceed=st.booleans(), impostor=st.booleans())
    def verdict_for_a_check(self, which: int, proceed: bool, impostor: bool) -> None:
        checks = self._sent_of(WalkCheck)
        check = checks[which % len(checks)]
        assert isinstance(check.message, WalkCheck)
        verdict = WalkVerdict(check.message.query_id, check.message.walker, proceed)
        sender = self._sender_for(check.to) if not impostor else SENDERS[0]
        self._deliver(verdict, sender)

    @precondition(lambda self: bool(self._sent_of(Fetch)))
    @rule(which=st.integers(0, 63), outcome=st.sampled_from(["true", "forged", "missing"]))
    def reply_to_a_fetch(self, which: int, outcome: str) -> None:
        fetches = self._sent_of(Fetch)
        fetch = fetches[which % len(fetches)]
        assert isinstance(fetch.message, Fetch)
        request = fetch.message
        found = outcome != "missing"
        value = b"not what you asked for" if outcome == "forged" else b""
        reply = FetchReply(request.request_id, request.key, found, value if found else b"")
        self._deliver(reply, self._sender_for(fetch.to))

    @precondition(lambda self: self.flavour == "super")
    @rule(which=st.integers(0, 63), accept=st.booleans())
    def answer_an_attach_or_link(self, which: int, accept: bool) -> None:
        asks = [s for s in self.sent if type(s.message).__name__ in ("Attach", "SuperLink")]
        if not asks:
            return
        ask = asks[which % len(asks)]
        sender = self._sender_for(ask.to)
        if isinstance(ask.message, SuperLink):
            self._deliver(SuperLinkAccept(self.rng.randrange(100)), sender)
        elif accept:
            self._deliver(AttachAccept(random_id(self.rng), 30.0, 3), sender)
        else:
            beat = SuperBeat(
                3,
                3.0,
                forged_contact(self.rng, [self.core.contact]),
                tuple(SuperInfo(c, 1) for c in SENDERS[:8]),
            )
            self._deliver(beat, sender)

    @precondition(lambda self: bool(self._sent_of(AttachAccept)))
    @rule(
        which=st.integers(0, 63),
        kind=st.integers(0, 3),
        seq=st.integers(0, 5),
        count=st.integers(0, 128),
        other=st.booleans(),
    )
    def index_change(self, which: int, kind: int, seq: int, count: int, other: bool) -> None:
        """Index messages under a lease the peer granted: from its owner or from another."""
        grants = self._sent_of(AttachAccept)
        grant = grants[which % len(grants)]
        assert isinstance(grant.message, AttachAccept)
        lease_id = grant.message.lease_id
        sender = self._sender_for(grant.to) if not other else SENDERS[which % len(SENDERS)]
        # Someone claiming to be the lease's owner (``_sender_for`` now and then) has no
        # key of the senders': it signs with another's, as an impostor would.
        key = KEY_OF.get(sender.id) or KEY_OF[SENDERS[which % len(SENDERS)].id]
        items = tuple(
            signed_entry(
                key,
                sender.id,
                random_key(self.rng),
                f"song w{self.rng.randrange(50)}",
                1,
            )
            for _ in range(count)
        )
        message: Message
        if kind == 0:
            message = IndexPublish(lease_id, seq, items)
        elif kind == 1:
            message = IndexDelta(lease_id, seq + 1, items, ())
        elif kind == 2:
            message = IndexRefresh(lease_id, seq, True)
        else:
            message = IndexRefused(lease_id, f"reason {self.rng.randrange(10**6)}")
        self._deliver(message, sender)

    # ------------------------------------------------------------------ time and links

    @rule(seconds=st.sampled_from([0.0, 0.05, 0.3]) | st.floats(0.0, 10.0), early=st.booleans())
    def time_passes(self, seconds: float, early: bool) -> None:
        self.now += seconds
        if early or self.core.next_deadline() <= self.now:
            self._take(self.core.handle_timer(self.now))

    @rule(sender=st.sampled_from(SENDERS))
    def link_lost(self, sender: Contact) -> None:
        self._take(self.core.link_lost(sender.id, self.now))

    # ------------------------------------------------------------------ the peer's own user

    @precondition(lambda self: self.flavour != "membership")
    @rule(
        mode=st.sampled_from(["flood", "walk", "ring", "super-flood", "super-walk"]),
        by_key=st.booleans(),
    )
    def search(self, mode: str, by_key: bool) -> None:
        criteria = Criteria.for_key(random_key(self.rng)) if by_key else Criteria.for_words("song")
        self.started += 1
        try:
            _search_id, effects = self.core.search.start(mode, criteria, self.now)
        except TooManySearches:
            return  # the user's own limit: raised to the user, not a network event
        self._take(effects)

    @precondition(lambda self: self.flavour != "membership")
    @rule(holder=st.sampled_from(SENDERS))
    def fetch(self, holder: Contact) -> None:
        self.started += 1
        try:
            _request, effects = self.core.search.start_fetch(random_key(self.rng), holder, self.now)
        except TooManySearches:
            return
        self._take(effects)

    @precondition(lambda self: self.flavour != "membership")
    @rule(size=st.integers(0, 64))
    def publish(self, size: int) -> None:
        try:
            self._take(self.core.publish(self.rng.randbytes(size), "song new", self.now))
        except StoreFull:
            return

    @precondition(lambda self: self.flavour == "super")
    @rule()
    def become_super(self) -> None:
        supers = self.core.supers
        assert supers is not None
        out: list[Effect] = []
        supers.promote(self.now, out)
        self._take(out)

    # ------------------------------------------------------------------ invariants

    @invariant()
    def bounded(self) -> None:
        if self.peer is not None:
            check_core(self.peer, self.started)


HostileNeighbours.TestCase.settings = settings(
    max_examples=EXAMPLES * len(FLAVOURS),
    stateful_step_count=STEPS,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
TestHostileNeighbours = HostileNeighbours.TestCase


# --------------------------------------------------------------------------- completeness


def attributes(owner: object) -> Iterator[tuple[str, object]]:
    """``owner``'s instance attributes: from its ``__dict__``, or, for a class compiled by
    mypyc (which has none), from the attribute names mypyc records on the class."""
    names = getattr(type(owner), "__mypyc_attrs__", None)
    if names is None:
        yield from vars(owner).items()
        return
    for name in names:
        if name != "__dict__" and hasattr(owner, name):
            yield name, getattr(owner, name)


def tables(owner: object) -> Iterator[tuple[str, object]]:
    """``owner``'s attributes that hold a growing number of things: (name, the table)."""
    for name, value in attributes(owner):
        if name == "_handlers" or isinstance(value, str | bytes | tuple) or attrs.has(type(value)):
            continue  # a dispatch table fixed at construction, or a value
        if hasattr(value, "__len__"):
            yield f"{type(owner).__name__}.{name}", value


@pytest.mark.parametrize("flavour", sorted(FLAVOURS))
def test_every_table_of_the_core_has_a_stated_bound(flavour: str) -> None:
    """A table added to the core without a bound in ``bounds_of`` fails here."""
    peer = model_peer(ME, FLAVOURS[flavour], 1, bootstrap=BOOTSTRAP)
    peer.start(0.0)
    stated = {name for name, _size, _bound in bounds_of(peer)}
    owners: list[object] = [
        peer,
        peer.search,
        peer.membership,
        peer.standing,
        peer.search.ctx,
        peer.search.flooding,
        peer.search.walking,
        peer.search.fetching,
        peer.search.super_searching,
    ]
    if peer.supers is not None:
        supers = peer.supers
        owners += [
            supers,
            supers.ctx,
            supers.directory,
            supers.weak_side,
            supers.super_side,
            supers.index,
        ]
    found = [table for owner in owners for table in tables(owner)]
    # A table reachable under two names (the store, the timers) needs one bound.
    covered = {id(value) for name, value in found if name in stated}
    missing = {name for name, value in found if id(value) not in covered}
    assert not missing, f"tables without a stated bound: {sorted(missing)}"


def test_the_bounds_catch_an_overfull_table() -> None:
    """The check is not vacuous: a table pushed past its bound is named."""
    peer = model_peer(ME, FLAVOURS["membership"], 1, bootstrap=BOOTSTRAP)
    for number in range(MEMBERSHIP.passive_size + 1):
        contact = Contact(f"{number:032x}", Address(f"10.9.{number}.1", 1))
        peer.membership.passive[contact.id] = PassiveEntry(contact)
    with pytest.raises(AssertionError, match=r"Membership\.passive"):
        check_core(peer)


# --------------------------------------------------------------------------- what it found
#
# Each bound below was missing until this machine found it; the tests pin them down
# without hypothesis.


def super_peer_with_a_weak_peer() -> tuple[Peer, Contact, Contact]:
    peer = model_peer(ME, FLAVOURS["super"], 2, bootstrap=BOOTSTRAP)
    peer.start(0.0)
    assert peer.supers is not None
    peer.supers.promote(0.0, [])
    weak, other = SENDERS[6], SENDERS[7]
    peer.receive(Attach(1, True, 0, (), KEY_OF[weak.id].public_key), weak, 0.0)
    peer.receive(SuperLink(1), other, 0.0)
    assert peer.supers.serves(weak.id) and peer.supers.serves(other.id)
    return peer, weak, other


def test_a_super_query_at_the_last_hop_count_is_relayed_not_raised() -> None:
    peer, weak, other = super_peer_with_a_weak_peer()
    query = SuperQuery(random_id(random.Random(1)), weak, None, ("song",), 65535, 65535, 0)
    out = peer.receive(query, weak, 1.0)
    forwarded = [e.message for e in out if isinstance(e, Send) and e.to == other.address]
    assert forwarded and all(m.hops == 65535 for m in forwarded if isinstance(m, SuperQuery))


def test_walkers_held_and_released_over_and_over_leave_one_timer() -> None:
    unlimited = attrs.evolve(FLAVOURS["search"], search=attrs.evolve(SEARCH, query_rate=0.0))
    peer = model_peer(ME, unlimited, 2, bootstrap=BOOTSTRAP)
    origin, relay = SENDERS[7], SENDERS[8]
    for _ in range(500):
        peer.receive(WalkStep(f"{1:032x}", origin, None, ("song",), 64, 4, 0, 4), relay, 1.0)
        peer.receive(WalkVerdict(f"{1:032x}", 0, False), origin, 1.0)
    assert peer.search.walking.held == {}
    assert peer.search.counters["search.walk.stopped"] == 500
    assert len(peer.search.ctx.timers) == 1
    # The one timer still gives up on a walker whose origin never answers.
    peer.receive(WalkStep(f"{2:032x}", origin, None, ("song",), 64, 4, 0, 4), relay, 1.0)
    peer.handle_timer(peer.next_deadline())
    peer.handle_timer(peer.next_deadline())
    assert peer.search.walking.held == {}
    assert peer.search.counters["search.walk.check_timeout"] == 1


def test_a_search_keeps_a_bounded_number_of_hits() -> None:
    peer = model_peer(ME, FLAVOURS["search"], 2, bootstrap=BOOTSTRAP)
    peer.receive(NeighborRequest(), SENDERS[7], 0.0)
    search_id, _ = peer.search.start_flood(Criteria.for_words("song"), 0.0)
    rng = random.Random(3)
    for _ in range(100):
        holder_key, holder = keyed_contact(rng.getrandbits(64), random_contact(rng).address)
        hit = signed_hit(holder_key, search_id, random_key(rng), "song", 1, holder, 1)
        peer.receive(hit, SENDERS[7], 0.1)
    peer.handle_timer(10.0)
    assert len(peer.search.results[search_id].hits) == SEARCH.max_hits_per_search
    assert peer.search.counters["search.hit.over_bound"] == 100 - SEARCH.max_hits_per_search


def test_strangers_cannot_grow_the_dead_super_peers_table_or_name_counters() -> None:
    peer, _weak, _other = super_peer_with_a_weak_peer()
    supers = peer.supers
    assert supers is not None
    rng = random.Random(4)
    for _ in range(1000):
        peer.receive(SuperUnlink("not a super peer"), random_contact(rng), 1.0)
    assert len(supers.directory.dead) == MAX_DEAD
    # A super peer's refusal reason is free text: the counter name is not.
    weak_side = model_peer(ME, FLAVOURS["super"], 5, bootstrap=BOOTSTRAP)
    weak_side.start(0.0)
    assert weak_side.supers is not None
    super_peer = SENDERS[7]
    weak_side.supers.weak_side.pending[super_peer.id] = PendingAttach(super_peer, 10.0)
    weak_side.receive(AttachAccept("f" * 32, 30.0, 1), super_peer, 1.0)
    weak_side.receive(IndexRefused("f" * 32, "x" * 60), super_peer, 1.0)
    assert weak_side.snapshot().counters["index.refused_by_super.other"] == 1
