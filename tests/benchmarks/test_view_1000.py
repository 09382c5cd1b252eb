"""The live-view benchmark, run tiny: every mode goes through the same code as the
1,000-peer run (``benchmarks/results/view_1000_live.json``), so the script cannot rot.
Speed is the benchmark's finding, not asserted here; what is asserted is that every
mode saw every peer and recorded its figures."""

from __future__ import annotations

import json
from pathlib import Path

from benchmarks.harness import recorded_load
from benchmarks.view_1000 import main

PEERS = 8


def test_tiny_run_records_every_mode(tmp_path: Path) -> None:
    out = tmp_path / "view.json"
    before = tmp_path / "before.json"
    before.write_text(json.dumps({"peers": 1000, "reused_connections": {}}))
    argv = [
        "--peers", str(PEERS), "--frames", "3", "--refreshes", "1",
        "--before", str(before), "--output", str(out),
    ]  # fmt: skip
    assert main(argv) == 0
    record = json.loads(out.read_text())
    assert record["before"] == {"peers": 1000, "reused_connections": {}}
    assert record["peers_listed_at_start"] == PEERS
    batched = record["batched"]
    assert batched["peers_in_batches"] == [PEERS] * 3  # one batch per worker, every peer
    assert batched["peers_answering"] == [PEERS] * 3
    for key in ("snapshot", "model", "render", "total"):
        assert batched[f"{key}_seconds"]["median"] > 0
    rolling = record["rolling"]
    assert rolling["frames"] == 3
    assert rolling["peers_alive_per_frame"][-1] == PEERS
    assert rolling["data_age_seconds_all_peers"]["max"] <= rolling["stale_bound"]
    assert record["reused_connections"]["peers_answering"] == [PEERS]
    assert record["fresh_connections"]["peers_answering"] == [PEERS]
    load_before, load_after = recorded_load(record)  # the load's key names changed with the harness
    assert load_before is not None and load_after is not None
    assert len(load_before) == len(load_after) == 3
    assert record["command"].startswith("python benchmarks/view_1000.py")
