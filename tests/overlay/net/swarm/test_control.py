"""``overlay swarm --control``: churn driven by lines on its standard input (the soak's
way in, benchmarks/soak.py), read back by crawling the swarm over TCP."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable

import trio

from overlay.protocol.identity import Address
from overlay.tools.crawl import Crawl, crawl
from tests.conftest import OVERLAY, REPO

PEERS = 6
SWARM_FLAGS = ("--port", "0", "--duration", "600", "--interval", "5", "--control", "--json")
SETTLE = 90.0
"""Bound on each wait (the machine is shared); never a timing claim."""


async def until_crawl(bootstrap: Address, holds: Callable[[Crawl], bool]) -> Crawl:
    with trio.fail_after(SETTLE):
        for _ in range(10_000):  # bounded; the deadline too
            result = await crawl(bootstrap, timeout=3.0)
            if holds(result):
                return result
            await trio.sleep(0.3)
    raise AssertionError("unreachable")


def alive(result: Crawl) -> set[Address]:
    return set(result.alive_addresses().values())


async def accepts(address: Address) -> bool:
    try:
        stream = await trio.open_tcp_stream(address.host, address.port)
    except OSError:
        return False
    await stream.aclose()
    return True


async def test_control_lines_crash_and_add_peers_and_the_end_of_input_ends_the_swarm() -> None:
    process = await trio.lowlevel.open_process(
        [*OVERLAY, "swarm", "--peers", str(PEERS), "--processes", "1", *SWARM_FLAGS],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        cwd=str(REPO),
    )
    assert process.stdin is not None and process.stdout is not None
    assert process.stderr is not None
    err = bytearray()
    out = bytearray()

    async def drain(stream: trio.abc.ReceiveStream, into: bytearray) -> None:
        for _ in range(1_000_000):  # bounded: each read brings a byte, or ends
            data = await stream.receive_some(65536)
            if not data:
                return
            into += data

    try:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(drain, process.stderr, err)
            nursery.start_soon(drain, process.stdout, out)
            with trio.fail_after(30):
                while b"bootstrap listening on " not in err:
                    await trio.sleep(0.05)
            bootstrap = Address.parse(err.split(b"bootstrap listening on ")[1].split()[0].decode())
            first = await until_crawl(bootstrap, lambda r: len(alive(r)) == PEERS)
            victim = min(alive(first))
            await process.stdin.send_all(f"crash {victim}\nnot a command\nadd\n".encode())
            after = await until_crawl(
                bootstrap,
                lambda r: victim not in alive(r) and len(alive(r) - alive(first)) == 1,
            )
            assert len(alive(after)) == PEERS
            # The bootstrap alone stops (benchmarks/faults.py's joins with it down).
            await process.stdin.send_all(b"stop-bootstrap\n")
            with trio.fail_after(SETTLE):
                while await accepts(bootstrap):
                    await trio.sleep(0.1)
            await process.stdin.aclose()  # the end of input ends the swarm, gracefully
            with trio.fail_after(SETTLE):
                assert await process.wait() == 0
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    summary = json.loads(bytes(out).splitlines()[-1])
    # The crashed peer is let go by its worker: only the live ones leave.
    assert summary["peers_left_gracefully"] == PEERS
    assert b"unknown line" in err
    assert summary["peers"] == PEERS  # the summary is read from the peers, not the bootstrap
