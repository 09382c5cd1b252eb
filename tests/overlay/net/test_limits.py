"""Limits of the trio runtime (issue 8, item 5) on real sockets: connections per remote
address, per prefix and per peer, and bounded send queues against a slow reader.  Each
test exceeds a limit, sees its counter rise, and checks that a well-behaved peer is still
served.  Clients bind to other loopback addresses (127.66.0.x) to play other hosts.

The flags and the swarm's pass-through are checked on the command line at the end.
"""

from __future__ import annotations

import json
import subprocess
import sys

import attrs
import pytest
import trio

from bootstrap.hostcache import HostCacheConfig
from bootstrap.server import BootstrapServer, serve_bootstrap
from overlay.core.peer import Peer
from overlay.net.node import Node, NodeConfig
from overlay.net.secure import LinkIdentity
from overlay.protocol.identity import Address, Contact
from overlay.protocol.messages import Handshake, PeerSample, Register, StatsRequest
from overlay.protocol.wire import PROTOCOL_VERSION, check_handshake, encode_frame
from overlay.tools.swarm import fetch_stats
from tests.conftest import (
    REPO,
    RawClient,
    connect,
    keyed_contact,
    neighbors,
    start_bootstrap,
    start_peer,
    wait_for,
)

PATIENT = NodeConfig(
    handshake_timeout=30.0, idle_timeout=60.0, transient_idle_timeout=60.0, send_timeout=60.0
)
"""Nothing closes the test's clients behind its back: only the limit under test acts."""


async def _from(source: str, to: Address) -> RawClient:
    """A bare TCP connection: it never starts its handshake."""
    return await connect(to, source=source, plaintext=True)


async def _secured_from(
    source: str, to: Address, identity: LinkIdentity | None = None
) -> RawClient:
    """Past the Noise handshake (``identity``, else a fresh key), before the frames."""
    return await connect(to, source=source, identity=identity)


async def _handshaken_from(
    source: str, to: Address, keyed: tuple[LinkIdentity, Contact] | None = None
) -> RawClient:
    """Handshaken as a client listening nowhere, or as ``keyed``'s contact (with its key)."""
    client = await _secured_from(source, to, keyed[0] if keyed is not None else None)
    assert client.identity is not None
    me = keyed[1] if keyed else Contact(client.identity.peer_id, Address(source, client.local_port))
    await client.send_message(Handshake(PROTOCOL_VERSION, me))
    check_handshake(await client.receive(), PROTOCOL_VERSION)
    return client


async def _closed(client: RawClient) -> bool:
    with trio.fail_after(5):
        return await client.closed_by_remote()


async def _pair(nursery: trio.Nursery, config: NodeConfig) -> tuple[Peer, Node, Peer]:
    server = await start_bootstrap(nursery)
    a, a_node = await start_peer(nursery, bootstrap=server.address, node_config=config)
    b, _ = await start_peer(nursery, bootstrap=server.address, seed=1)
    await wait_for(a_node, lambda: b.id in neighbors(a))
    return a, a_node, b


def _from_host(node: Node, host: str) -> int:
    return sum(1 for c in node.connections if c.label.rpartition(":")[0] == host)


async def _still_served(a: Peer, b: Peer) -> None:
    assert b.id in neighbors(a)
    reply = await fetch_stats(a.address)
    assert b.id in reply.neighbors


async def test_connections_per_host_and_per_prefix_are_capped(nursery: trio.Nursery) -> None:
    limits = NodeConfig(
        handshake_timeout=30.0,
        idle_timeout=60.0,
        transient_idle_timeout=60.0,
        max_per_host=3,
        max_per_prefix=5,
    )
    a, a_node, b = await _pair(nursery, limits)
    one = [await _handshaken_from("127.66.0.1", a.address) for _ in range(3)]
    # A fourth from the same host: none of its three is still in its handshake, refused.
    extra = await _from("127.66.0.1", a.address)
    assert await _closed(extra)
    assert a_node.counters["connections.refused_host"] == 1
    # Two more hosts of the same /24 fill the prefix; the next one from it is refused.
    others = [
        await _handshaken_from("127.66.0.2", a.address),
        await _handshaken_from("127.66.0.3", a.address),
    ]
    extra = await _from("127.66.0.4", a.address)
    assert await _closed(extra)
    assert a_node.counters["connections.refused_prefix"] == 1
    # Another prefix, and the peers on 127.0.0.1, are not affected.
    elsewhere = await _handshaken_from("127.77.0.1", a.address)
    await _still_served(a, b)
    # Sockets left in their handshake do not lock the host out: the oldest is evicted.
    for client in one[1:]:
        await client.stream.aclose()
    await wait_for(a_node, lambda: _from_host(a_node, "127.66.0.1") == 1)
    idle = [await _from("127.66.0.1", a.address) for _ in range(2)]
    fresh = await _handshaken_from("127.66.0.1", a.address)
    assert await _closed(idle[0])
    assert a_node.counters["connections.evicted"] >= 1
    await fresh.send_message(StatsRequest())
    assert (await fresh.receive()).__class__.__name__ == "StatsReply"
    for client in [one[0], *others, elsewhere, *idle, fresh]:
        await client.stream.aclose()


async def test_connections_per_peer_are_capped(nursery: trio.Nursery) -> None:
    a, a_node, b = await _pair(nursery, attrs.evolve(PATIENT, max_per_peer=2))
    keyed = keyed_contact(9, 9)
    claim = keyed[1]
    twins = [await _handshaken_from("127.0.0.1", a.address, keyed) for _ in range(2)]
    third = await _secured_from("127.0.0.1", a.address, keyed[0])
    await third.send_message(Handshake(PROTOCOL_VERSION, claim))
    assert await _closed(third)
    assert a_node.counters["connections.refused_peer"] == 1
    await _still_served(a, b)
    for client in twins:
        await client.stream.aclose()


async def test_a_slow_reader_fills_only_its_own_bounded_queue(nursery: trio.Nursery) -> None:
    limits = attrs.evolve(PATIENT, send_queue=8, send_timeout=1.0)
    a, a_node, b = await _pair(nursery, limits)
    reader = await _handshaken_from("127.0.0.1", a.address)
    label = f"127.0.0.1:{reader.local_port}"

    def open_at_a() -> bool:
        return any(c.label == label for c in a_node.connections)

    # Ask for replies (a few at a time, so the queue only fills once the socket buffers
    # are full) and never read them, until A gives up on us: the writer blocked for
    # send_timeout, while further replies were dropped at the bounded queue.
    request = encode_frame(StatsRequest()) * 4
    with trio.fail_after(30):
        while open_at_a():
            try:
                await reader.send(request)
            except (trio.BrokenResourceError, OSError):
                break
            await trio.sleep(0)
    assert a_node.counters.get("queue_full.StatsReply", 0) > 0
    assert a_node.counters["connections.slow_reader_closed"] == 1
    assert await _closed(reader)
    await _still_served(a, b)


async def test_the_bootstrap_rate_limits_registrations_per_address(
    nursery: trio.Nursery,
) -> None:
    server: BootstrapServer = await nursery.start(
        lambda task_status: serve_bootstrap(
            "127.0.0.1",
            0,
            config=HostCacheConfig(register_burst=2.0, register_rate=0.01),
            node_config=PATIENT,
            task_status=task_status,
        )
    )
    keyed = keyed_contact(3, 20003)
    eager = keyed[1]
    client = await _handshaken_from("127.0.0.1", server.address, keyed)
    for _ in range(5):
        await client.send_message(Register(4))
    samples = [await client.receive() for _ in range(2)]  # the burst; the rest: silence
    assert all(isinstance(m, PeerSample) for m in samples)
    with trio.fail_after(5):
        while (counters := await _stats_of(server.address)).get(
            "bootstrap.registrations_refused", 0
        ) < 3:
            pass  # each round trip is one more look (bounded by fail_after)
    assert counters["bootstrap.registrations"] == 2
    # A newcomer at another address is served at once.
    other = await _handshaken_from("127.0.0.1", server.address, keyed_contact(4, 20004))
    await other.send_message(Register(4))
    sample = await other.receive()
    assert isinstance(sample, PeerSample) and eager in sample.peers
    for each in (client, other):
        await each.stream.aclose()


async def _stats_of(address: Address) -> dict[str, int]:
    return {c.name: c.value for c in (await fetch_stats(address)).counters}


# ---------------------------------------------------------------------- command line


def _overlay(*args: str, timeout: float = 60.0) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "overlay.tools.cli", *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


@pytest.mark.parametrize(
    "flags",
    [["--loss", "1.5"], ["--delay", "soon"], ["--max-per-host", "0"], ["--query-rate", "-1"]],
)
def test_a_bad_limit_or_fault_flag_is_a_usage_error(flags: list[str]) -> None:
    result = _overlay("peer", "--bootstrap", "127.0.0.1:9", *flags)
    assert result.returncode == 2, result.stderr
    assert "overlay peer:" in result.stderr


def test_the_swarm_hands_faults_and_limits_to_its_workers() -> None:
    result = _overlay(
        "swarm",
        "--peers", "6",
        "--processes", "2",
        "--duration", "3",
        "--port", "0",
        "--loss", "0.3",
        "--query-rate", "7",
        "--json",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    totals = summary["faults_and_limits"]
    assert totals["node.faults.dropped"] > 0
    assert summary["alive"] == 6
