"""The peer's glue on the trio runtime (overlay/net/peer_node.py): what a peer's stats
reply carries.  The rest of it (handshake, farewell, client requests) runs in every TCP
test through :func:`overlay.net.peer_node.peer_node`."""

from __future__ import annotations

import trio

from overlay.core.peer import PeerSnapshot
from overlay.net.node import open_listeners
from overlay.net.peer_node import super_stats
from overlay.protocol.effects import Send
from overlay.protocol.identity import Address
from overlay.protocol.messages import (
    MAX_STATS_ENTRIES_PER_WEAK,
    MAX_STATS_WEAK,
    Heartbeat,
    StatsReply,
)
from overlay.tools.crawl import snapshot_from
from tests.conftest import neighbors, start_bootstrap, start_peer, wait_for


def test_a_stats_reply_names_at_most_its_bound_of_weak_peers_each_with_its_count() -> None:
    weak = tuple(f"{n:032x}" for n in range(1, MAX_STATS_WEAK + 41))
    shot = PeerSnapshot(
        id="f" * 32,
        address=Address("127.0.0.1", 9),
        role="super",
        joined=True,
        neighbors=(),
        passive=(),
        known_hosts=0,
        weak_peers=weak,
        index_entries=tuple(n % 200 for n in range(len(weak))),
        super_target=2,
        index_size=10**6,
    )
    fields = super_stats(shot)
    assert fields["weak_peers"] == weak[:MAX_STATS_WEAK]
    assert len(fields["index_entries"]) == MAX_STATS_WEAK
    assert max(fields["index_entries"]) == MAX_STATS_ENTRIES_PER_WEAK  # 199 cut to the bound
    reply = StatsReply(shot.id, shot.address, "super", True, (), (), 0, (), **fields)
    assert snapshot_from(reply).weak_peers == weak[:MAX_STATS_WEAK]


async def test_a_peer_dials_urgently_while_it_has_no_neighbor_and_ordinarily_once_it_has() -> None:
    async with trio.open_nursery() as nursery:
        server = await start_bootstrap(nursery, plaintext=True)
        first, first_node = await start_peer(nursery, bootstrap=server.address, plaintext=True)
        # Alone, its Register to the bootstrap is the dial of a peer with no neighbor.
        await wait_for(first_node, lambda: first_node.counters.get("dial.urgent", 0) >= 1)
        second, _ = await start_peer(nursery, bootstrap=server.address, plaintext=True, seed=1)
        await wait_for(first_node, lambda: bool(neighbors(first)) and bool(neighbors(second)))
        urgent = first_node.counters.get("dial.urgent", 0)
        started = first_node.counters["dial.started"]
        # A listener that never answers: the dial starts (and later fails) all the same.
        listeners, nowhere = await open_listeners("127.0.0.1", 0)
        first_node.apply([Send(nowhere, Heartbeat(0))])
        assert first_node.counters["dial.started"] == started + 1
        assert first_node.counters.get("dial.urgent", 0) == urgent
        for listener in listeners:
            await listener.aclose()
        nursery.cancel_scope.cancel()
