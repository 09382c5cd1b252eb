"""Every command that needs a bootstrap or a peer says, in one line naming the address,
that nothing answers there, and exits non-zero: no traceback, no endless empty frames.

Each runs as a subprocess against a port nobody listens on, under a bound (the machine
is shared: the bound is for a hung command, never a timing claim).
"""

from __future__ import annotations

import socket
import subprocess
from pathlib import Path

import pytest
import trio

from tests.conftest import OVERLAY, REPO, interrupt

KEY = "0" * 64
BOUND = 30.0


def closed_address() -> str:
    """HOST:PORT of a port that was free a moment ago (nothing listens there)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"127.0.0.1:{port}"


async def run(args: list[str]) -> subprocess.CompletedProcess[bytes]:
    with trio.fail_after(BOUND):
        return await trio.run_process(
            [*OVERLAY, *args], capture_stdout=True, capture_stderr=True, cwd=str(REPO), check=False
        )


def one_line_naming(stderr: bytes, address: str) -> str:
    text = stderr.decode()
    assert "Traceback" not in text, text
    lines = [line for line in text.splitlines() if line.strip()]
    assert len(lines) == 1, text
    assert address in lines[0] and "nothing answers at" in lines[0], text
    return lines[0]


@pytest.mark.parametrize(
    "command",
    [
        ["members", "--bootstrap", "{A}"],
        ["view", "--bootstrap", "{A}", "--once"],
        ["view", "--bootstrap", "{A}", "--export", "{DIR}/topology.png"],
        ["view", "--bootstrap", "{A}"],
        ["search", "--via", "{A}", "--mode", "walk", KEY],
        ["publish", "--via", "{A}", "--text", "hello"],
        ["fetch", "--via", "{A}", KEY, "-o", "{DIR}/out"],
        ["swarm", "--bootstrap", "{A}", "--peers", "2"],
    ],
    ids=lambda c: " ".join([*c[:2], c[-1]] if c[0] == "view" else c[:1]),
)
async def test_a_command_says_nothing_answers_and_fails(command: list[str], tmp_path: Path) -> None:
    address = closed_address()
    args = [a.replace("{A}", address).replace("{DIR}", str(tmp_path)) for a in command]
    done = await run(args)
    assert done.returncode == 1, done.stderr.decode()
    one_line_naming(done.stderr, address)
    assert not (tmp_path / "topology.png").exists()
    assert not (tmp_path / "out").exists()


async def test_a_peer_keeps_saying_so_then_gives_up_after_its_join_timeout() -> None:
    address = closed_address()
    done = await run(["peer", "--bootstrap", address, "--join-timeout", "3"])
    assert done.returncode == 1
    text = done.stderr.decode()
    assert "Traceback" not in text, text
    lines = [line for line in text.splitlines() if line.strip()]
    assert len(lines) >= 2, text  # retried (and said so) before giving up
    assert all(address in line and "nothing answers at" in line for line in lines), text
    assert "trying again in" in lines[0]
    assert "gave up" in lines[-1] and "--join-timeout" in lines[-1]


async def test_a_peer_with_join_timeout_0_keeps_trying() -> None:
    address = closed_address()
    process = await trio.lowlevel.open_process(
        [*OVERLAY, "peer", "--bootstrap", address, "--join-timeout", "0"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        cwd=str(REPO),
    )
    assert process.stderr is not None
    try:
        err = b""
        with trio.fail_after(BOUND):
            while err.count(b"trying again in") < 2:  # 1 s, then 2 s later: still at it
                chunk = await process.stderr.receive_some(4096)
                assert chunk, err.decode()
                err += chunk
        assert process.returncode is None
        assert b"gave up" not in err
    finally:
        await interrupt(process)
