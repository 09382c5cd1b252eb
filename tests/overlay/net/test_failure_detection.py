"""Failure detection that is not fooled (issue 8, item 6).

A peer that is alive but stalled for less than the failure timeout (SIGSTOP, then
SIGCONT) must not be declared dead by its neighbors, and must not, on waking, declare
them dead either: their heartbeats wait unread in its sockets while it sleeps, so its
first, late, tick allows them as much more silence as it is late.  How fast a real
crash is detected is measured in ``benchmarks/failure_detection.py``, not asserted here.
"""

from __future__ import annotations

import signal
from collections.abc import Sequence
from functools import partial

import attrs
import trio

from overlay.net.node import NodeConfig
from overlay.protocol.effects import Notify
from overlay.protocol.messages import Heartbeat
from overlay.tools.swarm import fetch_stats
from tests.conftest import FAST, neighbors, spawn_overlay, start_bootstrap, start_peer, wait_for
from tests.harness import Hand


def _suspicions(effects: Sequence[object]) -> list[Notify]:
    return [e for e in effects if isinstance(e, Notify) and e.kind == "suspect"]


def test_a_late_tick_allows_for_its_own_lateness_and_the_next_one_judges() -> None:
    hand = Hand(seed=3)
    hand.add_bootstrap()
    a, b = hand.add_peer(), hand.add_peer()
    hand.advance(5.0)
    assert b.id in a.membership.active
    hand.crash(b.address)  # b is silent from now on
    config = a.membership.config
    # a's own tick comes long after it was due (a was stalled): b's silence, as long as
    # a's own delay, proves nothing, since b's heartbeats could be waiting unread.
    late = a.membership.tick_at + config.failure_timeout + 2 * config.heartbeat_period
    effects = a.handle_timer(late)
    assert _suspicions(effects) == []
    assert b.id in a.membership.active
    assert a.snapshot().counters["ticks_late"] == 1
    assert any(isinstance(e.message, Heartbeat) for e in hand.sent_by(a.address, Heartbeat))
    # The next tick, on time, judges: still nothing from b, so b is dead.
    effects = a.handle_timer(a.membership.tick_at)
    assert [n.peer for n in _suspicions(effects)] == [b.id]
    assert b.id not in a.membership.active


OBSERVER = attrs.evolve(FAST, heartbeat_period=1.0, failure_timeout=3.0, request_timeout=2.0)
CHILD_TIMERS = ["--heartbeat-period", "0.2", "--failure-timeout", "1.6"]
STALL = 1.8
"""Well under the observer's failure timeout (it hears the child every 0.2 s), but longer
than the child's own: on waking, every neighbor looks silent to the child for longer than
it allows, and whether it reads their heartbeats or runs its timer first is a coin toss
in trio's scheduler.  Two stalls make a false accusation likely (three runs in four
failed) without the late-tick rule."""


async def test_a_stalled_peer_is_not_declared_dead_and_does_not_accuse_on_waking(
    nursery: trio.Nursery,
) -> None:
    server = await start_bootstrap(nursery)
    patient = NodeConfig(idle_timeout=60.0)
    peer, node = await start_peer(
        nursery, bootstrap=server.address, membership=OBSERVER, node_config=patient
    )
    child = await spawn_overlay(
        ["peer", "--bootstrap", str(server.address), "--seed", "8", *CHILD_TIMERS]
    )
    membership = peer.membership

    def heard_since(moment: float) -> bool:
        neighbor = membership.active.get(child.id)
        return neighbor is not None and neighbor.last_heard > moment

    try:
        await wait_for(node, lambda: child.id in neighbors(peer))
        down_before = node.counters.get("event.neighbor_down", 0)
        for _ in range(2):
            child.process.send_signal(signal.SIGSTOP)
            with trio.move_on_after(STALL):
                await trio.sleep_forever()  # the stall itself is the experiment
            child.process.send_signal(signal.SIGCONT)
            resumed = trio.current_time()
            # Its heartbeats resume, and keep coming after its first (late) tick and
            # several more: it did not drop us on waking.
            await wait_for(node, partial(heard_since, resumed))
            await wait_for(node, partial(heard_since, resumed + 0.6))
            assert child.id in neighbors(peer)
        assert node.counters.get("event.suspect", 0) == 0
        assert node.counters.get("event.neighbor_down", 0) == down_before
        reply = await fetch_stats(child.address)
        counters = {c.name: c.value for c in reply.counters}
        assert peer.id in reply.neighbors
        assert counters.get("neighbors_declared_dead", 0) == 0
        assert counters.get("ticks_late", 0) >= 2
    finally:
        child.process.kill()
        await child.process.wait()
