"""The comparison runs its three configurations and says whether their messages agree."""

from __future__ import annotations

from pathlib import Path

from benchmarks.harness import read_result
from benchmarks.sim_scale import main


def test_compare_runs_pure_compiled_and_parallel_with_the_same_messages(tmp_path: Path) -> None:
    argv = ["--peers", "120", "--duration", "2", "--workers", "2", "--compare"]
    assert main([*argv, "--out", str(tmp_path)]) == 0
    result = read_result(tmp_path / "sim_120_compare.json")
    assert result["same_message_counts"] is True
    assert list(result["runs"]) == ["pure serial", "compiled serial", "compiled parallel"]
    assert result["runs"]["pure serial"]["build"].startswith("pure Python")
    assert result["runs"]["compiled parallel"]["workers"] == 2
    phases = result["runs"]["compiled parallel"]["worker_phases_seconds"]
    assert len(phases) == 2 and all(part["windows"] > 0 for part in phases)
    assert set(result["ratio_per_cpu_second"]) == set(result["ratio_per_wall_second"])
    assert result["fast_path_share"] is None  # no earlier runs at 120 peers
