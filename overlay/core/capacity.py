"""Peer capacities as deployed P2P systems have them: heavy-tailed.

Its own module, importing nothing of the simulator, because both the simulator
(:mod:`overlay.sim.scenario`) and a swarm worker process (:mod:`overlay.net.swarm.worker`)
draw capacities, and a worker must not pay for the simulator's imports.
"""

from __future__ import annotations

from overlay.protocol.randomness import RandomSource


def pareto_capacity(rng: RandomSource) -> int:
    """A heavy-tailed capacity (Pareto, shape 1.2, at least 10): most peers are modest,
    a few are very strong, as measured in deployed P2P systems (Saroiu, Gummadi and
    Gribble, MMCN 2002)."""
    return min(1_000_000, round(10 * rng.paretovariate(1.2)))
