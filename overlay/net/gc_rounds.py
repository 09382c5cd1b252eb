"""The collector's rounds in a long-running trio process (see :mod:`overlay.collector`)."""

from __future__ import annotations

import os

import trio

from overlay.collector import EVERY, THAW_EVERY, YOUNG, few_collections, refreeze

DEFAULT_ENV = "OVERLAY_GC"


async def keep_collector_quiet(
    *, every: float = EVERY, thaw_every: int = THAW_EVERY, young: int = YOUNG
) -> None:
    """Run for the life of the process (start it in its nursery): young collections
    ``young`` allocations apart, and every ``every`` seconds a collect-and-freeze round,
    every ``thaw_every``-th of them over everything.  The collector's settings are
    restored when it is cancelled.  ``OVERLAY_GC=default`` in the environment leaves
    CPython's defaults alone (to measure what this saves)."""
    if os.environ.get(DEFAULT_ENV) == "default":
        return
    with few_collections(young):
        rounds = 0
        while True:
            await trio.sleep(every)
            rounds += 1
            refreeze(thaw=rounds % thaw_every == 0)
