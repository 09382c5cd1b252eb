"""What a core asks of its random source, so that a runtime may hand it any generator.

The trio runtime hands each peer a ``random.Random``; the simulator hands each peer a
small generator of its own (:mod:`overlay.sim.splitmix`), because a Mersenne Twister
is 2.5 KiB of state and a million of them would not fit beside the peers.  This is
the part of ``random.Random``'s surface the cores use, and no more: a new call in a
core must be added here and to the simulator's generator, which the type checker
enforces.
"""

from __future__ import annotations

from collections.abc import MutableSequence, Sequence
from typing import Protocol, TypeVar

T = TypeVar("T")


class RandomSource(Protocol):
    def random(self) -> float:
        """A float uniform in [0, 1)."""

    def getrandbits(self, k: int, /) -> int:
        """An int with ``k`` random bits."""

    def randrange(self, start: int, /) -> int:
        """An int uniform in [0, start)."""

    def choice(self, seq: Sequence[T], /) -> T:
        """One element of a non-empty sequence."""

    def sample(self, population: Sequence[T], k: int) -> list[T]:
        """``k`` distinct elements, in random order."""

    def shuffle(self, x: MutableSequence[T], /) -> None:
        """Shuffle in place."""

    def paretovariate(self, alpha: float, /) -> float:
        """A Pareto-distributed float (minimum 1)."""
