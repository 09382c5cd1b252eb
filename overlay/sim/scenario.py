"""Scenarios for the simulator: a population, faults on a schedule, a summary at the end.

This is what ``overlay sim`` runs.  Like a PeerSim configuration, a scenario is
a small record (size, seed, duration, faults) and the run is reproducible from
it: the same record gives the same summary, apart from the wall-clock fields.

Choices where the issue is silent, written down here:

* Peers join uniformly spread over ``join_window`` seconds (default: 10 s, or
  less for small runs), not all in one tick: a bootstrap that knows nobody
  cannot hand a thousand simultaneous newcomers a sample.
* ``churn`` is the number of peers that crash *and* the number that join, per
  simulated second (a fractional part is a Bernoulli draw).  Churn starts once
  the initial joins are done and stops ``settle`` seconds before the end, so the
  final summary describes the overlay rather than the last second's newcomers.
* ``crash_fraction`` crashes that fraction of the live peers, chosen at random,
  at ``crash_at``; crashed peers do not come back unless ``recover_after`` is set,
  in which case each comes back (a new incarnation: same address, new id) that
  many seconds later.
* A partition splits the live peers in two random halves (the bootstrap stays
  on side 0) from ``partition_at`` to ``heal_at``.
* The bootstrap's tables are sized for the population: it holds and rate-tracks
  at least twice as many ids as the scenario has peers (200,000 by default, as
  ``overlay bootstrap`` does).  A bootstrap sized for fewer refuses newcomers while
  its rate table is full, as it should under a flood of fresh keys; at a million
  peers joining in 10 s that left 600,000 of them still joining after 30 s.
"""

from __future__ import annotations

import math
import random
import time
import tracemalloc
from collections.abc import Callable
from typing import Any

import attrs

from bootstrap.hostcache import HostCacheConfig
from overlay.collector import few_collections
from overlay.core.capacity import pareto_capacity
from overlay.core.config import PeerConfig
from overlay.core.peer import Peer
from overlay.protocol import validate
from overlay.protocol.identity import Address
from overlay.sim.simulator import NetworkModel, Shard, Simulator


@attrs.frozen
class Scenario:
    peers: int = attrs.field(default=1000, validator=validate.integer(1, 10_000_000))
    seed: int = attrs.field(default=1, validator=validate.integer(0, 2**63))
    duration: float = attrs.field(default=60.0, validator=validate.real(0.0, 1e7))
    loss: float = attrs.field(default=0.0, validator=validate.real(0.0, 1.0))
    latency: float = attrs.field(default=0.02, validator=validate.real(0.001, 60.0))
    jitter: float = attrs.field(default=0.0, validator=validate.real(0.0, 60.0))
    churn: float = attrs.field(default=0.0, validator=validate.real(0.0, 1e6))
    leave_fraction: float = attrs.field(default=0.0, validator=validate.real(0.0, 1.0))
    """Of the peers that churn away, the fraction that leave gracefully (rest crash)."""
    crash_fraction: float = attrs.field(default=0.0, validator=validate.real(0.0, 1.0))
    crash_at: float | None = attrs.field(
        default=None, validator=validate.optional(validate.real(0, 1e7))
    )
    recover_after: float | None = attrs.field(
        default=None, validator=validate.optional(validate.real(0, 1e7))
    )
    partition_at: float | None = attrs.field(
        default=None, validator=validate.optional(validate.real(0, 1e7))
    )
    heal_at: float | None = attrs.field(
        default=None, validator=validate.optional(validate.real(0, 1e7))
    )
    join_window: float | None = attrs.field(
        default=None, validator=validate.optional(validate.real(0, 1e7))
    )
    settle: float = attrs.field(default=10.0, validator=validate.real(0.0, 1e7))
    peer_config: PeerConfig = attrs.field(factory=PeerConfig)
    super_peers: bool = attrs.field(default=False, validator=validate.boolean)
    """Run the super-peer layer (same as ``peer_config.supers.enabled``).  With it on,
    each peer gets a capacity drawn from a heavy-tailed distribution and
    ``items_per_peer`` items of its own, so that roles and index coverage mean something."""
    items_per_peer: int = attrs.field(default=3, validator=validate.integer(0, 128))
    crash_super_fraction: float = attrs.field(default=0.0, validator=validate.real(0.0, 1.0))
    """Crash this fraction of the live super peers at once, at ``crash_super_at``."""
    crash_super_at: float | None = attrs.field(
        default=None, validator=validate.optional(validate.real(0, 1e7))
    )

    @property
    def window(self) -> float:
        if self.join_window is not None:
            return self.join_window
        return min(10.0, max(1.0, self.peers / 1000.0))


Observer = Callable[[Simulator, float], None]


def bootstrap_config_for(peers: int) -> HostCacheConfig:
    """The simulated bootstrap, with room to hold and rate-track ``peers`` twice over."""
    default = HostCacheConfig()
    room = max(2 * peers, default.max_entries, default.rate_table_size)
    return attrs.evolve(default, max_entries=room, rate_table_size=room)


def build(scenario: Scenario, shard: Shard | None = None) -> Simulator:
    """A simulator with the scenario's population and faults scheduled, not yet run
    (with a ``shard``: one worker's part of it, see :mod:`overlay.sim.parallel`).

    Every worker schedules every action and makes every random choice, so that all
    agree on who is crashed or started when; each acts only on its own peers, and what
    an action must know of the others' (who is alive, who is a super peer) it learns
    through :meth:`Simulator.gather`.
    """
    sim = Simulator(
        seed=scenario.seed,
        network=NetworkModel(latency=scenario.latency, jitter=scenario.jitter, loss=scenario.loss),
        peer_config=scenario.peer_config,
        bootstrap_config=bootstrap_config_for(scenario.peers),
        shard=shard,
    )
    window = scenario.window
    spawn = Spawner(sim, scenario)
    for index in range(scenario.peers):
        sim.at(window * index / scenario.peers, spawn)
    if scenario.crash_at is not None and scenario.crash_fraction > 0:
        sim.at(scenario.crash_at, lambda: _mass_crash(sim, scenario, spawn))
    if scenario.crash_super_at is not None and scenario.crash_super_fraction > 0:
        sim.at(scenario.crash_super_at, lambda: _crash_supers(sim, scenario))
    if scenario.partition_at is not None:
        sim.at(scenario.partition_at, lambda: _partition(sim))
        if scenario.heal_at is not None:
            sim.at(scenario.heal_at, sim.heal)
    if scenario.churn > 0:
        start = math.ceil(window) + 1
        stop = scenario.duration - scenario.settle
        second = start
        while second < stop:
            sim.at(second, lambda: _churn_step(sim, scenario, spawn))
            second += 1
    return sim


class Spawner:
    """Starts the scenario's peers.  With the super layer on, draws each one's capacity
    and gives it items, from a random source of its own so that the network's and the
    peers' random streams are the same as in a flat run of the same seed."""

    def __init__(self, sim: Simulator, scenario: Scenario) -> None:
        self.sim = sim
        self.scenario = scenario
        self.rng = random.Random(scenario.seed * 7919 + 17)
        self.spawned = 0
        config = scenario.peer_config
        if scenario.super_peers and not config.supers.enabled:
            config = attrs.evolve(config, supers=attrs.evolve(config.supers, enabled=True))
        self.config = config
        self.layered = config.supers.enabled

    def __call__(self, address: Address | None = None) -> Peer | None:
        """The new peer, or None if another worker runs it."""
        sim = self.sim
        if not self.layered:
            return sim.spawn(address=address)
        config = attrs.evolve(self.config, capacity=pareto_capacity(self.rng))
        peer = sim.spawn(address=address, config=config)
        number = self.spawned
        self.spawned += 1
        if peer is None:
            return None
        for item in range(self.scenario.items_per_peer):
            peer.search.publish(f"scenario item {number}.{item}".encode(), f"item {number} {item}")
        return peer


def _alive(sim: Simulator) -> list[Address]:
    """The addresses of every live peer of the run, sorted."""
    return sorted(sim.gather(list(sim.peers)))


def _mass_crash(sim: Simulator, scenario: Scenario, spawn: Spawner) -> None:
    alive = _alive(sim)
    victims = sim.rng.sample(alive, round(len(alive) * scenario.crash_fraction))
    for address in victims:
        sim.crash(address)
        if scenario.recover_after is not None:
            sim.at(sim.now + scenario.recover_after, _recover(spawn, address))


def _crash_supers(sim: Simulator, scenario: Scenario) -> None:
    mine = [address for address, peer in sim.peers.items() if peer.role == "super"]
    supers = sorted(sim.gather(mine))
    for address in sim.rng.sample(supers, round(len(supers) * scenario.crash_super_fraction)):
        sim.crash(address)


def _recover(spawn: Spawner, address: Address) -> Callable[[], object]:
    return lambda: spawn(address)


def _partition(sim: Simulator) -> None:
    addresses = _alive(sim)
    sim.rng.shuffle(addresses)
    half = len(addresses) // 2
    sim.partition({address: 1 for address in addresses[:half]})


def _churn_step(sim: Simulator, scenario: Scenario, spawn: Spawner) -> None:
    count = int(scenario.churn)
    if sim.rng.random() < scenario.churn - count:
        count += 1
    addresses = _alive(sim)
    for address in sim.rng.sample(addresses, min(count, len(addresses))):
        if sim.rng.random() < scenario.leave_fraction:
            sim.leave(address)
        else:
            sim.crash(address)
    for _ in range(count):
        spawn()


def run(
    scenario: Scenario,
    *,
    observer: Observer | None = None,
    progress: Callable[[float], None] | None = None,
    measure_memory: bool = False,
) -> dict[str, Any]:
    """Run a scenario to its end and return its summary.

    ``observer`` is called after every simulated second (for tests that assert
    invariants throughout); ``progress`` gets the simulated time reached.
    """
    sim = build(scenario)
    if measure_memory:
        tracemalloc.start()
    started = time.perf_counter()
    watching = 0.0  # time spent in the observer, not in the simulation
    second = 0.0
    with few_collections():
        while second < scenario.duration:
            second = min(second + 1, scenario.duration)
            sim.run_until(second)
            if observer is not None:
                before = time.perf_counter()
                observer(sim, second)
                watching += time.perf_counter() - before
            if progress is not None:
                progress(second)
    wall = time.perf_counter() - started - watching
    peak = tracemalloc.get_traced_memory()[1] if measure_memory else None
    if measure_memory:
        tracemalloc.stop()
    summary = sim.summary(final=True)
    summary.update(
        {
            "seed": scenario.seed,
            "sim_seconds": sim.now,
            "wall_seconds": wall,
            "delivered_messages": sim.delivered,
            "lost_messages": sim.lost,
            "messages_per_wall_second": sim.delivered / wall if wall > 0 else 0.0,
            "workers": 1,
        }
    )
    if peak is not None:
        summary["peak_traced_memory_bytes"] = peak
    return summary


WALL_CLOCK_FIELDS = ("wall_seconds", "messages_per_wall_second", "peak_traced_memory_bytes")
RUN_FIELDS = (*WALL_CLOCK_FIELDS, "workers")
"""What differs between two runs of one scenario: the wall clock and how it was run."""
