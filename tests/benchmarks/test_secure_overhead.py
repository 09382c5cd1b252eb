"""benchmarks/secure_overhead.py: how a flood's delivery time is read from the sightings,
and how each figure is held against its goal (the script itself runs swarms of 200 and
1,000 peers, which is a benchmark's job, not the suite's)."""

from __future__ import annotations

from benchmarks.secure_overhead import GOALS, reach_times, verdicts


def test_a_floods_delivery_is_its_last_sighting_after_its_first() -> None:
    seen = {
        "a" * 32: {"p1": 10.0, "p2": 10.1, "p3": 10.25},
        "b" * 32: {"p1": 20.0, "p2": 20.05},  # p3 never saw it
    }
    times, short = reach_times(["a" * 32, "b" * 32, "c" * 32], seen, peers=3)
    assert [round(t, 3) for t in times] == [0.25]
    assert short == 2


def test_each_goal_is_a_bound_in_its_own_direction() -> None:
    met = verdicts(
        {
            "converged_seconds": 7.0,
            "forwarded_per_second_per_process": 35_000,
            "rss_per_peer_kib": 171.0,
        }
    )
    assert met == {
        "converged_seconds": True,
        "forwarded_per_second_per_process": True,
        "rss_per_peer_kib": False,
        "delivery_median_seconds": None,
    }
    assert set(met) == set(GOALS)
