"""Wire cores together by hand: every message waits in a queue until a test delivers it.

This is how the unit tests drive the protocol core: no simulator, no sockets,
time is whatever the test says, and each test can assert exactly what each core
sent.
"""

from __future__ import annotations

import random
from collections import deque
from collections.abc import Callable, Iterable

import attrs

from bootstrap.hostcache import HostCache, HostCacheConfig
from overlay.core.config import MembershipConfig, PeerConfig
from overlay.core.peer import Peer
from overlay.protocol.effects import Effect, Send
from overlay.protocol.identity import Address, Contact
from overlay.protocol.messages import Message
from tests.keys import KEYRING, model_key

BOOTSTRAP = Address("127.0.0.1", 7000)


@attrs.frozen
class Envelope:
    to: Address
    sender: Contact
    message: Message


class Hand:
    """A set of cores and the messages in flight between them."""

    def __init__(self, seed: int = 0, config: PeerConfig | None = None) -> None:
        self.rng = random.Random(seed)
        self.config = config or PeerConfig(membership=MembershipConfig())
        self.now = 0.0
        self.peers: dict[Address, Peer] = {}
        self.bootstrap: HostCache | None = None
        self.in_flight: deque[Envelope] = deque()
        self.effects: list[tuple[Address, Effect]] = []
        self.swallow: Callable[[Envelope], bool] | None = None
        """Messages this returns True for are lost on the way (a peer that drops them)."""
        self._next_port = 8000

    def add_bootstrap(self, config: HostCacheConfig | None = None) -> HostCache:
        contact = Contact(f"{self.rng.getrandbits(128):032x}", BOOTSTRAP)
        self.bootstrap = HostCache(contact, config or HostCacheConfig(), self.rng)
        self._emit(contact, self.bootstrap.start(self.now))
        return self.bootstrap

    def add_peer(self, *, start: bool = True, **kwargs: object) -> Peer:
        address = Address("127.0.0.1", self._next_port)
        self._next_port += 1
        bootstrap = BOOTSTRAP if self.bootstrap is not None else None
        seed = self.rng.getrandbits(64)
        peer = Peer(
            address,
            self.config,
            random.Random(seed),
            signer=model_key(seed),
            verifier=KEYRING,
            bootstrap=bootstrap,
            **kwargs,  # type: ignore[arg-type]
        )
        self.peers[address] = peer
        if start:
            self._emit(peer.contact, peer.start(self.now))
        return peer

    def contact_of(self, address: Address) -> Contact:
        if self.bootstrap is not None and address == BOOTSTRAP:
            return self.bootstrap.me
        return self.peers[address].contact

    def _emit(self, sender: Contact, effects: Iterable[Effect]) -> list[Effect]:
        effects = list(effects)
        for effect in effects:
            self.effects.append((sender.address, effect))
            if isinstance(effect, Send):
                self.in_flight.append(Envelope(effect.to, sender, effect.message))
        return effects

    def deliver_one(self) -> Envelope | None:
        if not self.in_flight:
            return None
        envelope = self.in_flight.popleft()
        if self.swallow is not None and self.swallow(envelope):
            return envelope
        if self.bootstrap is not None and envelope.to == BOOTSTRAP:
            self._emit(
                self.bootstrap.me,
                self.bootstrap.receive(envelope.message, envelope.sender, self.now),
            )
        elif envelope.to in self.peers:
            peer = self.peers[envelope.to]
            self._emit(peer.contact, peer.receive(envelope.message, envelope.sender, self.now))
        return envelope

    def deliver_all(self, limit: int = 10_000) -> int:
        count = 0
        while self.in_flight and count < limit:
            self.deliver_one()
            count += 1
        assert count < limit, "messages kept flowing; the protocol does not quiesce"
        return count

    def drop_all(self) -> int:
        count = len(self.in_flight)
        self.in_flight.clear()
        return count

    def advance(self, seconds: float, *, deliver: bool = True) -> None:
        """Move time forward, firing every timer that falls due (in order), delivering
        messages after each round of timers."""
        end = self.now + seconds
        while True:
            due = [p for p in self.peers.values() if p.next_deadline() <= end]
            if self.bootstrap is not None and self.bootstrap.next_deadline() <= end:
                due_bootstrap = True
            else:
                due_bootstrap = False
            if not due and not due_bootstrap:
                break
            moment = min(
                [p.next_deadline() for p in due]
                + ([self.bootstrap.next_deadline()] if due_bootstrap and self.bootstrap else [])
            )
            self.now = max(self.now, moment)
            for peer in list(self.peers.values()):
                if peer.next_deadline() <= self.now:
                    self._emit(peer.contact, peer.handle_timer(self.now))
            if self.bootstrap is not None and self.bootstrap.next_deadline() <= self.now:
                self._emit(self.bootstrap.me, self.bootstrap.handle_timer(self.now))
            if deliver:
                self.deliver_all()
        self.now = end

    def sent_by(self, address: Address, kind: type[Message]) -> list[Send]:
        return [
            e
            for a, e in self.effects
            if a == address and isinstance(e, Send) and isinstance(e.message, kind)
        ]

    def crash(self, address: Address) -> None:
        del self.peers[address]
        self.in_flight = deque(e for e in self.in_flight if e.to != address)
