"""Every message of the protocol, as frozen attrs classes that validate their fields.

A message is constructed the same way whether our own core made it or the wire
decoder made it from a remote's bytes, so the validators here are the single
place where ranges and lengths are checked.  The sender of a message is never a
field: it is the connection the message arrived on (the runtime's ``sender``), so
no peer can speak for another.

Limits (``MAX_*``) bound every list and string, because each can come from the
network.
"""

from __future__ import annotations

import re
from typing import Any, Final

import attrs

from overlay.protocol import validate
from overlay.protocol.identity import PUBLIC_KEY_BYTES, ROLES, Address, Contact, check_peer_id
from overlay.protocol.signing import SIGNATURE_BYTES

MAX_SAMPLE: Final = 64
"""Most contacts in one bootstrap sample."""
MAX_SHUFFLE: Final = 32
"""Most contacts in one shuffle message."""
MAX_DEGREE_FIELD: Final = 1024
MAX_CAPACITY: Final = 1_000_000
MAX_REASON: Final = 64
MAX_AGE: Final = 65535


class Message:
    """Base of every wire message (for typing; carries no state)."""

    __slots__ = ()


_contacts = validate.tuple_of  # shorthand, reads as "a tuple of contacts"
_public_key = validate.exact_bytes(PUBLIC_KEY_BYTES)
_signature = validate.exact_bytes(SIGNATURE_BYTES)


@attrs.frozen
class Handshake(Message):
    """First frame on every connection, in both directions: who I am and what I speak."""

    version: int = attrs.field(validator=validate.integer(0, 65535))
    contact: Contact = attrs.field(validator=validate.instance(Contact))
    role: str = attrs.field(default="weak", validator=validate.one_of(*ROLES))
    capacity: int = attrs.field(default=1, validator=validate.integer(0, MAX_CAPACITY))


@attrs.frozen
class Register(Message):
    """Peer -> bootstrap: register (or refresh the lease) and ask for ``want`` contacts."""

    want: int = attrs.field(validator=validate.integer(0, MAX_SAMPLE))
    role: str = attrs.field(default="weak", validator=validate.one_of(*ROLES))
    capacity: int = attrs.field(default=1, validator=validate.integer(0, MAX_CAPACITY))


@attrs.frozen
class Unregister(Message):
    """Peer -> bootstrap: I am leaving; forget me now rather than at lease expiry."""


@attrs.frozen
class PeerSample(Message):
    """Bootstrap -> peer: a uniform sample of live peers, the known super peers, the lease."""

    peers: tuple[Contact, ...] = attrs.field(validator=_contacts(Contact, MAX_SAMPLE))
    super_peers: tuple[Contact, ...] = attrs.field(
        default=(), validator=_contacts(Contact, MAX_SAMPLE)
    )
    lease: float = attrs.field(default=60.0, validator=validate.real(0.0, 86400.0))


@attrs.frozen
class Join(Message):
    """Newcomer -> member: let me in.  The member splits one of its links for us.

    Edge splitting (replace a link u-v by u-newcomer and newcomer-v) keeps every
    member's degree unchanged and hands the newcomer two links per split; it is
    the classic way to grow a random regular graph (Cooper, Dyer and Greenhill,
    "Sampling regular graphs and a peer-to-peer network", SODA 2005).
    """


@attrs.frozen
class Redirect(Message):
    """u -> v while splitting the link u-v: drop me, take the newcomer instead."""

    newcomer: Contact = attrs.field(validator=validate.instance(Contact))


@attrs.frozen
class NeighborRequest(Message):
    """Ask to become neighbors.  ``urgent``: I have no neighbor at all (HyParView's rule:
    an urgent request is accepted even by a full peer, which evicts someone)."""

    urgent: bool = attrs.field(default=False, validator=validate.boolean)


@attrs.frozen
class NeighborAccept(Message):
    """Yes, we are neighbors now (answer to Join, Redirect or NeighborRequest)."""

    degree: int = attrs.field(default=0, validator=validate.integer(0, MAX_DEGREE_FIELD))


@attrs.frozen
class NeighborReject(Message):
    """No room for you."""


@attrs.frozen
class Disconnect(Message):
    """We are not (or no longer) neighbors."""

    reason: str = attrs.field(default="", validator=validate.text(0, MAX_REASON))


@attrs.frozen
class Leave(Message):
    """Graceful leave: I am going away; forget me."""


@attrs.frozen
class Heartbeat(Message):
    """Periodic liveness signal to each neighbor; carries my degree for load balancing."""

    degree: int = attrs.field(validator=validate.integer(0, MAX_DEGREE_FIELD))


@attrs.frozen
class ShuffleEntry:
    """A contact with its Cyclon age: how many shuffle periods since it was fresh.

    Carrying the age matters: a dead peer's entries only grow older wherever
    they travel, so they are the first to be contacted, and dropped.
    """

    contact: Contact = attrs.field(validator=validate.instance(Contact))
    age: int = attrs.field(validator=validate.integer(0, MAX_AGE))


@attrs.frozen
class ShuffleRequest(Message):
    """Cyclon shuffle: a few entries from my views, myself (age 0) among them."""

    entries: tuple[ShuffleEntry, ...] = attrs.field(validator=_contacts(ShuffleEntry, MAX_SHUFFLE))


@attrs.frozen
class ShuffleReply(Message):
    """Cyclon shuffle answer: a few entries from the answerer's views."""

    entries: tuple[ShuffleEntry, ...] = attrs.field(validator=_contacts(ShuffleEntry, MAX_SHUFFLE))


MEMBERSHIP_MESSAGES: Final[tuple[type[Message], ...]] = (
    Join,
    Redirect,
    NeighborRequest,
    NeighborAccept,
    NeighborReject,
    Disconnect,
    Leave,
    Heartbeat,
    ShuffleRequest,
    ShuffleReply,
)
BOOTSTRAP_MESSAGES: Final[tuple[type[Message], ...]] = (Register, Unregister, PeerSample)


def all_message_types() -> tuple[type[Message], ...]:
    """Every message type the wire knows, in a fixed order (the wire tags them by name)."""
    return (
        Handshake,
        *BOOTSTRAP_MESSAGES,
        *MEMBERSHIP_MESSAGES,
        *SEARCH_MESSAGES,
        *STATS_MESSAGES,
        *LISTING_MESSAGES,
        *SUPER_MESSAGES,
        *CLIENT_MESSAGES,
    )


# --------------------------------------------------------------------------- observability

MAX_STATS_NEIGHBORS: Final = 256
"""Most neighbor ids in one stats reply (a peer's hard maximum degree is far lower)."""
MAX_STATS_PASSIVE: Final = 256
MAX_STATS_COUNTERS: Final = 128
MAX_COUNTER_NAME: Final = 64
MAX_COUNTER_VALUE: Final = 2**63 - 1
MAX_STATS_SUPERS: Final = 8
"""Most super peers a weak peer names (k is at most 8)."""
MAX_STATS_WEAK: Final = 160
"""Most weak peers a super peer names, with its index entries for each: twice the default
most a super peer serves (``SuperConfig.max_load``); a super peer serving more names the
first ones only.  With every other field at its bound the reply still fits 64 KiB
(``tests/overlay/protocol/test_wire.py`` builds that reply)."""
MAX_STATS_SUPER_NEIGHBORS: Final = 64
MAX_STATS_ENTRIES_PER_WEAK: Final = 128
"""Index entries held for one weak peer (``SuperConfig.max_items_per_weak`` is at most 128)."""
MAX_STATS_SUPER_TARGET: Final = 8


@attrs.frozen
class StatCounter:
    """One named counter in a stats reply (a record, so the wire can check it strictly)."""

    name: str = attrs.field(validator=validate.text(1, MAX_COUNTER_NAME))
    value: int = attrs.field(validator=validate.integer(0, MAX_COUNTER_VALUE))


@attrs.frozen
class StatsRequest(Message):
    """Anyone -> peer: tell me how you are (the swarm's status line and summary read this).

    Answered by the runtime, not the core, on the connection it arrived on.
    """


@attrs.frozen
class StatsReply(Message):
    """Peer -> asker: a snapshot of the peer and its runtime's counters.

    Every field is bounded so the reply fits one frame even for a peer with a
    long passive view and many counters; a peer with more truncates.
    """

    id: str = attrs.field(validator=check_peer_id)
    address: Address = attrs.field(validator=validate.instance(Address))
    role: str = attrs.field(validator=validate.one_of(*ROLES))
    joined: bool = attrs.field(validator=validate.boolean)
    neighbors: tuple[str, ...] = attrs.field(
        validator=validate.tuple_of(str, MAX_STATS_NEIGHBORS, check_peer_id)
    )
    passive: tuple[str, ...] = attrs.field(
        validator=validate.tuple_of(str, MAX_STATS_PASSIVE, check_peer_id)
    )
    known_hosts: int = attrs.field(validator=validate.integer(0, MAX_COUNTER_VALUE))
    counters: tuple[StatCounter, ...] = attrs.field(
        validator=validate.tuple_of(StatCounter, MAX_STATS_COUNTERS)
    )
    # The super-peer layer (all zero or empty while it is off).  Field names are the
    # snapshot's (overlay.core.peer.PeerSnapshot), so a crawl copies them by name.
    super_peers: tuple[str, ...] = attrs.field(
        default=(), validator=validate.tuple_of(str, MAX_STATS_SUPERS, check_peer_id)
    )
    """A weak peer's super peers (lease granted)."""
    weak_peers: tuple[str, ...] = attrs.field(
        default=(), validator=validate.tuple_of(str, MAX_STATS_WEAK, check_peer_id)
    )
    """A super peer's weak peers (holding a lease)."""
    index_entries: tuple[int, ...] = attrs.field(
        default=(),
        validator=validate.tuple_of(
            int, MAX_STATS_WEAK, validate.integer(0, MAX_STATS_ENTRIES_PER_WEAK)
        ),
    )
    """Index entries the super peer holds for each of ``weak_peers``, in the same order."""
    super_neighbors: tuple[str, ...] = attrs.field(
        default=(), validator=validate.tuple_of(str, MAX_STATS_SUPER_NEIGHBORS, check_peer_id)
    )
    index_size: int = attrs.field(default=0, validator=validate.integer(0, MAX_COUNTER_VALUE))
    role_changes: int = attrs.field(default=0, validator=validate.integer(0, MAX_COUNTER_VALUE))
    super_target: int = attrs.field(
        default=0, validator=validate.integer(0, MAX_STATS_SUPER_TARGET)
    )
    """k, the super peers a weak peer wants (0: the layer is off)."""
    item_count: int = attrs.field(default=0, validator=validate.integer(0, MAX_COUNTER_VALUE))
    """Items the peer holds (with the layer on: what its super peers should index)."""

    def __attrs_post_init__(self) -> None:
        if len(self.index_entries) != len(self.weak_peers):
            raise ValueError("index_entries must give one count per weak peer")


STATS_MESSAGES: Final[tuple[type[Message], ...]] = (StatsRequest, StatsReply)


# ---------------------------------------------------------------------- search (issue 4)

MAX_KEY_LENGTH: Final = 64
"""A content key is the SHA-256 of the value, as 64 lowercase hex digits."""
MAX_NAME: Final = 255
MAX_KEYWORD_LENGTH: Final = 64
MAX_KEYWORDS_FIELD: Final = 32
"""The wire's bound on a keyword list; the peer's own (smaller) limit is a search setting,
so that a list between the two is refused *by the peer* and shows in its counters."""
MAX_FLOOD_TTL_FIELD: Final = 255
"""A flood TTL as the wire carries it (one byte, as Gnutella's); peers clamp to their cap."""
MAX_WALK_TTL_FIELD: Final = 65535
MAX_WALKER: Final = 65535
MAX_VALUE: Final = 60_000
"""Largest item value: a fetch reply must fit in one 64 KiB frame with its envelope."""
_KEY_PATTERN: Final = re.compile(r"[0-9a-f]{64}")


def check_key(_instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
    """attrs validator: a content key, 64 lowercase hex digits."""
    if type(value) is not str or _KEY_PATTERN.fullmatch(value) is None:
        raise validate.invalid(attribute, value, "a key of 64 lowercase hex digits")


_keywords = validate.tuple_of(str, MAX_KEYWORDS_FIELD, validate.text(1, MAX_KEYWORD_LENGTH))


def _check_target(key: str | None, keywords: tuple[str, ...]) -> None:
    if (key is None) == (not keywords):
        raise ValueError("a query asks for a key or for keywords, exactly one of them")


@attrs.frozen
class Query(Message):
    """A flooded query.  ``ttl`` is what the receiver may still use, ``hops`` how far it came.

    ``direct``: hits go straight to ``origin`` instead of back along the reverse path.
    """

    query_id: str = attrs.field(validator=check_peer_id)
    origin: Contact = attrs.field(validator=validate.instance(Contact))
    key: str | None = attrs.field(validator=validate.optional(check_key))
    keywords: tuple[str, ...] = attrs.field(validator=_keywords)
    ttl: int = attrs.field(validator=validate.integer(0, MAX_FLOOD_TTL_FIELD))
    hops: int = attrs.field(default=0, validator=validate.integer(0, MAX_FLOOD_TTL_FIELD))
    direct: bool = attrs.field(default=False, validator=validate.boolean)

    def __attrs_post_init__(self) -> None:
        _check_target(self.key, self.keywords)


@attrs.frozen
class QueryHit(Message):
    """An item matching a query: its key, name and size, and who holds it, in the
    holder's own words.

    ``holder_key`` is the holder's public key (its id is that key's hash) and
    ``signature`` the holder's signature over a statement
    (:mod:`overlay.protocol.proofs`): over the query id when ``epoch`` is None (the
    holder answered this query itself), else over the index entry the holder
    published at that epoch (a super peer answered for it).  A hit that does not
    verify never reaches the origin's results, and its sender loses standing.
    """

    query_id: str = attrs.field(validator=check_peer_id)
    key: str = attrs.field(validator=check_key)
    name: str | None = attrs.field(validator=validate.optional(validate.text(0, MAX_NAME)))
    size: int = attrs.field(validator=validate.integer(0, MAX_VALUE))
    holder: Contact = attrs.field(validator=validate.instance(Contact))
    hops: int = attrs.field(validator=validate.integer(0, MAX_WALK_TTL_FIELD))
    """How far from the origin the holder was reached (for "hops to the first hit")."""
    holder_key: bytes = attrs.field(validator=_public_key)
    signature: bytes = attrs.field(validator=_signature)
    epoch: int | None = attrs.field(
        default=None, validator=validate.optional(validate.integer(0, 2**31 - 1))
    )


@attrs.frozen
class WalkStep(Message):
    """One random walker taking one step.  It checks with ``origin`` every ``check`` hops."""

    query_id: str = attrs.field(validator=check_peer_id)
    origin: Contact = attrs.field(validator=validate.instance(Contact))
    key: str | None = attrs.field(validator=validate.optional(check_key))
    keywords: tuple[str, ...] = attrs.field(validator=_keywords)
    ttl: int = attrs.field(validator=validate.integer(1, MAX_WALK_TTL_FIELD))
    hops: int = attrs.field(validator=validate.integer(1, MAX_WALK_TTL_FIELD))
    """Hops taken including this one: the receiver is ``hops`` steps along the walk."""
    walker: int = attrs.field(validator=validate.integer(0, MAX_WALKER))
    check: int = attrs.field(default=4, validator=validate.integer(1, MAX_WALK_TTL_FIELD))

    def __attrs_post_init__(self) -> None:
        _check_target(self.key, self.keywords)


@attrs.frozen
class WalkCheck(Message):
    """Peer holding a walker -> origin: shall this walker go on?"""

    query_id: str = attrs.field(validator=check_peer_id)
    walker: int = attrs.field(validator=validate.integer(0, MAX_WALKER))
    hops: int = attrs.field(validator=validate.integer(1, MAX_WALK_TTL_FIELD))


@attrs.frozen
class WalkVerdict(Message):
    """Origin -> peer holding a walker: go on (``proceed``) or stop here."""

    query_id: str = attrs.field(validator=check_peer_id)
    walker: int = attrs.field(validator=validate.integer(0, MAX_WALKER))
    proceed: bool = attrs.field(validator=validate.boolean)


@attrs.frozen
class Fetch(Message):
    """Ask a holder for the value of ``key``."""

    request_id: str = attrs.field(validator=check_peer_id)
    key: str = attrs.field(validator=check_key)


@attrs.frozen
class FetchReply(Message):
    """The holder's answer; the requester checks ``value`` against ``key`` itself."""

    request_id: str = attrs.field(validator=check_peer_id)
    key: str = attrs.field(validator=check_key)
    found: bool = attrs.field(validator=validate.boolean)
    value: bytes = attrs.field(default=b"", validator=validate.blob(MAX_VALUE))


SEARCH_MESSAGES: Final[tuple[type[Message], ...]] = (
    Query,
    QueryHit,
    WalkStep,
    WalkCheck,
    WalkVerdict,
    Fetch,
    FetchReply,
)


# ---------------------------------------------------------------------- listing (issue 7)

MAX_MEMBERS_PAGE: Final = 128
"""Registered peers in one listing page: 128 of the longest possible contacts still fit
one 64 KiB frame."""


@attrs.frozen
class MemberEntry:
    """One registered peer in a bootstrap's listing: how to reach it and its role."""

    contact: Contact = attrs.field(validator=validate.instance(Contact))
    role: str = attrs.field(validator=validate.one_of(*ROLES))


@attrs.frozen
class MembersRequest(Message):
    """Anyone -> bootstrap: list your registered peers from position ``start`` on.

    The crawler of the live view starts here: a stats reply names neighbors by id
    only, and the bootstrap is the one place that knows every member's address.
    Paged, so that a listing of any size fits frames of the usual cap.
    """

    start: int = attrs.field(default=0, validator=validate.integer(0, MAX_COUNTER_VALUE))


@attrs.frozen
class MembersReply(Message):
    """Bootstrap -> asker: one page of the listing; ``total`` is the whole listing's size."""

    members: tuple[MemberEntry, ...] = attrs.field(
        validator=validate.tuple_of(MemberEntry, MAX_MEMBERS_PAGE)
    )
    start: int = attrs.field(default=0, validator=validate.integer(0, MAX_COUNTER_VALUE))
    total: int = attrs.field(default=0, validator=validate.integer(0, MAX_COUNTER_VALUE))


LISTING_MESSAGES: Final[tuple[type[Message], ...]] = (MembersRequest, MembersReply)


# ------------------------------------------------------------------ super peers (issue 5)

MAX_INDEX_ITEMS: Final = 128
"""Most items one weak peer may publish in one message (the peer's own bound on a whole
index is a setting; it may not exceed this).  128 named items fit one 64 KiB frame."""
MAX_INDEX_REMOVALS: Final = 128
MAX_SUPER_INFO: Final = 8
"""Most super peers one beat or one refusal names (enough to find a live one after a crash)."""
MAX_LOAD: Final = 65535
MAX_SEQ: Final = 2**31 - 1


@attrs.frozen
class IndexItem:
    """What a super peer learns of one of a weak peer's items: key, name and size.

    Keywords are derived from the name on the receiving side, as they are in the store,
    so they cannot disagree with it.
    """

    key: str = attrs.field(validator=check_key)
    name: str | None = attrs.field(validator=validate.optional(validate.text(0, MAX_NAME)))
    size: int = attrs.field(validator=validate.integer(0, MAX_VALUE))
    epoch: int = attrs.field(validator=validate.integer(0, MAX_SEQ))
    """The publisher's index sequence when it signed this entry."""
    signature: bytes = attrs.field(validator=_signature)
    """The publisher's signature over the entry (:func:`overlay.protocol.proofs.entry_statement`):
    super peers pass it on in their hits, so none can name a holder that never said so."""


@attrs.frozen
class SuperInfo:
    """A super peer and how many weak peers it serves (weak peers attach to the least loaded)."""

    contact: Contact = attrs.field(validator=validate.instance(Contact))
    load: int = attrs.field(validator=validate.integer(0, MAX_LOAD))


_items = validate.tuple_of(IndexItem, MAX_INDEX_ITEMS)
_infos = validate.tuple_of(SuperInfo, MAX_SUPER_INFO)


@attrs.frozen
class Attach(Message):
    """Weak -> super: take me as one of your weak peers; here is my whole index.

    ``eligible`` says whether I could serve as a super peer (capacity and uptime), which
    the super peer needs to name its successor.
    """

    capacity: int = attrs.field(validator=validate.integer(0, MAX_CAPACITY))
    eligible: bool = attrs.field(validator=validate.boolean)
    seq: int = attrs.field(validator=validate.integer(0, MAX_SEQ))
    items: tuple[IndexItem, ...] = attrs.field(validator=_items)
    public_key: bytes = attrs.field(validator=_public_key)
    """My public key: it must hash to my id, and it is what my entries' signatures verify
    against (the super peer passes it on with every hit it answers for me)."""


@attrs.frozen
class AttachAccept(Message):
    """Super -> weak: attached under ``lease_id``; refresh within ``lease`` seconds."""

    lease_id: str = attrs.field(validator=check_peer_id)
    lease: float = attrs.field(validator=validate.real(0.01, 86400.0))
    load: int = attrs.field(validator=validate.integer(0, MAX_LOAD))


@attrs.frozen
class AttachReject(Message):
    """Super (or a peer that is none) -> weak: no; try one of ``alternatives``."""

    reason: str = attrs.field(validator=validate.text(0, MAX_REASON))
    alternatives: tuple[SuperInfo, ...] = attrs.field(default=(), validator=_infos)


@attrs.frozen
class Detach(Message):
    """Either way: the attachment is over (weak: drop my entries; super: I serve you no more)."""

    reason: str = attrs.field(default="", validator=validate.text(0, MAX_REASON))


@attrs.frozen
class IndexPublish(Message):
    """Weak -> super: my whole index, replacing what you hold for me (sent after a gap)."""

    lease_id: str = attrs.field(validator=check_peer_id)
    seq: int = attrs.field(validator=validate.integer(0, MAX_SEQ))
    items: tuple[IndexItem, ...] = attrs.field(validator=_items)


@attrs.frozen
class IndexDelta(Message):
    """Weak -> super: change number ``seq`` of my index (the previous one was ``seq - 1``)."""

    lease_id: str = attrs.field(validator=check_peer_id)
    seq: int = attrs.field(validator=validate.integer(1, MAX_SEQ))
    add: tuple[IndexItem, ...] = attrs.field(validator=_items)
    remove: tuple[str, ...] = attrs.field(
        validator=validate.tuple_of(str, MAX_INDEX_REMOVALS, check_key)
    )


@attrs.frozen
class IndexRefresh(Message):
    """Weak -> super: renew my lease; my index is at change ``seq``."""

    lease_id: str = attrs.field(validator=check_peer_id)
    seq: int = attrs.field(validator=validate.integer(0, MAX_SEQ))
    eligible: bool = attrs.field(default=False, validator=validate.boolean)


@attrs.frozen
class IndexResync(Message):
    """Super -> weak: I missed a change (I hold ``have``); send your whole index."""

    lease_id: str = attrs.field(validator=check_peer_id)
    have: int = attrs.field(validator=validate.integer(0, MAX_SEQ))


@attrs.frozen
class IndexRefused(Message):
    """Super -> weak: your index message was refused, and why (unknown lease, over bound)."""

    lease_id: str = attrs.field(validator=check_peer_id)
    reason: str = attrs.field(validator=validate.text(0, MAX_REASON))


@attrs.frozen
class SuperBeat(Message):
    """Super -> its weak peers and its super-layer neighbors, every period.

    Carries the sender's load, its estimate of the super layer's mean load (for
    promotion and demotion), its designated successor (who takes over if it dies)
    and a few other super peers with their loads (where to go if it dies).
    """

    load: int = attrs.field(validator=validate.integer(0, MAX_LOAD))
    estimate: float = attrs.field(validator=validate.real(0.0, float(MAX_LOAD)))
    successor: Contact | None = attrs.field(validator=validate.optional(validate.instance(Contact)))
    supers: tuple[SuperInfo, ...] = attrs.field(default=(), validator=_infos)


@attrs.frozen
class SuperLink(Message):
    """Super -> super: let us be neighbors in the super layer."""

    load: int = attrs.field(default=0, validator=validate.integer(0, MAX_LOAD))


@attrs.frozen
class SuperLinkAccept(Message):
    """Super -> super: yes, we are super-layer neighbors."""

    load: int = attrs.field(default=0, validator=validate.integer(0, MAX_LOAD))


@attrs.frozen
class SuperUnlink(Message):
    """Super -> super (or a peer that is none): we are not super-layer neighbors."""

    reason: str = attrs.field(default="", validator=validate.text(0, MAX_REASON))


@attrs.frozen
class Promote(Message):
    """Super -> its designated successor: the super layer is overloaded, become a super peer."""


@attrs.frozen
class Rehome(Message):
    """Super -> one of its weak peers: attach to ``to`` instead of me (it was just promoted)."""

    to: Contact = attrs.field(validator=validate.instance(Contact))


@attrs.frozen
class SuperQuery(Message):
    """A query over the super layer.  A weak peer hands it to one of its super peers,
    which answers from its index and forwards it among super peers: to all its
    super-layer neighbors (``walkers == 0``: flood, duplicates dropped) or as
    ``walkers`` random walkers.  Hits go straight to ``origin``.
    """

    query_id: str = attrs.field(validator=check_peer_id)
    origin: Contact = attrs.field(validator=validate.instance(Contact))
    key: str | None = attrs.field(validator=validate.optional(check_key))
    keywords: tuple[str, ...] = attrs.field(validator=_keywords)
    ttl: int = attrs.field(validator=validate.integer(0, MAX_WALK_TTL_FIELD))
    hops: int = attrs.field(default=0, validator=validate.integer(0, MAX_WALK_TTL_FIELD))
    walkers: int = attrs.field(default=0, validator=validate.integer(0, MAX_WALKER))

    def __attrs_post_init__(self) -> None:
        _check_target(self.key, self.keywords)


SUPER_MESSAGES: Final[tuple[type[Message], ...]] = (
    Attach,
    AttachAccept,
    AttachReject,
    Detach,
    IndexPublish,
    IndexDelta,
    IndexRefresh,
    IndexResync,
    IndexRefused,
    SuperBeat,
    SuperLink,
    SuperLinkAccept,
    SuperUnlink,
    Promote,
    Rehome,
    SuperQuery,
)


# ------------------------------------------------------- client requests (issue 4, item 9)
#
# ``overlay publish``, ``overlay search`` and ``overlay fetch`` connect to one peer (the
# ``--via`` peer), handshake like anyone, and ask it to act on their behalf.  The peer's
# runtime answers on the same connection (the client listens nowhere).  The peer's core
# does the work; these messages only carry the request in and the outcome out, and every
# field is bounded like any other input from the network.

MAX_MODE_NAME: Final = 16
"""Search mode names ("flood", "walk", "ring") as the wire carries them; the peer refuses
an unknown mode with an error reply, so the wire only bounds the length."""
MAX_CLIENT_HITS: Final = 64
"""Most hits one search result carries back to a client (the search may have more)."""
MAX_CLIENT_ERROR: Final = 200
MAX_CLIENT_KINDS: Final = 8
"""Message kinds in a search result's tally (query, hit, check, fetch)."""
MAX_FETCH_FAILURES: Final = 4
"""Holders a fetch tries before giving up; a result names each one that failed.  Four
keeps the largest result (a full value and four failures) inside one 64 KiB frame."""
MAX_CLIENT_SECONDS: Final = 86400.0
MAX_TALLY_IDS: Final = 16
"""Query ids one :class:`TallyRequest` asks about (an expanding ring uses at most six)."""
MAX_TALLY_LINKS: Final = 256
"""Contacts one :class:`TallyReply` names: a super peer's weak peers (at most
``SuperConfig.max_load``, 80 by default), its super-layer and overlay neighbors."""


@attrs.frozen
class ClientPublish(Message):
    """Client -> peer: hold this value (its key is its SHA-256) under an optional name."""

    value: bytes = attrs.field(validator=validate.blob(MAX_VALUE))
    name: str | None = attrs.field(
        default=None, validator=validate.optional(validate.text(0, MAX_NAME))
    )


@attrs.frozen
class ClientPublished(Message):
    """Peer -> client: the key it now holds the value under, or why it does not."""

    key: str | None = attrs.field(validator=validate.optional(check_key))
    error: str = attrs.field(default="", validator=validate.text(0, MAX_CLIENT_ERROR))


@attrs.frozen
class ClientSearch(Message):
    """Client -> peer: search from you, by ``mode``, for a key or for keywords.

    ``ttl``, ``walkers`` and ``want`` left out (None) mean the peer's own defaults; a
    TTL over the peer's cap is clamped by the peer, as any query's is.
    """

    mode: str = attrs.field(validator=validate.text(1, MAX_MODE_NAME))
    key: str | None = attrs.field(validator=validate.optional(check_key))
    keywords: tuple[str, ...] = attrs.field(validator=_keywords)
    ttl: int | None = attrs.field(
        default=None, validator=validate.optional(validate.integer(1, MAX_WALK_TTL_FIELD))
    )
    walkers: int | None = attrs.field(
        default=None, validator=validate.optional(validate.integer(1, MAX_WALKER))
    )
    want: int | None = attrs.field(
        default=None, validator=validate.optional(validate.integer(1, MAX_CLIENT_HITS))
    )

    def __attrs_post_init__(self) -> None:
        _check_target(self.key, self.keywords)


@attrs.frozen
class ClientHit:
    """One hit of a search result: the item, its holder, how far and how soon."""

    key: str = attrs.field(validator=check_key)
    name: str | None = attrs.field(validator=validate.optional(validate.text(0, MAX_NAME)))
    size: int = attrs.field(validator=validate.integer(0, MAX_VALUE))
    holder: Contact = attrs.field(validator=validate.instance(Contact))
    hops: int = attrs.field(validator=validate.integer(0, MAX_WALK_TTL_FIELD))
    time: float = attrs.field(validator=validate.real(0.0, MAX_CLIENT_SECONDS))


@attrs.frozen
class ClientSearchResult(Message):
    """Peer -> client: the outcome of a :class:`ClientSearch`, as its origin saw it.

    ``messages`` tallies, by kind (query, hit, check, fetch), the search's messages the
    origin itself sent: over TCP no single peer sees the rest of the network's share,
    which the client reads from every peer with :class:`TallyRequest` (the simulator's
    outcome counts every peer's).  ``search_id`` is None and ``error`` says why when the
    search was refused or did not finish in time.
    """

    search_id: str | None = attrs.field(validator=validate.optional(check_peer_id))
    mode: str = attrs.field(validator=validate.text(0, MAX_MODE_NAME))
    success: bool = attrs.field(validator=validate.boolean)
    hits: tuple[ClientHit, ...] = attrs.field(
        default=(), validator=validate.tuple_of(ClientHit, MAX_CLIENT_HITS)
    )
    messages: tuple[StatCounter, ...] = attrs.field(
        default=(), validator=validate.tuple_of(StatCounter, MAX_CLIENT_KINDS)
    )
    first_hit_hops: int | None = attrs.field(
        default=None, validator=validate.optional(validate.integer(0, MAX_WALK_TTL_FIELD))
    )
    first_hit_time: float | None = attrs.field(
        default=None, validator=validate.optional(validate.real(0.0, MAX_CLIENT_SECONDS))
    )
    duration: float = attrs.field(default=0.0, validator=validate.real(0.0, MAX_CLIENT_SECONDS))
    error: str = attrs.field(default="", validator=validate.text(0, MAX_CLIENT_ERROR))
    wire_ids: tuple[str, ...] = attrs.field(
        default=(), validator=validate.tuple_of(str, MAX_TALLY_IDS, check_peer_id)
    )
    """The query ids the search used on the wire (one per ring for the expanding ring):
    what a :class:`TallyRequest` asks the other peers about."""


@attrs.frozen
class ClientFetch(Message):
    """Client -> peer: get me the value of ``key``, verified against the key.

    With ``holder`` the peer asks that holder only; without, it looks for holders by a
    search of ``mode`` (default the expanding ring: cheapest when the item is near) and
    tries them in the order their hits came (one per address prefix at a time), up to
    :data:`MAX_FETCH_FAILURES`.
    """

    key: str = attrs.field(validator=check_key)
    holder: Contact | None = attrs.field(
        default=None, validator=validate.optional(validate.instance(Contact))
    )
    mode: str = attrs.field(default="ring", validator=validate.text(1, MAX_MODE_NAME))


@attrs.frozen
class FetchFailure:
    """One holder a fetch was refused by, or refused: who, why, and a short ``kind``
    ("mismatch", "not_found", "timeout"); ``actual`` is the served bytes' SHA-256 when
    they did not match the key."""

    holder: Contact = attrs.field(validator=validate.instance(Contact))
    kind: str = attrs.field(validator=validate.text(0, MAX_MODE_NAME))
    error: str = attrs.field(validator=validate.text(0, MAX_CLIENT_ERROR))
    actual: str | None = attrs.field(default=None, validator=validate.optional(check_key))


@attrs.frozen
class ClientFetchResult(Message):
    """Peer -> client: the verified value and who served it, or ``error``; every holder
    that failed first is named in ``failures``."""

    key: str = attrs.field(validator=check_key)
    value: bytes | None = attrs.field(validator=validate.optional(validate.blob(MAX_VALUE)))
    holder: Contact | None = attrs.field(
        default=None, validator=validate.optional(validate.instance(Contact))
    )
    failures: tuple[FetchFailure, ...] = attrs.field(
        default=(), validator=validate.tuple_of(FetchFailure, MAX_FETCH_FAILURES)
    )
    error: str = attrs.field(default="", validator=validate.text(0, MAX_CLIENT_ERROR))


@attrs.frozen
class TallyRequest(Message):
    """Anyone -> peer: how many search messages did you send for these query ids?

    How ``overlay search`` and the swarm report a search's cost network-wide, with the
    meaning ``overlay sim query`` gives it.  Answered by the runtime from a small,
    bounded tally that forgets after a minute (:mod:`overlay.net.search_tally`).
    A query id is random and known only to peers the query reached, so the answer
    tells a stranger nothing; asking costs the peer a lookup per id.
    """

    query_ids: tuple[str, ...] = attrs.field(
        validator=validate.tuple_of(str, MAX_TALLY_IDS, check_peer_id)
    )


@attrs.frozen
class QueryTally:
    """Search messages one peer sent for one query id, by kind (query, hit, check, fetch)."""

    query_id: str = attrs.field(validator=check_peer_id)
    counters: tuple[StatCounter, ...] = attrs.field(
        validator=validate.tuple_of(StatCounter, MAX_CLIENT_KINDS)
    )


@attrs.frozen
class TallyReply(Message):
    """Peer -> asker: its tallies of the asked ids it sent anything for, and the peers it
    has a link to now (whom it may have sent them to: a client follows those links from
    the origin to find every peer that took part, without a bootstrap).

    What a peer says here is its own word: a liar can inflate or hide its share, and it
    changes nothing but the figure the asker prints (the asker bounds how many peers it
    follows, :data:`overlay.net.search_tally.MAX_TALLY_PEERS`).
    """

    tallies: tuple[QueryTally, ...] = attrs.field(
        default=(), validator=validate.tuple_of(QueryTally, MAX_TALLY_IDS)
    )
    links: tuple[Contact, ...] = attrs.field(
        default=(), validator=_contacts(Contact, MAX_TALLY_LINKS)
    )


CLIENT_REQUESTS: Final[tuple[type[Message], ...]] = (
    ClientPublish,
    ClientSearch,
    ClientFetch,
    TallyRequest,
)
CLIENT_MESSAGES: Final[tuple[type[Message], ...]] = (
    *CLIENT_REQUESTS,
    ClientPublished,
    ClientSearchResult,
    ClientFetchResult,
    TallyReply,
)
