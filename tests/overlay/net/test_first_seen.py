"""First sightings of query ids: kept once per (query, peer), bounded, merged from files."""

from __future__ import annotations

from pathlib import Path

import pytest

from overlay.net.first_seen import FirstSeen, read_first_seen

QUERY = "a" * 32
PEER = "b" * 32


def test_only_the_first_sighting_counts(monkeypatch: pytest.MonkeyPatch) -> None:
    clock = iter([1.0, 2.0, 3.0])
    monkeypatch.setattr("overlay.net.first_seen.time.monotonic", lambda: next(clock))
    seen = FirstSeen()
    seen.observe(QUERY, PEER, False)
    seen.observe(QUERY, PEER, True)  # a duplicate reception: not even a clock read
    seen.observe(QUERY, PEER, False)  # the same peer again (another walker): ignored
    seen.observe(QUERY, "c" * 32, False)
    assert seen.seen == {QUERY: {PEER: 1.0, "c" * 32: 2.0}}


def test_sightings_are_bounded_and_the_overflow_is_counted() -> None:
    seen = FirstSeen(limit=2)
    for n in range(5):
        seen.observe(f"{n:032x}", PEER, False)
    assert seen.count == 2 and seen.dropped == 3
    assert len(seen.seen) == 2


def test_workers_files_merge(tmp_path: Path) -> None:
    one, two = FirstSeen(limit=1), FirstSeen()
    one.observe(QUERY, PEER, False)
    one.observe("d" * 32, PEER, False)  # dropped
    two.observe(QUERY, "c" * 32, False)
    path = one.write(tmp_path)
    path.rename(tmp_path / "first-seen-1.json")  # two workers: two pids
    two.write(tmp_path)
    merged, dropped = read_first_seen(tmp_path)
    assert set(merged[QUERY]) == {PEER, "c" * 32}
    assert dropped == 1
    assert not list(tmp_path.glob("*.partial"))
