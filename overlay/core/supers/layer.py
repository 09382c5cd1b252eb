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

The parts, each owning its own state:

* :class:`~overlay.core.supers.weak_side.WeakSide`: my super peers, my requests in
  flight, what I published to them, founding;
* :class:`~overlay.core.supers.super_side.SuperSide`: my weak peers' index, my
  super-layer neighbors, beats, the load estimate;
* :class:`~overlay.core.supers.directory.Directory`: the super peers I have heard of
  and the ones I shun, which both sides read and write;
* :class:`~overlay.core.supers.election.Election`: my role and the rules that change it;
* :class:`SuperPeerLayer`, here: what the peer core holds.  It builds the parts, owns
  the handler table and the timers, changes roles (moving what the old role knew into
  the directory), and is the one place a runtime asks which links the layer uses.

A peer is one role at a time, and so are its relations: while it is a super peer the
weak side has no super peers and no requests in flight, and while it is weak the
super side has no weak peers, neighbors or link requests.  A role change lets the old
side's relations go (each side's ``step_up`` or ``step_down``) before the new side acts.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable

from overlay.core.config import SuperConfig
from overlay.core.membership import Membership
from overlay.core.supers.context import SuperContext
from overlay.core.supers.directory import Directory
from overlay.core.supers.election import SUPER, WEAK, Election
from overlay.core.supers.super_side import SuperNeighbor, SuperSide
from overlay.core.supers.weak_side import Attached, WeakSide
from overlay.protocol.effects import Effect, Handler, Notify, Send
from overlay.protocol.identity import Address, Contact, PeerId, Role
from overlay.protocol.messages import (
    Attach,
    AttachAccept,
    AttachReject,
    Detach,
    IndexDelta,
    IndexPublish,
    IndexRefresh,
    IndexRefused,
    IndexResync,
    Message,
    PeerSample,
    Promote,
    Rehome,
    SuperBeat,
    SuperLink,
    SuperLinkAccept,
    SuperUnlink,
)
from overlay.protocol.randomness import RandomSource
from overlay.protocol.signing import Signer, Verifier
from search.context import Evidence
from search.index import SuperIndex
from search.store import ItemStore

_NEVER = math.inf


class SuperPeerLayer:
    """The super-peer part of a peer core.  Pure: no I/O, no clock, no global random."""

    def __init__(
        self,
        me: Contact,
        config: SuperConfig,
        rng: RandomSource,
        membership: Membership,
        *,
        store: ItemStore,
        capacity: int,
        signer: Signer,
        verifier: Verifier,
        evidence: Evidence | None = None,
    ) -> None:
        self.config = config
        self.membership = membership
        self.election = Election(me.id, capacity, config, rng)
        self.ctx = ctx = SuperContext(
            me,
            config,
            rng,
            membership,
            self.election,
            signer=signer,
            verifier=verifier,
            evidence=evidence,
        )
        self.directory = Directory(me.id, config)
        self.weak_side = WeakSide(
            ctx, self.directory, store, promote=self._promote, other_beat=self._on_other_beat
        )
        self.super_side = SuperSide(ctx, self.directory)
        self.tick_at = _NEVER
        self.forgiven_until = -_NEVER
        """Until when a late timer does not earn the silent another period (see the
        module's docstring on stalls)."""

    # ------------------------------------------------------------------ surface

    @property
    def role(self) -> Role:
        return self.election.role

    @property
    def counters(self) -> dict[str, int]:
        return self.ctx.counters

    @property
    def attached(self) -> dict[PeerId, Attached]:
        """My super peers (none while I am one)."""
        return self.weak_side.attached

    @property
    def index(self) -> SuperIndex:
        """My weak peers' items (empty while I am weak)."""
        return self.super_side.index

    @property
    def neighbors(self) -> dict[PeerId, SuperNeighbor]:
        """My super-layer neighbors (none while I am weak)."""
        return self.super_side.neighbors

    def handlers(self) -> dict[type[Message], Handler]:
        # Each message goes straight to the side it concerns: no layer of calls in
        # between.  A beat goes to the weak side, which hears most of them and hands
        # the rest back (see _on_other_beat); a Detach, which ends a relation on
        # either side, goes to both through the layer.
        as_weak, as_super = self.weak_side, self.super_side
        table: dict[type[Message], Callable[..., None]] = {
            Attach: as_super.on_attach,
            AttachAccept: as_weak.on_attach_accept,
            AttachReject: as_weak.on_attach_reject,
            Detach: self.on_detach,
            IndexPublish: as_super.on_publish,
            IndexDelta: as_super.on_delta,
            IndexRefresh: as_super.on_refresh,
            IndexResync: as_weak.on_resync,
            IndexRefused: as_weak.on_refused,
            SuperBeat: as_weak.on_beat,
            SuperLink: as_super.on_link,
            SuperLinkAccept: as_super.on_link_accept,
            SuperUnlink: as_super.on_unlink,
            Promote: as_weak.on_promote,
            Rehome: as_weak.on_rehome,
        }
        return table

    def start(self, now: float, out: list[Effect]) -> None:
        self.ctx.running = True
        self.election.start(now)
        self.tick_at = now + self.ctx.rng.random() * self.config.period
        self.weak_side.start(now)

    def stop(self, now: float, out: list[Effect]) -> None:
        """Leave gracefully: tell my super peers, weak peers and super neighbors."""
        self.weak_side.stop(out)
        self.super_side.stop(out)
        self.ctx.running = False
        self.tick_at = _NEVER

    def next_deadline(self) -> float:
        return self.weak_side.next_deadline(self.tick_at)

    def handle_timer(self, now: float, out: list[Effect]) -> None:
        if not self.ctx.running:
            return
        self._forgive_stall(now)
        self.weak_side.check(now, out)
        if now >= self.tick_at:
            self.tick_at = now + self.config.period
            if self.election.is_super:
                if self.super_side.tick(now, out):
                    self._demote(now, out)
            else:
                self.weak_side.tick(now, out)

    def link_lost(self, peer: PeerId, now: float, out: list[Effect]) -> None:
        self.weak_side.lose(peer, "link lost", now, out)
        self.super_side.link_lost(peer)

    def on_peer_sample(self, message: PeerSample, sender: Contact, now: float) -> None:
        """Learn super peers from the bootstrap's sample (it advertises; it decides nothing)."""
        if sender.address != self.membership.bootstrap:
            return
        self.on_peer_sample_contacts(message.super_peers, now)

    def on_peer_sample_contacts(self, contacts: Iterable[Contact], now: float) -> None:
        """Learn of super peers (from the bootstrap, or a runtime's host cache)."""
        for contact in contacts:
            self.directory.learn(contact, 0, now)

    def promote(self, now: float, out: list[Effect], why: str = "by hand") -> None:
        """Become a super peer now (an operator's or a test's decision; the rules of
        :mod:`overlay.core.supers.election` make it otherwise)."""
        self._promote(now, out, why)

    def content_changed(self, now: float, out: list[Effect]) -> None:
        """My items changed: send the change, numbered, to each of my super peers."""
        self.weak_side.content_changed(now, out)

    def _forgive_stall(self, now: float) -> None:
        """A timer more than half a period late means I was stalled: give the super peers
        and super-layer neighbors I would judge now one more period to be heard."""
        config = self.config
        if now - self.next_deadline() <= config.period / 2 or now < self.forgiven_until:
            return
        self.ctx.count("timers_late")
        self.forgiven_until = now + config.failure_timeout
        # Silence is counted from last_heard: moving it forward is the extra period.
        floor = now - config.failure_timeout + config.period
        self.weak_side.forgive(floor)
        self.super_side.forgive(floor)

    # ------------------------------------------------------------------ both sides

    def on_detach(self, message: Detach, sender: Contact, now: float, out: list[Effect]) -> None:
        # The sender may be my weak peer, or my super peer, or one I asked to be.
        self.super_side.on_detach(message, sender, out)
        self.weak_side.on_detach(sender, now, out)

    def _on_other_beat(
        self, message: SuperBeat, sender: Contact, now: float, out: list[Effect]
    ) -> None:
        """A beat from a peer that is not my super peer: a neighbor's, or a stranger's."""
        if self.super_side.heard_beat(message, sender, now):
            return
        if self.weak_side.awaits(sender.id):
            return  # our Attach and its beat crossed; the accept is on its way
        self.ctx.count("role.beat_from_stranger")
        if self.election.is_super:
            out.append(Send(sender.address, SuperUnlink("not neighbors")))
        out.append(Send(sender.address, Detach("not attached")))

    # ------------------------------------------------------------------ role changes

    def _promote(self, now: float, out: list[Effect], why: str) -> None:
        if not self.election.promote(now):
            return
        self.membership.role = SUPER
        self.weak_side.step_up(now, out)
        out.append(Notify("role_changed", None, f"super: {why}"))
        self.ctx.register(out)
        self.super_side.step_up(now, out)
        self.tick_at = min(self.tick_at, now + self.config.period)

    def _demote(self, now: float, out: list[Effect]) -> None:
        if not self.election.demote(now):
            return
        self.ctx.count("role.demoted")
        self.membership.role = WEAK
        self.super_side.step_down(now, out)
        out.append(Notify("role_changed", None, "weak: the super layer has too many"))
        self.ctx.register(out)
        self.weak_side.fill(now, out)

    # ------------------------------------------------------------------ for search

    def super_neighbors(self) -> list[Contact]:
        return self.super_side.super_neighbors()

    def my_supers(self) -> list[Contact]:
        return self.weak_side.my_supers()

    def serves(self, peer: PeerId) -> bool:
        """Is ``peer`` one of my weak peers or super-layer neighbors (may it query me)?"""
        return self.super_side.serves(peer)

    # ------------------------------------------------------------------ for the runtime

    def addresses(self) -> list[Address]:
        """My super peers' addresses."""
        return [contact.address for contact in self.weak_side.my_supers()]

    def relates(self, peer: PeerId) -> bool:
        """Is ``peer`` my super peer (or about to be), my weak peer, or a super-layer
        neighbor (or about to be)?  A runtime keeps the link to such a peer open."""
        return self.weak_side.relates(peer) or self.super_side.relates(peer)

    def relates_at(self, address: Address) -> bool:
        """Is the peer listening at ``address`` in one of the relations of :meth:`relates`?"""
        return self.weak_side.relates_at(address) or self.super_side.relates_at(address)
