"""The super-peer layer of a peer core: attachments, the index, the super graph, roles.

Two structures sit beside the flat random graph of :mod:`overlay.core.membership`
(Yang and Garcia-Molina, "Designing a super-peer network", ICDE 2003; Gnutella
0.6 ultrapeers and leaves):

* every **weak peer attaches to k super peers** (default 2: k-redundancy, so the
  failure of one super peer leaves every one of its weak peers still reachable
  and indexed) and publishes its index to each under a lease
  (:mod:`search.index`); it re-attaches as soon as one is found dead;
* **super peers keep a random graph among themselves** (the super layer), over
  which super-layer queries travel; links are made with ``SuperLink`` to super
  peers learnt from the bootstrap and from beats, and dropped when silent.

Liveness runs one way per relation, to keep it cheap: each super peer sends one
``SuperBeat`` per period to its weak peers and super-layer neighbors (the same
message to all); weak peers answer only with lease refreshes every third of a
lease.  A weak peer declares a super peer dead ``failure_timeout`` after its last
beat (the timer is set for that exact moment, so the delay is bounded by the
timeout, not by a tick), then attaches to its successor and to the least loaded
of two random candidates, with spares in parallel: after a mass crash a third of
the candidates may be dead too, and waiting out one timeout per dead candidate
would be slow.

A peer that was itself stalled (stopped, swapped out, starved of CPU in a busy
process) runs its timers late, with its super peers' beats still unread in its
sockets: judging them then would take them all for dead at once, and each such
false death promotes a successor (a swarm under load once grew its super layer from
6 to 37 peers this way).  So a timer that comes more than half a period late only
gives every super peer and super-layer neighbor due for judgement one more period to
be heard (once per ``failure_timeout``, so a dead one is still found when the peer
is late all the time), as :mod:`overlay.core.membership` does for its neighbors.

Roles change by the rules of :mod:`overlay.core.supers.election`.  Role messages are checked
against roles: an ``Attach`` to a weak peer, a beat from a super peer one is not
attached to, a ``Promote`` or ``Rehome`` from a stranger, a super-layer link or
query to a weak peer are refused, counted under ``role.*`` and reported as
``bad_input``; index messages that fail the index's checks are refused with an
``IndexRefused`` naming the reason and counted under ``index.refused.*``.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Iterable

import attrs

from overlay.core.config import SuperConfig
from overlay.core.membership import Membership
from overlay.core.supers.election import SUPER, WEAK, Candidate, Election
from overlay.protocol.effects import Effect, Handler, Notify, Send
from overlay.protocol.identity import Address, Contact, PeerId, Role
from overlay.protocol.messages import (
    MAX_LOAD,
    MAX_SUPER_INFO,
    Attach,
    AttachAccept,
    AttachReject,
    Detach,
    IndexDelta,
    IndexItem,
    IndexPublish,
    IndexRefresh,
    IndexRefused,
    IndexResync,
    Message,
    PeerSample,
    Promote,
    Register,
    Rehome,
    SuperBeat,
    SuperInfo,
    SuperLink,
    SuperLinkAccept,
    SuperUnlink,
)
from search.index import (
    ForeignLease,
    IndexFull,
    IndexOverBound,
    IndexRefusal,
    SequenceGap,
    SuperIndex,
    UnknownLease,
)
from search.store import ItemStore

_NEVER = math.inf
MAX_CANDIDATES = 32
SPARES = 2
INFO_EVERY = 4
MAX_DEAD = 4 * MAX_CANDIDATES
"""Most peers remembered as dead at once: anyone can claim to be a stranger's super
peer and say it is not one, so this table must not grow with what others say."""
REFUSAL_CODES = frozenset(
    {cls.code for cls in (IndexRefusal, UnknownLease, ForeignLease, IndexOverBound, IndexFull)}
    | {SequenceGap.code, "not a super peer"}
)
"""Reasons a super peer refuses an index message with; any other is counted as "other"
(a counter name is never taken from a remote's free text)."""
FORGET_AFTER = 3
"""Extra attach requests sent in parallel when short of super peers (see the module doc)."""
REJECT_REASONS = frozenset({"full", "not a super peer", "you are a super peer"})
"""Refusals counted by reason (any other reason, from the network, counts as "other")."""


@attrs.define(slots=True)
class Attached:
    """One of my super peers, as a weak peer sees it."""

    contact: Contact
    lease_id: str
    last_heard: float
    refresh_at: float
    load: int = 0
    successor: Contact | None = None


@attrs.define(slots=True)
class PendingAttach:
    contact: Contact
    deadline: float
    replaces: PeerId | None = None


@attrs.define(slots=True)
class Known:
    """A super peer I have heard of (a candidate to attach or link to)."""

    contact: Contact
    load: int
    heard: float
    failures: int = 0


@attrs.define(slots=True)
class SuperNeighbor:
    contact: Contact
    last_heard: float
    load: int = 0
    estimate: float = 0.0


class Attachment:
    """The super-peer part of a peer core.  Pure: no I/O, no clock, no global random."""

    def __init__(
        self,
        me: Contact,
        config: SuperConfig,
        rng: random.Random,
        membership: Membership,
        *,
        store: ItemStore,
        capacity: int,
    ) -> None:
        self.me = me
        self.config = config
        self.rng = rng
        self.membership = membership
        self.store = store
        self.election = Election(me.id, capacity, config, rng)
        self.index = SuperIndex(config.max_items_per_weak, config.max_index_entries, config.lease)
        self.attached: dict[PeerId, Attached] = {}
        self.pending: dict[PeerId, PendingAttach] = {}
        self.known: dict[PeerId, Known] = {}
        self.dead: dict[PeerId, float] = {}
        """Super peers I found dead, until when I will not try them again (at most
        ``MAX_DEAD``: see :meth:`_shun`)."""
        self.neighbors: dict[PeerId, SuperNeighbor] = {}
        self.linking: dict[PeerId, float] = {}
        self.counters: dict[str, int] = {}
        self.evidence: Callable[[PeerId, str], None] | None = None
        """Told of every refusal (peer, counter): the peer core's standing ledger."""
        self.seq = 0
        self.published: dict[str, IndexItem] = {}
        self.estimate = 0.0
        self.starved = False
        self.promoting: PeerId | None = None
        self.beats = 0
        self.tick_at = _NEVER
        self.seed_at = _NEVER
        self.seed_asked = False
        self.heard_any = False
        self.heir: Contact | None = None
        """The successor a dead super peer of mine named: tried first until attached to
        (its promotion and my Attach may cross, so one refusal is not the end)."""
        self.heir_until = 0.0
        self.running = False
        self.forgiven_until = -_NEVER
        """Until when a late timer does not earn the silent another period (see the
        module's docstring on stalls)."""

    # ------------------------------------------------------------------ surface

    @property
    def role(self) -> Role:
        return self.election.role

    @property
    def load(self) -> int:
        return len(self.index)

    def handlers(self) -> dict[type[Message], Handler]:
        table: dict[type[Message], Callable[..., None]] = {
            Attach: self.on_attach,
            AttachAccept: self.on_attach_accept,
            AttachReject: self.on_attach_reject,
            Detach: self.on_detach,
            IndexPublish: self.on_publish,
            IndexDelta: self.on_delta,
            IndexRefresh: self.on_refresh,
            IndexResync: self.on_resync,
            IndexRefused: self.on_refused,
            SuperBeat: self.on_beat,
            SuperLink: self.on_link,
            SuperLinkAccept: self.on_link_accept,
            SuperUnlink: self.on_unlink,
            Promote: self.on_promote,
            Rehome: self.on_rehome,
        }
        return table

    def start(self, now: float, out: list[Effect]) -> None:
        self.running = True
        self.election.start(now)
        self.tick_at = now + self.rng.random() * self.config.period
        self.seed_at = now + self.config.seed_wait * (1.0 + 0.5 * self.rng.random())

    def stop(self, now: float, out: list[Effect]) -> None:
        """Leave gracefully: tell my super peers, weak peers and super neighbors."""
        for attached in self.attached.values():
            out.append(Send(attached.contact.address, Detach("leaving")))
        for lease in self.index.by_owner.values():
            out.append(Send(lease.owner.address, Detach("leaving")))
        for neighbor in self.neighbors.values():
            out.append(Send(neighbor.contact.address, SuperUnlink("leaving")))
        self.attached.clear()
        self.pending.clear()
        self.neighbors.clear()
        self.index.clear()
        self.running = False
        self.tick_at = _NEVER

    def next_deadline(self) -> float:
        deadline = self.tick_at
        for attached in self.attached.values():
            due = attached.last_heard + self.config.failure_timeout
            deadline = min(deadline, due)
        for pending in self.pending.values():
            deadline = min(deadline, pending.deadline)
        return deadline

    def handle_timer(self, now: float, out: list[Effect]) -> None:
        if not self.running:
            return
        self._forgive_stall(now)
        if self.attached:
            self._check_supers(now, out)
        if self.pending:
            expired = [p for p, pending in self.pending.items() if pending.deadline <= now]
            for peer in expired:
                del self.pending[peer]
                # No answer: lost, or dead.  Try others first, this one again later,
                # and forget it after a few silences in a row.
                known = self.known.get(peer)
                if known is not None:
                    known.failures += 1
                    if known.failures >= FORGET_AFTER:
                        del self.known[peer]
                self._shun(peer, now + self.config.period)
            if expired:
                self._fill(now, out)
        if now >= self.tick_at:
            self.tick_at = now + self.config.period
            if self.election.is_super:
                self._super_tick(now, out)
            else:
                self._weak_tick(now, out)

    def link_lost(self, peer: PeerId, now: float, out: list[Effect]) -> None:
        if peer in self.attached:
            self._lose_super(peer, "link lost", now, out)
        self.neighbors.pop(peer, None)

    def on_peer_sample(self, message: PeerSample, sender: Contact, now: float) -> None:
        """Learn super peers from the bootstrap's sample (it advertises; it decides nothing)."""
        if sender.address != self.membership.bootstrap:
            return
        self.on_peer_sample_contacts(message.super_peers, now)

    def on_peer_sample_contacts(self, contacts: Iterable[Contact], now: float) -> None:
        """Learn of super peers (from the bootstrap, or a runtime's host cache)."""
        for contact in contacts:
            self._learn(contact, 0, now)

    def promote(self, now: float, out: list[Effect], why: str = "by hand") -> None:
        """Become a super peer now (an operator's or a test's decision; the rules of
        :mod:`overlay.core.supers.election` make it otherwise)."""
        self._promote(now, out, why)

    def content_changed(self, now: float, out: list[Effect]) -> None:
        """My items changed: send the change, numbered, to each of my super peers."""
        items = self._my_items()
        add = tuple(item for key, item in items.items() if key not in self.published)
        remove = tuple(key for key in self.published if key not in items)
        if not add and not remove:
            return
        self.published = items
        self.seq += 1
        for attached in self.attached.values():
            out.append(
                Send(attached.contact.address, IndexDelta(attached.lease_id, self.seq, add, remove))
            )

    # ------------------------------------------------------------------ weak side

    def _my_items(self) -> dict[str, IndexItem]:
        items: dict[str, IndexItem] = {}
        bound = self.config.max_items_per_weak
        for item in self.store:
            if len(items) >= bound:
                self._count("index.not_published_over_bound")
                break
            items[item.key] = IndexItem(item.key, item.name, item.size)
        return items

    def _weak_tick(self, now: float, out: list[Effect]) -> None:
        config = self.config
        if self.dead:
            for peer in [p for p, until in self.dead.items() if until <= now]:
                del self.dead[peer]
        if len(self.store) != len(self.published):
            self.content_changed(now, out)
        for attached in self.attached.values():
            if now >= attached.refresh_at:
                attached.refresh_at = now + config.lease / 3.0
                out.append(
                    Send(
                        attached.contact.address,
                        IndexRefresh(attached.lease_id, self.seq, self.election.eligible(now)),
                    )
                )
        self._fill(now, out)

    def _fill(self, now: float, out: list[Effect], prefer: Contact | None = None) -> None:
        """Attach to super peers until I have k (counting requests in flight)."""
        if self.election.is_super or not self.running:
            return
        missing = self.config.k - len(self.attached) - len(self.pending)
        if missing <= 0:
            return
        chosen: list[Contact] = []
        if prefer is None and self.heir is not None:
            if self.heir.id in self.attached or now >= self.heir_until:
                self.heir = None
            else:
                prefer = self.heir
        if prefer is not None and self._attachable(prefer.id, now):
            chosen.append(prefer)
        pool = [
            k
            for p, k in self.known.items()
            if self._attachable(p, now) and (prefer is None or p != prefer.id)
        ]
        wanted = missing + (SPARES if self.attached else SPARES + 1)
        while len(chosen) < wanted and pool:
            # Power of two choices: the less loaded of two random candidates, so
            # that weak peers spread out instead of herding onto one new super peer.
            first = pool.pop(self.rng.randrange(len(pool)))
            if pool:
                second = pool[self.rng.randrange(len(pool))]
                if second.load < first.load:
                    pool.remove(second)
                    pool.append(first)
                    first = second
            chosen.append(first.contact)
        for contact in chosen:
            self._send_attach(contact, now, out)
        if not chosen and not self.attached and not self.pending:
            self._maybe_found(now, out)

    def _attachable(self, peer: PeerId, now: float) -> bool:
        return (
            peer != self.me.id
            and peer not in self.attached
            and peer not in self.pending
            and self.dead.get(peer, -_NEVER) <= now
        )

    def _send_attach(
        self, contact: Contact, now: float, out: list[Effect], replaces: PeerId | None = None
    ) -> None:
        self.pending[contact.id] = PendingAttach(
            contact, now + self.config.request_timeout, replaces
        )
        items = self.published = self._my_items()
        out.append(
            Send(
                contact.address,
                Attach(
                    self.election.capacity,
                    self.election.eligible(now),
                    self.seq,
                    tuple(items.values()),
                ),
            )
        )

    def _maybe_found(self, now: float, out: list[Effect]) -> None:
        """Nobody has heard of a super peer: ask the bootstrap, then maybe found one."""
        if now < self.seed_at:
            return
        if self.heard_any or not self.seed_asked:
            # Someone knows super peers (or we never asked): ask the bootstrap, and
            # never found a second layer while one may exist.
            self.seed_at = now + (self.config.period if not self.seed_asked else 5.0)
            self.seed_asked = True
            self._register(out, want=0)
            return
        self.seed_at = now + self.config.seed_wait
        if self.election.eligible(now) and self.election.should_found():
            self._count("role.founded")
            self._promote(now, out, "founding the super layer")
            return
        # Ask again with every coin (without waiting for the answer, so founding goes at
        # the same pace): founders appear meanwhile, and the bootstrap's answer is the
        # quickest way to hear of them; its lease refresh may be a long way off.
        self._register(out, want=0)

    def _forgive_stall(self, now: float) -> None:
        """A timer more than half a period late means I was stalled: give the super peers
        and super-layer neighbors I would judge now one more period to be heard."""
        config = self.config
        if now - self.next_deadline() <= config.period / 2 or now < self.forgiven_until:
            return
        self._count("timers_late")
        self.forgiven_until = now + config.failure_timeout
        # Silence is counted from last_heard: moving it forward is the extra period.
        floor = now - config.failure_timeout + config.period
        for attached in self.attached.values():
            attached.last_heard = max(attached.last_heard, floor)
        for neighbor in self.neighbors.values():
            neighbor.last_heard = max(neighbor.last_heard, floor)

    def _check_supers(self, now: float, out: list[Effect]) -> None:
        horizon = now - self.config.failure_timeout
        for peer in [p for p, a in self.attached.items() if a.last_heard <= horizon]:
            self._count("supers_declared_dead")
            self._lose_super(peer, "missed beats", now, out)

    def _lose_super(self, peer: PeerId, why: str, now: float, out: list[Effect]) -> None:
        # Several may die at once, and replacing the first (a promotion) clears the rest.
        attached = self.attached.pop(peer, None)
        if attached is None:
            return
        self._bury(peer, now)
        out.append(Notify("suspect", peer, f"super peer: {why}"))
        successor = attached.successor
        if successor is not None and successor.id == self.me.id and self.election.eligible(now):
            self._count("role.replacement")
            self._promote(now, out, f"replacing {peer[:8]}")
            return
        if successor is not None and successor.id != self.me.id:
            self.heir = successor
            self.heir_until = now + self.config.lease
        self._fill(now, out, prefer=successor)

    def _bury(self, peer: PeerId, now: float) -> None:
        """Do not try ``peer`` again for a while.  Not for long, and it stays known: under
        loss a live super peer is sometimes taken for dead, and a weak peer that knows few
        super peers must be able to come back to it; a dead one fails one more request
        and is forgotten then."""
        self._shun(peer, now + self.config.failure_timeout)

    def _learn(self, contact: Contact, load: int, now: float) -> None:
        peer = contact.id
        if peer == self.me.id or self.dead.get(peer, -_NEVER) > now:
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

    def on_attach_accept(
        self, message: AttachAccept, sender: Contact, now: float, out: list[Effect]
    ) -> None:
        pending = self.pending.pop(sender.id, None)
        if pending is None or self.election.is_super or sender.id in self.attached:
            if sender.id not in self.attached:
                out.append(Send(sender.address, Detach("not wanted")))
            return
        self.attached[sender.id] = Attached(
            sender, message.lease_id, now, now + message.lease / 3.0, message.load
        )
        self.dead.pop(sender.id, None)
        self._learn(sender, message.load, now)
        self.known[sender.id].failures = 0
        if pending.replaces is not None and pending.replaces in self.attached:
            old = self.attached.pop(pending.replaces)
            out.append(Send(old.contact.address, Detach("rehomed")))
        while len(self.attached) > self.config.k:
            # A spare answered too: keep the least loaded k.
            surplus = max(self.attached.values(), key=lambda a: (a.load, a.contact.id))
            del self.attached[surplus.contact.id]
            out.append(Send(surplus.contact.address, Detach("surplus")))
        if len(self.attached) >= self.config.k:
            self.pending.clear()  # late answers get a Detach

    def on_attach_reject(
        self, message: AttachReject, sender: Contact, now: float, out: list[Effect]
    ) -> None:
        if self.pending.pop(sender.id, None) is None:
            return
        reason = message.reason
        self._count(f"attach.refused.{reason if reason in REJECT_REASONS else 'other'}")
        self.known.pop(sender.id, None)
        if reason in ("not a super peer", "full"):
            # Not again for a period: when every super peer is full, their alternatives
            # name one another, and retrying at once would bounce at network speed.
            self._shun(sender.id, now + self.config.period)
        for info in message.alternatives:
            self._learn(info.contact, info.load, now)
        self._fill(now, out)

    def on_resync(
        self, message: IndexResync, sender: Contact, now: float, out: list[Effect]
    ) -> None:
        attached = self.attached.get(sender.id)
        if attached is None or attached.lease_id != message.lease_id:
            self._count("index.resync_unknown")
            return
        self._count("index.full_resends")
        items = self.published = self._my_items()
        out.append(
            Send(sender.address, IndexPublish(attached.lease_id, self.seq, tuple(items.values())))
        )

    def on_refused(
        self, message: IndexRefused, sender: Contact, now: float, out: list[Effect]
    ) -> None:
        attached = self.attached.get(sender.id)
        if attached is None or attached.lease_id != message.lease_id:
            return
        reason = message.reason if message.reason in REFUSAL_CODES else "other"
        self._count(f"index.refused_by_super.{reason}")
        # The super peer no longer knows us (or will not hold us): go elsewhere.
        del self.attached[sender.id]
        out.append(Send(sender.address, Detach("refused")))
        self._fill(now, out)

    def on_promote(self, _message: Promote, sender: Contact, now: float, out: list[Effect]) -> None:
        if sender.id not in self.attached:
            self._refuse(
                sender,
                "Promote from a peer that is not my super peer",
                "role.promote_from_stranger",
                out,
            )
            return
        if self.election.is_super or not self.election.eligible(now):
            self._count("role.promote_declined")
            return
        self._promote(now, out, f"asked by {sender.id[:8]}")

    def on_rehome(self, message: Rehome, sender: Contact, now: float, out: list[Effect]) -> None:
        if sender.id not in self.attached:
            self._refuse(
                sender,
                "Rehome from a peer that is not my super peer",
                "role.rehome_from_stranger",
                out,
            )
            return
        target = message.to
        if target.id in self.attached:
            # Already attached there: the sender is simply let go of.
            del self.attached[sender.id]
            out.append(Send(sender.address, Detach("rehomed")))
            self._fill(now, out)
            return
        if target.id == self.me.id or target.id in self.attached or target.id in self.pending:
            return
        self._learn(target, 0, now)
        self.dead.pop(target.id, None)
        self._send_attach(target, now, out, replaces=sender.id)

    # ------------------------------------------------------------------ super side

    def _super_tick(self, now: float, out: list[Effect]) -> None:
        config = self.config
        index = self.index
        for lease in index.expire(now):
            self._count("index.leases_expired")
            out.append(Notify("neighbor_down", lease.owner.id, "index lease expired"))
        horizon = now - config.failure_timeout
        for peer in [p for p, n in self.neighbors.items() if n.last_heard <= horizon]:
            del self.neighbors[peer]
            self._bury(peer, now)
            self._count("super_neighbors_declared_dead")
        for peer in [p for p, deadline in self.linking.items() if deadline <= now]:
            del self.linking[peer]
            self._bury(peer, now)
        if self.dead:
            for peer in [p for p, until in self.dead.items() if until <= now]:
                del self.dead[peer]
        self._fill_super_layer(now, out)
        # The layer's mean load: my load averaged with my neighbors' estimates.
        total = float(self.load)
        for neighbor in self.neighbors.values():
            total += neighbor.estimate
        self.estimate = min(total / (1 + len(self.neighbors)), float(MAX_LOAD))
        successor = self.election.choose_successor(
            Candidate(lease.owner, lease.capacity, lease.eligible)
            for lease in index.by_owner.values()
        )
        decision = self.election.load_decision(
            now, self.estimate, len(self.neighbors), self.starved
        )
        self.starved = False
        if decision == "promote" and successor is not None:
            self._count("role.promotions_requested")
            self.promoting = successor.contact.id
            out.append(Send(successor.contact.address, Promote()))
        elif decision == "demote":
            self._demote(now, out)
            return
        self._beat(now, out)

    def _beat(self, now: float, out: list[Effect]) -> None:
        successor = self.election.successor
        self.beats += 1
        infos: list[SuperInfo] = []
        if self.beats % INFO_EVERY == 1:
            # Other super peers ride on every few beats only: weak peers need a few
            # fresh candidates, not the same ones every period (learning them is
            # most of what a weak peer does with a beat).
            infos = [SuperInfo(n.contact, min(n.load, MAX_LOAD)) for n in self.neighbors.values()]
            if len(infos) > MAX_SUPER_INFO:
                infos = self.rng.sample(infos, MAX_SUPER_INFO)
        beat = SuperBeat(
            min(self.load, MAX_LOAD),
            self.estimate,
            successor.contact if successor is not None else None,
            tuple(infos),
        )
        for lease in self.index.by_owner.values():
            out.append(Send(lease.owner.address, beat))
        for neighbor in self.neighbors.values():
            out.append(Send(neighbor.contact.address, beat))

    def _fill_super_layer(self, now: float, out: list[Effect]) -> None:
        missing = self.config.super_degree - len(self.neighbors) - len(self.linking)
        if missing <= 0:
            return
        pool = [
            k.contact
            for p, k in self.known.items()
            if p not in self.neighbors
            and p not in self.linking
            and self.dead.get(p, -_NEVER) <= now
        ]
        for contact in self.rng.sample(pool, min(missing, len(pool))):
            self.linking[contact.id] = now + self.config.request_timeout
            out.append(Send(contact.address, SuperLink(min(self.load, MAX_LOAD))))
        if (
            not pool
            and not self.neighbors
            and self.membership.bootstrap is not None
            and self.rng.random() < 0.2
        ):
            self._register(out, want=0)

    def _alternatives(self) -> tuple[SuperInfo, ...]:
        infos = [SuperInfo(n.contact, min(n.load, MAX_LOAD)) for n in self.neighbors.values()]
        infos.sort(key=lambda info: info.load)
        return tuple(infos[:MAX_SUPER_INFO])

    def on_attach(self, message: Attach, sender: Contact, now: float, out: list[Effect]) -> None:
        if not self.election.is_super:
            self._refuse(
                sender, "Attach to a peer that is not a super peer", "role.attach_to_weak", out
            )
            out.append(Send(sender.address, AttachReject("not a super peer", self._known_infos())))
            return
        if sender.id in self.neighbors:
            self._refuse(sender, "Attach from a super peer", "role.attach_from_super", out)
            out.append(Send(sender.address, AttachReject("you are a super peer")))
            return
        if sender.id not in self.index.by_owner and self.load >= self.config.max_load:
            self.starved = True
            self._count("attach.rejected_full")
            out.append(Send(sender.address, AttachReject("full", self._alternatives())))
            return
        lease_id = f"{self.rng.getrandbits(128):032x}"
        try:
            self.index.grant(
                lease_id,
                sender,
                capacity=message.capacity,
                eligible=message.eligible,
                seq=message.seq,
                items=message.items,
                now=now,
            )
        except IndexRefusal as refusal:
            self._refuse(sender, str(refusal), f"index.refused.{refusal.code}", out)
            out.append(Send(sender.address, AttachReject(refusal.code)))
            return
        self._count("attach.accepted")
        out.append(
            Send(
                sender.address, AttachAccept(lease_id, self.config.lease, min(self.load, MAX_LOAD))
            )
        )

    def _known_infos(self) -> tuple[SuperInfo, ...]:
        known = sorted(self.known.values(), key=lambda k: -k.heard)[:MAX_SUPER_INFO]
        return tuple(SuperInfo(k.contact, min(k.load, MAX_LOAD)) for k in known)

    def _index_call(
        self, sender: Contact, lease_id: str, out: list[Effect], call: Callable[[], object]
    ) -> None:
        if not self.election.is_super:
            self._refuse(
                sender,
                "index message to a peer that is not a super peer",
                "role.index_to_weak",
                out,
            )
            out.append(Send(sender.address, IndexRefused(lease_id, "not a super peer")))
            return
        try:
            call()
        except SequenceGap as gap:
            self._count("index.gaps")
            out.append(Send(sender.address, IndexResync(lease_id, gap.have)))
        except IndexRefusal as refusal:
            self._refuse(sender, str(refusal), f"index.refused.{refusal.code}", out)
            out.append(Send(sender.address, IndexRefused(lease_id, refusal.code)))

    def on_publish(
        self, message: IndexPublish, sender: Contact, now: float, out: list[Effect]
    ) -> None:
        self._index_call(
            sender,
            message.lease_id,
            out,
            lambda: self.index.replace(
                message.lease_id, sender.id, message.seq, message.items, now
            ),
        )

    def on_delta(self, message: IndexDelta, sender: Contact, now: float, out: list[Effect]) -> None:
        self._index_call(
            sender,
            message.lease_id,
            out,
            lambda: self.index.apply_delta(
                message.lease_id,
                sender.id,
                message.seq,
                add=message.add,
                remove=message.remove,
                now=now,
            ),
        )

    def on_refresh(
        self, message: IndexRefresh, sender: Contact, now: float, out: list[Effect]
    ) -> None:
        self._index_call(
            sender,
            message.lease_id,
            out,
            lambda: self.index.refresh(
                message.lease_id, sender.id, message.seq, message.eligible, now
            ),
        )

    def on_detach(self, message: Detach, sender: Contact, now: float, out: list[Effect]) -> None:
        peer = sender.id
        if self.index.drop(peer) is not None:
            self._count("index.detached")
            if message.reason == "promoted" and peer == self.promoting:
                self._rehome_half(sender, out)
        if peer in self.attached:
            del self.attached[peer]
            self._shun(peer, now + self.config.period)
            self._fill(now, out)
        self.pending.pop(peer, None)

    def _rehome_half(self, promoted: Contact, out: list[Effect]) -> None:
        """My successor became a super peer at my request: hand it half my weak peers."""
        self.promoting = None
        self.election.successor = None
        owners = [lease.owner for lease in self.index.by_owner.values()]
        self.rng.shuffle(owners)
        message = Rehome(promoted)
        for owner in owners[: len(owners) // 2]:
            out.append(Send(owner.address, message))
        self._count("role.rehomed", len(owners) // 2)

    def on_beat(self, message: SuperBeat, sender: Contact, now: float, out: list[Effect]) -> None:
        attached = self.attached.get(sender.id)
        if attached is not None:
            attached.last_heard = now
            attached.load = message.load
            attached.successor = message.successor
            for info in message.supers:
                self._learn(info.contact, info.load, now)
            return
        neighbor = self.neighbors.get(sender.id)
        if neighbor is not None:
            neighbor.last_heard = now
            neighbor.load = message.load
            neighbor.estimate = message.estimate
            for info in message.supers:
                self._learn(info.contact, info.load, now)
            return
        if sender.id in self.pending:
            return  # our Attach and its beat crossed; the accept is on its way
        self._count("role.beat_from_stranger")
        if self.election.is_super:
            out.append(Send(sender.address, SuperUnlink("not neighbors")))
        out.append(Send(sender.address, Detach("not attached")))

    def on_link(self, message: SuperLink, sender: Contact, now: float, out: list[Effect]) -> None:
        if not self.election.is_super:
            self._refuse(
                sender, "SuperLink to a peer that is not a super peer", "role.link_to_weak", out
            )
            out.append(Send(sender.address, SuperUnlink("not a super peer")))
            return
        peer = sender.id
        if peer not in self.neighbors and len(self.neighbors) >= self.config.max_super_degree:
            out.append(Send(sender.address, SuperUnlink("full")))
            return
        self.linking.pop(peer, None)
        self.index.drop(peer)  # a super peer is nobody's weak peer
        self.neighbors[peer] = SuperNeighbor(sender, now, message.load, float(message.load))
        self._learn(sender, message.load, now)
        out.append(Send(sender.address, SuperLinkAccept(min(self.load, MAX_LOAD))))

    def on_link_accept(
        self, message: SuperLinkAccept, sender: Contact, now: float, out: list[Effect]
    ) -> None:
        peer = sender.id
        if self.linking.pop(peer, None) is None or not self.election.is_super:
            if peer not in self.neighbors:
                out.append(Send(sender.address, SuperUnlink("not asked")))
            return
        if len(self.neighbors) >= self.config.max_super_degree:
            out.append(Send(sender.address, SuperUnlink("full")))
            return
        self.neighbors[peer] = SuperNeighbor(sender, now, message.load, float(message.load))
        self._learn(sender, message.load, now)

    def on_unlink(
        self, message: SuperUnlink, sender: Contact, now: float, out: list[Effect]
    ) -> None:
        peer = sender.id
        self.linking.pop(peer, None)
        self.neighbors.pop(peer, None)
        if message.reason == "not a super peer":
            self.known.pop(peer, None)
            self._shun(peer, now + self.config.period)

    # ------------------------------------------------------------------ role changes

    def _register(self, out: list[Effect], want: int) -> None:
        bootstrap = self.membership.bootstrap
        if bootstrap is not None:
            out.append(Send(bootstrap, Register(want, self.role, self.election.capacity)))

    def _promote(self, now: float, out: list[Effect], why: str) -> None:
        if not self.election.promote(now):
            return
        self.membership.role = SUPER
        for attached in self.attached.values():
            out.append(Send(attached.contact.address, Detach("promoted")))
            self._learn(attached.contact, attached.load, now)
        self.attached.clear()
        self.pending.clear()
        self.estimate = float(self.config.target_load)
        out.append(Notify("role_changed", None, f"super: {why}"))
        self._register(out, want=0)
        self._fill_super_layer(now, out)
        self.tick_at = min(self.tick_at, now + self.config.period)

    def _demote(self, now: float, out: list[Effect]) -> None:
        if not self.election.demote(now):
            return
        self._count("role.demoted")
        self.membership.role = WEAK
        # Hand my weak peers over to my super-layer neighbors, least loaded first, so
        # that none of them is ever short of a super peer; without neighbors, let go.
        heirs = sorted(self.neighbors.values(), key=lambda n: (n.load, n.contact.id))
        for number, lease in enumerate(self.index.by_owner.values()):
            if heirs:
                heir = heirs[number % len(heirs)].contact
                out.append(Send(lease.owner.address, Rehome(heir)))
            else:
                out.append(Send(lease.owner.address, Detach("demoted")))
        for neighbor in self.neighbors.values():
            out.append(Send(neighbor.contact.address, SuperUnlink("demoted")))
            self._learn(neighbor.contact, neighbor.load, now)
        self.index.clear()
        self.neighbors.clear()
        self.linking.clear()
        out.append(Notify("role_changed", None, "weak: the super layer has too many"))
        self._register(out, want=0)
        self._fill(now, out)

    # ------------------------------------------------------------------ helpers

    def _refuse(self, sender: Contact, why: str, counter: str, out: list[Effect]) -> None:
        self._count(counter)
        out.append(Notify("bad_input", sender.id, why))
        if self.evidence is not None:
            self.evidence(sender.id, counter)

    def _shun(self, peer: PeerId, until: float) -> None:
        """Do not try ``peer`` again before ``until``.  The oldest entry goes when the
        table is full: forgetting one only means trying a dead peer once more."""
        dead = self.dead
        dead.pop(peer, None)
        dead[peer] = until
        if len(dead) > MAX_DEAD:
            del dead[next(iter(dead))]

    def _count(self, key: str, amount: int = 1) -> None:
        self.counters[key] = self.counters.get(key, 0) + amount

    # ------------------------------------------------------------------ for search

    def super_neighbors(self) -> list[Contact]:
        return [n.contact for n in self.neighbors.values()]

    def my_supers(self) -> list[Contact]:
        return [a.contact for a in self.attached.values()]

    def serves(self, peer: PeerId) -> bool:
        """Is ``peer`` one of my weak peers or super-layer neighbors (may it query me)?"""
        return peer in self.index.by_owner or peer in self.neighbors

    def addresses(self) -> list[Address]:
        return [a.contact.address for a in self.attached.values()]

    # ------------------------------------------------------------------ for the runtime

    def relates(self, peer: PeerId) -> bool:
        """Is ``peer`` my super peer (or about to be), my weak peer, or a super-layer
        neighbor (or about to be)?  A runtime keeps the link to such a peer open."""
        return (
            peer in self.attached
            or peer in self.pending
            or peer in self.index.by_owner
            or peer in self.neighbors
            or peer in self.linking
        )

    def relates_at(self, address: Address) -> bool:
        """Is the peer listening at ``address`` in one of the relations of :meth:`relates`?"""
        return (
            any(a.contact.address == address for a in self.attached.values())
            or any(p.contact.address == address for p in self.pending.values())
            or any(n.contact.address == address for n in self.neighbors.values())
            or any(lease.owner.address == address for lease in self.index.by_owner.values())
        )
