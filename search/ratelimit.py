"""A token bucket per neighbor, so that one peer cannot make the others flood at will.

Every fresh query a neighbor hands me costs me a forward to all my other neighbors
(and them to theirs): a hostile peer that sends fresh query ids as fast as it can
would turn the overlay into its amplifier.  Each neighbor therefore has a bucket of
``burst`` tokens refilled at ``rate`` per second; a fresh query or a walker step from
it takes one token, and with none left the message is dropped and counted
(``search.rate_limited``).  Honest traffic stays far below the default: a neighbor
forwards me each flood of the overlay once and each walker passing through, so its
rate is the overlay's whole search rate, a few per second in the swarm benchmarks.

The table is bounded (least recently used sender goes first) and pure: time is
the ``now`` the runtime passes in.  It also forgets a sender as soon as its bucket
would be full again: a full bucket is exactly what a sender without an entry gets, so
the table holds only the senders heard within the last ``burst / rate`` seconds (two
by default) and does not fill up, under churn, with peers long gone.
"""

from __future__ import annotations

from collections import OrderedDict

from overlay.protocol.identity import PeerId


class NeighborBuckets:
    """Token buckets keyed by sender id, at most ``size`` of them."""

    def __init__(self) -> None:
        self._buckets: OrderedDict[PeerId, tuple[float, float]] | None = None
        """sender -> (tokens, when they were counted); made on first use (an empty
        OrderedDict is 128 bytes, in every simulated peer)"""

    def __len__(self) -> int:
        buckets = self._buckets
        return len(buckets) if buckets is not None else 0

    def __contains__(self, sender: object) -> bool:
        buckets = self._buckets
        return buckets is not None and sender in buckets

    def allow(self, sender: PeerId, now: float, rate: float, burst: float, size: int) -> bool:
        """Take a token from ``sender``'s bucket; False when it has none (rate 0: no limit).

        The parameters come with each call so that a changed configuration applies at
        once, without rebuilding the table.
        """
        if rate <= 0.0:
            return True
        buckets = self._buckets
        if buckets is None:
            buckets = self._buckets = OrderedDict()
        entry = buckets.pop(sender, None)
        # Refilled for the time since it was last counted (a new sender starts full).
        tokens = burst if entry is None else min(burst, entry[0] + (now - entry[1]) * rate)
        allowed = tokens >= 1.0
        buckets[sender] = (tokens - 1.0 if allowed else tokens, now)
        while len(buckets) > size:
            buckets.popitem(last=False)
        self._forget_refilled(now, rate, burst)
        return allowed

    def _forget_refilled(self, now: float, rate: float, burst: float) -> None:
        """Drop the least recently heard senders whose buckets are full by now (the
        order is by last use, so the scan stops at the first one still short)."""
        buckets = self._buckets
        if buckets is None:
            return
        while buckets:
            sender = next(iter(buckets))
            tokens, counted = buckets[sender]
            if tokens + (now - counted) * rate < burst:
                return
            del buckets[sender]
