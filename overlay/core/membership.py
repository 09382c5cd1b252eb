"""The partial view: who my neighbors are, and how the neighbor graph stays random,
connected and alive.

Three lists, all bounded:

* the **active view**: my neighbors.  Links are symmetric (A lists B exactly when
  B lists A, once the messages in flight have landed); the degree aims at
  ``target_degree`` and never exceeds ``max_degree``.
* the **passive view**: a cache of other peers, kept random by Cyclon shuffles
  (Voulgaris, Gavidia and van Steen, J. Netw. Syst. Mgmt 2005): each shuffle
  period a peer sends a few entries, itself among them, to the *oldest* entry
  in its cache, which answers with a few of its own.  Contacting the oldest
  entry also purges dead ones: a peer that does not answer is not put back.
* the **known hosts**: peers that were my neighbors once, kept to rejoin
  without the bootstrap.

How the graph is built and kept:

* **Join by edge splitting.**  A newcomer sends ``Join`` to a few peers from the
  bootstrap's sample.  A member u that already has its target degree picks a
  random neighbor v, drops the link u-v and links both u and v to the newcomer
  (``Redirect``).  Members keep their degree, the newcomer gets two links per
  split, and the result is a random regular graph (Cooper, Dyer and Greenhill,
  SODA 2005).
* **Repair.**  A peer under its target degree asks random passive entries
  (``NeighborRequest``), then its known hosts, then the bootstrap.  A request
  from a peer with no neighbor at all is *urgent* and is accepted even by a
  full peer, which evicts one of its own (HyParView's rule, Leitao et al.,
  DSN 2007): an isolated peer can always get back in.
* **Explore and shed.**  Now and then a peer links to a random passive entry
  even when it has its target degree; a peer above its target drops a link to
  a neighbor that is also above its target.  A link another peer asked for while I
  had my target already is a *headroom* link: my heartbeats do not count it, I shed
  those first, and at the open limit I shed the youngest of them whatever degree it
  claims.  Degrees stay near the target while
  links keep moving, which keeps the graph random and merges the two sides of
  a healed partition (the bootstrap's fresh samples carry peers of both).
* **Failure detection.**  Every heartbeat period each peer sends a
  ``Heartbeat`` to each neighbor; a neighbor silent for ``failure_timeout`` is
  declared dead, dropped and remembered for a while (a tombstone) so stale
  caches cannot bring it back.  A heartbeat from a peer that is not my neighbor
  gets a ``Disconnect``, which is how a link left half-made by a lost message
  is undone.
* **Whom to let in.**  At most ``max_per_prefix`` neighbors share one foreign
  address prefix (a /24 by default), so attackers holding one prefix cannot
  surround a peer; and a peer the standing ledger distrusts (:mod:`overlay.core.standing`)
  is dropped and refused for ``blacklist_seconds``.  Both are checked wherever a
  link could be made: a join, a redirect, a request, an accept, a heartbeat
  completing a half-made link, and when choosing whom to ask.
* **Against eclipse attacks** (Heilman et al., USENIX Security 2015).  ``own_slots``
  links are chosen by the peer from its own sources (bootstrap samples, anchors) and
  nothing another peer sends displaces them; joins and urgent requests displace only
  the youngest of the other links; peers that ask while I have my target take only
  headroom links (not reported, shed first: they cannot make me look crowded to the
  neighbors I had, nor take their places); a redirect counts once per neighbor per period;
  the passive view holds few entries per prefix; anchors (own links that lasted) are
  asked first after a restart.
* **Pushing and pressure.**  A peer asks nobody again within ``push_window`` of that
  peer refusing it or ending a link with it.  One that asks again that soon after I
  turned it away at my open limit is *pushing*: refused, and I am *pressed* for
  ``pressure_seconds``.  Pressed, every link I did not ask for is a headroom link (at
  most ``request_headroom``, never made regular) and only the links I asked for count
  toward my target, so a regular link lost is refilled from my own choice, never by
  those who push.  What decides is only what I saw.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator

import attrs

from overlay.core.admission import prefix_of
from overlay.core.config import MembershipConfig
from overlay.protocol.effects import Close, Effect, Notify, Send
from overlay.protocol.identity import Address, Contact, PeerId, Role
from overlay.protocol.messages import (
    MAX_AGE,
    Disconnect,
    Heartbeat,
    Join,
    Leave,
    NeighborAccept,
    NeighborReject,
    NeighborRequest,
    PeerSample,
    Redirect,
    Register,
    ShuffleEntry,
    ShuffleReply,
    ShuffleRequest,
    Unregister,
)
from overlay.protocol.randomness import RandomSource

_NEVER = math.inf


address_group = prefix_of
"""The address prefix a host belongs to, as the per-prefix neighbor cap counts it: the
runtime's grouping for its connection limits (a /24, a /64), cached (in
:func:`~overlay.core.admission.prefix_of`) because the cap asks it of every neighbor
whenever a link is about to be made."""


_HEARTBEATS: dict[int, Heartbeat] = {}
"""The heartbeat for each degree, made once and sent by every peer of this process: a
heartbeat is immutable, and a degree is at most ``max_degree`` (at most 512), so the
table is bounded.  A table per peer cost about 360 bytes a simulated peer."""


_NO_REFUSALS: dict[PeerId, float] = {}
"""The empty refusal table every peer points to until it refuses or is refused (never
written to: see ``Membership._noted``): two empty dicts of their own cost a
simulated peer about 145 bytes, and most peers' tables are empty most of the time."""


def _recent(table: dict[PeerId, float], horizon: float) -> dict[PeerId, float]:
    """``table`` (times, oldest first) without the entries before ``horizon``; the shared
    empty table once emptied, so that its own goes (a dict keeps it when emptied)."""
    if not table or next(iter(table.values())) >= horizon:
        return table
    for peer in [p for p, when in table.items() if when < horizon]:
        del table[peer]
    return table if table else _NO_REFUSALS


@attrs.define(slots=True)
class Neighbor:
    """An entry of the active view."""

    contact: Contact
    last_heard: float
    degree: int = 0
    """The degree the neighbor last told us (heartbeats carry it)."""
    own: bool = False
    """I chose this link from my own sources (an own slot: see ``own_slots``)."""
    since: float = 0.0
    """When the link was made (the youngest link I did not choose is displaced first)."""
    extra: bool = False
    """Taken into my headroom at or above my target degree, on another peer's request:
    not counted in the degree I report, and shed first."""


@attrs.define(slots=True)
class PassiveEntry:
    """An entry of the passive view; ``age`` counts the shuffles since it was fresh."""

    contact: Contact
    age: int = 0
    own: bool = False
    """Learned from my own sources (the bootstrap), not from another peer's shuffle."""
    group: str = ""
    """The contact's address prefix (kept: the per-prefix cap counts it at every merge)."""


class PassiveView:
    """The passive view, in parallel lists rather than a dict of records.

    It behaves as the dict it replaced (``dict[PeerId, PassiveEntry]``): entries keep
    the order they were added in, and one added again keeps its place.  Thirty
    entries cost four short lists (about 1.4 KB) instead of a dict and thirty records
    (about 3.5 KB): a simulation holds a passive view per peer, and at 100,000 peers
    this was the largest single part of a peer's state.  Lookups scan the ids: the
    view is small, and a list's scan compares the shared id strings by identity first.
    """

    __slots__ = ("contacts", "groups", "ids", "meta")

    def __init__(self) -> None:
        self.ids: list[PeerId] = []
        self.contacts: list[Contact] = []
        self.meta: list[int] = []
        """Each entry's age shifted left by one, or'ed with 1 when it is an own entry:
        one small int, which Python keeps shared, instead of two fields."""
        self.groups: list[str] = []
        """Each contact's address prefix (the per-prefix cap counts them at every merge)."""

    def __len__(self) -> int:
        return len(self.ids)

    def __contains__(self, peer: object) -> bool:
        return peer in self.ids

    def __iter__(self) -> Iterator[PeerId]:
        return iter(list(self.ids))

    def __bool__(self) -> bool:
        return bool(self.ids)

    def index(self, peer: PeerId) -> int:
        """Where ``peer`` is in the view, or -1."""
        ids = self.ids
        return ids.index(peer) if peer in ids else -1

    def get(self, peer: PeerId) -> PassiveEntry | None:
        """A copy of ``peer``'s entry (changing it changes nothing: see :meth:`put`)."""
        at = self.index(peer)
        return None if at < 0 else self._entry(at)

    def __getitem__(self, peer: PeerId) -> PassiveEntry:
        entry = self.get(peer)
        if entry is None:
            raise KeyError(peer)
        return entry

    def __setitem__(self, peer: PeerId, entry: PassiveEntry) -> None:
        if peer != entry.contact.id:
            raise ValueError(f"an entry for {entry.contact.id} filed under {peer}")
        self.put(entry.contact, entry.age, entry.own, entry.group)

    def _entry(self, at: int) -> PassiveEntry:
        meta = self.meta[at]
        return PassiveEntry(self.contacts[at], meta >> 1, bool(meta & 1), self.groups[at])

    def items(self) -> list[tuple[PeerId, PassiveEntry]]:
        return [(peer, self._entry(at)) for at, peer in enumerate(self.ids)]

    def values(self) -> list[PassiveEntry]:
        return [self._entry(at) for at in range(len(self.ids))]

    def put(self, contact: Contact, age: int, own: bool, group: str) -> None:
        """Add an entry at the end, or replace ``contact.id``'s in its place."""
        at = self.index(contact.id)
        if at < 0:
            self.append(contact, age, own, group)
        else:
            self.contacts[at] = contact
            self.meta[at] = (age << 1) | own
            self.groups[at] = group

    def append(self, contact: Contact, age: int, own: bool, group: str) -> None:
        """Add an entry at the end: the caller knows ``contact.id`` is not in the view
        (a merge has just looked it up; a second scan would cost as much again)."""
        self.ids.append(contact.id)
        self.contacts.append(contact)
        self.meta.append((age << 1) | own)
        self.groups.append(group)

    def discard(self, peer: PeerId) -> None:
        ids = self.ids
        if peer in ids:
            self.remove_at(ids.index(peer))

    def __delitem__(self, peer: PeerId) -> None:
        at = self.index(peer)
        if at < 0:
            raise KeyError(peer)
        self.remove_at(at)

    def remove_at(self, at: int) -> None:
        del self.ids[at]
        del self.contacts[at]
        del self.meta[at]
        del self.groups[at]

    def clear(self) -> None:
        self.ids.clear()
        self.contacts.clear()
        self.meta.clear()
        self.groups.clear()

    def is_own(self, peer: PeerId) -> bool:
        at = self.index(peer)
        return at >= 0 and bool(self.meta[at] & 1)

    def age_all(self) -> int:
        """Every entry one shuffle older; where the oldest (the first of equals) is, or -1."""
        meta = self.meta
        oldest = -1
        top = -1
        for at in range(len(meta)):
            value = meta[at] + 2
            meta[at] = value
            if value >> 1 > top:
                oldest, top = at, value >> 1
        return oldest


@attrs.define(slots=True)
class PendingShuffle:
    partner: PeerId
    sent: list[PeerId]
    deadline: float


class Membership:
    """The membership part of a peer core.  Pure: no I/O, no clock, no global random.

    Every handler appends effects to ``out``; :class:`overlay.core.peer.Peer`
    dispatches messages here and merges the timers.
    """

    def __init__(
        self,
        me: Contact,
        config: MembershipConfig,
        rng: RandomSource,
        *,
        role: Role = "weak",
        capacity: int = 1,
        bootstrap: Address | None = None,
        join_via: Address | None = None,
    ) -> None:
        self.me = me
        self.config = config
        self.rng = rng
        self.role = role
        self.capacity = capacity
        self.bootstrap = bootstrap
        self.join_via = join_via
        self.active: dict[PeerId, Neighbor] = {}
        self.passive = PassiveView()
        self.known_hosts: dict[PeerId, Contact] = {}
        self.pending: dict[PeerId, tuple[Contact, float]] = {}
        self.tombstones: dict[PeerId, float] = {}
        self.anchors: dict[PeerId, Contact] = {}
        """Known good neighbors (own links that lasted), oldest first: kept by the runtime
        across restarts and asked first when the peer starts again."""
        self.own_asks: dict[PeerId, None] = {}
        """Pending requests I made for an own slot (a subset of ``pending``)."""
        self.redirects: dict[PeerId, float] = {}
        """When each neighbor last redirected me (one honoured per ``redirect_period``)."""
        self.blacklist: dict[PeerId, float] = {}
        """Peers distrusted for their conduct, until when they are refused as neighbors."""
        self.turned_away = _NO_REFUSALS
        """When I last turned each peer away at my open limit (refused its request, or shed
        its headroom link): one that asks again within ``push_window`` is pushing."""
        self.turned_me_away = _NO_REFUSALS
        """When each peer last refused my request or ended our link: not asked again within
        ``push_window`` (that is what a peer pushing to be its neighbor would do)."""
        self.pressed_until = -_NEVER
        """Until when I am pressed (see ``MembershipConfig.pressure_seconds``)."""
        self._my_group = address_group(me.address.host)
        self._groups: list[str] = []
        """The address group of each of ``active``, kept on every add and remove: the
        per-prefix cap is asked before every link, and recounting the whole view there
        was a tenth of a large simulation's time.  A list, counted in C when asked (the
        groups are interned, so it compares pointers): a dict of counts cost about 330
        bytes more a peer, for a view of a few entries."""
        self._own_links = 0
        """How many of ``active`` are own links (kept on every link and unlink, as
        ``_groups`` is: the own-slot rules ask it at every link and shuffle)."""
        self.extra_links = 0
        """How many of ``active`` are headroom links (kept as ``_own_links`` is: whether
        to repair is asked after every event)."""
        self.super_peers: dict[PeerId, Contact] = {}
        self.shuffle: PendingShuffle | None = None
        self.joined = False
        self.ever_joined = False
        self.static = False
        self.lease = 60.0
        self.last_bootstrap_ask = -_NEVER
        self.tick_at = _NEVER
        self.shuffle_at = _NEVER
        self.register_at = _NEVER
        self.expire_at = _NEVER
        self.counters: dict[str, int] = {}

    # ------------------------------------------------------------------ lifecycle

    def start(self, now: float, out: list[Effect]) -> None:
        if self.static:
            return
        config = self.config
        # Random phases, so that a thousand peers started together do not tick together.
        self.tick_at = now + self.rng.random() * config.heartbeat_period
        self.shuffle_at = now + (0.5 + self.rng.random()) * config.shuffle_period
        if self.join_via is not None:
            out.append(Send(self.join_via, Join()))
        # Anchors first: peers I chose and kept before a restart, asked before anyone
        # whom the bootstrap (or an attacker posing as one) may name.
        for contact in list(self.anchors.values())[-self.config.own_slots :]:
            if contact.id != self.me.id:
                self._ask(contact, NeighborRequest(True), now, out, own=True)
        if self.bootstrap is not None:
            self._ask_bootstrap(now, out)

    def fix_neighbors(self, neighbors: Iterable[Contact], now: float) -> None:
        """Static-topology mode: these are my neighbors, for good.

        No heartbeats, shuffles or repairs run, so the graph read from a file is
        exactly the graph searched (the benchmarks compare search modes on fixed
        topologies, as Lv et al. did).
        """
        self.static = True
        for contact in neighbors:
            self._link(contact, now)
        self.joined = self.ever_joined = bool(self.active)
        self.tick_at = self.shuffle_at = self.register_at = self.expire_at = _NEVER

    def leave(self, now: float, out: list[Effect]) -> None:
        """Say goodbye to every neighbor and to the bootstrap, then forget everything."""
        for neighbor in self.active.values():
            out.append(Send(neighbor.contact.address, Leave()))
            out.append(Close(neighbor.contact.address))
        if self.bootstrap is not None:
            out.append(Send(self.bootstrap, Unregister()))
        self.active.clear()
        self._groups.clear()
        self._own_links = 0
        self.extra_links = 0
        self.pending.clear()
        self.own_asks.clear()
        self.shuffle = None
        self.tick_at = self.shuffle_at = self.register_at = self.expire_at = _NEVER

    def next_deadline(self) -> float:
        return min(self.tick_at, self.shuffle_at, self.register_at, self.expire_at)

    def handle_timer(self, now: float, out: list[Effect]) -> None:
        if now >= self.expire_at:
            # An unanswered request: try another peer now rather than at the next tick,
            # or a newcomer whose sample named dead peers would wait a whole period.
            self.expire_at = _NEVER
            self._expire_pending(now)
            if not self.static and self.tick_at != _NEVER:
                self._repair(now, out)
        if now >= self.tick_at:
            # A late tick means this peer was itself stalled (stopped, swapped out,
            # starved of CPU) for at least that long: its neighbors' heartbeats may still
            # wait unread in its sockets, so it allows them that much more silence.  With
            # failure_timeout above two periods, a stall alone never makes it accuse a
            # live neighbor; a dead one is judged at the next, punctual, tick.
            lateness = now - self.tick_at
            if lateness > self.config.heartbeat_period / 2:
                self._count("ticks_late")
            self.tick_at = now + self.config.heartbeat_period
            self._tick(now, out, grace=lateness)
        if now >= self.shuffle_at:
            self.shuffle_at = now + self.config.shuffle_period
            self._start_shuffle(now, out)
        if now >= self.register_at:
            self._ask_bootstrap(now, out)

    def link_lost(self, peer: PeerId, now: float, out: list[Effect]) -> None:
        """The runtime lost its link to ``peer``: treat it as gone (it may come back)."""
        if peer in self.active:
            self._remove(peer, "link lost", out, keep_passive=False)
        self._forget_pending(peer)

    # ------------------------------------------------------------------ messages

    def on_join(self, _message: Join, sender: Contact, now: float, out: list[Effect]) -> None:
        peer = sender.id
        if peer == self.me.id:
            return
        if peer in self.active:
            out.append(Send(sender.address, NeighborAccept(self.reported_degree(now))))
            return
        if not self._admits(sender, now) or self._pushing(peer, now):
            out.append(Send(sender.address, NeighborReject()))
            return
        pressed = self.pressed(now)
        if len(self.active) >= self.config.target_degree:
            # Split a link u-v: v gets the newcomer instead of me.  Never a link I chose,
            # and the youngest of the rest: joins can churn one slot, not take the view.
            # Pressed, only a headroom link is split: the newcomer takes its place.
            self._displace(peer, Redirect(sender), "split for a newcomer", out, headroom=pressed)
        if len(self.active) >= self._open_limit() or self._headroom_full(now):
            self._turn_away(peer, now)
            out.append(Send(sender.address, NeighborReject()))
            return
        self._add(sender, now, out, extra=self._at_target(peer, now))
        out.append(Send(sender.address, NeighborAccept(self.reported_degree(now))))

    def on_redirect(
        self, message: Redirect, sender: Contact, now: float, out: list[Effect]
    ) -> None:
        peer = sender.id
        if peer not in self.active:
            return  # stale, or from a stranger: nobody but a neighbor gives up its link
        self._remove(peer, "link split", out, keep_passive=True)
        last = self.redirects.pop(peer, None)
        if last is not None and now - last < self.config.redirect_period:
            # A second redirect inside the period: the link ends, and that is all.
            self._count("refused.redirect_rate")
            return
        self._note_redirect(peer, now)
        newcomer = message.newcomer
        if (
            newcomer.id == self.me.id
            or newcomer.id in self.active
            or self._tombstoned(newcomer.id, now)
            or not self._admits(newcomer, now)
            or self._headroom_full(now)
        ):
            return  # our degree drops by one; repair will refill it
        # Pressed, the newcomer is not my choice: a headroom link.
        self._add(newcomer, now, out, extra=self.pressed(now))
        out.append(Send(newcomer.address, NeighborAccept(self.reported_degree(now))))

    def on_neighbor_request(
        self, message: NeighborRequest, sender: Contact, now: float, out: list[Effect]
    ) -> None:
        peer = sender.id
        if peer == self.me.id:
            return
        if peer in self.active:
            out.append(Send(sender.address, NeighborAccept(self.reported_degree(now))))
            return
        # An urgent request is never taken for pushing: a peer with no neighbor at all
        # may ask again at once (it has nobody else), and pressed, it can displace only
        # a headroom link.
        if not self._admits(sender, now) or (not message.urgent and self._pushing(peer, now)):
            out.append(Send(sender.address, NeighborReject()))
            return
        # Past the open limit only an urgent request gets in, in the place of the youngest
        # link I did not choose (HyParView's rule, and no way to push out my own links);
        # pressed, with my headroom full, in the place of the youngest headroom link.
        pressed = self.pressed(now)
        if (len(self.active) >= self._open_limit() or self._headroom_full(now)) and not (
            message.urgent
            and self._displace(
                peer, Disconnect("evicted"), "evicted for an isolated peer", out, headroom=pressed
            )
        ):
            self._turn_away(peer, now)
            out.append(Send(sender.address, NeighborReject()))
            return
        self._add(sender, now, out, extra=self._at_target(peer, now))
        out.append(Send(sender.address, NeighborAccept(self.reported_degree(now))))

    def on_neighbor_accept(
        self, message: NeighborAccept, sender: Contact, now: float, out: list[Effect]
    ) -> None:
        peer = sender.id
        neighbor = self.active.get(peer)
        if neighbor is not None:
            neighbor.last_heard = now
            neighbor.degree = message.degree
            return
        if peer == self.me.id:
            return
        # An accept I did not ask for is a redirect's other half (edge splitting links
        # the newcomer to a peer it never asked): taken only within the open limit,
        # like a join, or strangers could push themselves in by answering unasked.
        asked = peer in self.pending
        limit = self.config.max_degree if asked else self._open_limit()
        if len(self.active) >= limit or not self._admits(sender, now):
            self._forget_pending(peer)
            out.append(Send(sender.address, Disconnect("full")))
            return
        extra = not asked and self._at_target(peer, now)
        if extra and self._headroom_full(now):
            self._forget_pending(peer)
            out.append(Send(sender.address, Disconnect("full")))
            return
        self._add(sender, now, out, own=self._asked_for_own(peer), extra=extra)
        self.active[peer].degree = message.degree

    def on_neighbor_reject(
        self, _message: NeighborReject, sender: Contact, now: float, out: list[Effect]
    ) -> None:
        self._forget_pending(sender.id)
        # Not a candidate again for a while: it is full, and asking it again at once is
        # what peers pushing to be its neighbor do (it would refuse me for that).
        self._turned_down(sender.id, now)
        self._done_with(sender, out)

    def on_disconnect(
        self, _message: Disconnect, sender: Contact, now: float, out: list[Effect]
    ) -> None:
        self._forget_pending(sender.id)
        if sender.id in self.active:
            # It ended our link (it sheds, or is full): not asked again within
            # ``push_window``, as after a refusal.
            self._turned_down(sender.id, now)
            self._remove(sender.id, "disconnected", out, keep_passive=True)

    def on_leave(self, _message: Leave, sender: Contact, now: float, out: list[Effect]) -> None:
        peer = sender.id
        self._forget_pending(peer)
        self.passive.discard(peer)
        self.known_hosts.pop(peer, None)
        self._bury(peer, now)
        if peer in self.active:
            self._remove(peer, "left", out, keep_passive=False)

    def on_heartbeat(
        self, message: Heartbeat, sender: Contact, now: float, out: list[Effect]
    ) -> None:
        neighbor = self.active.get(sender.id)
        if neighbor is not None:
            neighbor.last_heard = now
            neighbor.degree = message.degree
            return
        if (
            sender.id in self.pending
            and len(self.active) < self.config.max_degree
            and self._admits(sender, now)
        ):
            # Our request's answer was lost or overtaken, but the link exists on its side.
            self._add(sender, now, out, own=self._asked_for_own(sender.id))
            self.active[sender.id].degree = message.degree
            return
        out.append(Send(sender.address, Disconnect("not a neighbor")))

    def on_shuffle_request(
        self, message: ShuffleRequest, sender: Contact, now: float, out: list[Effect]
    ) -> None:
        reply = self._sample_views(self.config.shuffle_length, exclude=sender.id)
        out.append(Send(sender.address, ShuffleReply(tuple(reply))))
        self._merge(message.entries, [e.contact.id for e in reply], now)

    def on_shuffle_reply(
        self, message: ShuffleReply, sender: Contact, now: float, out: list[Effect]
    ) -> None:
        pending = self.shuffle
        sent: list[PeerId] = []
        if pending is not None and pending.partner == sender.id:
            sent = pending.sent
            self.shuffle = None
        self._merge(message.entries, sent, now)
        self._done_with(sender, out)

    def on_peer_sample(
        self, message: PeerSample, sender: Contact, now: float, out: list[Effect]
    ) -> None:
        if sender.address != self.bootstrap:
            self._count("sample_from_non_bootstrap")
            return  # only the bootstrap hands out samples; anyone else is lying
        self.lease = message.lease
        self.register_at = now + max(message.lease / 3.0, 0.01)
        for contact in message.super_peers:
            if contact.id != self.me.id and len(self.super_peers) < len(message.super_peers):
                self.super_peers[contact.id] = contact
        fresh = [c for c in message.peers if c.id != self.me.id]
        # Fresh uniform samples may displace cached entries: that is what carries
        # peers of the other side into the caches after a partition heals.
        self._merge(
            fresh, [], now, displace=min(2, len(fresh)) if self.joined else len(fresh), own=True
        )
        if not self.joined and not self.active and not self.pending:
            wanted = max(1, math.ceil(self.config.target_degree / 2))
            for contact in self.rng.sample(fresh, min(wanted, len(fresh))):
                self._ask(contact, Join(), now, out, own=True)
        self._done_with(sender, out)

    # ------------------------------------------------------------------ periodic work

    def _tick(self, now: float, out: list[Effect], *, grace: float = 0.0) -> None:
        config = self.config
        extras = self.extra_links
        if extras and len(self.active) <= config.target_degree and not self.pressed(now):
            # Within my target, a headroom link is one of my links like the others
            # (unless I am pressed: then those who push would take my places this way).
            for neighbor in self.active.values():
                neighbor.extra = False
            extras = self.extra_links = 0
        degree = self.reported_degree(now)
        heartbeat = _HEARTBEATS.get(degree)
        if heartbeat is None:
            heartbeat = _HEARTBEATS[degree] = Heartbeat(degree)
        dead: list[PeerId] = []
        horizon = now - config.failure_timeout - grace
        for peer, neighbor in self.active.items():
            if neighbor.last_heard < horizon:
                dead.append(peer)
            else:
                out.append(Send(neighbor.contact.address, heartbeat))
        for peer in dead:
            self._count("neighbors_declared_dead")
            out.append(Notify("suspect", peer, "missed heartbeats"))
            self.passive.discard(peer)
            self._bury(peer, now)
            self._remove(peer, "declared dead", out, keep_passive=False)
        self._expire_pending(now)
        shuffle = self.shuffle
        if shuffle is not None and shuffle.deadline <= now:
            self.shuffle = None  # the partner did not answer; it was not put back
        if len(self.active) > config.target_degree:
            self._shed(now, out)
        self._repair(now, out)
        if self.pressed(now):
            # Pressed, a missing own slot is asked for every period, not every shuffle:
            # my own choices are what keeps those who push out.
            self._keep_own_slots(now, out)
        if len(self.tombstones) > 0:
            for peer in [p for p, until in self.tombstones.items() if until <= now]:
                del self.tombstones[peer]
        if self.blacklist:
            for peer in [p for p, until in self.blacklist.items() if until <= now]:
                del self.blacklist[peer]
        if self.turned_away or self.turned_me_away:
            self._forget_refusals(now)

    def _repair(self, now: float, out: list[Effect]) -> None:
        config = self.config
        missing = config.target_degree - self._counted(now) - len(self.pending)
        if missing <= 0:
            return
        urgent = not self.active
        if urgent and self.joined:
            self.joined = False
            out.append(Notify("isolated"))
        passive = self.passive
        candidates = [
            contact
            for peer, contact in zip(passive.ids, passive.contacts, strict=True)
            if peer not in self.active
            and peer not in self.pending
            and self._admissible(contact, now)
        ]
        if len(candidates) < missing:
            candidates.extend(
                contact
                for peer, contact in self.known_hosts.items()
                if peer not in self.active
                and peer not in self.pending
                and peer not in self.passive
                and not self._tombstoned(peer, now)
                and self._admissible(contact, now)
            )
        chosen = self.rng.sample(candidates, min(missing, len(candidates)))
        for contact in chosen:
            self._ask(contact, NeighborRequest(urgent), now, out, own=self._own_source(contact))
        # Only an isolated peer goes back to the bootstrap early; one that merely lacks
        # candidates (a small overlay where it knows everyone already) waits for its
        # regular lease refresh, which brings a fresh sample anyway.
        if (
            urgent
            and self.bootstrap is not None
            and now - self.last_bootstrap_ask >= config.bootstrap_retry
        ):
            out.append(Notify("bootstrap_fallback"))
            self._ask_bootstrap(now, out)

    def settle(self, now: float, out: list[Effect]) -> None:
        """After any event: refill a lost link at once rather than at the next tick.

        Waiting for the tick would leave a peer that lost several links at once
        (a burst of crashes, several neighbors shedding it together) under its
        target degree for up to a heartbeat period.
        """
        if (
            self._counted(now) + len(self.pending) < self.config.target_degree
            and self.ever_joined
            and not self.static
            and self.tick_at != _NEVER
        ):
            self._repair(now, out)

    def _shed(self, now: float, out: list[Effect]) -> None:
        target = self.config.target_degree
        extras = [nb for nb in self.active.values() if nb.extra]
        if extras and len(self.active) >= self._open_limit():
            # Full to the open limit: the youngest headroom link goes, whatever degree it
            # claims (peers that ask and hold on all claim a modest one), so those who
            # ask churn my headroom and never the links I had.
            youngest = max(extras, key=lambda nb: nb.since)
            self._count("shed_extra")
            self._turn_away(youngest.contact.id, now)
            out.append(Send(youngest.contact.address, Disconnect("shed")))
            self._remove(youngest.contact.id, "shed", out, keep_passive=True)
            return
        # Shed toward the most crowded neighbors, and only half the time: several
        # neighbors shedding the same peer in the same round would push it far below
        # its target on the strength of one stale degree report.  Headroom links go
        # before the others: a crowded neighbor I had before is kept.
        if self.rng.random() < 0.5:
            return
        if extras and self.pressed(now) and len(self.active) - len(extras) > target:
            # Pressed, my headroom is not what makes me crowded (it is not reported, and
            # never made regular): my regular links above the target are.
            others = [nb for nb in self.active.values() if not nb.own and not nb.extra]
        else:
            others = extras or [nb for nb in self.active.values() if not nb.own]
        if not others:
            return
        top = max(nb.degree for nb in others)
        crowded = [nb for nb in others if nb.degree == top > target]
        if crowded:
            contact = crowded[self.rng.randrange(len(crowded))].contact
            out.append(Send(contact.address, Disconnect("shed")))
            self._remove(contact.id, "shed", out, keep_passive=True)

    def _start_shuffle(self, now: float, out: list[Effect]) -> None:
        config = self.config
        passive = self.passive
        oldest = passive.age_all()
        if oldest >= 0:
            partner = passive.contacts[oldest]
            passive.remove_at(oldest)
        elif self.active:
            partner = self.active[self._random_key(self.active) or ""].contact
        else:
            return
        entries = [
            ShuffleEntry(self.me, 0),
            *self._sample_views(config.shuffle_length - 1, exclude=partner.id),
        ]
        self.shuffle = PendingShuffle(
            partner.id, [e.contact.id for e in entries[1:]], now + config.shuffle_timeout
        )
        out.append(Send(partner.address, ShuffleRequest(tuple(entries))))
        # Own slots and anchors move at the pace of shuffles, not of heartbeats: a slot
        # lost to a redirect is refilled within a period, at a fraction of the cost.
        self._keep_own_slots(now, out)
        if config.anchors_size:
            self._note_anchors(now)
        if (
            config.explore_probability > 0.0
            and self.rng.random() < config.explore_probability
            and config.target_degree <= len(self.active) < config.max_degree
        ):
            candidates = [
                contact
                for p, contact in zip(passive.ids, passive.contacts, strict=True)
                if p not in self.active and p not in self.pending and self._admissible(contact, now)
            ]
            if candidates:
                contact = candidates[self.rng.randrange(len(candidates))]
                self._ask(contact, NeighborRequest(False), now, out)

    def _ask(self, contact: Contact, request: Join | NeighborRequest, now: float,
             out: list[Effect], *, own: bool = False) -> None:  # fmt: skip
        deadline = now + self.config.request_timeout
        self.pending[contact.id] = (contact, deadline)
        if own:
            self.own_asks[contact.id] = None
        self.expire_at = min(self.expire_at, deadline)
        out.append(Send(contact.address, request))

    def _expire_pending(self, now: float) -> None:
        if not self.pending:
            return
        expired = [p for p, (_c, deadline) in self.pending.items() if deadline <= now]
        for peer in expired:
            del self.pending[peer]
            self.own_asks.pop(peer, None)
            self.passive.discard(peer)  # did not answer: probably gone
        if expired and not self.own_asks:
            self.own_asks = {}  # emptied: let its table go (see _forget_pending)
        if self.pending:
            self.expire_at = min(self.expire_at, *(d for _c, d in self.pending.values()))
        elif expired:
            self.pending = {}  # emptied: let its table go (see _forget_pending)

    def _ask_bootstrap(self, now: float, out: list[Effect]) -> None:
        if self.bootstrap is None:
            return
        self.last_bootstrap_ask = now
        # Until the answer sets the real lease, retry: soon while we have no neighbor
        # (the request or its answer may have been lost), else on the fallback period.
        retry = self.config.request_timeout if not self.active else self.config.bootstrap_retry
        self.register_at = now + retry
        want = self.config.bootstrap_want if not self.joined else min(4, self.config.bootstrap_want)
        out.append(Send(self.bootstrap, Register(want, self.role, self.capacity)))

    # ------------------------------------------------------------------ helpers

    def _link(
        self, contact: Contact, now: float, *, own: bool = False, extra: bool = False
    ) -> None:
        """Make ``contact`` a neighbor, counting it against its address group."""
        replaced = self.active.get(contact.id)
        if replaced is not None:
            self._uncount(replaced)  # replaced in place: the view keeps its order
        self.active[contact.id] = Neighbor(contact, now, own=own, since=now, extra=extra)
        self._own_links += own
        self.extra_links += extra
        self._groups.append(address_group(contact.address.host))

    def _unlink(self, peer: PeerId) -> Neighbor:
        neighbor = self.active.pop(peer)
        self._uncount(neighbor)
        return neighbor

    def _uncount(self, neighbor: Neighbor) -> None:
        self._own_links -= neighbor.own
        self.extra_links -= neighbor.extra
        self._groups.remove(address_group(neighbor.contact.address.host))

    def _add(self, contact: Contact, now: float, out: list[Effect], *, own: bool = False,
             extra: bool = False) -> None:  # fmt: skip
        peer = contact.id
        if own and self.own_count() >= self.config.own_slots:
            own = False
        self._link(contact, now, own=own, extra=extra and not own)
        self._forget_pending(peer)
        self.passive.discard(peer)
        self.tombstones.pop(peer, None)
        hosts = self.known_hosts
        hosts.pop(peer, None)
        hosts[peer] = contact
        if len(hosts) > self.config.known_hosts_size:
            del hosts[next(iter(hosts))]
        if not self.joined:
            self.joined = True
            self.ever_joined = True
            out.append(Notify("joined", peer))
        out.append(Notify("neighbor_up", peer))

    def _remove(self, peer: PeerId, why: str, out: list[Effect], *, keep_passive: bool) -> None:
        neighbor = self._unlink(peer)
        out.append(Notify("neighbor_down", peer, why))
        out.append(Close(neighbor.contact.address))
        if keep_passive and len(self.passive) < self.config.passive_size:
            contact = neighbor.contact
            self.passive.put(contact, 0, neighbor.own, address_group(contact.address.host))

    def _done_with(self, sender: Contact, out: list[Effect]) -> None:
        """Close the link to ``sender`` once the exchange we started with it (a shuffle,
        a registration, a refused request) has its answer, unless it is a neighbor or
        asked for one: an open connection costs the runtime several KiB, and waiting
        for it to go idle kept one or two such links per peer open for nothing.  The
        initiator closes, having read the answer; the other side sees the end."""
        peer = sender.id
        if peer not in self.active and peer not in self.pending:
            out.append(Close(sender.address))

    def _displace(
        self,
        keep: PeerId,
        farewell: Redirect | Disconnect,
        why: str,
        out: list[Effect],
        *,
        headroom: bool = False,
    ) -> bool:
        """Make room: drop the youngest neighbor I did not choose (other than ``keep``),
        telling it why first.  False if every link is one I chose: those stay.
        ``headroom``: only a headroom link may go.

        The youngest, not a random one: a stranger's join or urgent request then churns
        the slot the last stranger took, and links that have lasted keep their place.
        """
        victim: PeerId | None = None
        newest = -_NEVER
        for peer, neighbor in self.active.items():
            if (
                not neighbor.own
                and (neighbor.extra or not headroom)
                and peer != keep
                and neighbor.since >= newest
            ):
                victim, newest = peer, neighbor.since
        if victim is None:
            self._count("refused.own_slots_kept")
            return False
        out.append(Send(self.active[victim].contact.address, farewell))
        self._remove(victim, why, out, keep_passive=True)
        return True

    def _forget_pending(self, peer: PeerId) -> None:
        pending = self.pending
        if pending.pop(peer, None) is not None and not pending:
            # A dict keeps its table when emptied: a peer's few requests at a time would
            # leave 260 bytes behind each, in every simulated peer.
            self.pending = {}
        own_asks = self.own_asks
        if own_asks.pop(peer, -1) is None and not own_asks:
            self.own_asks = {}

    def _open_limit(self) -> int:
        """The degree up to which a join or a request is taken without displacing anyone."""
        config = self.config
        return min(config.max_degree, config.target_degree + config.request_headroom)

    def _at_target(self, peer: PeerId, now: float) -> bool:
        """Whether my links and my requests in flight (other than to ``peer``) already
        make my target degree: a link ``peer`` asks for now is a headroom link.  Pressed,
        any link another peer asks for is one."""
        if self.pressed(now):
            return True  # pressed: only the links I ask for count
        pending = len(self.pending) - (peer in self.pending)
        return len(self.active) + pending >= self.config.target_degree

    def _counted(self, now: float) -> int:
        """The links that count toward my target degree: all of them, or, while I am
        pressed, all but my headroom links.  A pressed peer that counted its headroom
        (full of peers that keep asking) never repaired when an honest neighbor left,
        the next asker took the vacancy, and once the peer fell to its target its
        headroom links became regular ones: honest links replaced one by one."""
        if self.pressed(now):
            return len(self.active) - self.extra_links
        return len(self.active)

    def pressed(self, now: float) -> bool:
        """Whether peers pushing to be my neighbors were seen within ``pressure_seconds``."""
        return now < self.pressed_until

    def _pushing(self, peer: PeerId, now: float) -> bool:
        """``peer`` asks to be my neighbor: is it asking again right after I turned it
        away at my open limit?  If so it is refused (and remembered as turned away again),
        and I am pressed.  What decides is only what I saw: when I turned it away."""
        config = self.config
        if not self._within_window(self.turned_away, peer, now):
            return False
        self._count("refused.pushing")
        self._turn_away(peer, now)
        self.pressed_until = now + config.pressure_seconds
        return True

    def _turn_away(self, peer: PeerId, now: float) -> None:
        """I turn ``peer`` away at my open limit: remember when."""
        self.turned_away = self._noted(self.turned_away, peer, now)

    def _turned_down(self, peer: PeerId, now: float) -> None:
        """``peer`` refused my request or ended our link: remember when."""
        self.turned_me_away = self._noted(self.turned_me_away, peer, now)

    def _within_window(self, table: dict[PeerId, float], peer: PeerId, now: float) -> bool:
        """Whether ``table`` (a table of refusals) has ``peer`` within ``push_window``."""
        when = table.get(peer)
        return when is not None and now - when <= self.config.push_window

    def _noted(self, table: dict[PeerId, float], peer: PeerId, now: float) -> dict[PeerId, float]:
        """``table`` (a table of refusals) with ``now`` for ``peer`` (bounded: the oldest
        go); a table of its own in place of the shared empty one, which is never written."""
        if table is _NO_REFUSALS:
            table = {}
        table.pop(peer, None)
        table[peer] = now
        if len(table) > 4 * self.config.max_degree:
            del table[next(iter(table))]
        return table

    def _forget_refusals(self, now: float) -> None:
        """Forget refusals older than ``push_window`` (they decide nothing any more): a
        simulated peer's tables stay empty most of the time."""
        horizon = now - self.config.push_window
        self.turned_away = _recent(self.turned_away, horizon)
        self.turned_me_away = _recent(self.turned_me_away, horizon)

    def _headroom_full(self, now: float) -> bool:
        """Pressed, with ``request_headroom`` headroom links already: no stranger gets in
        (past the open limit an urgent request still displaces a headroom link)."""
        return self.pressed(now) and self.extra_links >= self.config.request_headroom

    def reported_degree(self, now: float) -> int:
        """The degree I tell my neighbors: my links but the headroom ones, so that
        strangers who fill my headroom do not make me look crowded to the neighbors
        I had (who would shed me, and leave their slots to the strangers).  Pressed, at
        most my target: my regular links are then all links I asked for, which the far
        ends often hold in their headroom and shed if I look crowded; I shed my own
        surplus (see ``_shed``)."""
        degree = len(self.active) - self.extra_links
        if self.pressed(now):
            return min(degree, self.config.target_degree)
        return degree

    def own_count(self) -> int:
        """Links I chose myself (at most ``own_slots``)."""
        return self._own_links

    def _asked_for_own(self, peer: PeerId) -> bool:
        """Whether my pending request to ``peer`` was for an own slot (and forget it)."""
        own_asks = self.own_asks
        if peer in own_asks:
            del own_asks[peer]
            if not own_asks:
                self.own_asks = {}  # emptied: let its table go (see _forget_pending)
            return True
        return False

    def _own_source(self, contact: Contact) -> bool:
        """Whether ``contact`` came from my own sources: an anchor, or the bootstrap."""
        if contact.id in self.anchors:
            return True
        return self.passive.is_own(contact.id)

    def _keep_own_slots(self, now: float, out: list[Effect]) -> None:
        """Fill a missing own slot from my own sources, one request at a time, even at my
        target degree (shedding brings the degree back)."""
        config = self.config
        if self.own_asks:
            # Requests answered or given up elsewhere (a refusal, a lost link) leave
            # their mark here: forget those, so the table stays within ``pending``.
            for peer in [p for p in self.own_asks if p not in self.pending]:
                del self.own_asks[peer]
            if not self.own_asks:
                self.own_asks = {}  # emptied: let its table go (see _forget_pending)
        if (
            self.static
            or self.own_asks
            or not self.ever_joined
            or len(self.active) + len(self.pending) >= config.max_degree
            or self.own_count() >= config.own_slots
        ):
            return
        active, pending = self.active, self.pending
        groups: dict[str, list[Contact]] = {}
        for contact in self.anchors.values():
            if contact.id not in active and contact.id not in pending:
                groups.setdefault(address_group(contact.address.host), []).append(contact)
        passive = self.passive
        for at, peer in enumerate(passive.ids):
            if passive.meta[at] & 1 and peer not in active and peer not in pending:
                groups.setdefault(passive.groups[at], []).append(passive.contacts[at])
        if not groups:
            return
        # Spread across prefixes: pick a prefix first, then a peer in it, so no operator
        # that got many of its contacts into my sources gets a larger chance.
        keys = sorted(groups)
        for _attempt in range(3):
            group = groups[keys[self.rng.randrange(len(keys))]]
            contact = group[self.rng.randrange(len(group))]
            if self._admissible(contact, now):
                self._count("own_slot_asks")
                self._ask(contact, NeighborRequest(not active), now, out, own=True)
                return

    def _note_anchors(self, now: float) -> None:
        """Own links that have lasted become anchors (the newest last; the oldest goes)."""
        age = self.config.anchor_age
        anchors = self.anchors
        for peer, neighbor in self.active.items():
            if neighbor.own and peer not in anchors and now - neighbor.since >= age:
                anchors[peer] = neighbor.contact
                while len(anchors) > self.config.anchors_size:
                    del anchors[next(iter(anchors))]

    def _note_redirect(self, peer: PeerId, now: float) -> None:
        redirects = self.redirects
        redirects[peer] = now
        if len(redirects) > 4 * self.config.max_degree:
            horizon = now - self.config.redirect_period
            for old in [p for p, when in redirects.items() if when < horizon]:
                del redirects[old]
            while len(redirects) > 4 * self.config.max_degree:
                del redirects[next(iter(redirects))]

    def _bury(self, peer: PeerId, now: float) -> None:
        config = self.config
        if config.tombstones_size == 0:
            return
        self.tombstones.pop(peer, None)
        self.tombstones[peer] = now + config.tombstone_seconds
        if len(self.tombstones) > config.tombstones_size:
            del self.tombstones[next(iter(self.tombstones))]

    def _tombstoned(self, peer: PeerId, now: float) -> bool:
        until = self.tombstones.get(peer)
        return until is not None and until > now

    def _distrusted(self, peer: PeerId, now: float) -> bool:
        until = self.blacklist.get(peer)
        return until is not None and until > now

    def distrusts(self, peer: PeerId, now: float) -> bool:
        """Whether ``peer`` is on my blacklist now (distrusted for its conduct)."""
        return bool(self.blacklist) and self._distrusted(peer, now)

    def _refusal(self, contact: Contact, now: float) -> str | None:
        """Why ``contact`` may not become my neighbor now: it is distrusted, or its
        prefix already has ``max_per_prefix`` of my neighbors; None if it may."""
        if self.blacklist and self._distrusted(contact.id, now):
            return "distrusted"
        config = self.config
        cap = config.max_per_prefix
        if cap == 0 or len(self.active) < cap:
            return None
        group = address_group(contact.address.host)
        if group == self._my_group:
            return None
        same = self._groups.count(group)
        current = self.active.get(contact.id)
        if current is not None and address_group(current.contact.address.host) == group:
            same -= 1  # asking about a neighbor already counted: it does not count twice
        return "prefix_full" if same >= cap else None

    def _admissible(self, contact: Contact, now: float) -> bool:
        """Worth asking (no counter: choosing whom to ask refuses nobody).  Not a peer that
        refused me, or that I turned away, within ``push_window``: asking again so soon is
        what peers pushing to be a neighbor do (and one of those would accept at once)."""
        peer = contact.id
        if self._within_window(self.turned_me_away, peer, now) or self._within_window(
            self.turned_away, peer, now
        ):
            return False
        return self._refusal(contact, now) is None

    def _admits(self, contact: Contact, now: float) -> bool:
        """A link is about to be made with ``contact``: allowed?  A refusal is counted."""
        why = self._refusal(contact, now)
        if why is None:
            return True
        self._count(f"refused.{why}")
        return False

    def distrust(self, peer: PeerId, now: float, out: list[Effect]) -> None:
        """The standing ledger distrusts ``peer``: drop it and keep it out for a while."""
        config = self.config
        if peer == self.me.id or self.static or config.blacklist_size == 0:
            return
        self.blacklist.pop(peer, None)
        self.blacklist[peer] = now + config.blacklist_seconds
        while len(self.blacklist) > config.blacklist_size:
            del self.blacklist[next(iter(self.blacklist))]
        self._forget_pending(peer)
        self.passive.discard(peer)
        self.known_hosts.pop(peer, None)
        self.anchors.pop(peer, None)
        neighbor = self.active.get(peer)
        if neighbor is not None:
            self._count("standing.replaced")
            out.append(Send(neighbor.contact.address, Disconnect("distrusted")))
            self._remove(peer, "distrusted", out, keep_passive=False)

    def _random_key(self, table: dict[PeerId, Neighbor], exclude: PeerId = "") -> PeerId | None:
        keys = [k for k in table if k != exclude]
        return keys[self.rng.randrange(len(keys))] if keys else None

    def _sample_views(self, count: int, exclude: PeerId) -> list[ShuffleEntry]:
        passive = self.passive
        pool: list[tuple[Contact, int]] = [
            (contact, meta >> 1)
            for p, contact, meta in zip(passive.ids, passive.contacts, passive.meta, strict=True)
            if p != exclude
        ]
        # Neighbors answered a heartbeat within the last period: they are fresh.
        pool.extend((nb.contact, 0) for p, nb in self.active.items() if p != exclude)
        return [
            ShuffleEntry(contact, min(age, MAX_AGE))
            for contact, age in self.rng.sample(pool, min(count, len(pool)))
        ]

    def _merge(
        self,
        entries: Iterable[ShuffleEntry | Contact],
        replaceable: list[PeerId],
        now: float,
        displace: int = 0,
        *,
        own: bool = False,
    ) -> None:
        """Cyclon's merge: new entries fill free slots, then replace what we sent away.

        ``own``: the entries come from my own sources (the bootstrap).  At most
        ``passive_per_prefix`` entries share an address prefix, so one operator's
        contacts, however many a shuffle carries, take a few places only.
        """
        passive = self.passive
        size = self.config.passive_size
        me = self.me.id
        per_prefix = self.config.passive_per_prefix
        # Every passive entry's prefix, one item each (a multiset: ``count`` is the
        # per-prefix tally), made at the first new entry and kept with the view below.
        groups: list[str] | None = None
        # The view's ids as a set, kept with the view below: a merge asks whether each
        # entry is held, and a scan of the list compares ids one by one.
        held = set(passive.ids)
        for entry in entries:
            if type(entry) is ShuffleEntry:
                contact, age = entry.contact, entry.age
            else:
                assert type(entry) is Contact
                contact, age = entry, 0
            peer = contact.id
            if (
                peer == me
                or peer in self.active
                or self._tombstoned(peer, now)
                or (self.blacklist and self._distrusted(peer, now))
            ):
                continue
            existing = passive.ids.index(peer) if peer in held else -1
            if existing >= 0:
                if own:
                    # The bootstrap saw the peer register from there: it may have moved.
                    # A shuffle's word for where another peer is does not replace mine.
                    passive.contacts[existing] = contact
                    moved = address_group(contact.address.host)
                    if groups is not None and moved != passive.groups[existing]:
                        groups.remove(passive.groups[existing])
                        groups.append(moved)
                    passive.groups[existing] = moved
                meta = passive.meta[existing]
                passive.meta[existing] = (min(meta >> 1, age) << 1) | (meta & 1) | own
                continue
            if per_prefix:
                if groups is None:
                    groups = self._passive_groups()
                group = address_group(contact.address.host)
                if group != self._my_group and groups.count(group) >= per_prefix:
                    self._count("passive.prefix_full")
                    continue
            if len(passive) >= size:
                victim: PeerId | None = None
                while replaceable and victim is None:
                    candidate = replaceable.pop()
                    if candidate in held:
                        victim = candidate
                if victim is None and displace > 0:
                    displace -= 1
                    victim = passive.ids[self.rng.randrange(len(passive))]
                if victim is None:
                    continue
                at = passive.index(victim)
                if groups is not None:
                    groups.remove(passive.groups[at])
                passive.remove_at(at)
                held.discard(victim)
            held.add(peer)
            passive.append(
                contact,
                age,
                own,
                group if groups is not None else address_group(contact.address.host),
            )
            if groups is not None:
                groups.append(group)

    def _passive_groups(self) -> list[str]:
        """The address prefix of every passive entry, repeated as often as it is held (my
        own prefix is never capped: a LAN, or a swarm on one host, is one prefix by
        construction).  A list, not a Counter: a view holds a few dozen entries, and
        a Counter costs half as much again to build, at every merge."""
        return list(self.passive.groups)

    def _count(self, key: str) -> None:
        self.counters[key] = self.counters.get(key, 0) + 1
