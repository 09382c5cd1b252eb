"""Content placement and query popularity, as Lv et al. (ICS 2002) define them.

There are ``m`` items; item i is asked for with probability q_i, Zipf-like
(q_i proportional to 1 / i ** 1.2, their alpha).  Replication puts r_i copies of
item i on distinct peers chosen uniformly at random, with the same total for every
strategy so that they compare at the same storage cost (the *average replication
ratio* rho: sum of r_i = rho * n * m):

* ``uniform``: every item on the same number of peers, rho * n;
* ``proportional``: r_i proportional to q_i;
* ``square-root``: r_i proportional to sqrt(q_i), which Lv et al. show minimises the
  expected number of probes a blind search needs, averaged over queries.

Every item keeps at least one copy (a search for an item nobody holds measures
nothing) and at most n; the copies freed or needed by that clamp are spread over
the other items in proportion.
"""

from __future__ import annotations

import bisect
import math
import random
from collections.abc import Sequence
from itertools import accumulate

STRATEGIES = ("uniform", "proportional", "square-root")
ZIPF_ALPHA = 1.2
ITEMS = 100


def zipf_popularity(items: int = ITEMS, alpha: float = ZIPF_ALPHA) -> list[float]:
    weights = [1.0 / (i + 1) ** alpha for i in range(items)]
    total = sum(weights)
    return [w / total for w in weights]


def _allocate(weights: Sequence[float], total: float, low: int, high: int) -> list[float]:
    """Shares of ``total`` proportional to ``weights``, clamped to [low, high].

    Water-filling: clamp the items whose share falls outside the bounds, give the
    rest what remains in proportion, and repeat until nothing moves.
    """
    fixed: dict[int, float] = {}
    while True:
        free = [i for i in range(len(weights)) if i not in fixed]
        remaining = total - sum(fixed.values())
        weight = sum(weights[i] for i in free)
        share = {i: remaining * weights[i] / weight for i in free} if weight > 0 else {}
        moved = False
        for i, value in share.items():
            if value > high:
                fixed[i] = high
                moved = True
            elif value < low:
                fixed[i] = low
                moved = True
        if not moved or not share:
            return [fixed[i] if i in fixed else share[i] for i in range(len(weights))]


def copies_per_item(
    strategy: str, popularity: Sequence[float], nodes: int, ratio: float
) -> list[int]:
    """How many peers hold each item, at average replication ratio ``ratio``."""
    items = len(popularity)
    if strategy == "uniform":
        return [min(nodes, max(1, round(ratio * nodes)))] * items
    if strategy == "proportional":
        weights = list(popularity)
    elif strategy == "square-root":
        weights = [math.sqrt(q) for q in popularity]
    else:
        raise ValueError(f"unknown replication strategy {strategy!r}")
    target = ratio * nodes * items
    shares = _allocate(weights, target, 1, nodes)
    copies = [max(1, min(nodes, math.floor(s))) for s in shares]
    # Largest remainders first, so the total stays as close to the target as it can.
    short = round(target) - sum(copies)
    order = sorted(range(items), key=lambda i: shares[i] - math.floor(shares[i]), reverse=True)
    for i in order:
        if short <= 0:
            break
        if copies[i] < nodes:
            copies[i] += 1
            short -= 1
    return copies


def place(
    strategy: str,
    popularity: Sequence[float],
    nodes: Sequence[int],
    ratio: float,
    rng: random.Random,
) -> list[list[int]]:
    """The holders of each item: distinct peers drawn uniformly at random."""
    counts = copies_per_item(strategy, popularity, len(nodes), ratio)
    return [sorted(rng.sample(nodes, count)) for count in counts]


class QueryStream:
    """Seeded (source, item) pairs: sources uniform over peers, items by popularity.

    Every mode searches the same stream, so differences between modes are the
    modes' and not the luck of the draw.
    """

    def __init__(self, nodes: Sequence[int], popularity: Sequence[float], seed: int) -> None:
        self._nodes = list(nodes)
        self._cumulative = list(accumulate(popularity))
        self._rng = random.Random(seed)

    def take(self, count: int) -> list[tuple[int, int]]:
        rng = self._rng
        last = len(self._cumulative) - 1
        top = self._cumulative[-1]
        return [
            (
                rng.choice(self._nodes),
                min(last, bisect.bisect_right(self._cumulative, rng.random() * top)),
            )
            for _ in range(count)
        ]
