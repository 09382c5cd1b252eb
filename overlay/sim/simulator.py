"""The discrete-event simulator: the same protocol core, in virtual time, from one seed.

It is a runtime, not a second implementation: it hands the cores messages and
timer calls and carries out the effects they return, exactly as the trio
runtime does, only the network is a model:

* time is virtual and advances in ticks of one millisecond; a message sent at
  tick t lands at t + latency (+ uniform jitter, if asked for), so with no jitter
  links are FIFO, as TCP is;
* a message is lost with probability ``loss``; a message between two sides of
  a partition is lost; a message to a crashed peer is lost (a crash is silent:
  nobody is told, as when a machine dies or a cable is cut);
* every random choice (the network's and every peer's) comes from one seed, and
  nothing iterates a set or depends on hashing order, so the same seed gives the
  same run, message for message.

The event queue is a calendar: one list of events per tick and a heap of the
ticks in use.  Most events in a run are deliveries, and appending to a list is
far cheaper than pushing on a heap; this is what lets one core push hundreds of
thousands of messages per second through the protocol.
"""

from __future__ import annotations

import contextlib
import gc
import heapq
import math
import random
from collections.abc import Callable, Iterator
from typing import Any

import attrs

from bootstrap.hostcache import HostCache, HostCacheConfig
from overlay.core.config import PeerConfig
from overlay.core.peer import Peer, PeerSnapshot
from overlay.protocol import validate
from overlay.protocol.effects import Core, Effect, Notify, Send
from overlay.protocol.identity import Address, Contact, PeerId, new_peer_id
from overlay.protocol.messages import Message
from overlay.sim.keys import ModelKeyring
from overlay.sim.topology import summarize

TICKS_PER_SECOND = 1000
BOOTSTRAP_ADDRESS = Address("10.255.255.254", 7000)


@contextlib.contextmanager
def few_collections(young: int = 200_000) -> Iterator[None]:
    """Keep Python's cyclic garbage collector out of a long simulation's way.

    A big run holds millions of long-lived objects (peers, views, queued
    messages) and makes almost no cyclic garbage, yet with the default thresholds
    the collector rescans them again and again: at 20,000 peers that is a quarter
    of the run.  Inside this block what exists is frozen out of the collector's
    sight and the young generation is collected ``young`` allocations apart
    (default 700); both are restored on exit.
    """
    old = gc.get_threshold()
    gc.collect()
    gc.freeze()
    gc.set_threshold(young, old[1], max(old[2], 1000))
    try:
        yield
    finally:
        gc.set_threshold(*old)
        gc.unfreeze()


@attrs.frozen
class NetworkModel:
    """How the simulated network behaves."""

    latency: float = attrs.field(default=0.02, validator=validate.real(0.001, 60.0))
    jitter: float = attrs.field(default=0.0, validator=validate.real(0.0, 60.0))
    loss: float = attrs.field(default=0.0, validator=validate.real(0.0, 1.0))


def sim_address(index: int) -> Address:
    """A distinct synthetic IPv4 address for the index-th peer of a run.

    Consecutive peers get consecutive /24s (the last octet changes only every 65,536
    peers), as hosts on the Internet mostly do: the per-prefix neighbor cap
    (``MembershipConfig.max_per_prefix``, 2 by default) then never binds among simulated
    peers below 131,072 of them, instead of packing a run's peers into a few /24s and
    skewing its random graph.
    """
    return Address(f"10.{(index >> 8) & 255}.{index & 255}.{(index >> 16) & 255}", 7000)


class _Node:
    """One simulated host: its core and where its timer is scheduled.

    Events in the calendar point at the node itself, so delivering one needs no
    lookup by address; ``core`` is None once the host has crashed.
    """

    __slots__ = ("contact", "core", "timer_tick")

    def __init__(self, contact: Contact, core: Core) -> None:
        self.contact = contact
        self.core: Core | None = core
        self.timer_tick = -1


class Simulator:
    """A seeded, deterministic run of many peer cores and one bootstrap."""

    def __init__(
        self,
        *,
        seed: int = 0,
        network: NetworkModel | None = None,
        peer_config: PeerConfig | None = None,
        bootstrap_config: HostCacheConfig | None = None,
        with_bootstrap: bool = True,
    ) -> None:
        self.seed = seed
        self.rng = random.Random(seed)
        self._peers_rng = random.Random(self.rng.getrandbits(64))
        self.network = network or NetworkModel()
        self.peer_config = peer_config or PeerConfig()
        self.tick = 0
        self.nodes: dict[Address, _Node] = {}
        self.peers: dict[Address, Peer] = {}
        self.started_peers = 0
        self.dead: set[PeerId] = set()
        self._sent: dict[type[Message], int] = {}
        self.delivered = 0
        self.lost = 0
        self.events: list[tuple[float, PeerId, Notify]] = []
        self.keep_events = False
        self.on_effect: Callable[[float, Address, Effect], None] | None = None
        self._buckets: dict[int, list[tuple[_Node, Contact | None, Any]]] = {}
        self._ticks: list[int] = []
        self._actions: list[tuple[int, int, Callable[[], object]]] = []
        self._action_seq = 0
        self._side: dict[Address, int] = {}
        self._next_index = 0
        self._latency_ticks = max(1, round(self.network.latency * TICKS_PER_SECOND))
        self._jitter_ticks = round(self.network.jitter * TICKS_PER_SECOND)
        self.keyring = ModelKeyring()
        """Every peer's model key; the verifier every core is handed (overlay.sim.keys)."""
        self.bootstrap: HostCache | None = None
        if with_bootstrap:
            contact = Contact(new_peer_id(self.rng), BOOTSTRAP_ADDRESS)
            self.bootstrap = HostCache(
                contact, bootstrap_config or HostCacheConfig(), self._child_rng()
            )
            self._install(contact, self.bootstrap)

    # ------------------------------------------------------------------ population

    @property
    def now(self) -> float:
        return self.tick / TICKS_PER_SECOND

    def _child_rng(self) -> random.Random:
        return random.Random(self.rng.getrandbits(64))

    def _peer_rng(self) -> random.Random:
        """The random source handed to a new peer core.

        All peers of a run share one generator, seeded from the run's seed: the run
        is single-threaded and its event order is deterministic, so determinism
        holds, and one Mersenne Twister state (2.5 KB) per peer would cost 250 MB at
        100,000 peers.  The network's own draws (loss, jitter) stay on ``self.rng``.
        """
        return self._peers_rng

    @property
    def sent(self) -> dict[str, int]:
        """Messages sent so far, by type name (lost ones included)."""
        return {kind.__name__: count for kind, count in self._sent.items()}

    def _install(self, contact: Contact, core: Core) -> None:
        node = _Node(contact, core)
        self.nodes[contact.address] = node
        self._handle(node, core.start(self.now))

    def add_peer(
        self,
        *,
        address: Address | None = None,
        config: PeerConfig | None = None,
        join_via: Address | None = None,
        kind: type[Peer] = Peer,
    ) -> Peer:
        """Start a new peer now; it joins through the bootstrap (or ``join_via``).

        ``kind``: a subclass of :class:`Peer` (the adversarial cores of the tests), built
        with the same arguments and a key of its own like any peer's."""
        if address is None:
            address = sim_address(self._next_index)
            self._next_index += 1
        rng = self._peer_rng()
        peer = kind(
            address,
            config or self.peer_config,
            rng,
            signer=self.keyring.new_pair(rng),
            verifier=self.keyring,
            bootstrap=BOOTSTRAP_ADDRESS if self.bootstrap is not None else None,
            join_via=join_via,
        )
        self.peers[address] = peer
        self.started_peers += 1
        self._install(peer.contact, peer)
        return peer

    def crash(self, address: Address) -> None:
        """Stop a peer silently: no goodbye, messages to it are lost from now on."""
        peer = self.peers.pop(address, None)
        if peer is None:
            return
        node = self.nodes.pop(address)
        node.core = None
        self.dead.add(peer.id)

    def leave(self, address: Address) -> None:
        """Stop a peer gracefully: it says goodbye first."""
        peer = self.peers.get(address)
        if peer is None:
            return
        self._handle(self.nodes[address], peer.leave(self.now))
        self.crash(address)

    def partition(self, sides: dict[Address, int]) -> None:
        """Lose every message between addresses on different sides (missing: side 0)."""
        self._side = dict(sides)

    def heal(self) -> None:
        self._side = {}

    def at(self, time: float, action: Callable[[], object]) -> None:
        """Run ``action`` at simulated time ``time`` (before that tick's deliveries)."""
        self._action_seq += 1
        tick = max(self.tick, math.ceil(time * TICKS_PER_SECOND - 1e-9))
        heapq.heappush(self._actions, (tick, self._action_seq, action))
        self._schedule_tick(tick)

    def apply(self, address: Address, effects: list[Effect]) -> None:
        """Carry out effects a core returned outside the loop (e.g. a search a test or a
        benchmark started by calling the core directly), as if from an event now."""
        node = self.nodes.get(address)
        if node is None:
            raise KeyError(f"no live core at {address}")
        self._handle(node, effects)

    def alive_peers(self) -> list[Peer]:
        return list(self.peers.values())

    # ------------------------------------------------------------------ the loop

    def run_until(self, time: float) -> None:
        """Process every event up to and including simulated time ``time``."""
        end = math.floor(time * TICKS_PER_SECOND + 1e-9)
        ticks = self._ticks
        buckets = self._buckets
        actions = self._actions
        handle = self._handle
        reschedule = self._reschedule
        while ticks and ticks[0] <= end:
            tick = heapq.heappop(ticks)
            self.tick = tick
            now = tick / TICKS_PER_SECOND
            while actions and actions[0][0] <= tick:
                heapq.heappop(actions)[2]()
            batch = buckets.pop(tick, None)
            if not batch:
                continue
            delivered = 0
            for node, sender, payload in batch:
                core = node.core
                if core is None:
                    continue  # crashed: the message is lost
                if sender is None:
                    if node.timer_tick != tick:
                        continue  # superseded by an earlier timer
                    node.timer_tick = -1
                    effects = core.handle_timer(now)
                else:
                    delivered += 1
                    effects = core.receive(payload, sender, now)
                if effects:
                    handle(node, effects)
                else:
                    reschedule(node, core)
            self.delivered += delivered
        self.tick = max(self.tick, end)

    def _handle(self, node: _Node, effects: list[Effect]) -> None:
        contact = node.contact
        now = self.now
        transmit = self._transmit
        for effect in effects:
            if type(effect) is Send:
                transmit(contact, effect.to, effect.message)
            elif type(effect) is Notify and self.keep_events:
                self.events.append((now, contact.id, effect))
            if self.on_effect is not None:
                self.on_effect(now, contact.address, effect)
        core = node.core
        if core is not None:
            self._reschedule(node, core)

    def _reschedule(self, node: _Node, core: Core) -> None:
        deadline = core.next_deadline()
        if deadline == math.inf:
            return
        tick = math.ceil(deadline * TICKS_PER_SECOND - 1e-9)
        if tick <= self.tick:
            tick = self.tick + 1
        scheduled = node.timer_tick
        if self.tick < scheduled <= tick:
            return
        node.timer_tick = tick
        self._enqueue(tick, (node, None, None))

    def _transmit(self, sender: Contact, to: Address, message: Message) -> None:
        kind = type(message)
        sent = self._sent
        sent[kind] = sent.get(kind, 0) + 1
        network = self.network
        if network.loss > 0.0 and self.rng.random() < network.loss:
            self.lost += 1
            return
        if self._side and self._side.get(sender.address, 0) != self._side.get(to, 0):
            self.lost += 1
            return
        node = self.nodes.get(to)
        if node is None:
            self.lost += 1  # nobody listens there (crashed, or never was)
            return
        delay = self._latency_ticks
        if self._jitter_ticks:
            delay += self.rng.randint(0, self._jitter_ticks)
        self._enqueue(self.tick + delay, (node, sender, message))

    def _enqueue(self, tick: int, event: tuple[_Node, Contact | None, Any]) -> None:
        bucket = self._buckets.get(tick)
        if bucket is None:
            self._buckets[tick] = [event]
            heapq.heappush(self._ticks, tick)
        else:
            bucket.append(event)

    def _schedule_tick(self, tick: int) -> None:
        if tick not in self._buckets:
            self._buckets[tick] = []
            heapq.heappush(self._ticks, tick)

    # ------------------------------------------------------------------ observing

    def snapshots(self) -> list[PeerSnapshot]:
        return [peer.snapshot() for peer in self.peers.values()]

    def summary(self) -> dict[str, Any]:
        return summarize(
            self.snapshots(),
            peers=self.started_peers,
            dead=self.dead,
            messages=self.sent,
            seed=self.seed,
        )
