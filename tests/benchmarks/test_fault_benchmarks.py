"""The fault benchmarks run end to end on a tiny swarm, so they cannot rot.  Their figures
are recorded by running them in full (see their docstrings), never asserted here."""

from __future__ import annotations

import json
from pathlib import Path

from benchmarks import failure_detection, faults


def test_failure_detection_times_a_kill_and_watches_a_stall(tmp_path: Path) -> None:
    argv = ["--observers", "8", "--kills", "1", "--silent", "0", "--stalls", "1"]
    # Quick timers (a stall of 1 s stays below timeout - period = 1.5 s): the run's
    # length is mostly waiting for heartbeats to flow.
    argv += ["--heartbeat-period", "0.5", "--failure-timeout", "2.0"]
    assert failure_detection.main([*argv, "--stall-seconds", "1.0", "--out", str(tmp_path)]) == 0
    result = json.loads((tmp_path / "failure_detection.json").read_text())
    (kill,) = result["kill"]["runs"]
    assert kill["neighbors"] >= failure_detection.MIN_WATCHED
    assert kill["how"] == ["link ended"]  # its OS closed its sockets
    assert result["kill"]["summary"]["neighbors_that_never_detected"] == 0
    (stall,) = result["stall"]
    assert stall["stall_seconds"] == 1.0 and stall["stalls"] == 1
    assert stall["false_positives_by_neighbors"] == 0  # 1 s of silence is not death


def test_faults_benchmark_searches_and_heals_a_partition(tmp_path: Path) -> None:
    argv = ["--peers", "6", "--searches", "2", "--losses", "0", "--settle", "0"]
    assert faults.main([*argv, "--out", str(tmp_path)]) == 0
    result = json.loads((tmp_path / "faults.json").read_text())
    (row,) = result["rows"]
    assert row["flood"]["searches"] == row["walk"]["searches"] == 2
    partition = row["partition"]  # written to the swarm's --partition-file, then emptied
    assert partition["components_during"] == 2
    assert partition["seconds_to_one_component_after_heal"] is not None
    assert row["faults_and_limits"]["node.faults.partitioned"] > 0


def test_faults_benchmark_crashes_half_and_joins_with_the_bootstrap_down(tmp_path: Path) -> None:
    # The super part is left out: its layer takes ~30 s to settle even on 8 peers.
    argv = ["--peers", "6", "--settle", "0", "--only", "crash,bootstrap"]
    assert faults.main([*argv, "--out", str(tmp_path)]) == 0
    result = json.loads((tmp_path / "faults.json").read_text())
    assert "rows" not in result  # the search part was not asked for
    crash = result["crash"]
    assert crash["crashed"] == crash["survivors"] == 3
    assert crash["seconds_to_one_component_no_dead_neighbor_degrees_in_bounds"] is not None
    down = result["bootstrap"]
    assert down["seconds_until_newcomers_joined_one_component"] is not None
    assert min(down["newcomer_degrees_then"]) >= 1
