"""What ``overlay swarm`` gives its peers: seeded items, capacities, the super-peer config.

The parent (:mod:`overlay.tools.swarm`) and its worker processes (:mod:`overlay.net.swarm.worker`)
both need these, and each computes them itself from the swarm's arguments: every
function here is a pure function of its arguments (seeded random sources of their own),
so a worker draws its own peers' share and a test or benchmark that knows the arguments
knows every key and capacity without asking anyone.  Kept apart from the parent's module
so that a worker imports nothing of what only the parent uses (networkx, rich).
"""

from __future__ import annotations

import random
from typing import Final

import attrs

from overlay.core.capacity import pareto_capacity
from overlay.core.config import PeerConfig, SuperConfig
from overlay.net.node import NodeConfig

LOOPBACK: Final = "127.0.0.1"
SPREAD_PREFIXES: Final = 250
"""/24s a loopback swarm spreads its peers over (127.1.1.0/24 to 127.1.250.0/24)."""
LOOPBACK_PEERS: Final = SPREAD_PREFIXES * 254


def loopback_host(index: int) -> str:
    """Where the swarm's peer ``index`` listens (and dials from) on loopback.

    Peer i is on 127.1.(i mod 250 + 1).(i div 250 + 1): consecutive peers on different
    /24s, at most ceil(n / 250) per /24 (4 for 1,000 peers), up to 63,500 peers.  So
    the caps per host and per /24 and the bootstrap's per-prefix limits count the
    swarm's peers apart, as they would count machines apart (Linux routes all of
    127.0.0.0/8 to the loopback interface: no set-up needed)."""
    if not 0 <= index < LOOPBACK_PEERS:
        raise ValueError(f"a loopback swarm spreads at most {LOOPBACK_PEERS} peers")
    return f"127.1.{index % SPREAD_PREFIXES + 1}.{index // SPREAD_PREFIXES + 1}"


CONNECTION_HEADROOM = 64
"""Connections a super peer keeps free beyond its weak peers and neighbors (clients,
stats requests, shuffles, the bootstrap)."""


def seeded_items(count: int, seed: int) -> list[tuple[bytes, str]]:
    """The (value, name) of the items ``overlay swarm --items COUNT --seed SEED`` seeds.

    Item i's name has the word ``item<i>``, unique to it, so it can be searched for by
    keywords as well as by key.
    """
    return [
        (f"overlay swarm item {i} of {count}, seed {seed}\n".encode(), f"swarm item{i} seed{seed}")
        for i in range(count)
    ]


def copies_for(replication: float, peers: int) -> int:
    """Copies of each item when a fraction ``replication`` of ``peers`` holds it: at least
    one, at most every peer."""
    return min(peers, max(1, round(replication * peers)))


def seed_plan(count: int, copies: int, peers: int, seed: int) -> list[list[int]]:
    """For each seeded item, the indices (in start order) of the peers that hold it:
    ``copies`` distinct peers (at most every peer), drawn from their own seeded random
    source."""
    rng = random.Random(f"swarm items {seed}")
    holders = min(peers, max(1, copies))
    return [sorted(rng.sample(range(peers), holders)) for _ in range(count)]


def peer_capacity(seed: int, index: int) -> int:
    """Peer ``index``'s capacity in a super-peer swarm: heavy-tailed, as in the simulator
    (:func:`overlay.core.capacity.pareto_capacity`), and a pure function of (seed, index), so a
    worker draws its own peers' and the same arguments give the same capacities."""
    return pareto_capacity(random.Random(f"swarm capacity {seed} {index}"))


def super_peer_config(capacity: int) -> PeerConfig:
    """The defaults, with the super-peer layer on and this capacity (``overlay peer
    --super-peers`` and ``overlay swarm --super-peers``)."""
    return PeerConfig(capacity=capacity, supers=SuperConfig(enabled=True))


def room_for_weak_peers(config: NodeConfig, peer: PeerConfig) -> NodeConfig:
    """``config`` with room for what a super peer accepts: a connection from each weak
    peer it may serve (``max_load``), its super-layer and overlay neighbors, and some
    headroom.  The default budget (64) is below the default ``max_load`` (80), and a
    super peer at it would refuse the very weak peers it was elected for.  Caps per host
    and prefix that were lifted to the whole budget (a swarm on loopback) stay lifted."""
    supers = peer.supers
    needed = (
        supers.max_load + supers.max_super_degree + peer.membership.max_degree + CONNECTION_HEADROOM
    )
    if not supers.enabled or config.max_connections >= needed:
        return config
    lifted = {
        name: needed
        for name in ("max_per_host", "max_per_prefix")
        if getattr(config, name) >= config.max_connections
    }
    return attrs.evolve(config, max_connections=needed, **lifted)
