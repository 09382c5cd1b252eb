"""Batched stats from a swarm worker (overlay/net/swarm/stats.py): one request, one reply per
hosted peer, equal to what the peer answers a TCP stats request with.

The in-process tests run real peers on loopback sockets and carry the worker's side
(:func:`overlay.tools.cli_view.handle_control_line`) and the parent's side
(:class:`overlay.net.swarm.stats.StatsBatches`) over a fake pipe; the last test runs a
real worker process of ``overlay swarm`` and asks it over its real pipe.
"""

from __future__ import annotations

import json
import random
import subprocess
import sys
from typing import Any

import attrs
import pytest
import trio

from bootstrap.server import BootstrapServer, serve_bootstrap
from overlay.net.node import Node
from overlay.net.swarm.control import handle_control_line
from overlay.net.swarm.stats import MAX_PART_BYTES, StatsBatches, stats_records
from overlay.protocol.errors import ProtocolError, TransportError
from overlay.protocol.identity import Address
from overlay.protocol.messages import StatCounter, StatsReply
from overlay.tools.cli_view import WorkerControl
from overlay.tools.crawl import crawl, fetch_stats
from overlay.tools.swarm import Worker, _read_worker
from tests.conftest import REPO
from tests.overlay.tools.test_crawl import PEERS, Swarm, start_swarm

WORKER = (sys.executable, "-m", "overlay.net.swarm.worker")
"""How ``overlay swarm`` starts a worker process."""


def without_counters(reply: StatsReply) -> StatsReply:
    return attrs.evolve(reply, counters=())


def pipe_to(nodes: list[Node], batches: StatsBatches, lines: list[bytes]) -> Any:
    """A fake worker pipe: the line goes to the worker's handler, whose records come
    straight back to ``batches`` (what ``overlay.tools.swarm._read_worker`` does)."""

    async def add_peer() -> None:
        raise AssertionError("not asked for")

    async def send(line: bytes) -> None:
        lines.append(line)
        assert await handle_control_line(line + b"\n", nodes, add_peer, batches.deliver)

    return send


async def batch_and_tcp(swarm: Swarm) -> tuple[list[StatsReply], dict[str, StatsReply]]:
    """A batch taken between two TCP crawls that agree (the overlay held still)."""
    batches = StatsBatches()
    for _ in range(20):  # bounded tries
        before = {r.id: r for r in [await fetch_stats(p.address, 2.0) for p in swarm.peers]}
        lines: list[bytes] = []
        batch = await batches.ask(pipe_to(swarm.nodes, batches, lines), timeout=5.0)
        after = {r.id: r for r in [await fetch_stats(p.address, 2.0) for p in swarm.peers]}
        assert len(lines) == 1 and lines[0].startswith(b"stats ")  # ONE request for all
        if {k: without_counters(v) for k, v in before.items()} == {
            k: without_counters(v) for k, v in after.items()
        }:
            return batch, after
    raise AssertionError("the overlay never held still")


async def test_one_batch_brings_every_hosted_peers_tcp_stats_reply(nursery: trio.Nursery) -> None:
    swarm = await start_swarm(nursery, PEERS)
    batch, tcp = await batch_and_tcp(swarm)
    assert len(batch) == PEERS
    assert {r.id for r in batch} == {p.id for p in swarm.peers}
    for reply in batch:
        over_tcp = tcp[reply.id]
        # Everything but the counters is the same record; the counters are the same
        # ones (a TCP request adds to its own: connections, StatsReply sent).
        assert without_counters(reply) == without_counters(over_tcp)
        assert {c.name for c in reply.counters} <= {c.name for c in over_tcp.counters}
        assert any(c.name.startswith("node.") for c in reply.counters)
        assert reply.neighbors  # a real overlay, not empty records


async def test_a_crashed_peer_is_left_out_and_the_crawl_asks_the_rest_over_tcp(
    nursery: trio.Nursery,
) -> None:
    swarm = await start_swarm(nursery, PEERS)
    victim = swarm.nodes[0]
    victim.stop()
    hosted = swarm.nodes[:4]  # the parent hosts four; the other peers are outsiders
    batches = StatsBatches()
    send = pipe_to(hosted, batches, [])
    result = await crawl(
        swarm.server.address, timeout=2.0, prefetch=lambda: batches.ask(send, timeout=5.0)
    )
    statuses = {m.id: m.status for m in result.members}
    assert statuses[swarm.peers[0].id] == "unreachable"  # still listed: asked over TCP
    assert sum(1 for s in statuses.values() if s == "alive") == PEERS - 1
    for node in swarm.nodes[1:4]:  # hosted peers were not asked over TCP
        assert node.counters.get("sent.StatsReply", 0) == 0
    for node in swarm.nodes[4:]:
        assert node.counters.get("sent.StatsReply", 0) == 1


def reply(index: int, neighbors: int = 12) -> StatsReply:
    return StatsReply(
        id=f"{index:032x}",
        address=Address("127.0.0.1", 10_000 + index),
        role="weak",
        joined=True,
        neighbors=tuple(f"{index + 1 + n:032x}" for n in range(neighbors)),
        passive=tuple(f"{index + 100 + n:032x}" for n in range(30)),
        known_hosts=64,
        counters=tuple(StatCounter(f"counter.{n}", n) for n in range(40)),
    )


async def test_a_large_answer_comes_in_bounded_parts_and_decodes_whole() -> None:
    replies = [reply(i) for i in range(1500)]
    records = stats_records(7, replies)
    assert len(records) >= 2
    assert all(len(r["frames"]) <= 4 * (MAX_PART_BYTES + 65536) // 3 + 4 for r in records)
    batches = StatsBatches()

    async def send(line: bytes) -> None:
        assert line == b"stats 1"
        for record in reversed(stats_records(1, replies)):  # any order
            batches.deliver(json.loads(json.dumps(record)))

    assert await batches.ask(send, timeout=5.0) == replies


async def test_bad_late_and_missing_answers(autojump_clock: trio.testing.MockClock) -> None:
    batches = StatsBatches()

    async def silent(line: bytes) -> None:
        pass

    with pytest.raises(TransportError):
        await batches.ask(silent, timeout=2.0)
    batches.deliver(stats_records(1, [reply(1)])[0])  # too late: nobody waits for it
    batches.deliver({"stats": 2, "part": 3, "parts": 1, "frames": ""})  # malformed
    assert batches.dropped == 2

    async def garbled(line: bytes) -> None:
        batches.deliver({"stats": 2, "part": 0, "parts": 1, "frames": "AAAA!!"})

    with pytest.raises(ProtocolError):
        await batches.ask(garbled, timeout=2.0)


async def test_a_real_worker_answers_over_its_pipe(nursery: trio.Nursery) -> None:
    server: BootstrapServer = await nursery.start(
        lambda task_status: serve_bootstrap("127.0.0.1", 0, seed=3, task_status=task_status)
    )
    process = await trio.lowlevel.open_process(
        [*WORKER, "--bootstrap", str(server.address), "--count", "4"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        cwd=str(REPO),
    )
    worker = Worker(0, 4, process)
    nursery.start_soon(_read_worker, worker)
    try:
        with trio.fail_after(60):
            await worker.ready.wait()
            assert len(worker.peers) == 4
            control = WorkerControl([worker], [], random.Random(1))
            batch = await control.snapshots(timeout=30.0)
            over_tcp = [await fetch_stats(address, 10.0) for address in worker.peers]
    finally:
        assert process.stdin is not None
        await process.stdin.aclose()  # the worker's signal to leave
        with trio.fail_after(30):
            await process.wait()
    assert sorted(r.address for r in batch) == sorted(worker.peers)
    by_id = {r.id: r for r in over_tcp}
    for got in batch:
        tcp = by_id[got.id]
        assert (got.address, got.role) == (tcp.address, tcp.role)
        assert {c.name for c in got.counters} <= {c.name for c in tcp.counters}
