"""The soak's verdict on memory (benchmarks/soak.py): slopes and "stopped growing"."""

from __future__ import annotations

from typing import Any

import pytest

from benchmarks.soak import growth, slope

MB = 2**20


def samples(rss: list[float], fds: list[int] | None = None) -> list[dict[str, Any]]:
    """One process, one sample every 10 s, with these RSS values (MB) and fd counts."""
    counts = fds or [10] * len(rss)
    return [
        {"t": 10.0 * i, "processes": {"worker0": {"rss_bytes": int(v * MB), "fds": n}}}
        for i, (v, n) in enumerate(zip(rss, counts, strict=True))
    ]


def test_slope_is_in_megabytes_per_minute() -> None:
    assert slope([(0.0, 0.0), (60.0, 2 * MB)]) == pytest.approx(2.0)
    assert slope([(0.0, 5 * MB)]) is None


def test_memory_that_levels_off_has_stopped_growing() -> None:
    report = growth(samples([100, 110, 120, 130, 131, 131, 131, 131, 131]))
    worker = report["worker0"]
    assert worker["slope_mb_per_min_first_half"] > 30
    assert abs(worker["slope_mb_per_min_second_half"]) < 0.5
    assert worker["stopped_growing"] and report["total"]["stopped_growing"]


def test_memory_that_keeps_climbing_has_not() -> None:
    report = growth(samples([100 + 5 * i for i in range(10)], fds=list(range(10, 20))))
    worker = report["worker0"]
    assert worker["slope_mb_per_min_second_half"] == pytest.approx(30.0)
    assert not worker["stopped_growing"] and not report["total"]["stopped_growing"]
    assert (worker["fds_first_half_max"], worker["fds_last"]) == (14, 19)
