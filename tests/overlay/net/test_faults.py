"""Fault injection in the trio runtime (issue 8, item 1): loss, delay, partitions.

The delay queue is checked alone under trio's MockClock (virtual time, exact instants);
loss, delay and partitions are then checked on real sockets (127.0.0.1, port 0) with the
fast timers of :mod:`tests.conftest`, waiting on conditions, never on sleeps.
"""

from __future__ import annotations

import random
from functools import partial
from pathlib import Path

import attrs
import networkx as nx
import pytest
import trio
import trio.testing

from bootstrap.hostcache import HostCacheConfig
from bootstrap.server import BootstrapServer, serve_bootstrap
from overlay.core.peer import Peer
from overlay.net.faults import (
    AddressPattern,
    FaultInjector,
    FaultPlan,
    Partition,
    PartitionSource,
    parse_delay,
    watch_partition_file,
    write_partition_file,
)
from overlay.net.node import Node, NodeConfig
from overlay.protocol.identity import Address
from overlay.protocol.messages import Heartbeat, Message
from overlay.sim.topology import graph_of
from tests.conftest import (
    FAST,
    HANDSHAKE_PATIENCE,
    neighbors,
    start_bootstrap,
    start_peer,
    wait_for,
)

A = Address("127.0.0.1", 7001)
B = Address("127.0.0.1", 7002)
C = Address("127.66.0.9", 7003)


# ---------------------------------------------------------------------- the pure parts


def test_delay_argument_is_milliseconds_with_optional_jitter() -> None:
    assert parse_delay("200") == (0.2, 0.0)
    assert parse_delay("200:50") == (0.2, 0.05)
    for bad in ("", "x", "10:y", "-5", "70000"):
        with pytest.raises(ValueError):
            parse_delay(bad)


def test_partition_sides_follow_the_simulator() -> None:
    partition = Partition.parse("127.0.0.1:7001  # one peer\n\n127.66.0.0/24\n")
    assert partition.side_of(A) == 1
    assert partition.side_of(C) == 2
    assert partition.side_of(B) == 0  # on no side: side 0
    assert partition.separates(A, B) and partition.separates(A, C) and partition.separates(B, C)
    assert not partition.separates(A, Address("127.0.0.1", 7001))
    assert not Partition().separates(A, B)  # no sides: no partition
    whole_host = AddressPattern.parse("127.0.0.1")
    assert whole_host.matches(A) and whole_host.matches(B) and not whole_host.matches(C)
    assert not AddressPattern.parse("10.0.0.0/8").matches(Address("example.org", 1))
    with pytest.raises(ValueError):
        Partition.parse("300.1.1.1/33")


def _recorder(
    plan: FaultPlan, log: list[tuple[float, Address, Message]], seed: int = 0
) -> tuple[FaultInjector, dict[str, int]]:
    counters: dict[str, int] = {}
    injector = FaultInjector(plan, random.Random(seed))

    def transmit(to: Address, message: Message, _frame: bytes) -> None:
        log.append((trio.current_time(), to, message))

    def count(key: str) -> None:
        counters[key] = counters.get(key, 0) + 1

    injector.bind(A, transmit, count)
    return injector, counters


async def test_a_delayed_message_is_written_exactly_after_its_delay(
    nursery: trio.Nursery, mock_clock: trio.testing.MockClock
) -> None:
    log: list[tuple[float, Address, Message]] = []
    injector, counters = _recorder(FaultPlan(delay=0.5, max_delayed=3), log)
    nursery.start_soon(injector.run)
    start = trio.current_time()
    for degree in range(5):
        assert not injector.outgoing(B, Heartbeat(degree), b"")
    # Bounded: three wait, the other two are dropped and counted.
    assert injector.held == 3
    assert counters == {"faults.delayed": 3, "faults.delay_full": 2}
    mock_clock.jump(0.499)
    await trio.testing.wait_all_tasks_blocked()
    assert log == []
    mock_clock.jump(0.001)
    await trio.testing.wait_all_tasks_blocked()
    # All three at exactly start + delay, in the order they were sent (no jitter: FIFO).
    assert [(t - start, m) for t, _to, m in log] == [(0.5, Heartbeat(d)) for d in range(3)]
    assert injector.held == 0


async def test_jitter_spreads_and_may_reorder_but_never_shortens_the_delay(
    nursery: trio.Nursery, autojump_clock: trio.testing.MockClock
) -> None:
    log: list[tuple[float, Address, Message]] = []
    injector, _ = _recorder(FaultPlan(delay=0.2, jitter=0.3), log, seed=3)
    nursery.start_soon(injector.run)
    start = trio.current_time()
    for degree in range(40):
        injector.outgoing(B, Heartbeat(degree), b"")
    await trio.sleep(1.0)
    assert len(log) == 40
    waits = [t - start for t, _to, _m in log]
    assert all(0.2 <= w <= 0.5 for w in waits)
    sent_order = [m.degree for _t, _to, m in log if isinstance(m, Heartbeat)]
    assert sent_order != sorted(sent_order)  # the simulator's rule: jitter reorders a link


async def test_loss_and_partition_on_the_send_path_are_counted() -> None:
    log: list[tuple[float, Address, Message]] = []
    injector, counters = _recorder(FaultPlan(loss=1.0), log)
    assert not injector.outgoing(B, Heartbeat(1), b"")
    injector.plan = FaultPlan()
    injector.partition.set(Partition.of([B]))
    assert not injector.outgoing(B, Heartbeat(1), b"")
    assert not injector.incoming(B, Heartbeat(1))
    assert injector.outgoing(C, Heartbeat(1), b"")  # A and C are both on side 0
    injector.partition.heal()
    assert injector.outgoing(B, Heartbeat(1), b"") and injector.incoming(B, Heartbeat(1))
    assert counters == {"faults.dropped": 1, "faults.partitioned": 2}


async def test_a_partition_file_is_followed_at_run_time(
    nursery: trio.Nursery, tmp_path: Path
) -> None:
    path = tmp_path / "partition"
    source = PartitionSource()
    nursery.start_soon(partial(watch_partition_file, path, source, period=0.01))
    write_partition_file(path, [A, B], ["127.66.0.0/24"])
    with trio.fail_after(5):
        await source.wait_for_change(0)
    assert source.current == Partition.of([A, B], ["127.66.0.0/24"])
    path.write_text("not/a/prefix\n")  # refused with a log line; the partition stays
    write_partition_file(path)  # healed
    with trio.fail_after(5):
        await source.wait_for_change(1)
    assert source.current == Partition()


# ---------------------------------------------------------------------- real sockets


class Watched(FaultInjector):
    """An injector that notes when each message passes its hooks (test instrument)."""

    def __init__(self, plan: FaultPlan, partition: PartitionSource | None = None) -> None:
        super().__init__(plan, random.Random(1), partition)
        self.sent: list[tuple[float, Address, type[Message]]] = []
        self.received: list[tuple[float, Address, type[Message]]] = []

    def outgoing(self, to: Address, message: Message, frame: bytes) -> bool:
        self.sent.append((trio.current_time(), to, type(message)))
        return super().outgoing(to, message, frame)

    def incoming(self, sender: Address, message: Message) -> bool:
        self.received.append((trio.current_time(), sender, type(message)))
        return super().incoming(sender, message)


def _count(node: Node, key: str) -> int:
    return node.counters.get(key, 0)


async def test_loss_of_every_message_to_a_neighbor_silences_the_link(
    nursery: trio.Nursery,
) -> None:
    server = await start_bootstrap(nursery)
    patient = NodeConfig(idle_timeout=60.0)  # only heartbeats may tell, not the idle timer
    a_faults = Watched(FaultPlan())
    b_faults = Watched(FaultPlan())
    a, a_node = await start_peer(
        nursery, bootstrap=server.address, node_config=patient, faults=a_faults
    )
    b, b_node = await start_peer(
        nursery, bootstrap=server.address, node_config=patient, seed=1, faults=b_faults
    )
    await wait_for(a_node, lambda: b.id in neighbors(a) and a.id in neighbors(b))
    a_faults.plan = FaultPlan(loss=1.0)
    # Whatever A had queued before the switch is flushed within a few heartbeats.
    await wait_for(a_node, lambda: _count(a_node, "faults.dropped") >= 3)
    heard = sum(1 for _t, sender, _k in b_faults.received if sender == a.address)
    dropped = _count(a_node, "faults.dropped")
    # Nothing from A reaches B any more, so B declares A dead by missed heartbeats ...
    await wait_for(b_node, lambda: a.id not in neighbors(b))
    assert _count(b_node, "event.suspect") >= 1
    assert _count(a_node, "faults.dropped") > dropped
    assert sum(1 for _t, sender, _k in b_faults.received if sender == a.address) == heard
    # ... while A, which still hears B, keeps sending (into the void).
    assert any(kind is Heartbeat and to == b.address for _t, to, kind in a_faults.sent[-20:])


async def test_with_a_delay_no_heartbeat_arrives_before_the_delay(
    nursery: trio.Nursery,
) -> None:
    server = await start_bootstrap(nursery)
    delay = 0.3
    slow = attrs.evolve(FAST, heartbeat_period=0.2, failure_timeout=3.0, request_timeout=2.0)
    a_faults = Watched(FaultPlan(delay=delay))
    b_faults = Watched(FaultPlan())
    a, a_node = await start_peer(
        nursery, bootstrap=server.address, membership=slow, faults=a_faults
    )
    b, b_node = await start_peer(
        nursery, bootstrap=server.address, membership=slow, seed=1, faults=b_faults
    )

    def heartbeats_from_a() -> list[float]:
        return [t for t, s, k in b_faults.received if s == a.address and k is Heartbeat]

    await wait_for(b_node, lambda: len(heartbeats_from_a()) >= 3)
    sent = [t for t, to, k in a_faults.sent if to == b.address and k is Heartbeat]
    arrived = heartbeats_from_a()
    # The i-th heartbeat arrives no sooner than the delay after A's core sent it (a
    # link is FIFO without jitter), and A's counter shows every one was held.
    for when_sent, when_arrived in zip(sent, arrived, strict=False):
        assert when_arrived >= when_sent + delay
    assert _count(a_node, "faults.delayed") >= len(arrived)
    assert b.id in neighbors(a)


def _components(peers: list[Peer]) -> int:
    return int(nx.number_connected_components(graph_of([p.snapshot() for p in peers])))


def _crossing(peers: list[Peer], left: set[str]) -> int:
    by_id = {p.id: p for p in peers}
    return sum(
        1 for p in peers for q in neighbors(p) if q in by_id and (p.id in left) != (q in left)
    )


async def test_a_partition_splits_the_overlay_and_healing_it_merges_it(
    nursery: trio.Nursery,
) -> None:
    server: BootstrapServer = await nursery.start(
        lambda task_status: serve_bootstrap(
            "127.0.0.1",
            0,
            config=HostCacheConfig(lease=3.0),
            node_config=NodeConfig(handshake_timeout=HANDSHAKE_PATIENCE),
            seed=0,
            task_status=task_status,
        )
    )
    # Short tombstones: a peer declared dead during the partition may be asked again
    # soon after it heals (the default, 30 s, is for real churn).
    membership = attrs.evolve(FAST, tombstone_seconds=0.5)
    source = PartitionSource()
    started = [
        await start_peer(
            nursery,
            bootstrap=server.address,
            membership=membership,
            seed=i,
            faults=FaultInjector(FaultPlan(), random.Random(i), source),
        )
        for i in range(6)
    ]
    peers = [p for p, _ in started]
    watcher = started[0][1]
    await wait_for(watcher, lambda: _components(peers) == 1 and all(neighbors(p) for p in peers))
    left = peers[:3]
    source.set(Partition.of([p.address for p in left]))  # the bootstrap stays on side 0
    left_ids = {p.id for p in left}

    def split() -> bool:
        return _crossing(peers, left_ids) == 0 and _components(peers) == 2

    await wait_for(watcher, split)
    partitioned = sum(_count(n, "faults.partitioned") for _, n in started)
    assert partitioned > 0
    source.heal()
    await wait_for(watcher, lambda: _components(peers) == 1)
    assert _crossing(peers, left_ids) > 0
