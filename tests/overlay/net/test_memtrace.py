"""The soak's allocation tracer (overlay.net.memtrace): off unless asked for, and its dumps
name the line that grew."""

from __future__ import annotations

import time
import tracemalloc
from pathlib import Path

import pytest

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
