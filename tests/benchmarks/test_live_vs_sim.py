"""The live-versus-simulator benchmark, run tiny: its structure, and the flood formula.

The full run (300 peers, 200 queries per mode) is a benchmark, recorded in
``benchmarks/results/live_vs_sim.json``; here a 30-peer swarm and 10 queries per mode
go through the same code, so the script cannot rot.  Whether live and simulated
counts agree within 10% is the benchmark's finding, not asserted here (on 10 walks
the noise alone can exceed it); what is asserted is what must hold at any size: the
simulator's flood count is exactly the formula, and every figure is where it belongs.
"""

from __future__ import annotations

import json
from typing import Any

import networkx as nx
import pytest

from benchmarks.live_vs_sim import flood_formula, main
from overlay.sim.static import StaticNetwork


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    out = tmp_path_factory.mktemp("live_vs_sim") / "live_vs_sim.json"
    # A short --settle: nothing here depends on the links having settled (the replay
    # puts each query on the topology it ran on, and any connected graph is searched
    # and flooded whole), and waiting for them is most of a tiny run.  All ten floods
    # in flight at once: each waits its whole window for hits, one batch instead of two.
    argv = [
        "--peers", "30", "--queries", "10", "--items", "5", "--replication", "0.1",
        "--reach-sizes", "20", "--floods", "3", "--settle", "2", "--join-timeout", "90",
        "--concurrency", "10", "--out", str(out),
    ]  # fmt: skip
    assert main(argv) == 0
    report: dict[str, Any] = json.loads(out.read_text())
    return report


def test_tiny_run_compares_both_modes(tiny: dict[str, Any]) -> None:
    comparison = tiny["comparison"]
    assert comparison["peers"] == 30
    assert [row["mode"] for row in comparison["agreement"]] == ["flood", "walk"]
    for mode in ("flood", "walk"):
        live, sim = comparison["live"][mode], comparison["sim"][mode]
        assert live["queries"] == sim["queries"] == 10
        assert live["errors"] == 0 and live["stats_unanswered"] == 0
        assert live["success_rate"] == sim["success_rate"] == 1.0  # 3 holders of 30: found
        assert live["messages_per_query"] == pytest.approx(sum(live["messages"].values()) / 10)
        assert live["messages"]["query"] > 0 and live["messages"]["hit"] > 0
        assert (live["messages"]["check"] > 0) == (sim["messages"]["check"] > 0) == (mode == "walk")
        row = next(r for r in comparison["agreement"] if r["mode"] == mode)
        assert row["live_over_sim"] == pytest.approx(
            live["messages_per_query"] / sim["messages_per_query"]
        )
    assert comparison["sim"]["walk"]["repeats"] == 5
    assert isinstance(tiny["claims"]["messages_agree_within_10_percent"], bool)


def test_tiny_run_replays_floods_exactly_as_the_formula_counts(tiny: dict[str, Any]) -> None:
    flood = tiny["comparison"]["sim"]["flood"]
    assert flood["messages_per_query"] == pytest.approx(flood["formula_messages_per_query"])
    assert flood["messages_per_query_standard_error"] >= 0


def test_tiny_run_times_floods_to_every_peer(tiny: dict[str, Any]) -> None:
    (reach,) = tiny["flood_reach"]
    assert reach["peers"] == 20 and reach["floods"] == 3 and reach["sightings_dropped"] == 0
    assert reach["reached_every_peer"] == 3 == len(reach["reach_seconds"])
    assert 0 < reach["median_seconds"] <= reach["p95_seconds"] <= reach["max_seconds"] < 10
    assert tiny["claims"]["flood_reaches_200_peers_under_300_ms_median"] is None  # not run


@pytest.mark.parametrize("ttl", [1, 2, 3, 7])
def test_flood_formula_is_what_the_simulator_counts(ttl: int) -> None:
    graph = nx.random_regular_graph(4, 60, seed=3)
    holders = [5, 17, 40]
    net = StaticNetwork(graph, seed=1)
    net.place("thing", holders)
    for origin in (0, 5, 33):
        outcome = net.query(origin, "flood", key="thing", ttl=ttl)
        expected = flood_formula(graph, origin, ttl, holders)
        assert {k: outcome.messages[k] for k in expected} == expected, (origin, ttl)
