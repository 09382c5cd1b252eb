"""The soak's allocation tracer (overlay.net.memtrace): off unless asked for, and its dumps
name the line that grew."""

from __future__ import annotations

import time
import tracemalloc
from pathlib import Path

import pytest
import trio
import trio.testing

from overlay.net import memtrace


def test_tracing_is_off_unless_the_environment_asks(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(memtrace.ENV_DIR, raising=False)
    assert memtrace.requested() is None
    monkeypatch.setenv(memtrace.ENV_DIR, "/tmp/x")
    assert memtrace.requested() == Path("/tmp/x")


def test_a_dump_shows_what_grew_since_the_first(tmp_path: Path) -> None:
    memtrace.start()
    try:
        first = tracemalloc.take_snapshot()
        hoard = [bytes(1000) + bytes([i % 256]) for i in range(2000)]  # about 2 MB
        path = tmp_path / "worker.txt"
        memtrace.dump(path, first, time.monotonic(), "peers=1")
        text = path.read_text()
        growth = text.split("== growth since the first dump (by line) ==")[1]
        top = growth.strip().splitlines()[0]
        assert "test_memtrace.py" in top  # the line that made the hoard
        assert "--- project types" in text  # then a count of every project type alive
        assert (tmp_path / "worker.series").read_text().strip().endswith("peers=1")
        assert len(hoard) == 2000
    finally:
        tracemalloc.stop()


def test_free_memory_goes_back_to_the_system() -> None:
    # Freed blocks among live ones stay resident until the allocator is asked to trim
    # (glibc: malloc_trim); on glibc, the call exists and reports pages released after
    # a burst of small allocations is freed with every other one kept.
    blocks = [bytearray(4000) for _ in range(20_000)]  # about 80 MB, in the heap
    kept = blocks[::50]
    del blocks
    assert memtrace.release_free_memory()
    assert len(kept) == 400


async def test_a_worker_trims_its_heap_once_per_period(
    monkeypatch: pytest.MonkeyPatch, autojump_clock: trio.testing.MockClock
) -> None:
    began = trio.current_time()
    calls: list[float] = []

    def release() -> bool:
        calls.append(trio.current_time() - began)
        return True

    monkeypatch.setattr(memtrace, "release_free_memory", release)
    with trio.move_on_after(memtrace.TRIM_PERIOD * 3.5):
        await memtrace.release_free_memory_periodically()
    assert calls == pytest.approx([memtrace.TRIM_PERIOD * n for n in (1, 2, 3)])


def test_the_trimming_period_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(memtrace.ENV_TRIM_PERIOD, raising=False)
    assert memtrace.trim_period() == memtrace.TRIM_PERIOD
    monkeypatch.setenv(memtrace.ENV_TRIM_PERIOD, "0")
    assert memtrace.trim_period() == 0
