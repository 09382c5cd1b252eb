"""overlay.net.gc_rounds: the collector is kept quiet, yet every cycle is freed in time.

Driven on trio's fake clock; the process's collector settings are restored after."""

from __future__ import annotations

import gc
import weakref

import pytest
import trio
import trio.testing

from overlay.net.gc_rounds import keep_collector_quiet
from tests.overlay.test_collector import Node, cycle


def test_young_cycles_are_freed_each_round_and_frozen_ones_at_the_thaw() -> None:
    before = gc.get_threshold()

    async def main() -> None:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(lambda: keep_collector_quiet(every=10.0, thaw_every=3, young=9_999))
            await trio.sleep(1.0)
            assert gc.get_threshold()[0] == 9_999
            young = cycle()  # garbage at once: the next round frees it
            kept = Node()
            frozen = weakref.ref(kept)
            await trio.sleep(10.0)  # round 1: collects, then freezes what is left
            assert young() is None
            assert frozen() is kept
            del kept  # garbage now, but frozen: no round scans it ...
            await trio.sleep(10.0)  # round 2
            assert frozen() is not None
            await trio.sleep(10.0)  # ... until round 3 thaws everything first
            assert frozen() is None
            nursery.cancel_scope.cancel()

    gc.disable()  # only the rounds may collect, so what the test sees is theirs
    try:
        trio.run(main, clock=trio.testing.MockClock(autojump_threshold=0))
    finally:
        gc.enable()
    assert gc.get_threshold() == before and gc.get_freeze_count() == 0


def test_overlay_gc_default_leaves_the_collector_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OVERLAY_GC", "default")
    before = gc.get_threshold()

    async def main() -> None:
        await keep_collector_quiet(every=1.0)  # returns at once: nothing to keep
        assert gc.get_threshold() == before and gc.get_freeze_count() == 0

    trio.run(main, clock=trio.testing.MockClock(autojump_threshold=0))
