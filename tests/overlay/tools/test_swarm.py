"""``overlay swarm`` end to end: real processes, real sockets, the summary of ``overlay sim``."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import trio

from overlay.net.swarm.setup import copies_for
from overlay.tools.cli import main
from tests.conftest import HANG_GUARD, REPO

OVERLAY = [sys.executable, "-m", "overlay.tools.cli"]
MAX_DEGREE = 12  # MembershipConfig's default hard maximum


def _workers_of(bootstrap: str) -> list[int]:
    """Worker processes still running for this swarm (found by their command line)."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as file:
                command = file.read().split(b"\0")
        except OSError:
            continue
        if b"overlay.net.swarm.worker" in command and bootstrap.encode() in command:
            found.append(int(entry))
    return found


async def test_the_main_job_elects_super_peers_and_every_search_by_walk_or_super_layer_finds() -> (
    None
):
    """The README's command, ``overlay swarm --peers 50 --duration 30`` (with --port 0 and
    --json only so that the test can run beside others and read it): super peers
    elected, every weak peer attached, the index covering every item, and walk and
    super-layer searches finding every published item."""
    result = await trio.run_process(
        [*OVERLAY, "swarm", "--peers", "50", "--duration", "30", "--port", "0", "--json"],
        capture_stdout=True,
        capture_stderr=True,
        cwd=str(REPO),
        check=False,
    )
    assert result.returncode == 0, result.stderr.decode()[-2000:]
    summary = json.loads(result.stdout)
    assert summary["peers"] == summary["alive"] == 50
    assert summary["joining"] == 0
    assert summary["components"] == 1
    assert 1 <= summary["degree"]["min"] <= summary["degree"]["max"] <= MAX_DEGREE
    assert summary["roles"]["super"] >= 1
    assert summary["roles"]["super"] + summary["roles"]["weak"] == 50
    assert summary["unattached_weak"] == 0
    assert summary["index_coverage"] >= 0.999
    assert summary["stale_index_entries"] == 0
    assert summary["settled_seconds"] is not None
    assert summary["final_reading_wait_seconds"] >= 0
    keys = summary["items"]["keys"]
    assert len(keys) == 5
    search = summary["search"]
    for mode in ("walk", "super-flood", "super-walk"):
        found = {r["key"] for r in search["searches"] if r["mode"] == mode and r["success"]}
        assert found == set(keys), mode
    for mode, row in search["modes"].items():
        assert row["searches"] == 5, mode
        per_query = row["messages_per_query"]
        assert per_query["query"] >= 1 and per_query["total"] >= per_query["query"], mode
    # The figures are network-wide: a flood reaches every peer, so it costs more queries
    # than there are peers, and the origin alone sends only its degree's worth.
    assert search["modes"]["flood"]["messages_per_query"]["query"] > 50
    assert search["modes"]["walk"]["messages_per_query"]["check"] > 0
    assert summary["peers_left_gracefully"] == 50
    assert _workers_of(summary["bootstrap"]) == []
    err = result.stderr.decode()
    assert "bootstrap listening on 127.0.0.1:" in err
    assert all(key in err for key in keys)  # where to connect: the items' keys
    assert all(address in err for address in summary["addresses"])


def _progress_records(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.endswith("}")]


async def test_sigterm_stops_the_swarm_gracefully_and_progress_out_tells_when_it_converged(
    tmp_path: Path,
) -> None:
    progress = tmp_path / "progress.jsonl"
    process = await trio.lowlevel.open_process(
        [
            *OVERLAY,
            "swarm",
            "--peers",
            "20",
            "--duration",
            "0",
            "--port",
            "0",
            "--json",
            "--interval",
            "0.5",
            "--progress-out",
            str(progress),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        cwd=str(REPO),
    )
    assert process.stdout is not None and process.stderr is not None
    try:
        err = b""
        with trio.fail_after(HANG_GUARD):
            while b"bootstrap listening on" not in err:
                chunk = await process.stderr.receive_some(4096)
                assert chunk, err
                err += chunk
        bootstrap = err.split(b"bootstrap listening on ")[1].split()[0].decode()
        with trio.fail_after(HANG_GUARD):
            while len(_workers_of(bootstrap)) < 2:
                await trio.sleep(0.05)
        # The swarm appends one record per poll; a script waits for the convergence.
        with trio.fail_after(HANG_GUARD):
            while not any(r["converged_seconds"] for r in _progress_records(progress)):
                await trio.sleep(0.05)
        records = _progress_records(progress)
        converged = next(r for r in records if r["converged_seconds"])
        assert converged["joined"] == converged["alive"] == 20
        assert converged["components"] == 1
        assert [r["seconds"] for r in records] == sorted(r["seconds"] for r in records)
        process.send_signal(signal.SIGTERM)
        out = b""
        with trio.fail_after(60):
            while True:
                chunk = await process.stdout.receive_some(65536)
                if not chunk:
                    break
                out += chunk
            assert await process.wait() == 0
        summary = json.loads(out)
        assert summary["alive"] == 20
        assert summary["peers_left_gracefully"] == 20
        assert _workers_of(bootstrap) == []
        host, port = bootstrap.rsplit(":", 1)
        try:
            await trio.open_tcp_stream(host, int(port))
        except OSError:
            pass
        else:
            raise AssertionError("the bootstrap port is still listening")
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()


def test_replication_is_a_fraction_and_copies_a_count(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["swarm", "--replication", "2"]) == 2
    err = capsys.readouterr().err
    assert "--replication is a fraction" in err and "use --copies 2" in err
    assert main(["swarm", "--peers", "10", "--copies", "11"]) == 2
    assert "--copies is a count" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["swarm", "--copies", "2", "--replication", "0.1"])
    assert "not allowed with argument --copies" in capsys.readouterr().err
    assert copies_for(0.01, 50) == 1 and copies_for(0.1, 50) == 5 and copies_for(1.0, 7) == 7
