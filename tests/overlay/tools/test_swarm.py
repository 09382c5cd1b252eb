"""``overlay swarm`` end to end: real processes, real sockets, the summary of ``overlay sim``."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys

import trio

from tests.conftest import REPO

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


async def test_a_swarm_of_200_forms_one_component_and_leaves_cleanly() -> None:
    """The issue's command: ``overlay swarm --peers 200 --duration 20 --json``."""
    result = await trio.run_process(
        [*OVERLAY, "swarm", "--peers", "200", "--duration", "20", "--port", "0", "--json"],
        capture_stdout=True,
        capture_stderr=True,
        cwd=str(REPO),
        check=False,
    )
    assert result.returncode == 0, result.stderr.decode()[-2000:]
    summary = json.loads(result.stdout)
    assert summary["peers"] == 200
    assert summary["alive"] == 200
    assert summary["joining"] == 0
    assert summary["components"] == 1
    assert summary["largest_component_fraction"] == 1.0
    assert 1 <= summary["degree"]["min"] <= summary["degree"]["max"] <= MAX_DEGREE
    assert summary["messages"]["Heartbeat"] > 0
    assert summary["converged_seconds"] is not None
    assert summary["peers_left_gracefully"] == 200
    assert _workers_of(summary["bootstrap"]) == []
    assert b"bootstrap listening on 127.0.0.1:" in result.stderr


async def test_sigterm_stops_the_swarm_gracefully() -> None:
    process = await trio.lowlevel.open_process(
        [*OVERLAY, "swarm", "--peers", "20", "--duration", "600", "--port", "0", "--json"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        cwd=str(REPO),
    )
    assert process.stdout is not None and process.stderr is not None
    try:
        err = b""
        with trio.fail_after(30):
            while b"bootstrap listening on" not in err:
                chunk = await process.stderr.receive_some(4096)
                assert chunk, err
                err += chunk
        bootstrap = err.split(b"bootstrap listening on ")[1].split()[0].decode()
        with trio.fail_after(30):
            while len(_workers_of(bootstrap)) < 2:
                await trio.sleep(0.05)
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
