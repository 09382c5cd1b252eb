"""The bootstrap node on real sockets: registering, its state file across a restart of
``overlay bootstrap --state``, and bad input."""

from __future__ import annotations

import json
import logging
import math
import random
import signal
from pathlib import Path

import pytest
import trio

from bootstrap.hostcache import HostCache, HostCacheConfig
from bootstrap.server import load_state, restore_cache, save_state
from overlay.net.node import NodeConfig
from overlay.protocol.identity import Address, Contact
from overlay.protocol.messages import PeerSample, Register
from tests.conftest import (
    HANG_GUARD,
    connect,
    finish,
    handshaken,
    keyed_contact,
    spawn_overlay,
    start_bootstrap,
)


def _contact(seed: int) -> Contact:
    return keyed_contact(seed, 20000 + seed)[1]


async def register(bootstrap: Address, contact: Contact, want: int = 16) -> PeerSample:
    """Register as ``contact`` (proving its key; the reply comes back on this connection)."""
    seed = contact.address.port - 20000
    identity, keyed = keyed_contact(seed, contact.address.port)
    assert keyed == contact
    client, _ = await handshaken(bootstrap, claim=contact, identity=identity)
    async with client.stream:
        await client.send_message(Register(want))
        with trio.fail_after(5):
            reply = await client.receive()
    assert isinstance(reply, PeerSample)
    return reply


def test_state_round_trip_keeps_the_remaining_lease(tmp_path: Path) -> None:
    rng = random.Random(1)
    cache = HostCache(_contact(0), HostCacheConfig(), rng)
    cache.add(_contact(1), "weak", 1, expires=1000.0 + 50.0)
    cache.add(_contact(2), "super", 9, expires=1000.0 + 5.0)
    cache.add(_contact(3), "weak", 1, expires=999.0)  # already expired: not saved
    path = tmp_path / "state.json"
    save_state(path, cache, now=1000.0)
    state = load_state(path)
    assert state is not None
    assert state.id == cache.me.id
    assert {h.contact for h in state.hosts} == {_contact(1), _contact(2)}
    fresh = HostCache(_contact(0), HostCacheConfig(), rng)
    # The new process's clock starts elsewhere: leases are re-based on it.
    assert restore_cache(fresh, state, now=7.0) == 2
    expiries = {r.contact: r.expires for r in fresh.records()}
    assert 7.0 + 49.0 < expiries[_contact(1)] <= 7.0 + 50.0
    assert expiries[_contact(2)] <= 7.0 + 5.0
    # The super peer registered a lease (60 s) before it expires: it had served 55 s,
    # and keeps that service, so a restart does not send it back to the end of the line.
    served = {r.contact: r.super_since for r in fresh.records()}
    assert served[_contact(2)] == 7.0 - 55.0
    assert served[_contact(1)] == math.inf, "a weak peer has served nothing"


def test_a_damaged_state_file_is_moved_aside(tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    path.write_text("{not json")
    assert load_state(path) is None
    assert not path.exists()
    assert (tmp_path / "state.json.damaged").read_text() == "{not json"


async def test_registration_returns_a_sample_of_the_others(nursery: trio.Nursery) -> None:
    server = await start_bootstrap(nursery)
    first = await register(server.address, _contact(1))
    assert first.peers == ()
    second = await register(server.address, _contact(2))
    assert second.peers == (_contact(1),)
    assert _contact(1).id in server.cache and _contact(2).id in server.cache


async def test_a_restart_with_state_reloads_the_cache(tmp_path: Path) -> None:
    state = tmp_path / "bootstrap.json"
    child = await spawn_overlay(["bootstrap", "--port", "0", "--state", str(state)])
    try:
        registered = {_contact(i) for i in range(1, 4)}
        for contact in registered:
            await register(child.address, contact)
        child.process.send_signal(signal.SIGTERM)
        assert await finish(child) == 0
    finally:
        if child.process.returncode is None:
            child.process.kill()
    saved = json.loads(state.read_text())
    assert len(saved["hosts"]) == 3
    again = await spawn_overlay(["bootstrap", "--port", "0", "--state", str(state)])
    try:
        assert again.id == child.id
        sample = await register(again.address, _contact(9))
        assert set(sample.peers) == registered
    finally:
        again.process.send_signal(signal.SIGINT)
        assert await finish(again) == 0
    # The newcomer was saved on the way out too.
    assert len(json.loads(state.read_text())["hosts"]) == 4


@pytest.mark.parametrize(
    "payload",
    [b"\x00\x00\x00\x04\xc1\xc1\xc1\xc1", b"\xff\xff\xff\xff", b"\x00\x00\x00\x30short"],
    ids=["garbage", "oversized-prefix", "truncated-then-silence"],
)
async def test_bad_input_to_the_bootstrap_is_one_line_and_it_keeps_serving(
    nursery: trio.Nursery, caplog: pytest.LogCaptureFixture, payload: bytes
) -> None:
    server = await start_bootstrap(nursery)
    await register(server.address, _contact(1))
    client = await connect(server.address)
    await client.send(payload)
    with trio.fail_after(HANG_GUARD):
        assert await client.closed_by_remote()
    label = f"127.0.0.1:{client.local_port}"
    lines = [
        r.getMessage()
        for r in caplog.records
        if r.levelno >= logging.WARNING and label in r.getMessage()
    ]
    assert len(lines) == 1, lines
    sample = await register(server.address, _contact(2))
    assert sample.peers == (_contact(1),)


async def test_hundreds_of_idle_connections_to_the_bootstrap(
    nursery: trio.Nursery, caplog: pytest.LogCaptureFixture
) -> None:
    server = await start_bootstrap(
        nursery, node_config=NodeConfig(max_connections=50, handshake_timeout=1.0)
    )
    # From one other host, saying nothing (not even the Noise handshake's first
    # message): the handshake gate gives one host a bounded share of the handshakes
    # under way (overlay/net/handshake_gate.py), so what must go on being served while
    # they idle is everyone else.
    idler = "127.0.0.3"
    clients = [await connect(server.address, source=idler, plaintext=True) for _ in range(200)]
    sample = await register(server.address, _contact(1))  # served while they idle
    assert sample.peers == ()
    with trio.fail_after(HANG_GUARD):
        async with trio.open_nursery() as waiting:
            for client in clients:
                waiting.start_soon(client.closed_by_remote)
    for client in clients:
        label = f"{idler}:{client.local_port}"
        assert sum(label in r.getMessage() for r in caplog.records) == 1
        await client.stream.aclose()
    assert (await register(server.address, _contact(2))).peers == (_contact(1),)
