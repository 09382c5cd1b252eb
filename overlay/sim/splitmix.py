"""A small random generator for simulated peers: SplitMix64, in pure Python.

Each simulated peer has a random stream of its own, derived from the run's seed and
the peer's number, so that what a peer does depends on nothing but the seed and the
events it sees: not on which other peers share its process, nor on how many worker
processes there are.  ``random.Random`` would do, but its Mersenne Twister keeps 2.5
KiB of state per instance, 2.5 GiB at a million peers; this one keeps one int.

SplitMix64 (Steele, Lea and Flood, OOPSLA 2014; the generator Java's
``SplittableRandom`` uses) adds a constant to a 64-bit counter and scrambles it: its
output passes BigCrush, and it is not meant for secrets.  The methods are the
surface :class:`overlay.protocol.randomness.RandomSource` names, with the semantics of
``random.Random``'s (not its exact streams).
"""

from __future__ import annotations

from collections.abc import MutableSequence, Sequence
from typing import TypeVar

T = TypeVar("T")

_MASK = (1 << 64) - 1
_GAMMA = 0x9E3779B97F4A7C15
_TO_UNIT = 2.0**-53


def mix64(z: int) -> int:
    """SplitMix64's finaliser: a bijection of 64-bit ints that scatters nearby inputs."""
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _MASK
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _MASK
    return z ^ (z >> 31)


def stream_seed(seed: int, stream: int) -> int:
    """The starting state of stream number ``stream`` of a run seeded with ``seed``:
    distinct streams of one seed, and one stream of distinct seeds, start far apart."""
    return mix64((mix64(seed & _MASK) + (stream + 1) * _GAMMA) & _MASK)


class SplitMix:
    """One stream of SplitMix64 (see the module's docstring)."""

    __slots__ = ("_state",)

    def __init__(self, state: int) -> None:
        self._state = state & _MASK

    def _next(self) -> int:
        z = self._state = (self._state + _GAMMA) & _MASK
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _MASK
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _MASK
        return z ^ (z >> 31)

    def random(self) -> float:
        z = self._state = (self._state + _GAMMA) & _MASK  # _next, inlined: the hot call
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _MASK
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _MASK
        return ((z ^ (z >> 31)) >> 11) * _TO_UNIT

    def getrandbits(self, k: int, /) -> int:
        if k < 0:
            raise ValueError("number of bits must be non-negative")
        value = 0
        have = 0
        while have < k:
            value = (value << 64) | self._next()
            have += 64
        return value >> (have - k)

    def _below(self, n: int) -> int:
        """Uniform in [0, n), by rejection as ``random.Random`` does (no modulo bias)."""
        if n > _MASK:
            bits = n.bit_length()
            value = self.getrandbits(bits)
            while value >= n:
                value = self.getrandbits(bits)
            return value
        return self._draw_below(n, 64 - n.bit_length())

    def _draw_below(self, n: int, shift: int) -> int:
        """``_below(n)`` for ``n`` within 64 bits, ``_next`` inlined: every sample, choice
        and shuffle of a simulated peer comes here, once per element."""
        state = self._state
        while True:
            state = (state + _GAMMA) & _MASK
            z = ((state ^ (state >> 30)) * 0xBF58476D1CE4E5B9) & _MASK
            z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _MASK
            value = (z ^ (z >> 31)) >> shift
            if value < n:
                self._state = state
                return value

    def randrange(self, start: int, /) -> int:
        if start <= 0:
            raise ValueError(f"empty range for randrange({start})")
        return self._below(start)

    def choice(self, seq: Sequence[T], /) -> T:
        if not seq:
            raise IndexError("cannot choose from an empty sequence")
        return seq[self._below(len(seq))]

    def shuffle(self, x: MutableSequence[T], /) -> None:
        for i in reversed(range(1, len(x))):
            j = self._below(i + 1)
            x[i], x[j] = x[j], x[i]

    def sample(self, population: Sequence[T], k: int) -> list[T]:
        n = len(population)
        if not 0 <= k <= n:
            raise ValueError("sample larger than population or is negative")
        draw = self._draw_below  # a sequence's length fits in 64 bits: no _below check
        if k * 4 < n:  # few of many: draw indices, skip repeats
            shift = 64 - n.bit_length()
            picked: set[int] = set()
            result: list[T] = []
            while len(result) < k:
                j = draw(n, shift)
                if j not in picked:
                    picked.add(j)
                    result.append(population[j])
            return result
        pool = list(population)  # a partial Fisher-Yates shuffle
        for i in range(k):
            left = n - i
            j = i + draw(left, 64 - left.bit_length())
            pool[i], pool[j] = pool[j], pool[i]
        return pool[:k]

    def paretovariate(self, alpha: float, /) -> float:
        return float((1.0 - self.random()) ** (-1.0 / alpha))
