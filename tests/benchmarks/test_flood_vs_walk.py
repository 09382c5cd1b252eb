"""The flood-vs-walk benchmark: ``--quick`` end to end, and the pieces it rests on.

The quick run goes through the real script (a subprocess, as a user runs it) so the
benchmark cannot rot: the files appear, and their numbers obey what floods and
walks must obey whatever the machine's speed.  Speed itself is never asserted.
"""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from collections import defaultdict
from pathlib import Path
from typing import Any

import attrs
import networkx as nx
import pytest

from benchmarks.flood_vs_walk import (
    CHECK_EVERY,
    LOSSY_TOPOLOGIES,
    MAIN_RATIO,
    SWEEP_TOPOLOGIES,
    WALKERS,
    main,
    modes_flood,
)
from benchmarks.placement import QueryStream, copies_per_item, zipf_popularity
from benchmarks.runner import WALK_TTL, ModeSpec, Task, lossless_flood_ttl, run_task
from benchmarks.topologies import FULL_TOPOLOGIES, QUICK_TOPOLOGIES

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "benchmarks" / "flood_vs_walk.py"
FIGURES = ("cost_vs_success", "messages_vs_replication", "hops_cdf", "peer_load")


@pytest.fixture(scope="module")
def quick(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    out = tmp_path_factory.mktemp("flood_vs_walk")
    done = subprocess.run(
        [sys.executable, str(SCRIPT), "--quick", "--out", str(out), "--json"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return out, json.loads(done.stdout)


def test_quick_run_writes_every_output(quick: tuple[Path, dict[str, Any]]) -> None:
    out, report = quick
    on_disk = json.loads((out / "flood_vs_walk.json").read_text())
    assert on_disk["rows"] == report["rows"]
    for figure in FIGURES:
        png = out / f"flood_vs_walk_{figure}.png"
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert png.stat().st_size > 10_000  # axes, lines and labels, not an empty canvas
    with open(out / "flood_vs_walk.csv", newline="") as file:
        table = list(csv.DictReader(file))
    assert len(table) == len(report["rows"])
    assert {
        "topology",
        "mode_name",
        "success_rate",
        "messages_per_query",
        "delivered_per_second",
    } <= set(table[0])
    assert "super-layer" in report["meta"]["design"]["not_measured"]
    assert report["meta"]["queries_per_config"] == 50
    assert report["meta"]["complete"] and report["meta"]["unfinished_tasks"] == []


def test_quick_run_has_a_row_for_every_topology_mode_and_loss(
    quick: tuple[Path, dict[str, Any]],
) -> None:
    rows = quick[1]["rows"]
    main_rows = [r for r in rows if r["table"] == "main"]
    for spec in QUICK_TOPOLOGIES:
        for loss in (0.0, 0.1):
            if loss and spec.name not in LOSSY_TOPOLOGIES:
                continue
            mine = [r for r in main_rows if r["topology"] == spec.name and r["loss"] == loss]
            names = {r["mode_name"] for r in mine}
            assert {"flood ttl=1", "expanding ring"} <= names, (spec.name, loss)
            assert {f"walk k={k}" for k in WALKERS} <= names, (spec.name, loss)
    sweep = [r for r in rows if r["table"] == "replication"]
    assert {(r["topology"], r["placement"]) for r in sweep} == {
        (t, p) for t in SWEEP_TOPOLOGIES for p in ("uniform", "proportional", "square-root")
    }
    for strategy in ("uniform", "proportional", "square-root"):
        line = sorted(
            (r for r in sweep if r["placement"] == strategy), key=lambda r: r["replication_ratio"]
        )
        # More copies, shorter walks: 2% against 5% is a 2.5x gap, far above the noise.
        assert line[0]["search_messages_per_query"] > line[-1]["search_messages_per_query"]


def test_quick_run_numbers_are_sane(quick: tuple[Path, dict[str, Any]]) -> None:
    rows = quick[1]["rows"]
    for r in rows:
        assert r["queries"] == 50
        assert 0.0 <= r["success_rate"] <= 1.0
        assert 0.0 <= r["duplicate_ratio"] <= 1.0
        assert r["delivered_per_second"] > 0 and r["sim_delivered"] > 0
        assert r["messages_per_peer_per_query"] == pytest.approx(
            r["messages_per_query"] / r["nodes"]
        )
        assert 1 <= r["visited_mean"] <= r["nodes"]
        assert r["peak_load_mean"] <= r["peak_load_max"]
        if r["hops_mean"] is not None:
            assert 0 <= r["hops_mean"] <= r["hops_p95"] or r["hops_p95"] == 0
            assert sum(r["hops_histogram"].values()) <= r["queries"]
        if r["mode"] == "walk":
            assert r["query_messages_per_query"] <= r["walkers"] * WALK_TTL * 5
            assert r["check_messages_per_query"] > 0
        else:
            assert r["check_messages_per_query"] == 0
        if r["loss"] == 0:
            assert r["sim_lost"] == 0
    floods: dict[tuple[str, float], list[dict[str, Any]]] = defaultdict(list)
    for r in rows:
        if r["mode"] == "flood":
            floods[(r["topology"], r["loss"])].append(r)
    for (topology, loss), line in floods.items():
        line.sort(key=lambda r: r["ttl"])
        assert [r["ttl"] for r in line] == list(range(1, len(line) + 1))
        cost = [r["query_messages_per_query"] for r in line]
        assert cost == sorted(cost) and cost[0] < cost[-1], (topology, loss, cost)
        if loss == 0:
            # Without loss a bigger TTL reaches a superset: success never drops, and
            # the sweep stops at the first TTL reaching 99%.
            success = [r["success_rate"] for r in line]
            assert success == sorted(success)
            assert all(s < 0.99 for s in success[:-1])


def test_quick_run_checks_the_claims(quick: tuple[Path, dict[str, Any]]) -> None:
    found = quick[1]["claims"]
    assert len(found["checks"]) == 3
    for check in found["checks"]:
        assert isinstance(check["holds"], bool)
    for comparison in found["comparisons"]:
        if comparison["loss"] == 0 and comparison["ratio"] is not None:
            assert comparison["ratio"] == pytest.approx(
                comparison["flood_messages"] / comparison["walk_messages"]
            )


def test_missing_crawls_are_a_clear_error(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["--quick", "--out", str(tmp_path), "--data", str(tmp_path / "none")]) == 2
    err = capsys.readouterr().err
    assert "p2p-Gnutella04.txt.gz not found" in err and "--data" in err
    assert not (tmp_path / "flood_vs_walk.json").exists()


def test_replication_strategies_share_the_storage_and_order_the_copies() -> None:
    popularity = zipf_popularity()
    uniform = copies_per_item("uniform", popularity, 10_000, 0.01)
    proportional = copies_per_item("proportional", popularity, 10_000, 0.01)
    root = copies_per_item("square-root", popularity, 10_000, 0.01)
    assert set(uniform) == {100}
    assert sum(proportional) == sum(root) == sum(uniform) == 10_000
    assert proportional == sorted(proportional, reverse=True)
    assert min(proportional) >= 1 and proportional[0] > root[0] > uniform[0]

    # Lv et al.: square-root minimises the expected probes 1/r_i averaged over queries,
    # and proportional costs the same as uniform.
    def probes(copies: list[int]) -> float:
        return sum(q * 10_000 / c for q, c in zip(popularity, copies, strict=True))

    assert probes(root) < probes(uniform) * 0.6
    assert probes(proportional) == pytest.approx(probes(uniform), rel=0.05)


def test_query_stream_is_seeded_and_follows_popularity() -> None:
    popularity = zipf_popularity()
    first = QueryStream(range(50), popularity, seed=7).take(2000)
    assert first == QueryStream(range(50), popularity, seed=7).take(2000)
    counts = [0] * len(popularity)
    for _, item in first:
        counts[item] += 1
    assert counts[0] > counts[9] > counts[99] >= 0
    assert counts[0] / 2000 == pytest.approx(popularity[0], abs=0.04)


TIMING = {
    "wall_seconds",
    "cpu_seconds",
    "build_seconds",
    "delivered_per_second",
    "delivered_per_cpu_second",
}


@pytest.mark.parametrize("name", ["random", "power-law"])
def test_derived_flood_rows_equal_simulating_every_ttl(name: str) -> None:
    """Lossless floods are simulated at the stop TTL only; the smaller TTLs' rows are
    derived.  They must be exactly the rows of simulating each TTL, figure for figure."""
    spec = next(s for s in QUICK_TOPOLOGIES if s.name == name)
    task = Task("main", spec, 0.0, (("uniform", 0.05),), modes_flood(), 40, 7)
    derived = run_task(task)
    simulated = run_task(attrs.evolve(task, derive_floods=False))
    assert [r["ttl"] for r in derived] == [r["ttl"] for r in simulated]
    assert len(derived) >= 2 and "derived_from_ttl" not in derived[-1]
    assert all(r["derived_from_ttl"] == derived[-1]["ttl"] for r in derived[:-1])
    for mine, theirs in zip(derived, simulated, strict=True):
        keep = set(theirs) - TIMING
        assert {k: mine[k] for k in keep} == {k: theirs[k] for k in keep}, mine["ttl"]


def test_16_walkers_on_the_random_graph_stay_within_2_5_over_r() -> None:
    """The issue's bound, as the full sweep measures it: the 10,000-peer random graph,
    every key on 1% of the peers (1/r = 100), 1,000 queries, steps and checks counted."""
    spec = next(s for s in FULL_TOPOLOGIES if s.name == "random")
    walk = ModeSpec("walk", walkers=16, check=CHECK_EVERY)
    (row,) = run_task(Task("main", spec, 0.0, (("uniform", MAIN_RATIO),), (walk,), 1000, 2002))
    assert row["success_rate"] == 1.0
    assert row["search_messages_per_query"] <= 2.5 / MAIN_RATIO


def test_lossless_flood_ttl_is_the_distance_to_the_nearest_copy() -> None:
    path = nx.path_graph(10)
    # One copy at node 9: a query from node 0 needs TTL 9 (capped at 7), from 6 needs 3.
    assert lossless_flood_ttl(path, [[9]], [(6, 0)] * 100) == 3
    assert lossless_flood_ttl(path, [[9]], [(0, 0)] * 100) == 7
    assert lossless_flood_ttl(path, [[9], [1]], [(6, 0)] * 50 + [(0, 1)] * 50) == 3


def test_markdown_section_renders_the_rows(quick: tuple[Path, dict[str, Any]]) -> None:
    from benchmarks.flood_vs_walk_markdown import render

    text = render(quick[1])
    main_rows = [r for r in quick[1]["rows"] if r["table"] == "main"]
    assert text.count("| flood ttl=1 |") == len({(r["topology"], r["loss"]) for r in main_rows})
    assert "### Replication sweep" in text and "square-root" in text
    assert text.count("- **") == len(quick[1]["claims"]["checks"]) == 3
    assert '"complete": true' in text
