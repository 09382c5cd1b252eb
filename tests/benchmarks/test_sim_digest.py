"""The determinism digest ignores the wall clock and nothing else."""

from __future__ import annotations

from benchmarks.sim_digest import digest


def test_the_digest_leaves_out_the_wall_clock_only() -> None:
    run = {"delivered_messages": 10, "messages": {"Heartbeat": 7}, "seed": 9}
    timed = {**run, "wall_seconds": 1.5, "messages_per_wall_second": 6.7}
    assert digest(timed) == digest(run)
    assert digest({**run, "messages": {"Heartbeat": 8}}) != digest(run)
    assert digest(dict(reversed(list(run.items())))) == digest(run)  # key order is not a change
