"""The weak peer's side of the super-peer layer: its super peers and its published index.

A weak peer attaches to k super peers (counting requests in flight), picked from the
directory by the power of two choices, with spares in parallel when short; it
publishes its items to each under a lease, then sends numbered deltas and refreshes
the lease every third of it.  A super peer silent ``failure_timeout`` after its last
beat is dead: its named successor promotes itself, and the others attach to that
successor first.  A weak peer that has heard of no super peer at all founds the layer
by the rules of :mod:`overlay.core.supers.election`.

Becoming a super peer is the layer's business (:mod:`overlay.core.supers.layer`): this
side asks for it through the ``promote`` it is given, and hands over its state when the
layer calls :meth:`WeakSide.step_up`.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import attrs

from overlay.core.supers.context import SuperContext
from overlay.core.supers.directory import Directory
from overlay.protocol.effects import Effect, Handler, Notify, Send
from overlay.protocol.identity import Address, Contact, PeerId
from overlay.protocol.messages import (
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
    Promote,
    Rehome,
    SuperBeat,
)
from overlay.protocol.proofs import entry_statement
from search.index import (
    ForeignLease,
    IndexFull,
    IndexOverBound,
    IndexRefusal,
    SequenceGap,
    UnknownLease,
)
from search.store import ItemStore

_NEVER = math.inf
SPARES = 2
"""Extra attach requests sent in parallel when short of super peers (see the module doc)."""
REFUSAL_CODES = frozenset(
    {cls.code for cls in (IndexRefusal, UnknownLease, ForeignLease, IndexOverBound, IndexFull)}
    | {SequenceGap.code, "not a super peer"}
)
"""Reasons a super peer refuses an index message with; any other is counted as "other"
(a counter name is never taken from a remote's free text)."""
REJECT_REASONS = frozenset({"full", "not a super peer", "you are a super peer"})
"""Refusals counted by reason (any other reason, from the network, counts as "other")."""

Promotion = Callable[[float, list[Effect], str], None]
"""Become a super peer now (the layer's role change), saying why."""


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


class WeakSide:
    """A weak peer's super peers, requests in flight, and what it published to them.

    Empty while the peer is a super peer: :meth:`step_up` lets everything go.
    """

    def __init__(
        self,
        ctx: SuperContext,
        directory: Directory,
        store: ItemStore,
        *,
        promote: Promotion,
        other_beat: Handler,
    ) -> None:
        self.ctx = ctx
        self.config = ctx.config
        self.directory = directory
        self.store = store
        self.promote = promote
        self.other_beat = other_beat
        """Handles a beat from a peer that is not one of my super peers (the layer's)."""
        self.attached: dict[PeerId, Attached] = {}
        self.pending: dict[PeerId, PendingAttach] = {}
        self.seq = 0
        self.published: dict[str, IndexItem] = {}
        self.signed: dict[str, IndexItem] = {}
        """My entries as signed (each once, at the change that added it), by key."""
        self._signed_at = -1
        """The store's version ``signed`` was made from: while it stands, every attach
        sends ``signed`` as it is, without walking the store again."""
        self.seed_at = _NEVER
        self.seed_asked = False
        self.heir: Contact | None = None
        """The successor a dead super peer of mine named: tried first until attached to
        (its promotion and my Attach may cross, so one refusal is not the end)."""
        self.heir_until = 0.0

    # ------------------------------------------------------------------ for the layer

    def start(self, now: float) -> None:
        self.seed_at = now + self.config.seed_wait * (1.0 + 0.5 * self.ctx.rng.random())

    def stop(self, out: list[Effect]) -> None:
        """Leave gracefully: tell my super peers."""
        for attached in self.attached.values():
            out.append(Send(attached.contact.address, Detach("leaving")))
        self.attached.clear()
        self.pending.clear()

    def step_up(self, now: float, out: list[Effect]) -> None:
        """I became a super peer: let my super peers go (they are candidates for the
        super layer now) and forget the requests in flight."""
        for attached in self.attached.values():
            out.append(Send(attached.contact.address, Detach("promoted")))
            self.directory.learn(attached.contact, attached.load, now)
        self.attached.clear()
        self.pending.clear()

    def next_deadline(self, deadline: float) -> float:
        """The earlier of ``deadline`` and my next judgement of a super peer or request."""
        timeout = self.config.failure_timeout
        for attached in self.attached.values():
            deadline = min(deadline, attached.last_heard + timeout)
        for pending in self.pending.values():
            deadline = min(deadline, pending.deadline)
        return deadline

    def forgive(self, floor: float) -> None:
        """I was stalled: silence from my super peers counts from ``floor`` at the earliest."""
        for attached in self.attached.values():
            attached.last_heard = max(attached.last_heard, floor)

    def check(self, now: float, out: list[Effect]) -> None:
        """Judge my super peers and my requests in flight (every timer)."""
        if self.attached:
            horizon = now - self.config.failure_timeout
            for peer in [p for p, a in self.attached.items() if a.last_heard <= horizon]:
                self.ctx.count("supers_declared_dead")
                self.lose(peer, "missed beats", now, out)
        if self.pending:
            expired = [p for p, pending in self.pending.items() if pending.deadline <= now]
            for peer in expired:
                del self.pending[peer]
                self.directory.unanswered(peer, now)
            if expired:
                self.fill(now, out)

    def tick(self, now: float, out: list[Effect]) -> None:
        config = self.config
        self.directory.expire(now)
        if len(self.store) != len(self.published):
            self.content_changed(now, out)
        election = self.ctx.election
        for attached in self.attached.values():
            if now >= attached.refresh_at:
                attached.refresh_at = now + config.lease / 3.0
                out.append(
                    Send(
                        attached.contact.address,
                        IndexRefresh(attached.lease_id, self.seq, election.eligible(now)),
                    )
                )
        self.fill(now, out)

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

    def lose(self, peer: PeerId, why: str, now: float, out: list[Effect]) -> None:
        """``peer``, one of my super peers (or not any more), is gone: replace it."""
        # Several may die at once, and replacing the first (a promotion) clears the rest.
        attached = self.attached.pop(peer, None)
        if attached is None:
            return
        self.directory.bury(peer, now)
        out.append(Notify("suspect", peer, f"super peer: {why}"))
        successor = attached.successor
        me = self.ctx.me.id
        if successor is not None and successor.id == me and self.ctx.election.eligible(now):
            self.ctx.count("role.replacement")
            self.promote(now, out, f"replacing {peer[:8]}")
            return
        if successor is not None and successor.id != me:
            self.heir = successor
            self.heir_until = now + self.config.lease
        self.fill(now, out, prefer=successor)

    def fill(self, now: float, out: list[Effect], prefer: Contact | None = None) -> None:
        """Attach to super peers until I have k (counting requests in flight)."""
        ctx = self.ctx
        if ctx.election.is_super or not ctx.running:
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
        # (The directory never holds me, so nothing here is me.)
        pool = self.directory.candidates(
            now, self.attached, self.pending, () if prefer is None else (prefer.id,)
        )
        wanted = missing + (SPARES if self.attached else SPARES + 1)
        rng = ctx.rng
        while len(chosen) < wanted and pool:
            # Power of two choices: the less loaded of two random candidates, so
            # that weak peers spread out instead of herding onto one new super peer.
            first = pool.pop(rng.randrange(len(pool)))
            if pool:
                second = pool[rng.randrange(len(pool))]
                if second.load < first.load:
                    pool.remove(second)
                    pool.append(first)
                    first = second
            chosen.append(first.contact)
        for contact in chosen:
            self._send_attach(contact, now, out)
        if not chosen and not self.attached and not self.pending:
            self._maybe_found(now, out)

    # ------------------------------------------------------------------ runtime, search

    def relates(self, peer: PeerId) -> bool:
        return peer in self.attached or peer in self.pending

    def relates_at(self, address: Address) -> bool:
        return any(a.contact.address == address for a in self.attached.values()) or any(
            p.contact.address == address for p in self.pending.values()
        )

    def awaits(self, peer: PeerId) -> bool:
        """Have I asked ``peer`` to take me, without an answer yet?"""
        return peer in self.pending

    def my_supers(self) -> list[Contact]:
        return [a.contact for a in self.attached.values()]

    # ------------------------------------------------------------------ helpers

    def _my_items(self) -> dict[str, IndexItem]:
        """My entries, each signed by me: super peers pass the signature on with every
        hit they answer for me, which is what keeps them from inventing holders."""
        bound = self.config.max_items_per_weak
        store = self.store
        if store.version == self._signed_at:
            if len(store) > bound:
                self.ctx.count("index.not_published_over_bound")
            return self.signed
        items: dict[str, IndexItem] = {}
        signed = self.signed
        signer = self.ctx.signer
        me = self.ctx.me.id
        epoch = self.seq
        for item in store:
            if len(items) >= bound:
                self.ctx.count("index.not_published_over_bound")
                break
            entry = signed.get(item.key)
            if entry is None:
                statement = entry_statement(me, item.key, item.name, item.size, epoch)
                entry = IndexItem(item.key, item.name, item.size, epoch, signer.sign(statement))
            items[item.key] = entry
        self.signed = items
        self._signed_at = store.version
        return items

    def _attachable(self, peer: PeerId, now: float) -> bool:
        return (
            peer != self.ctx.me.id
            and peer not in self.attached
            and peer not in self.pending
            and not self.directory.shunned(peer, now)
        )

    def _send_attach(
        self, contact: Contact, now: float, out: list[Effect], replaces: PeerId | None = None
    ) -> None:
        self.pending[contact.id] = PendingAttach(
            contact, now + self.config.request_timeout, replaces
        )
        items = self.published = self._my_items()
        election = self.ctx.election
        out.append(
            Send(
                contact.address,
                Attach(
                    election.capacity,
                    election.eligible(now),
                    self.seq,
                    tuple(items.values()),
                    self.ctx.signer.public_key,
                ),
            )
        )

    def _maybe_found(self, now: float, out: list[Effect]) -> None:
        """Nobody has heard of a super peer: ask the bootstrap, then maybe found one."""
        if now < self.seed_at:
            return
        ctx = self.ctx
        if self.directory.heard_any or not self.seed_asked:
            # Someone knows super peers (or we never asked): ask the bootstrap, and
            # never found a second layer while one may exist.
            self.seed_at = now + (self.config.period if not self.seed_asked else 5.0)
            self.seed_asked = True
            ctx.register(out)
            return
        self.seed_at = now + self.config.seed_wait
        if ctx.election.eligible(now) and ctx.election.should_found():
            ctx.count("role.founded")
            self.promote(now, out, "founding the super layer")
            return
        # Ask again with every coin (without waiting for the answer, so founding goes at
        # the same pace): founders appear meanwhile, and the bootstrap's answer is the
        # quickest way to hear of them; its lease refresh may be a long way off.
        ctx.register(out)

    # ------------------------------------------------------------------ handlers

    def on_beat(self, message: SuperBeat, sender: Contact, now: float, out: list[Effect]) -> None:
        # Most beats a peer hears are its super peers': those are handled here at once,
        # the rest by the layer, which knows the super side's neighbors too.
        attached = self.attached.get(sender.id)
        if attached is None:
            self.other_beat(message, sender, now, out)
            return
        attached.last_heard = now
        attached.load = message.load
        attached.successor = message.successor
        learn = self.directory.learn
        for info in message.supers:
            learn(info.contact, info.load, now)

    def on_detach(self, sender: Contact, now: float, out: list[Effect]) -> None:
        """One of my super peers (or one I asked) will not serve me: find another."""
        peer = sender.id
        if peer in self.attached:
            del self.attached[peer]
            self.directory.shun(peer, now + self.config.period)
            self.fill(now, out)
        self.pending.pop(peer, None)

    def on_attach_accept(
        self, message: AttachAccept, sender: Contact, now: float, out: list[Effect]
    ) -> None:
        pending = self.pending.pop(sender.id, None)
        if pending is None or self.ctx.election.is_super or sender.id in self.attached:
            if sender.id not in self.attached:
                out.append(Send(sender.address, Detach("not wanted")))
            return
        self.attached[sender.id] = Attached(
            sender, message.lease_id, now, now + message.lease / 3.0, message.load
        )
        self.directory.answered(sender, message.load, now)
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
        self.ctx.count(f"attach.refused.{reason if reason in REJECT_REASONS else 'other'}")
        directory = self.directory
        directory.forget(sender.id)
        if reason in ("not a super peer", "full"):
            # Not again for a period: when every super peer is full, their alternatives
            # name one another, and retrying at once would bounce at network speed.
            directory.shun(sender.id, now + self.config.period)
        for info in message.alternatives:
            directory.learn(info.contact, info.load, now)
        self.fill(now, out)

    def on_resync(
        self, message: IndexResync, sender: Contact, now: float, out: list[Effect]
    ) -> None:
        attached = self.attached.get(sender.id)
        if attached is None or attached.lease_id != message.lease_id:
            self.ctx.count("index.resync_unknown")
            return
        self.ctx.count("index.full_resends")
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
        self.ctx.count(f"index.refused_by_super.{reason}")
        # The super peer no longer knows us (or will not hold us): go elsewhere.
        del self.attached[sender.id]
        out.append(Send(sender.address, Detach("refused")))
        self.fill(now, out)

    def on_promote(self, _message: Promote, sender: Contact, now: float, out: list[Effect]) -> None:
        ctx = self.ctx
        if sender.id not in self.attached:
            ctx.refuse(
                sender,
                "Promote from a peer that is not my super peer",
                "role.promote_from_stranger",
                out,
            )
            return
        if ctx.election.is_super or not ctx.election.eligible(now):
            ctx.count("role.promote_declined")
            return
        self.promote(now, out, f"asked by {sender.id[:8]}")

    def on_rehome(self, message: Rehome, sender: Contact, now: float, out: list[Effect]) -> None:
        if sender.id not in self.attached:
            self.ctx.refuse(
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
            self.fill(now, out)
            return
        if target.id == self.ctx.me.id or target.id in self.attached or target.id in self.pending:
            return
        self.directory.learn(target, 0, now)
        self.directory.revive(target.id)
        self._send_attach(target, now, out, replaces=sender.id)
