"""The bound on handshakes at once (overlay/net/handshake_gate.py): a pool's slots, its
bounded queue and the per-source share, alone and on a node's real sockets."""

from __future__ import annotations

import logging

import pytest
import trio
import trio.testing

from overlay.net.handshake_gate import GateLimits, HandshakeBusy, HandshakeGate, Pool
from overlay.net.node import NodeConfig
from overlay.protocol.effects import Send
from overlay.protocol.identity import Address
from overlay.protocol.messages import NeighborRequest
from tests.conftest import handshaken, start_peer


async def test_a_pool_grants_free_slots_queues_in_order_and_refuses_past_its_bounds() -> None:
    pool = Pool(GateLimits(slots=1, waiting=2, per_source=2))
    order: list[str] = []

    async def holder(name: str, source: str, done: trio.Event) -> None:
        await pool.enter(source)
        order.append(name)
        await done.wait()
        pool.leave(source)

    assert not await pool.enter("10.0.0.1")  # a free slot: no wait
    done = {name: trio.Event() for name in "bc"}
    async with trio.open_nursery() as nursery:
        nursery.start_soon(holder, "b", "10.0.0.1", done["b"])
        await trio.testing.wait_all_tasks_blocked()
        with pytest.raises(HandshakeBusy, match=r"from 10\.0\.0\.1"):
            await pool.enter("10.0.0.1")  # its share (2) is held while the pool is full
        nursery.start_soon(holder, "c", "10.0.0.2", done["c"])
        await trio.testing.wait_all_tasks_blocked()
        assert (pool.running, pool.waiting) == (1, 2)
        with pytest.raises(HandshakeBusy, match="waiting already"):
            await pool.enter("10.0.0.3")
        pool.leave("10.0.0.1")  # the slot passes to the oldest waiter (b), then to c
        await trio.testing.wait_all_tasks_blocked()
        assert order == ["b"]
        done["b"].set()
        await trio.testing.wait_all_tasks_blocked()
        assert order == ["b", "c"]
        done["c"].set()
    assert (pool.running, pool.waiting, pool.held_by("10.0.0.1")) == (0, 0, 0)


async def test_an_overloaded_pool_serves_its_newest_waiter_first(
    mock_clock: trio.testing.MockClock,
) -> None:
    pool = Pool(GateLimits(slots=1, waiting=8, lifo_after=1.0))
    await pool.enter(None)
    order: list[str] = []

    async def waiter(name: str) -> None:
        await pool.enter(None)
        order.append(name)
        pool.leave(None)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(waiter, "old")
        await trio.testing.wait_all_tasks_blocked()
        mock_clock.jump(5.0)  # the oldest has waited past lifo_after: overload
        nursery.start_soon(waiter, "new")
        await trio.testing.wait_all_tasks_blocked()
        pool.leave(None)
    assert order == ["new", "old"]


async def test_an_urgent_waiter_is_served_before_older_ordinary_ones_and_counts_in_the_bounds(
    mock_clock: trio.testing.MockClock,
) -> None:
    pool = Pool(GateLimits(slots=1, waiting=3, lifo_after=1.0))
    await pool.enter(None)
    order: list[str] = []

    async def waiter(name: str, urgent: bool) -> None:
        await pool.enter(None, urgent=urgent)
        order.append(name)
        pool.leave(None)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(waiter, "ordinary", False)
        await trio.testing.wait_all_tasks_blocked()
        mock_clock.jump(0.5)  # not overloaded: among ordinary waiters the oldest goes first
        nursery.start_soon(waiter, "urgent", True)
        await trio.testing.wait_all_tasks_blocked()
        nursery.start_soon(waiter, "urgent too", True)
        await trio.testing.wait_all_tasks_blocked()
        assert pool.waiting == 3
        with pytest.raises(HandshakeBusy, match="waiting already"):
            await pool.enter(None, urgent=True)  # urgent ones are bounded like any
        pool.leave(None)
    # Both urgent ones (oldest first, as nobody has waited past lifo_after), then the
    # ordinary one that had waited longest of all.
    assert order == ["urgent", "urgent too", "ordinary"]
    assert (pool.running, pool.waiting) == (0, 0)


async def test_a_cancelled_urgent_waiter_leaves_its_queue() -> None:
    pool = Pool(GateLimits(slots=1, waiting=4))
    await pool.enter(None)
    order: list[str] = []
    scope = trio.CancelScope()

    async def waiter(name: str, urgent: bool, scope: trio.CancelScope | None = None) -> None:
        with scope or trio.CancelScope():
            await pool.enter(None, urgent=urgent)
            order.append(name)
            pool.leave(None)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(waiter, "ordinary", False)
        nursery.start_soon(waiter, "urgent", True, scope)
        await trio.testing.wait_all_tasks_blocked()
        scope.cancel()
        await trio.testing.wait_all_tasks_blocked()
        assert pool.waiting == 1
        pool.leave(None)
    assert order == ["ordinary"]
    assert (pool.running, pool.waiting) == (0, 0)


async def test_a_waiter_cancelled_leaves_the_queue_and_a_granted_slot_passes_on() -> None:
    pool = Pool(GateLimits(slots=1, waiting=4, per_source=4))
    await pool.enter(None)
    entered: list[str] = []

    async def waiter(name: str, scope: trio.CancelScope) -> None:
        with scope:
            await pool.enter("x")
            entered.append(name)
            await trio.sleep_forever()  # holds its slot until cancelled
        if name in entered:
            pool.leave("x")

    first, second = trio.CancelScope(), trio.CancelScope()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(waiter, "first", first)
        await trio.testing.wait_all_tasks_blocked()
        nursery.start_soon(waiter, "second", second)
        await trio.testing.wait_all_tasks_blocked()
        first.cancel()  # gives up its place in the queue
        await trio.testing.wait_all_tasks_blocked()
        assert (pool.waiting, pool.held_by("x")) == (1, 1)
        pool.leave(None)
        await trio.testing.wait_all_tasks_blocked()
        assert entered == ["second"]
        second.cancel()
    assert (pool.running, pool.waiting, pool.held_by("x")) == (0, 0, 0)


def _refusals(caplog: pytest.LogCaptureFixture, port: int) -> list[str]:
    return [
        r.getMessage()
        for r in caplog.records
        if r.levelno >= logging.WARNING and f":{port}:" in r.getMessage() + ":"
    ]


async def _raw(to: Address, source: str) -> trio.SocketStream:
    """A TCP connection that says nothing (it holds or waits for a handshake slot)."""
    return await trio.open_tcp_stream(to.host, to.port, local_address=source)


async def _closed(stream: trio.SocketStream) -> bool:
    with trio.fail_after(30):
        while await stream.receive_some(4096):
            pass
    return True


async def test_a_node_runs_one_handshake_at_a_time_queues_a_bounded_few_and_refuses_the_rest(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO)
    config = NodeConfig(
        handshake_slots=1, handshake_waiting=2, handshakes_per_source=2, handshake_timeout=60
    )
    async with trio.open_nursery() as nursery:
        _peer, node = await start_peer(nursery, bootstrap=None, node_config=config)
        to = node.contact.address
        pool = node.gate.inbound

        async def settled(running: int, waiting: int) -> None:
            await trio.testing.wait_all_tasks_blocked()
            assert (pool.running, pool.waiting) == (running, waiting)

        silent = await _raw(to, "127.0.0.1")  # holds the one slot, saying nothing
        await settled(1, 0)
        answered = trio.Event()

        async def honest_client() -> None:
            client, _ = await handshaken(to)  # waits its turn, then is served
            answered.set()
            await client.stream.aclose()

        nursery.start_soon(honest_client)
        await settled(1, 1)
        # 127.0.0.1 holds its share (2) of a full pool: a third from it is refused ...
        greedy = await _raw(to, "127.0.0.1")
        assert await _closed(greedy)
        port = greedy.socket.getsockname()[1]
        assert len(_refusals(caplog, port)) == 1, _refusals(caplog, port)
        # ... another source still gets a place in the queue ...
        patient = await _raw(to, "127.0.0.2")
        await settled(1, 2)
        # ... until the queue is full.
        late = await _raw(to, "127.0.0.3")
        assert await _closed(late)
        assert "waiting already" in _refusals(caplog, late.socket.getsockname()[1])[0]
        assert node.counters["handshake.refused_busy"] == 2
        # The silent ones leave: the honest client is served.
        await silent.aclose()
        await patient.aclose()
        with trio.fail_after(60):
            await answered.wait()
        await settled(0, 0)
        assert node.counters["handshake.waited"] >= 1
        node.stop()


def test_nodes_of_one_process_can_share_a_gate() -> None:
    gate = HandshakeGate(GateLimits(slots=3))
    assert gate.pool(True) is gate.inbound and gate.pool(False) is gate.outbound
    assert gate.inbound is not gate.outbound  # dialled handshakes wait on accepted ones
    assert NodeConfig(handshake_slots=5).gate_limits().slots == 5


async def test_a_pool_is_full_exactly_when_enter_would_refuse_a_newcomer() -> None:
    pool = Pool(GateLimits(slots=1, waiting=1))
    assert not pool.full  # a free slot
    assert not await pool.enter(None)
    assert not pool.full  # no free slot, but room in the queue
    async with trio.open_nursery() as nursery:
        nursery.start_soon(pool.enter, None)
        await trio.testing.wait_all_tasks_blocked()
        assert pool.full
        with pytest.raises(HandshakeBusy, match="waiting already"):
            await pool.enter(None)
        pool.leave(None)  # the waiter gets the slot: the queue is empty again
        await trio.testing.wait_all_tasks_blocked()
        assert not pool.full
    pool.leave(None)
    assert not pool.full


async def test_a_dial_the_gate_would_refuse_costs_no_connection_and_is_not_a_lost_link() -> None:
    """A worker's dial queue full (a join storm): the dial is refused before it makes a
    connection, a task or an exception, and the core is not told the link was lost (it
    would ask someone else at once, and be refused again)."""
    config = NodeConfig(handshake_slots=1, handshake_waiting=0)
    async with trio.open_nursery() as nursery:
        _peer, node = await start_peer(nursery, bootstrap=None, node_config=config)
        assert not await node.gate.outbound.enter(None)  # the one slot, held here
        assert node.gate.outbound.full
        to = Address("127.0.0.1", 9)
        node.apply([Send(to, NeighborRequest(False))])
        assert node.counters["dial.refused_busy"] == 1
        assert node.counters["dropped.no_link.NeighborRequest"] == 1
        # No connection, so no task to end it and tell the core the link was lost.
        assert not node.links.get(to) and not node.connections and node.outbound == 0
        assert node.counters.get("dial.started", 0) == 0
        node.gate.outbound.leave(None)
        node.stop()
