"""The super-peer layer in the simulator, seeded: election, attachment, index, failover,
search.

The issue's figures are for 10,000 peers (``python benchmarks/super_peers.py``, results
in ``benchmarks/results/super_peers.json``); these scenarios check the same properties
on a few hundred peers so that each runs in seconds.
"""

from __future__ import annotations

import random
import time
from typing import Any

import pytest

from overlay.sim.scenario import WALL_CLOCK_FIELDS, Scenario, build, run
from overlay.sim.simulator import Simulator
from overlay.sim.topology import super_layer_figures
from search.store import Criteria, content_key

PEERS = 400
TARGET = PEERS / 21


def figures(sim: Simulator) -> dict[str, Any]:
    shots = sim.snapshots()
    found = super_layer_figures(shots, {s.id for s in shots})
    found["supers"] = sum(1 for s in shots if s.role == "super")
    return found


def test_the_super_layer_settles_on_target_with_few_role_changes() -> None:
    scenario = Scenario(peers=PEERS, seed=21, duration=150, super_peers=True)
    late: list[dict[str, Any]] = []

    def observe(sim: Simulator, now: float) -> None:
        if now >= 80 and now % 5 == 0:
            late.append(figures(sim))

    summary = run(scenario, observer=observe)
    assert summary["alive"] == PEERS
    assert abs(summary["roles"]["super"] - TARGET) <= 0.25 * TARGET
    assert summary["roles"]["super"] + summary["roles"]["weak"] == PEERS
    assert summary["max_role_changes"] <= 2
    assert summary["super_components"] == 1
    for row in late:  # settled: everyone attached and indexed, all along
        assert row["unattached_weak"] == 0
        assert row["index_coverage"] >= 0.999
        assert row["stale_index_entries"] == 0
    assert summary["messages"]["SuperBeat"] > 0


def test_failover_after_a_third_of_the_super_peers_crash() -> None:
    crash_at, peers_crash_at = 80.0, 110.0
    scenario = Scenario(
        peers=PEERS,
        seed=22,
        duration=150,
        super_peers=True,
        crash_super_fraction=0.3,
        crash_super_at=crash_at,
        crash_fraction=0.05,
        crash_at=peers_crash_at,
    )
    config = scenario.peer_config
    period = config.membership.heartbeat_period
    lease, super_period = config.supers.lease, config.supers.period
    rows: dict[float, dict[str, Any]] = {}

    def observe(sim: Simulator, now: float) -> None:
        if now >= crash_at - 1:
            rows[now] = figures(sim)

    summary = run(scenario, observer=observe)
    before = rows[crash_at - 1]["supers"]
    assert rows[crash_at]["supers"] <= before - round(0.3 * before) + 1  # the crash was real
    assert rows[crash_at]["unattached_weak"] > 0
    reattached = min(t for t, r in rows.items() if t > crash_at and r["unattached_weak"] == 0)
    assert reattached - crash_at <= 3 * period
    covered = min(t for t, r in rows.items() if t > crash_at and r["index_coverage"] >= 0.999)
    assert covered - crash_at <= 5 * period
    # Promotions restore the count.
    assert abs(rows[peers_crash_at - 1]["supers"] - TARGET) <= 0.25 * TARGET
    # Crashed weak peers leave stale entries, gone within a lease and a period.
    assert rows[peers_crash_at + 1]["stale_index_entries"] > 0
    for t, row in rows.items():
        if t >= peers_crash_at + lease + super_period:
            assert row["stale_index_entries"] == 0, t
    assert summary["unattached_weak"] == 0
    assert summary["index_coverage"] >= 0.999


def test_super_layer_search_finds_keys_held_by_one_percent_of_peers() -> None:
    scenario = Scenario(peers=800, seed=23, duration=60, super_peers=True, items_per_peer=1)
    sim = build(scenario)
    sim.run_until(60)
    rng = random.Random(5)
    addresses = sorted(sim.peers)
    keys: list[str] = []
    now = sim.now
    for n in range(40):
        value = f"rare item {n}".encode()
        keys.append(content_key(value))
        for address in rng.sample(addresses, 8):  # 1 % of the peers
            sim.apply(address, sim.peers[address].publish(value, f"rare {n}", now))
    sim.run_until(now + 5)  # the deltas reach the super peers
    weak = [a for a in addresses if sim.peers[a].role == "weak"]
    results: dict[str, list[str]] = {"super-flood": [], "super-walk": []}
    for mode, ids in results.items():
        for n in range(100):
            origin = sim.peers[rng.choice(weak)]
            search_id, effects = origin.search.start(mode, Criteria.for_key(keys[n % 40]), sim.now)
            sim.apply(origin.address, effects)
            ids.append(f"{origin.address}|{search_id}")
        sim.run_until(sim.now + 10)
    for mode, ids in results.items():
        succeeded = 0
        for entry in ids:
            host, search_id = entry.split("|")
            peer = next(p for p in sim.peers.values() if str(p.address) == host)
            result = peer.search.results[search_id]
            assert result.mode == mode
            if result.success:
                assert result.hits[0].key in keys
                succeeded += 1
        assert succeeded >= 99, (mode, succeeded)
    # Weak peers never forwarded a super-layer query, and a peer that was always weak
    # was never sent one.  (A super peer that steps down may still be sent a query by
    # a weak peer that has not heard yet: it refuses it, and that is counted.)
    for peer in sim.peers.values():
        counters = peer.snapshot().counters
        if peer.role == "weak" and peer.snapshot().role_changes == 0:
            assert "search.super.queries_handled" not in counters
            assert "role.query_to_weak" not in counters


def test_same_seed_same_super_layer() -> None:
    scenario = Scenario(peers=200, seed=24, duration=40, super_peers=True, loss=0.02)
    first = {k: v for k, v in run(scenario).items() if k not in WALL_CLOCK_FIELDS}
    again = {k: v for k, v in run(scenario).items() if k not in WALL_CLOCK_FIELDS}
    assert first == again
    assert first["roles"]["super"] > 0


def test_the_super_layer_needs_no_global_random_and_no_clock(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def trap(*_args: object, **_kwargs: object) -> None:
        raise AssertionError("the core touched global randomness or a clock")

    scenario = Scenario(peers=60, seed=25, duration=30, super_peers=True)
    sim = build(scenario)  # the scenario itself may draw (capacities, items): before the trap
    for name in (
        "random",
        "randrange",
        "randint",
        "choice",
        "choices",
        "sample",
        "shuffle",
        "getrandbits",
        "uniform",
        "seed",
        "paretovariate",
    ):
        monkeypatch.setattr(random, name, trap)
    for name in ("time", "monotonic", "perf_counter", "sleep", "time_ns"):
        monkeypatch.setattr(time, name, trap)
    sim.run_until(30.0)
    assert any(peer.role == "super" for peer in sim.peers.values())
