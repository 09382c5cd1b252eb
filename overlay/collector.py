"""Python's cyclic garbage collector, kept out of a long-running overlay's way.

Both runtimes hold many long-lived objects (peers, views, links, queued messages)
and make little cyclic garbage, yet with CPython's default thresholds the collector
rescans them again and again: young collections every 700 allocations, and about
every hundredth one a full collection of everything.  Measured with
``gc.callbacks`` (thread CPU time), that was a quarter of a 20,000-peer simulation
and **23% of a swarm worker's CPU** (200 secure peers forwarding 64 floods in
flight: 7.3 of 32.3 CPU-seconds, 3.8 of them in 22 full collections); with the
policy below the same worker spent 7% (1.8 of 26.7 s).

Two tools, both from CPython's own ``gc`` module:

* ``gc.freeze()`` moves every object that exists into a permanent generation that
  no collection scans (objects there are still freed by reference counting as soon
  as nothing refers to them; only *cycles* among them wait);
* a young threshold of ``young`` allocations, and full collections left to us.

:func:`few_collections` does that for a block that runs to completion (the
simulator).  A process that runs for hours (a peer, a bootstrap, a swarm worker)
also runs :func:`overlay.net.gc_rounds.keep_collector_quiet`: every ``EVERY`` seconds
it collects what is not frozen (only what was made since the last round: cheap) and
freezes the survivors (:func:`refreeze`), and every ``THAW_EVERY`` rounds it thaws
everything first, so a cycle that became garbage after being frozen (a closed
link's task and traceback, say) is freed within ``EVERY * THAW_EVERY`` seconds:
memory stays bounded under churn.

This module sits with the loader (:mod:`overlay.compiled`) below every layer: both
are process-wide choices, imported by the simulator and the trio runtime alike, and
import nothing of the project (nor trio: ``overlay sim`` never loads it).
"""

from __future__ import annotations

import contextlib
import gc
from collections.abc import Iterator

SIMULATION_YOUNG = 200_000
"""Allocations between young collections in a simulation (it makes almost no cycles)."""
YOUNG = 20_000
"""The same in a long-running network process, which makes some (failed connections'
tracebacks): a young collection then takes about 25 ms at 200 peers per process."""
EVERY = 30.0
"""Seconds between a long-running process's collect-and-freeze rounds."""
THAW_EVERY = 10
"""Rounds between full collections of everything (frozen objects included): five
minutes."""


@contextlib.contextmanager
def few_collections(young: int = SIMULATION_YOUNG) -> Iterator[None]:
    """Inside this block, what exists is frozen out of the collector's sight and the
    young generation is collected ``young`` allocations apart; full collections run
    only after a thousand middle ones.  Both are restored on exit."""
    old = gc.get_threshold()
    gc.collect()
    gc.freeze()
    gc.set_threshold(young, old[1], max(old[2], 1000))
    try:
        yield
    finally:
        gc.set_threshold(*old)
        gc.unfreeze()


def refreeze(*, thaw: bool) -> None:
    """One round of a long-running process (:func:`overlay.net.gc_rounds.keep_collector_quiet`):
    collect what is not frozen, then freeze the survivors; with ``thaw``, everything is
    unfrozen first, so frozen cycles that have become garbage are freed too."""
    if thaw:
        gc.unfreeze()
    gc.collect()
    gc.freeze()
