"""The discrete-event simulator: the same protocol core, in virtual time, from one seed.

It is a runtime, not a second implementation: it hands the cores messages and
timer calls and carries out the effects they return, exactly as the trio
runtime does, only the network is a model:

* time is virtual and advances in ticks of one millisecond; a message sent at
  tick t lands at t + latency (+ uniform jitter, if asked for), so with no jitter
  links are FIFO, as TCP is;
* a message is lost with probability ``loss``; a message between two sides of
  a partition is lost; a message is lost if no live peer listens at its address
  when it lands (a crash is silent: nobody is told, as when a machine dies);
* every random choice comes from the seed, and nothing iterates a set or depends
  on hashing order, so the same seed gives the same run, message for message.

What a peer does depends on the seed and on the events it sees, and on nothing
else, so that a run can be split over processes (:mod:`overlay.sim.parallel`) and
give the same result whatever the split:

* every core has a random stream of its own, derived from the seed and the order
  in which it was started (:mod:`overlay.sim.splitmix`), and the network's loss
  and jitter draws for a message come from a stream of its sender's;
* the events of one tick run in an order that depends only on who caused them:
  first timers, by core, then messages by (sender, sender's sequence number).

The event queue is a calendar: one list of events per tick and a heap of the
ticks in use.  Most events in a run are deliveries, and appending to a list is
far cheaper than pushing on a heap; a tick's list is sorted once, when it runs.
"""

from __future__ import annotations

import gc
import heapq
import math
import random
import zlib
from collections.abc import Callable
from typing import Any, TypeVar

import attrs

from bootstrap.hostcache import HostCache, HostCacheConfig
from overlay.core.config import PeerConfig
from overlay.core.peer import Peer, PeerSnapshot
from overlay.protocol import validate
from overlay.protocol.effects import Core, Effect, Notify, Send
from overlay.protocol.identity import Address, Contact, PeerId, new_peer_id
from overlay.protocol.messages import Message
from overlay.sim.keys import ModelKeyring, seeded_secret
from overlay.sim.splitmix import SplitMix, stream_seed
from overlay.sim.topology import summarize

TICKS_PER_SECOND = 1000
BOOTSTRAP_ADDRESS = Address("10.255.255.254", 7000)
NETWORK_STREAMS = 1 << 40
"""Stream numbers at and above this are the network's draws for a sender (its number
added); below it, a core's own stream.  No run starts 2**40 cores."""
SEQUENCE_BITS = 32
"""An event's order key is its sender's number shifted by this, plus the sender's
sequence number: a core sends fewer than 2**32 messages in a run."""

T = TypeVar("T")
Event = tuple[int, Any, Contact | None, Any]
"""(order key, target, sender, message).  A delivery's target is the address it was
sent to, looked up when it lands; a timer's (sender None) is the node itself.  Keys are
unique but for a node's duplicate timers, which are equal tuples: sorting the tuples
themselves never compares two targets, and needs no key function."""
Outgoing = tuple[int, int, Address, Contact, Message]
"""A message for another worker's peer: (landing tick, order key, to, sender, message)."""


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

    ``number`` is its place in the order the run started cores in (the bootstrap is
    0): it names the host's random streams and orders its events.  ``core`` is None
    once the host has crashed.
    """

    __slots__ = ("contact", "core", "deadline", "net_rng", "number", "sent", "timer_tick")

    def __init__(self, contact: Contact, core: Core, number: int) -> None:
        self.contact = contact
        self.core: Core | None = core
        self.number = number
        self.sent = 0
        self.timer_tick = -1
        self.deadline = math.nan
        """The deadline the timer was last scheduled from (NaN equals nothing)."""
        self.net_rng: SplitMix | None = None
        """The network's draws for this host's messages, made on the first draw."""


def latency_ticks(latency: float) -> int:
    """A link latency in whole ticks (at least one)."""
    return max(1, round(latency * TICKS_PER_SECOND))


def sim_index(address: Address) -> int | None:
    """The index :func:`sim_address` made ``address`` from, or None if it did not."""
    parts = address.host.split(".")
    if len(parts) != 4 or parts[0] != "10" or address.port != 7000:
        return None
    try:
        b, c, d = int(parts[1]), int(parts[2]), int(parts[3])
    except ValueError:
        return None
    return (d << 16) | (b << 8) | c


@attrs.frozen
class Shard:
    """Which of ``count`` worker processes a simulator is: it runs the peers whose
    index is ``worker`` modulo ``count``, and worker 0 runs the bootstrap."""

    worker: int = attrs.field(validator=validate.integer(0, 1024))
    count: int = attrs.field(validator=validate.integer(1, 1024))

    def owner(self, address: Address) -> int:
        """The worker whose peers include whoever listens at ``address``."""
        if self.count == 1 or address == BOOTSTRAP_ADDRESS:
            return 0
        index = sim_index(address)
        if index is None:  # not a simulated address: any fixed worker will do
            return zlib.crc32(str(address).encode()) % self.count
        return index % self.count


class Simulator:
    """A seeded, deterministic run of many peer cores and one bootstrap.

    With a ``shard`` it is one worker of a parallel run (:mod:`overlay.sim.parallel`):
    it holds only its own peers, keeps messages for the others' in :attr:`outgoing`,
    and takes theirs with :meth:`receive_incoming`.  Everything else (the scenario's
    schedule, its random choices, the count of peers started) is replicated: every
    worker does it, and only the owner of a peer acts on it.
    """

    def __init__(
        self,
        *,
        seed: int = 0,
        network: NetworkModel | None = None,
        peer_config: PeerConfig | None = None,
        bootstrap_config: HostCacheConfig | None = None,
        with_bootstrap: bool = True,
        shard: Shard | None = None,
    ) -> None:
        self.seed = seed
        self.rng = random.Random(seed)
        """The scenario's choices (whom to crash, the partition): replicated in every worker."""
        self.network = network or NetworkModel()
        self.peer_config = peer_config or PeerConfig()
        self.shard = shard or Shard(0, 1)
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
        self.outgoing: list[list[Outgoing]] = [[] for _ in range(self.shard.count)]
        """Messages for each other worker's peers, sent since the last :meth:`take_outgoing`."""
        self.gatherer: Callable[[list[Any]], list[Any]] | None = None
        """Set by a parallel run: joins a list from every worker (see :meth:`gather`)."""
        self._buckets: dict[int, list[Event]] = {}
        self._ticks: list[int] = []
        self._actions: list[tuple[int, int, Callable[[], object]]] = []
        self._action_seq = 0
        self._side: dict[Address, int] = {}
        self._owners: dict[Address, int] = {}
        """The worker of each address written to from here: one per peer of the run."""
        self._next_index = 0
        self._cores_started = 0
        self._latency_ticks = latency_ticks(self.network.latency)
        self._jitter_ticks = round(self.network.jitter * TICKS_PER_SECOND)
        self.keyring = ModelKeyring()
        """Every peer's model key; the verifier every core is handed (overlay.sim.keys)."""
        self.bootstrap: HostCache | None = None
        """The bootstrap's core, in the worker that runs it (worker 0)."""
        self.with_bootstrap = with_bootstrap
        if with_bootstrap:
            contact = Contact(new_peer_id(self.rng), BOOTSTRAP_ADDRESS)
            number = self._number()
            if self.shard.worker == 0:
                self.bootstrap = HostCache(
                    contact, bootstrap_config or HostCacheConfig(), self._stream(number)
                )
                self._install(contact, self.bootstrap, number)

    # ------------------------------------------------------------------ population

    @property
    def now(self) -> float:
        return self.tick / TICKS_PER_SECOND

    @property
    def lookahead(self) -> int:
        """The fewest ticks a message takes: the window a parallel run may run blindly."""
        return self._latency_ticks

    def _number(self) -> int:
        number = self._cores_started
        self._cores_started += 1
        return number

    def _stream(self, number: int) -> SplitMix:
        return SplitMix(stream_seed(self.seed, number))

    @property
    def sent(self) -> dict[str, int]:
        """Messages sent so far, by type name (lost ones included)."""
        return {kind.__name__: count for kind, count in self._sent.items()}

    def _install(self, contact: Contact, core: Core, number: int) -> None:
        node = _Node(contact, core, number)
        self.nodes[contact.address] = node
        self._handle(node, core.start(self.now))

    def spawn(
        self,
        *,
        address: Address | None = None,
        config: PeerConfig | None = None,
        join_via: Address | None = None,
        kind: type[Peer] = Peer,
    ) -> Peer | None:
        """Start a new peer now, if this worker owns its address (else None): it joins
        through the bootstrap (or ``join_via``).  Every worker calls this for every
        peer of the run, so that the peers' numbers and addresses agree."""
        if address is None:
            address = sim_address(self._next_index)
            self._next_index += 1
        number = self._number()
        self.started_peers += 1
        # Every worker knows every peer's key, so any of them can check its signatures.
        key = self.keyring.pair_of(seeded_secret(self.seed, number))
        if self.shard.owner(address) != self.shard.worker:
            return None
        peer = kind(
            address,
            config or self.peer_config,
            self._stream(number),
            signer=key,
            verifier=self.keyring,
            bootstrap=BOOTSTRAP_ADDRESS
            if self.bootstrap is not None or self.shard.count > 1
            else None,
            join_via=join_via,
        )
        self.peers[address] = peer
        self._install(peer.contact, peer, number)
        return peer

    def add_peer(
        self,
        *,
        address: Address | None = None,
        config: PeerConfig | None = None,
        join_via: Address | None = None,
        kind: type[Peer] = Peer,
    ) -> Peer:
        """Start a new peer now (in a run of one worker); it joins through the bootstrap
        (or ``join_via``).

        ``kind``: a subclass of :class:`Peer` (the adversarial cores of the tests), built
        with the same arguments and a key of its own like any peer's."""
        peer = self.spawn(address=address, config=config, join_via=join_via, kind=kind)
        if peer is None:
            raise ValueError("add_peer is for a run of one worker; use spawn")
        return peer

    def crash(self, address: Address) -> None:
        """Stop a peer silently: no goodbye, messages to it are lost from now on.
        (A peer of another worker: nothing to do here.)"""
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

    def gather(self, items: list[T]) -> list[T]:
        """``items`` from every worker of the run, worker by worker (this worker's alone
        when it is the only one).  Every worker must call it at the same point of the
        run: the scenario does, as its actions run in every worker."""
        if self.gatherer is None:
            return items
        return self.gatherer(items)

    def at(self, time: float, action: Callable[[], object]) -> None:
        """Run ``action`` at simulated time ``time`` (before that tick's deliveries)."""
        self._action_seq += 1
        tick = max(self.tick, math.ceil(time * TICKS_PER_SECOND - 1e-9))
        heapq.heappush(self._actions, (tick, self._action_seq, action))
        if tick not in self._buckets:
            self._buckets[tick] = []
            heapq.heappush(self._ticks, tick)

    def next_action_tick(self) -> int | None:
        return self._actions[0][0] if self._actions else None

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
        self.run_ticks(math.floor(time * TICKS_PER_SECOND + 1e-9))

    def run_ticks(self, end: int) -> None:
        """Process every event up to and including tick ``end``.

        One loop serves every network, with transmit and reschedule inlined for the
        plain one (:meth:`_plain`): there every message lands exactly one latency later,
        so one tick's sends all go to one bucket.  Anything else (loss, jitter, a
        partition, an observer) goes through :meth:`_handle`.
        """
        ticks = self._ticks
        buckets = self._buckets
        actions = self._actions
        nodes_get = self.nodes.get
        sent = self._sent
        sent_get = sent.get
        handle = self._handle
        latency = self._latency_ticks
        ceil = math.ceil
        heappop = heapq.heappop
        enqueue = self._enqueue
        remote = self._remote
        solo = self.shard.count == 1
        plain = self._plain()
        while ticks and ticks[0] <= end:
            tick = heappop(ticks)
            self.tick = tick
            now = tick / TICKS_PER_SECOND
            while actions and actions[0][0] <= tick:
                heappop(actions)[2]()
                plain = self._plain()  # an action may have partitioned the network
            batch = buckets.pop(tick, None)
            if not batch:
                continue
            batch.sort()  # the same order whichever worker sent what (keys: see Event)
            arrive = tick + latency
            out = buckets.get(arrive)
            if out is None:
                out = buckets[arrive] = []
                heapq.heappush(ticks, arrive)
            delivered = lost = 0
            for _, target, sender, payload in batch:
                if sender is None:
                    node = target
                    core = node.core
                    if core is None or node.timer_tick != tick:
                        continue  # crashed, or superseded by an earlier timer
                    node.timer_tick = -1
                    effects = core.handle_timer(now)
                else:
                    node = nodes_get(target)
                    if node is None:
                        lost += 1  # nobody listens there (crashed, or never was)
                        continue
                    core = node.core
                    if core is None:
                        continue  # (a crashed node has left self.nodes already)
                    delivered += 1
                    effects = core.receive(payload, sender, now)
                if not plain:
                    handle(node, effects)
                    continue
                if effects:
                    contact = node.contact
                    for effect in effects:
                        if type(effect) is Send:
                            message = effect.message
                            kind = type(message)
                            sent[kind] = sent_get(kind, 0) + 1
                            key = (node.number << SEQUENCE_BITS) + node.sent
                            node.sent += 1
                            to = effect.to
                            if solo or to in self.nodes:
                                out.append((key, to, contact, message))
                            else:
                                remote(arrive, key, to, contact, message)
                # _reschedule, skipped when the deadline is the one already scheduled
                deadline = core.next_deadline()
                if deadline == node.deadline and node.timer_tick > tick:
                    continue
                node.deadline = deadline
                if deadline == math.inf:
                    continue
                due = ceil(deadline * TICKS_PER_SECOND - 1e-9)
                if due <= tick:
                    due = tick + 1
                if tick < node.timer_tick <= due:
                    continue
                node.timer_tick = due
                if due == arrive:
                    out.append((-1 - node.number, node, None, None))
                else:
                    enqueue(due, (-1 - node.number, node, None, None))
            self.delivered += delivered
            self.lost += lost
        self.tick = max(self.tick, end)

    def _plain(self) -> bool:
        """No loss, jitter, partition or observer: the common case."""
        return (
            self.network.loss == 0.0
            and not self._jitter_ticks
            and not self._side
            and self.on_effect is None
            and not self.keep_events
        )

    def _handle(self, node: _Node, effects: list[Effect]) -> None:
        now = self.now
        transmit = self._transmit
        for effect in effects:
            if type(effect) is Send:
                transmit(node, effect.to, effect.message)
            elif type(effect) is Notify and self.keep_events:
                self.events.append((now, node.contact.id, effect))
            if self.on_effect is not None:
                self.on_effect(now, node.contact.address, effect)
        core = node.core
        if core is not None:
            self._reschedule(node, core)

    def _reschedule(self, node: _Node, core: Core) -> None:
        deadline = core.next_deadline()
        if deadline == node.deadline and node.timer_tick > self.tick:
            return  # the timer already pending is the one this deadline asks for
        node.deadline = deadline
        if deadline == math.inf:
            return
        tick = math.ceil(deadline * TICKS_PER_SECOND - 1e-9)
        if tick <= self.tick:
            tick = self.tick + 1
        scheduled = node.timer_tick
        if self.tick < scheduled <= tick:
            return
        node.timer_tick = tick
        self._enqueue(tick, (-1 - node.number, node, None, None))

    def _transmit(self, node: _Node, to: Address, message: Message) -> None:
        kind = type(message)
        sent = self._sent
        sent[kind] = sent.get(kind, 0) + 1
        key = (node.number << SEQUENCE_BITS) + node.sent
        node.sent += 1
        network = self.network
        if network.loss > 0.0 and self._net_rng(node).random() < network.loss:
            self.lost += 1
            return
        sender = node.contact
        if self._side and self._side.get(sender.address, 0) != self._side.get(to, 0):
            self.lost += 1
            return
        arrive = self.tick + self._latency_ticks
        if self._jitter_ticks:
            arrive += self._net_rng(node).randrange(self._jitter_ticks + 1)
        if self.shard.count == 1 or to in self.nodes:
            self._enqueue(arrive, (key, to, sender, message))
        else:
            self._remote(arrive, key, to, sender, message)

    def _net_rng(self, node: _Node) -> SplitMix:
        if node.net_rng is None:
            node.net_rng = self._stream(NETWORK_STREAMS + node.number)
        return node.net_rng

    def _remote(
        self, arrive: int, key: int, to: Address, sender: Contact, message: Message
    ) -> None:
        owner = self._owners.get(to)
        if owner is None:  # (parsing the address each time was 3% of a worker's time)
            owner = self._owners[to] = self.shard.owner(to)
        if owner == self.shard.worker:  # ours, though nobody listens there now
            self._enqueue(arrive, (key, to, sender, message))
        else:
            self.outgoing[owner].append((arrive, key, to, sender, message))

    def take_outgoing(self) -> list[list[Outgoing]]:
        """The messages for each worker's peers sent since the last call."""
        outgoing = self.outgoing
        self.outgoing = [[] for _ in range(self.shard.count)]
        return outgoing

    def receive_incoming(self, messages: list[Outgoing]) -> None:
        """Messages other workers sent to this one's peers (none lands before now)."""
        enqueue = self._enqueue
        for arrive, key, to, sender, message in messages:
            enqueue(arrive, (key, to, sender, message))

    def next_event_tick(self) -> int | None:
        return self._ticks[0] if self._ticks else None

    def _enqueue(self, tick: int, event: Event) -> None:
        bucket = self._buckets.get(tick)
        if bucket is None:
            self._buckets[tick] = [event]
            heapq.heappush(self._ticks, tick)
        else:
            bucket.append(event)

    # ------------------------------------------------------------------ observing

    def snapshots(self) -> list[PeerSnapshot]:
        return [peer.snapshot() for peer in self.peers.values()]

    def summary(self, *, final: bool = False) -> dict[str, Any]:
        """The summary of the run so far (:func:`overlay.sim.topology.summarize`).

        ``final``: the run is over, and the cores are let go (:meth:`release`) once
        their snapshots are taken, so that the summary's graph is built in the memory
        they held rather than beside it (at 100,000 peers the cores hold about 0.8 GiB,
        the graph about 50 MiB).  The simulator runs nothing after that."""
        dead = self.dead
        shots = [for_summary(peer, dead) for peer in self.peers.values()]
        if final:
            self.release()
        return summarize(
            shots,
            peers=self.started_peers,
            dead=dead,
            messages=self.sent,
            seed=self.seed,
        )

    def release(self) -> None:
        """Let go of every core, node and pending event: the run is over.  Counts
        (started peers, sent, delivered, lost) and the dead stay."""
        self.peers = {}
        self.nodes = {}
        self._buckets = {}
        self._ticks = []
        self._actions = []
        self._owners = {}
        self.outgoing = [[] for _ in range(self.shard.count)]
        self.bootstrap = None
        self.keyring = ModelKeyring()
        # The scheduled actions' closures and the cores' parts may refer to each other:
        # what refcounting cannot free, one collection does.
        gc.collect()


def for_summary(peer: Peer, dead: set[PeerId] | None = None) -> PeerSnapshot:
    """A peer's snapshot without its counters, which the summary does not read: at a
    million peers they would be the biggest part of what the summary holds at once.

    With ``dead`` (the peers known to have crashed or left), the passive view keeps
    only the entries naming them: the summary reads it for nothing else (it counts
    them, ``dangling_passive_entries``), and the whole view is 30 ids a peer."""
    shot = peer.snapshot()
    if dead is None:
        return attrs.evolve(shot, counters={})
    return attrs.evolve(shot, counters={}, passive=tuple(p for p in shot.passive if p in dead))
