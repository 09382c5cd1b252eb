"""The per-peer memory benchmark, run tiny: the same code as the 200-peer run
(``benchmarks/results/peer_memory.json``), so the script cannot rot.  The figures are
the benchmark's finding; asserted here is that every field is there and sane."""

from __future__ import annotations

import json
from pathlib import Path

from benchmarks.harness import recorded_load
from benchmarks.peer_memory import main

PEERS = 6


def test_tiny_run_records_memory_per_peer_and_its_top_sites(tmp_path: Path) -> None:
    out = tmp_path / "memory.json"
    argv = ["--peers", str(PEERS), "--settle", "2", "--spread", "0.3", "--output", str(out)]
    assert main(argv) == 0
    record = json.loads(out.read_text())
    assert record["peers"] == PEERS
    assert record["command"].startswith("python -m benchmarks.peer_memory --peers 6")
    assert record["joined"] == PEERS  # every peer found a neighbor through the bootstrap
    assert record["rss_before_bytes"] > 0
    assert record["traced_per_peer_kib"] > 0  # a peer costs something
    assert 1 <= record["degree"] <= record["connections_per_peer"]
    assert record["connections_to_non_neighbors_per_peer"] >= 0
    sites = record["top_sites"]
    assert sites and all(s["site"].rsplit(":", 1)[1].isdigit() for s in sites)
    assert abs(sites[0]["kib_per_peer"]) >= abs(sites[-1]["kib_per_peer"])  # biggest first
    assert any(name.startswith("overlay/") for name in record["top_files"])
    machine = record["machine"]
    assert machine["cores"] >= 1
    load_before, load_after = recorded_load(record)  # the load's key names changed with the harness
    assert load_before is not None and load_after is not None
    assert len(load_before) == len(load_after) == 3
