"""A run split over worker processes is the run of one process, field for field."""

from __future__ import annotations

from typing import Any

import pytest

from overlay.protocol.identity import Address
from overlay.sim.parallel import run_parallel
from overlay.sim.scenario import RUN_FIELDS, Scenario, run
from overlay.sim.simulator import BOOTSTRAP_ADDRESS, Shard, sim_address, sim_index


def outcome(summary: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in summary.items() if k not in RUN_FIELDS}


def test_the_same_summary_for_one_two_and_four_workers() -> None:
    scenario = Scenario(peers=300, seed=9, duration=12, super_peers=True)
    alone = outcome(run(scenario))
    assert alone["components"] == 1 and alone["delivered_messages"] > 10_000
    for workers in (2, 4):
        summary, usage = run_parallel(scenario, workers)
        assert summary["workers"] == workers
        assert len(usage.worker_rss_bytes) == workers and usage.cpu_seconds > 0
        assert outcome(summary) == alone, workers


def test_faults_are_the_same_whatever_the_split() -> None:
    """Loss, jitter, churn with graceful leaves, a partition, a mass crash with
    recovery and a crash of super peers: every scenario action that draws from the
    scenario's random source or reads the whole run's state."""
    scenario = Scenario(
        peers=240,
        seed=4,
        duration=22,
        loss=0.02,
        jitter=0.004,
        churn=2.5,
        leave_fraction=0.4,
        partition_at=7,
        heal_at=9,
        crash_fraction=0.2,
        crash_at=11,
        recover_after=1.5,
        super_peers=True,
        crash_super_fraction=0.3,
        crash_super_at=14,
        settle=4,
    )
    alone = outcome(run(scenario))
    assert alone["lost_messages"] > 0 and alone["peers"] > 240 + 48
    summary, _ = run_parallel(scenario, 3)
    assert outcome(summary) == alone


def test_workers_are_assigned_by_index_and_the_bootstrap_to_worker_zero() -> None:
    shard = Shard(1, 3)
    assert [shard.owner(sim_address(i)) for i in range(7)] == [0, 1, 2, 0, 1, 2, 0]
    assert shard.owner(BOOTSTRAP_ADDRESS) == 0
    for index in (0, 255, 256, 65_535, 65_536, 1_000_000, (1 << 24) - 3):
        assert sim_index(sim_address(index)) == index
    assert sim_index(Address("192.0.2.1", 7000)) is None
    assert 0 <= shard.owner(Address("192.0.2.1", 7000)) < 3


def test_no_workers_is_refused() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        run_parallel(Scenario(peers=10, duration=1), 0)
