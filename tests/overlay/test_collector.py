"""overlay.collector: the collector kept out of the way, and given back as it was."""

from __future__ import annotations

import gc
import weakref

from overlay.collector import few_collections, refreeze


class Node:
    """A cycle: it refers to itself, so only the cyclic collector frees it."""

    def __init__(self) -> None:
        self.me = self


def cycle() -> weakref.ref[Node]:
    return weakref.ref(Node())


def test_few_collections_freezes_and_restores() -> None:
    before = gc.get_threshold()
    with few_collections(12_345):
        assert gc.get_threshold()[0] == 12_345
        assert gc.get_freeze_count() > 0
    assert gc.get_threshold() == before and gc.get_freeze_count() == 0


def test_a_round_frees_young_cycles_and_a_thaw_frees_frozen_ones() -> None:
    gc.disable()  # only the rounds collect here
    try:
        with few_collections():
            young = cycle()
            refreeze(thaw=False)
            assert young() is None
            kept = Node()
            frozen = weakref.ref(kept)
            refreeze(thaw=False)
            del kept
            refreeze(thaw=False)
            assert frozen() is not None  # frozen: no plain round sees it
            refreeze(thaw=True)
            assert frozen() is None
    finally:
        gc.enable()
