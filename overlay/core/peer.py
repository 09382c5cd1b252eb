"""The peer core: one pure state machine that composes the parts of the protocol.

The surface every runtime drives (see docs/design.md, "One protocol, two worlds")::

    peer = Peer(address, PeerConfig(), random.Random(seed), signer=key, verifier=v,
                bootstrap=...)
    effects = peer.start(now)
    effects = peer.receive(message, sender_contact, now)
    effects = peer.link_lost(peer_id, now)
    effects = peer.handle_timer(now)      # when now >= peer.next_deadline()
    effects = peer.leave(now)

It never blocks, sleeps, opens a socket, reads a clock or touches the global
random generator: a test enforces that (tests/test_layers.py).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from mypy_extensions import mypyc_attr

from overlay.core.config import PeerConfig
from overlay.core.membership import Membership
from overlay.core.snapshot import PeerSnapshot
from overlay.core.standing import Standing
from overlay.core.supers.layer import SuperPeerLayer
from overlay.protocol.effects import Close, Effect, Handler, Notify
from overlay.protocol.identity import Address, Contact, PeerId, Role, peer_id_of
from overlay.protocol.messages import (
    Disconnect,
    Heartbeat,
    Join,
    Leave,
    Message,
    NeighborAccept,
    NeighborReject,
    NeighborRequest,
    PeerSample,
    Redirect,
    ShuffleReply,
    ShuffleRequest,
)
from overlay.protocol.randomness import RandomSource
from overlay.protocol.signing import Signer, Verifier
from search.component import HANDLERS as SEARCH_HANDLERS
from search.component import Search

# PeerSnapshot lives in a pure module (mypyc cannot compile its attrs fields) and is
# still imported from here by the runtimes and tools.
__all__ = ["Peer", "PeerSnapshot"]


_MEMBERSHIP_HANDLERS: dict[
    type[Message], Callable[[Membership, Any, Contact, float, list[Effect]], None]
] = {
    Heartbeat: Membership.on_heartbeat,
    ShuffleRequest: Membership.on_shuffle_request,
    ShuffleReply: Membership.on_shuffle_reply,
    Join: Membership.on_join,
    Redirect: Membership.on_redirect,
    NeighborRequest: Membership.on_neighbor_request,
    NeighborAccept: Membership.on_neighbor_accept,
    NeighborReject: Membership.on_neighbor_reject,
    Disconnect: Membership.on_disconnect,
    Leave: Membership.on_leave,
}
"""Membership's handlers, which take the peer's membership: one table for every peer.
Bound methods in a table of each peer's cost about 1.3 KB a peer (a tenth of a
simulated peer).  PeerSample is not here: with the super layer, the peer hands it on."""


_KINDS: list[type[Message]] = []
"""Every message type a peer of this process has received, in the order first seen.
Each peer counts what it received in a list indexed by this order: a dict of counts
keyed by type cost about 350 bytes a simulated peer, the list about 180."""
_SLOTS: dict[type[Message], int] = {}
"""Each type's place in :data:`_KINDS`.  Bounded: message types are the code's own."""


def _slot_of(kind: type[Message]) -> int:
    """``kind``'s place in :data:`_KINDS`, given one on first sight."""
    slot = _SLOTS.get(kind)
    if slot is None:
        slot = _SLOTS[kind] = len(_KINDS)
        _KINDS.append(kind)
    return slot


# Compiled by mypyc, a class admits no Python subclass unless it says so; a hostile
# peer for the benchmarks (benchmarks/hostile_peer.py) is one.
@mypyc_attr(allow_interpreted_subclasses=True)
class Peer:
    """A peer of the overlay, as a pure state machine."""

    def __init__(
        self,
        address: Address,
        config: PeerConfig,
        rng: RandomSource,
        *,
        signer: Signer,
        verifier: Verifier,
        bootstrap: Address | None = None,
        join_via: Address | None = None,
    ) -> None:
        self.config = config
        self.rng = rng
        self.signer = signer
        """My key pair: my id is its public key's hash, and I sign what others repeat."""
        self.verifier = verifier
        """Checks others' signatures (Ed25519 over TCP, a model in the simulator)."""
        self.contact = Contact(peer_id_of(signer.public_key), address)
        self._role: Role = "weak"
        self.membership = Membership(
            self.contact,
            config.membership,
            rng,
            role=self._role,
            capacity=config.capacity,
            bootstrap=bootstrap,
            join_via=join_via,
        )
        self._received: list[int] = []
        """How many messages of each type I received, by the type's place in
        :data:`_KINDS` (see :attr:`received`)."""
        self._target_degree = config.membership.target_degree
        self._dropped: dict[str, int] | None = None
        """Unexpected messages by type name, made on the first (see :attr:`dropped`)."""
        self.standing = Standing(config.standing)
        """What this peer has seen the others do, and whom it distrusts for it."""
        self._search: Search | None = None
        """Made on first use (:attr:`search`): a peer that never searches, holds no item
        and gets no query (every peer of a membership-only simulation) would otherwise
        hold a dozen objects and nine empty tables for nothing, about 1.4 KB."""
        self._handlers: dict[type[Message], Handler] | None = None
        """The super-peer layer's handlers, when it runs (membership's and search's are in
        tables every peer shares: ``_MEMBERSHIP_HANDLERS``, :data:`search.component.HANDLERS`)."""
        self.supers: SuperPeerLayer | None = None
        """The super-peer layer (attachments, index, roles), when ``config.supers`` enables it."""
        if config.supers.enabled:
            search = self.search
            supers = self.supers = SuperPeerLayer(
                self.contact,
                config.supers,
                rng,
                self.membership,
                store=search.store,
                capacity=config.capacity,
                signer=signer,
                verifier=verifier,
                evidence=self.standing.record,
            )
            self._handlers = supers.handlers()
            search.super_searching.layer = supers

    @property
    def received(self) -> dict[type[Message], int]:
        """Messages received so far, by type (the types received at least once)."""
        return {_KINDS[slot]: count for slot, count in enumerate(self._received) if count}

    @property
    def dropped(self) -> dict[str, int]:
        """Unexpected messages dropped so far, by type name (a copy)."""
        return dict(self._dropped) if self._dropped is not None else {}

    @property
    def search(self) -> Search:
        """The search component (items, floods, walks, fetches), made on first use.

        Making it draws nothing from the random source, so when it is made changes
        nothing in what the peer does."""
        search = self._search
        if search is None:
            search = self._search = Search(
                self.contact,
                self.rng,
                self.membership,
                self.config.search,
                signer=self.signer,
                verifier=self.verifier,
            )
            search.ctx.evidence = self.standing.record
        return search

    @property
    def role(self) -> Role:
        """ "weak" or "super" (always "weak" while the super-peer layer is off)."""
        return self.supers.role if self.supers is not None else self._role

    @property
    def id(self) -> PeerId:
        return self.contact.id

    @property
    def address(self) -> Address:
        return self.contact.address

    def start(self, now: float) -> list[Effect]:
        out: list[Effect] = []
        self.membership.start(now, out)
        if self.supers is not None:
            self.supers.start(now, out)
        return out

    def _on_peer_sample(
        self, message: PeerSample, sender: Contact, now: float, out: list[Effect]
    ) -> None:
        self.membership.on_peer_sample(message, sender, now, out)
        if self.supers is not None:
            self.supers.on_peer_sample(message, sender, now)

    def publish(self, value: bytes, name: str | None, now: float) -> list[Effect]:
        """Hold a new item and, with the super layer on, tell my super peers at once."""
        self.search.publish(value, name)
        out: list[Effect] = []
        if self.supers is not None:
            self.supers.content_changed(now, out)
        return out

    def unpublish(self, key: str, now: float) -> list[Effect]:
        """Stop holding an item (and withdraw it from my super peers' indexes)."""
        self.search.store.remove(key)
        out: list[Effect] = []
        if self.supers is not None:
            self.supers.content_changed(now, out)
        return out

    def receive(self, message: Message, sender: Contact, now: float) -> list[Effect]:
        kind = type(message)
        slot = _SLOTS.get(kind)
        if slot is None:
            slot = _slot_of(kind)
        received = self._received
        while len(received) <= slot:
            received.append(0)
        received[slot] += 1
        out: list[Effect] = []
        standing = self.standing
        standing.now = now
        membership_handler = _MEMBERSHIP_HANDLERS.get(kind)
        if membership_handler is not None:
            membership_handler(self.membership, message, sender, now, out)
        elif type(message) is PeerSample:
            self._on_peer_sample(message, sender, now, out)
        else:
            search_handler = SEARCH_HANDLERS.get(kind)
            if search_handler is not None:
                search_handler(self.search, message, sender, now, out)
            else:
                handlers = self._handlers
                handler = handlers.get(kind) if handlers is not None else None
                if handler is None:
                    name = kind.__name__
                    dropped = self._dropped
                    if dropped is None:
                        dropped = self._dropped = {}
                    dropped[name] = dropped.get(name, 0) + 1
                    out.append(Notify("bad_input", sender.id, f"unexpected {name}"))
                    standing.record(sender.id, "unexpected")
                else:
                    handler(message, sender, now, out)
        if standing.distrusted:
            self._replace_distrusted(now, out)
        m = self.membership
        if len(m.active) - m.extra_links + len(m.pending) < self._target_degree:
            m.settle(now, out)
        if self.supers is not None:
            self._keep_shared_links(out)
        return out

    def _keep_shared_links(self, out: list[Effect]) -> None:
        """Leave out a membership ``Close`` of a link the super layer still uses.

        Membership closes the link to a neighbor it drops, but a runtime keeps one link
        per peer, shared by every part of the core: closing it would cut my super peer,
        my weak peer or a super-layer neighbor off, and over TCP the other side would
        take the lost link for a failure.  Such a link stays open; the runtime closes it
        once it is idle and no part of the core relates to that peer any more.
        """
        supers = self.supers
        # After every event: ``in`` over the effects' types runs in C, a generator does not.
        if supers is None or Close not in map(type, out):
            return
        out[:] = [
            effect
            for effect in out
            if type(effect) is not Close or not supers.relates_at(effect.to)
        ]

    def _replace_distrusted(self, now: float, out: list[Effect]) -> None:
        """Drop the neighbors the standing ledger has just distrusted (repair refills)."""
        for peer in self.standing.take_distrusted():
            self.membership.distrust(peer, now, out)

    def link_lost(self, peer: PeerId, now: float) -> list[Effect]:
        out: list[Effect] = []
        self.standing.now = now
        self.membership.link_lost(peer, now, out)
        self.membership.settle(now, out)
        if self.supers is not None:
            self.supers.link_lost(peer, now, out)
            self._keep_shared_links(out)
        return out

    def next_deadline(self) -> float:
        # Called after every event a runtime delivers: read the fields directly rather
        # than through three layers of calls (a tenth of the simulator's time at 100k).
        m = self.membership
        deadline = min(m.tick_at, m.shuffle_at, m.register_at, m.expire_at)
        search = self._search
        if search is not None:
            timers = search.ctx.timers
            if timers and timers[0][0] < deadline:
                deadline = timers[0][0]
        if self.supers is not None:
            deadline = min(deadline, self.supers.next_deadline())
        return deadline

    def handle_timer(self, now: float) -> list[Effect]:
        out: list[Effect] = []
        self.membership.handle_timer(now, out)
        self.standing.now = now
        if self._search is not None:
            self._search.handle_timer(now, out)
        if self.standing.distrusted:
            self._replace_distrusted(now, out)
            self.membership.settle(now, out)
        if self.supers is not None:
            self.supers.handle_timer(now, out)
            self._keep_shared_links(out)
        return out

    def leave(self, now: float) -> list[Effect]:
        out: list[Effect] = []
        if self.supers is not None:
            self.supers.stop(now, out)
        self.membership.leave(now, out)
        return out

    def snapshot(self) -> PeerSnapshot:
        m = self.membership
        counters = {f"received.{k.__name__}": v for k, v in self.received.items()}
        if self._dropped is not None:
            counters.update({f"dropped.{k}": v for k, v in self._dropped.items()})
        counters.update(m.counters)
        if self._search is not None:
            counters.update(self._search.counters)
        counters.update(self.standing.counters)
        supers = self.supers
        if supers is not None:
            counters.update(supers.counters)
            role = supers.role
            is_super = role == "super"
            return PeerSnapshot(
                id=self.id,
                address=self.address,
                role=role,
                joined=m.ever_joined,
                neighbors=tuple(m.active),
                passive=tuple(m.passive.ids),
                known_hosts=len(m.known_hosts),
                counters=counters,
                super_peers=tuple(supers.attached),
                weak_peers=tuple(supers.index.by_owner) if is_super else (),
                index_entries=(
                    tuple(len(lease.items) for lease in supers.index.by_owner.values())
                    if is_super
                    else ()
                ),
                super_neighbors=tuple(supers.neighbors) if is_super else (),
                index_size=supers.index.entries,
                role_changes=supers.election.role_changes,
                super_target=supers.config.k,
                items=tuple(item.key for item in self.search.store),
                item_count=len(self.search.store),
                index_holdings=supers.index.holdings() if is_super else {},
            )
        return PeerSnapshot(
            id=self.id,
            address=self.address,
            role=self.role,
            joined=m.ever_joined,
            neighbors=tuple(m.active),
            passive=tuple(m.passive.ids),
            known_hosts=len(m.known_hosts),
            counters=counters,
        )
