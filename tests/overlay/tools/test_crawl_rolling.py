"""The rolling crawl behind ``overlay view`` (overlay.tools.crawl.RollingCrawl): frames on time
whatever the peers' speed, a silent peer unreachable after the staleness bound, the
others' latest data kept.

Fake fetchers under trio's autojump clock (virtual time: no real sleeps), then one
run against real peers on loopback.
"""

from __future__ import annotations

import io
import itertools
import re

import trio
import trio.testing
from rich.console import Console

from overlay.protocol.errors import TransportError
from overlay.protocol.identity import Address
from overlay.protocol.messages import StatCounter, StatsReply
from overlay.tools.cli_view import live_view, rolling_source
from overlay.tools.crawl import Crawl, RollingCrawl, StatsClient
from tests.overlay.tools.test_crawl import PEERS, start_swarm

A, B, C = (Address("127.0.0.1", port) for port in (4001, 4002, 4003))
IDS = {A: "a" * 32, B: "b" * 32, C: "c" * 32}
STALE = 2.5


class FakePeers:
    """Answers stats requests at once, counting them; ``silent_from``: the virtual time
    after which B never answers (each request then runs into its timeout)."""

    def __init__(self, silent_from: float) -> None:
        self.started = trio.current_time()
        self.silent_from = silent_from
        self.answers = dict.fromkeys(IDS, 0)

    async def fetch(self, address: Address, timeout: float) -> StatsReply:
        if address == B and trio.current_time() - self.started >= self.silent_from:
            await trio.sleep(timeout)
            raise TransportError(f"no answer from {address} within {timeout:g} s")
        await trio.sleep(0.05)  # loopback-fast
        self.answers[address] += 1
        return StatsReply(
            id=IDS[address],
            address=address,
            role="weak",
            joined=True,
            neighbors=tuple(IDS[other] for other in IDS if other != address),
            passive=(),
            known_hosts=0,
            counters=(StatCounter("answers", self.answers[address]),),
        )


async def test_frames_come_on_schedule_while_a_peer_is_silent(
    autojump_clock: trio.testing.MockClock,
) -> None:
    peers = FakePeers(silent_from=2.5)
    rolling = RollingCrawl(None, [A, B, C], period=1.0, stale=STALE, fetch=peers.fetch)
    frames: list[tuple[float, Crawl]] = []
    stop = trio.Event()
    source = rolling_source(rolling)

    async def recorded() -> Crawl:
        called = trio.current_time() - peers.started
        result = await source()
        frames.append((called, result))
        if len(frames) == 12:
            stop.set()
        return result

    out = io.StringIO()
    console = Console(file=out, width=140, force_terminal=False)
    async with trio.open_nursery() as nursery:
        await nursery.start(rolling.run)
        with trio.fail_after(60):
            await live_view(recorded, console=console, interval=1.0, stop=stop)
        nursery.cancel_scope.cancel()

    times = [t for t, _ in frames]
    # On schedule: one frame a second, although B has not answered since t = 2.
    assert [round(b - a, 6) for a, b in itertools.pairwise(times)] == [1.0] * 11
    for at, result in frames:
        status = {m.id: m.status for m in result.members}
        assert status[IDS[A]] == status[IDS[C]] == "alive"
        # B's last answer was asked at t = 2; it is shown until it is STALE old.
        assert status[IDS[B]] == ("alive" if at - 2.0 < STALE else "unreachable"), at
        assert result.data_age is not None and result.data_age <= STALE
    last = frames[-1][1]
    # The others keep their latest data: A's reply counts every answer it gave.
    shot_a = next(s for s in last.snapshots if s.id == IDS[A])
    assert shot_a.counters["answers"] == peers.answers[A] >= 10
    assert max(last.ages) <= 1.1  # A's and C's data is at most a period old
    assert "not heard from" in next(m.error for m in last.members if m.id == IDS[B])
    shown = out.getvalue()
    ages = [float(x) for x in re.findall(r"data ≤ ([0-9.]+) s old", shown)]
    assert len(ages) >= 10  # the header says how old the picture is, every frame
    assert "unreachable 1" in shown


async def test_a_peer_never_heard_from_is_unreachable_only_after_the_bound(
    autojump_clock: trio.testing.MockClock,
) -> None:
    peers = FakePeers(silent_from=0.0)  # B never answers
    rolling = RollingCrawl(None, [A, B], period=1.0, stale=STALE, fetch=peers.fetch)
    async with trio.open_nursery() as nursery:
        await nursery.start(rolling.run)
        await trio.sleep(0.5)
        early = {m.address: m.status for m in rolling.latest().members}
        await trio.sleep(STALE)
        late = {m.address: m.status for m in rolling.latest().members}
        nursery.cancel_scope.cancel()
    assert early[A] == "alive" and early.get(B) in (None, "suspect")  # not judged yet
    assert late[A] == "alive" and late[B] == "unreachable"


async def test_rolling_crawl_of_real_peers_finds_them_all(nursery: trio.Nursery) -> None:
    swarm = await start_swarm(nursery, PEERS)
    client = StatsClient()
    rolling = RollingCrawl(swarm.server.address, period=0.2, fetch=client.fetch)
    try:
        async with trio.open_nursery() as inner:
            await inner.start(rolling.run)
            with trio.fail_after(20):
                await rolling.first_pass.wait()
            result = rolling.latest()
            inner.cancel_scope.cancel()
    finally:
        await client.aclose()
    assert result.count("alive") == PEERS
    assert result.registered == PEERS
    assert set(result.graph().nodes) == {p.id for p in swarm.peers}
    assert len(client) == 0  # closed
