"""The swarm's final reading: taken again, within a bounded grace, until the overlay is
settled once more (a weak peer caught mid-re-homing is not an overlay short of super
peers), and reported as it is when it stays broken."""

from __future__ import annotations

import trio
import trio.testing

from overlay.protocol.identity import Address
from overlay.protocol.messages import StatsReply
from overlay.tools.swarm import FINAL_READ_INTERVAL, FINAL_SETTLE_GRACE, final_reading

S1, S2, W = (f"{n:032x}" for n in (1, 2, 3))


def _reply(peer: str, role: str, neighbors: tuple[str, ...], **fields: object) -> StatsReply:
    return StatsReply(
        peer,
        Address("127.0.0.1", 7000 + int(peer, 16)),
        role,
        True,
        neighbors,
        (),
        0,
        (),
        super_target=2,
        **fields,  # type: ignore[arg-type]
    )


def _overlay(weak_attached_to: tuple[str, ...]) -> list[StatsReply]:
    """Two super peers and one weak peer, all linked; the weak peer attached as given."""
    return [
        _reply(S1, "super", (S2, W), super_neighbors=(S2,)),
        _reply(S2, "super", (S1, W), super_neighbors=(S1,)),
        _reply(W, "weak", (S1, S2), super_peers=weak_attached_to),
    ]


class Reader:
    """Stands in for the stats crawl: one overlay per call, the last one repeated."""

    def __init__(self, *overlays: list[StatsReply]) -> None:
        self.overlays = list(overlays)
        self.reads = 0

    async def __call__(self) -> tuple[list[StatsReply], int]:
        overlay = self.overlays[min(self.reads, len(self.overlays) - 1)]
        self.reads += 1
        return overlay, 0


async def test_a_reading_caught_mid_rehoming_is_taken_again_until_settled(
    autojump_clock: trio.testing.MockClock,
) -> None:
    read = Reader(_overlay((S1,)), _overlay((S1,)), _overlay((S1, S2)))
    started = trio.current_time()
    replies, failed, shots = await final_reading(read, 3, True, trio.Event(), wait=True)
    assert read.reads == 3
    assert failed == 0
    assert [s.super_peers for s in shots if s.id == W] == [(S1, S2)]
    assert replies == _overlay((S1, S2))
    assert trio.current_time() - started == 2 * FINAL_READ_INTERVAL


async def test_an_overlay_that_stays_broken_is_reported_after_the_grace(
    autojump_clock: trio.testing.MockClock,
) -> None:
    read = Reader(_overlay((S1,)))
    started = trio.current_time()
    _replies, _failed, shots = await final_reading(read, 3, True, trio.Event(), wait=True)
    assert [s.super_peers for s in shots if s.id == W] == [(S1,)]
    assert trio.current_time() - started >= FINAL_SETTLE_GRACE
    assert read.reads == 1 + round(FINAL_SETTLE_GRACE / FINAL_READ_INTERVAL)


async def test_no_wait_when_the_overlay_never_settled_or_the_user_stopped_it(
    autojump_clock: trio.testing.MockClock,
) -> None:
    never = Reader(_overlay((S1,)), _overlay((S1, S2)))
    await final_reading(never, 3, True, trio.Event(), wait=False)
    assert never.reads == 1
    stop = trio.Event()
    stop.set()
    stopped = Reader(_overlay((S1,)), _overlay((S1, S2)))
    started = trio.current_time()
    await final_reading(stopped, 3, True, stop, wait=True)
    assert stopped.reads == 1
    assert trio.current_time() == started
