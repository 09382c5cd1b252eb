"""The peer's glue on the trio runtime (overlay/net/peer_node.py): what a peer's stats
reply carries.  The rest of it (handshake, farewell, client requests) runs in every TCP
test through :func:`overlay.net.peer_node.peer_node`."""

from __future__ import annotations

from overlay.core.peer import PeerSnapshot
from overlay.net.peer_node import super_stats
from overlay.protocol.identity import Address
from overlay.protocol.messages import MAX_STATS_ENTRIES_PER_WEAK, MAX_STATS_WEAK, StatsReply
from overlay.tools.crawl import snapshot_from


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
