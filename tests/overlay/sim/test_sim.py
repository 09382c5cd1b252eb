"""Simulator scenarios, seeded: the overlay stays one random, connected graph.

The 10,000-peer run is the issue's own command; the fault scenarios run on a
few hundred to a few thousand peers so the suite stays within minutes.
"""

from __future__ import annotations

import math
from typing import Any

import pytest

from overlay.protocol.effects import Send
from overlay.protocol.messages import Disconnect, Heartbeat
from overlay.sim.scenario import WALL_CLOCK_FIELDS, Scenario, build, run
from overlay.sim.simulator import NetworkModel, Simulator
from overlay.sim.topology import graph_of, summarize

MAX_DEGREE = 12


def without_wall_clock(summary: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in summary.items() if k not in WALL_CLOCK_FIELDS}


def test_same_seed_same_summary_other_seed_other_topology() -> None:
    scenario = Scenario(peers=300, seed=11, duration=30, churn=1.0, loss=0.05)
    first = run(scenario)
    again = run(scenario)
    assert without_wall_clock(first) == without_wall_clock(again)
    sim_a = build(scenario)
    sim_a.run_until(30)
    sim_b = build(Scenario(peers=300, seed=12, duration=30, churn=1.0, loss=0.05))
    sim_b.run_until(30)
    edges_a = {frozenset(e) for e in graph_of(sim_a.snapshots()).edges}
    edges_b = {frozenset(e) for e in graph_of(sim_b.snapshots()).edges}
    assert edges_a != edges_b


@pytest.mark.slow
def test_ten_thousand_peers_form_one_random_graph() -> None:
    """overlay sim --peers 10000 --seed 1 --duration 60 --json"""
    summary = run(Scenario(peers=10_000, seed=1, duration=60))
    assert summary["alive"] == 10_000
    assert summary["joining"] == 0
    assert summary["components"] == 1
    assert summary["largest_component_fraction"] == 1.0
    assert summary["degree"]["min"] >= 3
    assert summary["degree"]["max"] <= MAX_DEGREE
    assert summary["clustering"] < 0.05
    mean = summary["degree"]["mean"]
    assert summary["avg_path_length"] <= 1.5 * math.log(10_000) / math.log(mean - 1)
    assert summary["dangling_entries"] == 0


def test_survivors_of_a_mass_crash_reconnect_within_ten_shuffle_periods() -> None:
    scenario = Scenario(peers=2000, seed=2, duration=90, crash_fraction=0.5, crash_at=30)
    shuffle_period = scenario.peer_config.membership.shuffle_period
    one_component_again: list[float] = []

    def observe(sim: Simulator, now: float) -> None:
        if now > 30 and not one_component_again:
            summary = summarize(sim.snapshots(), peers=sim.started_peers)
            if summary["components"] == 1:
                one_component_again.append(now)

    summary = run(scenario, observer=observe)
    assert summary["alive"] == 1000
    assert one_component_again, "the survivors never became one component"
    assert one_component_again[0] - 30 <= 10 * shuffle_period
    assert summary["components"] == 1
    assert summary["dangling_entries"] == 0


def test_one_component_and_bounded_views_throughout_churn_and_loss() -> None:
    scenario = Scenario(peers=500, seed=3, duration=60, churn=1.0, loss=0.10)
    config = scenario.peer_config.membership
    checked: list[float] = []

    def observe(sim: Simulator, now: float) -> None:
        if now <= scenario.window + 2:
            return  # the initial joins are still arriving
        shots = sim.snapshots()
        summary = summarize(shots, peers=sim.started_peers)
        assert summary["components"] == 1, f"split at t={now}: {summary['components']}"
        for shot in shots:
            assert len(shot.neighbors) <= config.max_degree
            assert len(shot.passive) <= config.passive_size
            if shot.joined:
                assert shot.neighbors, f"{shot.id} isolated at t={now}"
        checked.append(now)

    summary = run(scenario, observer=observe)
    assert len(checked) >= 40
    assert summary["lost_messages"] > 0  # the loss was real
    assert summary["peers"] > 500  # and so was the churn


def test_a_healed_partition_merges_back_into_one_component() -> None:
    scenario = Scenario(peers=400, seed=4, duration=80, partition_at=20, heal_at=40)
    during: list[int] = []

    def observe(sim: Simulator, now: float) -> None:
        if now == 39:
            during.append(summarize(sim.snapshots(), peers=sim.started_peers)["components"])

    summary = run(scenario, observer=observe)
    assert during == [2], "the partition should have split the overlay"
    assert summary["components"] == 1


def test_crashed_peers_that_recover_rejoin() -> None:
    scenario = Scenario(
        peers=300, seed=5, duration=60, crash_fraction=0.3, crash_at=15, recover_after=10
    )
    summary = run(scenario)
    assert summary["peers"] == 300 + 90
    assert summary["alive"] == 300
    assert summary["components"] == 1
    assert summary["joining"] == 0


def test_graceful_leaves_leave_no_dangling_entries() -> None:
    scenario = Scenario(peers=300, seed=6, duration=40, churn=3.0, leave_fraction=1.0, settle=0)
    sim = build(scenario)
    sim.run_until(40)
    summary = sim.summary()
    assert summary["dangling_entries"] == 0  # leavers said goodbye; nobody waited for timeouts
    assert summary["messages"]["Leave"] > 0


def test_loss_and_latency_are_applied() -> None:
    sim = Simulator(seed=1, network=NetworkModel(latency=0.05, loss=1.0))
    peer = sim.add_peer()
    sim.run_until(10)
    assert not peer.membership.active
    assert sim.delivered == 0 and sim.lost > 0
    sim = Simulator(seed=1, network=NetworkModel(latency=0.05))
    first, second = sim.add_peer(), sim.add_peer()
    sim.run_until(10)
    assert second.id in first.membership.active
    times: list[float] = []
    sim.on_effect = lambda now, _a, _e: times.append(now)
    sim.run_until(20)
    assert sim.sent[Heartbeat.__name__] > 0
    assert times


def test_every_message_sent_is_delivered_or_counted_lost() -> None:
    """A message in flight to a peer that crashes is lost when it lands, and counted."""
    sim = Simulator(seed=1, network=NetworkModel(latency=0.05), with_bootstrap=False)
    first, second = sim.add_peer(), sim.add_peer()
    sim.run_until(1)
    sim.apply(first.address, [Send(second.address, Disconnect(reason="bye"))])
    sim.crash(second.address)
    sim.crash(first.address)
    sim.run_until(2)
    assert sim.delivered == 0 and sim.lost == 1
    assert sum(sim.sent.values()) == sim.delivered + sim.lost


def test_the_final_summary_is_the_summary_and_lets_the_cores_go() -> None:
    """``summary(final=True)`` (what a scenario's run ends with) gives the very summary
    of ``summary()``, dead peers' passive entries included, then holds no core."""
    sim = build(Scenario(peers=150, seed=4, duration=12, crash_fraction=0.2, crash_at=8))
    sim.run_until(12)
    before = sim.summary()
    assert sim.dead and sim.peers
    assert sim.summary(final=True) == before
    assert not sim.peers and not sim.nodes and sim.next_event_tick() is None


def test_a_peer_that_never_searches_holds_no_search_component() -> None:
    sim = build(Scenario(peers=50, seed=2, duration=5))
    sim.run_until(5)
    peer = next(iter(sim.peers.values()))
    assert peer._search is None
    assert peer.search is peer.search  # made on first use, then kept
