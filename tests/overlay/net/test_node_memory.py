"""What the trio runtime keeps per remote, under a steady client load: clients (searches,
stats crawls, each a fresh contact on an ephemeral port) leave nothing behind."""

from __future__ import annotations

import trio

from overlay.net.node import NodeConfig
from overlay.tools.cli_search import search_via
from overlay.tools.swarm import fetch_stats
from tests.conftest import start_bootstrap, start_peer


async def test_clients_are_not_remembered_as_peers_and_the_table_is_bounded(
    nursery: trio.Nursery,
) -> None:
    server = await start_bootstrap(nursery)
    peer, node = await start_peer(nursery, bootstrap=server.address)
    assert NodeConfig().remembered_addresses <= 256
    for _ in range(15):  # a crawler and a search client, again and again
        await fetch_stats(peer.address)
        await search_via(peer.address, "flood", key="ab" * 32, ttl=1)
    remembered = set(node._who)
    # The bootstrap (dialled to register) may be remembered; no client is.
    assert remembered <= {server.address}
    assert node.counters.get("connections.accepted", 0) >= 30
