"""The super peer's side of the super-peer layer: its weak peers' index and the super graph.

A super peer grants leases to the weak peers that attach to it, up to ``max_load``,
and keeps their items in a :class:`search.index.SuperIndex`; it keeps a random graph
of degree ``super_degree`` with other super peers, linked with ``SuperLink`` to super
peers from the directory; once a period it beats to all of them (one message, carrying
its load, its estimate of the layer's mean load, its successor and, every few beats,
some other super peers), expires leases, drops silent neighbors, names its successor
and takes the load decision of :mod:`overlay.core.supers.election`.

Stepping down is the layer's business (:mod:`overlay.core.supers.layer`): :meth:`tick`
says when the rules call for it, and the layer calls :meth:`step_down`.
"""

from __future__ import annotations

from collections.abc import Callable

import attrs

from overlay.core.supers.context import SuperContext
from overlay.core.supers.directory import Directory
from overlay.core.supers.election import Candidate
from overlay.protocol.effects import Effect, Notify, Send
from overlay.protocol.identity import Address, Contact, PeerId
from overlay.protocol.messages import (
    MAX_LOAD,
    MAX_SUPER_INFO,
    Attach,
    AttachAccept,
    AttachReject,
    Detach,
    IndexDelta,
    IndexPublish,
    IndexRefresh,
    IndexRefused,
    IndexResync,
    Promote,
    Rehome,
    SuperBeat,
    SuperInfo,
    SuperLink,
    SuperLinkAccept,
    SuperUnlink,
)
from search.index import IndexRefusal, SequenceGap, SuperIndex

INFO_EVERY = 4
"""Beats between two that carry other super peers (see :meth:`SuperSide._beat`)."""


@attrs.define(slots=True)
class SuperNeighbor:
    contact: Contact
    last_heard: float
    load: int = 0
    estimate: float = 0.0


class SuperSide:
    """A super peer's weak peers (their leases and items), super-layer neighbors, beats
    and load estimate.

    Empty while the peer is weak: :meth:`step_down` lets everything go.
    """

    def __init__(self, ctx: SuperContext, directory: Directory) -> None:
        self.ctx = ctx
        self.config = config = ctx.config
        self.directory = directory
        self.index = SuperIndex(
            config.max_items_per_weak,
            config.max_index_entries,
            config.lease,
            verifier=ctx.verifier,
        )
        self.neighbors: dict[PeerId, SuperNeighbor] = {}
        self._offers: tuple[SuperInfo, ...] | None = None
        """What a reject offers instead (:meth:`_alternatives`), kept until a neighbor
        comes, goes or tells another load: every change of ``neighbors`` clears it."""
        self.linking: dict[PeerId, float] = {}
        """Super peers I asked to link with, until when I wait for their answer."""
        self.estimate = 0.0
        """The super layer's mean load, as I see it."""
        self.starved = False
        """Did I refuse an attachment for lack of room since my last decision?"""
        self.promoting: PeerId | None = None
        """The successor I asked to become a super peer (it gets half my weak peers)."""
        self.beats = 0

    @property
    def load(self) -> int:
        return len(self.index)

    # ------------------------------------------------------------------ for the layer

    def stop(self, out: list[Effect]) -> None:
        """Leave gracefully: tell my weak peers and super-layer neighbors."""
        for lease in self.index.by_owner.values():
            out.append(Send(lease.owner.address, Detach("leaving")))
        for neighbor in self.neighbors.values():
            out.append(Send(neighbor.contact.address, SuperUnlink("leaving")))
        self.neighbors.clear()
        self._offers = None
        self.index.clear()

    def step_up(self, now: float, out: list[Effect]) -> None:
        """I became a super peer: assume the layer is on target, and link into it."""
        self.estimate = float(self.config.target_load)
        self._fill(now, out)

    def step_down(self, now: float, out: list[Effect]) -> None:
        """I am a weak peer again: hand my weak peers over and leave the super layer."""
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
            self.directory.learn(neighbor.contact, neighbor.load, now)
        self.index.clear()
        self.neighbors.clear()
        self._offers = None
        self.linking.clear()

    def forgive(self, floor: float) -> None:
        """I was stalled: silence from my neighbors counts from ``floor`` at the earliest."""
        for neighbor in self.neighbors.values():
            neighbor.last_heard = max(neighbor.last_heard, floor)

    def tick(self, now: float, out: list[Effect]) -> bool:
        """Once a period: leases, neighbors, the load decision, the beat.  True when the
        rules say step down (then there is no beat: the layer demotes me at once)."""
        ctx = self.ctx
        config = self.config
        index = self.index
        directory = self.directory
        for lease in index.expire(now):
            ctx.count("index.leases_expired")
            out.append(Notify("neighbor_down", lease.owner.id, "index lease expired"))
        horizon = now - config.failure_timeout
        for peer in [p for p, n in self.neighbors.items() if n.last_heard <= horizon]:
            del self.neighbors[peer]
            self._offers = None
            directory.bury(peer, now)
            ctx.count("super_neighbors_declared_dead")
        for peer in [p for p, deadline in self.linking.items() if deadline <= now]:
            del self.linking[peer]
            directory.bury(peer, now)
        directory.expire(now)
        self._fill(now, out)
        # The layer's mean load: my load averaged with my neighbors' estimates.
        total = float(self.load)
        for neighbor in self.neighbors.values():
            total += neighbor.estimate
        self.estimate = min(total / (1 + len(self.neighbors)), float(MAX_LOAD))
        election = ctx.election
        successor = election.choose_successor(
            Candidate(lease.owner, lease.capacity, lease.eligible)
            for lease in index.by_owner.values()
        )
        decision = election.load_decision(now, self.estimate, len(self.neighbors), self.starved)
        self.starved = False
        if decision == "promote" and successor is not None:
            ctx.count("role.promotions_requested")
            self.promoting = successor.contact.id
            out.append(Send(successor.contact.address, Promote()))
        elif decision == "demote":
            return True
        self._beat(out)
        return False

    def _beat(self, out: list[Effect]) -> None:
        successor = self.ctx.election.successor
        self.beats += 1
        infos: list[SuperInfo] = []
        if self.beats % INFO_EVERY == 1:
            # Other super peers ride on every few beats only: weak peers need a few
            # fresh candidates, not the same ones every period (learning them is
            # most of what a weak peer does with a beat).
            infos = [SuperInfo(n.contact, min(n.load, MAX_LOAD)) for n in self.neighbors.values()]
            if len(infos) > MAX_SUPER_INFO:
                infos = self.ctx.rng.sample(infos, MAX_SUPER_INFO)
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

    def _fill(self, now: float, out: list[Effect]) -> None:
        """Ask super peers to link until I have ``super_degree`` neighbors (counting
        requests in flight)."""
        missing = self.config.super_degree - len(self.neighbors) - len(self.linking)
        if missing <= 0:
            return
        pool = [k.contact for k in self.directory.candidates(now, self.neighbors, self.linking)]
        ctx = self.ctx
        rng = ctx.rng
        for contact in rng.sample(pool, min(missing, len(pool))):
            self.linking[contact.id] = now + self.config.request_timeout
            out.append(Send(contact.address, SuperLink(min(self.load, MAX_LOAD))))
        if (
            not pool
            and not self.neighbors
            and ctx.membership.bootstrap is not None
            and rng.random() < 0.2
        ):
            ctx.register(out)

    # ------------------------------------------------------------------ runtime, search

    def heard_beat(self, message: SuperBeat, sender: Contact, now: float) -> bool:
        """A beat from a super-layer neighbor of mine?  Then take it in."""
        neighbor = self.neighbors.get(sender.id)
        if neighbor is None:
            return False
        neighbor.last_heard = now
        if neighbor.load != message.load:
            neighbor.load = message.load
            self._offers = None
        neighbor.estimate = message.estimate
        learn = self.directory.learn
        for info in message.supers:
            learn(info.contact, info.load, now)
        return True

    def link_lost(self, peer: PeerId) -> None:
        if self.neighbors.pop(peer, None) is not None:
            self._offers = None

    def relates(self, peer: PeerId) -> bool:
        return peer in self.index.by_owner or peer in self.neighbors or peer in self.linking

    def relates_at(self, address: Address) -> bool:
        return any(n.contact.address == address for n in self.neighbors.values()) or any(
            lease.owner.address == address for lease in self.index.by_owner.values()
        )

    def super_neighbors(self) -> list[Contact]:
        return [n.contact for n in self.neighbors.values()]

    def serves(self, peer: PeerId) -> bool:
        """Is ``peer`` one of my weak peers or super-layer neighbors (may it query me)?"""
        return peer in self.index.by_owner or peer in self.neighbors

    # ------------------------------------------------------------------ handlers

    def on_attach(self, message: Attach, sender: Contact, now: float, out: list[Effect]) -> None:
        ctx = self.ctx
        if not ctx.election.is_super:
            ctx.refuse(
                sender, "Attach to a peer that is not a super peer", "role.attach_to_weak", out
            )
            out.append(
                Send(sender.address, AttachReject("not a super peer", self.directory.infos()))
            )
            return
        if sender.id in self.neighbors:
            ctx.refuse(sender, "Attach from a super peer", "role.attach_from_super", out)
            out.append(Send(sender.address, AttachReject("you are a super peer")))
            return
        if sender.id not in self.index.by_owner and self.load >= self.config.max_load:
            self.starved = True
            ctx.count("attach.rejected_full")
            out.append(Send(sender.address, AttachReject("full", self._alternatives())))
            return
        lease_id = f"{ctx.rng.getrandbits(128):032x}"
        try:
            self.index.grant(
                lease_id,
                sender,
                public_key=message.public_key,
                capacity=message.capacity,
                eligible=message.eligible,
                seq=message.seq,
                items=message.items,
                now=now,
            )
        except IndexRefusal as refusal:
            ctx.refuse(sender, str(refusal), f"index.refused.{refusal.code}", out)
            out.append(Send(sender.address, AttachReject(refusal.code)))
            return
        ctx.count("attach.accepted")
        out.append(
            Send(
                sender.address, AttachAccept(lease_id, self.config.lease, min(self.load, MAX_LOAD))
            )
        )

    def _alternatives(self) -> tuple[SuperInfo, ...]:
        """My least loaded super-layer neighbors, offered to a weak peer I turn away
        (made once per change of my neighbors: a full super peer turns many away)."""
        offers = self._offers
        if offers is None:
            infos = [SuperInfo(n.contact, min(n.load, MAX_LOAD)) for n in self.neighbors.values()]
            infos.sort(key=lambda info: info.load)
            offers = self._offers = tuple(infos[:MAX_SUPER_INFO])
        return offers

    def _index_call(
        self, sender: Contact, lease_id: str, out: list[Effect], call: Callable[[], object]
    ) -> None:
        ctx = self.ctx
        if not ctx.election.is_super:
            ctx.refuse(
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
            ctx.count("index.gaps")
            out.append(Send(sender.address, IndexResync(lease_id, gap.have)))
        except IndexRefusal as refusal:
            ctx.refuse(sender, str(refusal), f"index.refused.{refusal.code}", out)
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

    def on_detach(self, message: Detach, sender: Contact, out: list[Effect]) -> None:
        """A weak peer of mine leaves me (for promotion, maybe at my request)."""
        peer = sender.id
        if self.index.drop(peer) is not None:
            self.ctx.count("index.detached")
            if message.reason == "promoted" and peer == self.promoting:
                self._rehome_half(sender, out)

    def _rehome_half(self, promoted: Contact, out: list[Effect]) -> None:
        """My successor became a super peer at my request: hand it half my weak peers."""
        self.promoting = None
        self.ctx.election.successor = None
        owners = [lease.owner for lease in self.index.by_owner.values()]
        self.ctx.rng.shuffle(owners)
        message = Rehome(promoted)
        for owner in owners[: len(owners) // 2]:
            out.append(Send(owner.address, message))
        self.ctx.count("role.rehomed", len(owners) // 2)

    def on_link(self, message: SuperLink, sender: Contact, now: float, out: list[Effect]) -> None:
        if not self.ctx.election.is_super:
            self.ctx.refuse(
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
        self._offers = None
        self.directory.learn(sender, message.load, now)
        out.append(Send(sender.address, SuperLinkAccept(min(self.load, MAX_LOAD))))

    def on_link_accept(
        self, message: SuperLinkAccept, sender: Contact, now: float, out: list[Effect]
    ) -> None:
        peer = sender.id
        if self.linking.pop(peer, None) is None or not self.ctx.election.is_super:
            if peer not in self.neighbors:
                out.append(Send(sender.address, SuperUnlink("not asked")))
            return
        if len(self.neighbors) >= self.config.max_super_degree:
            out.append(Send(sender.address, SuperUnlink("full")))
            return
        self.neighbors[peer] = SuperNeighbor(sender, now, message.load, float(message.load))
        self._offers = None
        self.directory.learn(sender, message.load, now)

    def on_unlink(
        self, message: SuperUnlink, sender: Contact, now: float, out: list[Effect]
    ) -> None:
        peer = sender.id
        self.linking.pop(peer, None)
        if self.neighbors.pop(peer, None) is not None:
            self._offers = None
        if message.reason == "not a super peer":
            self.directory.forget(peer)
            self.directory.shun(peer, now + self.config.period)
