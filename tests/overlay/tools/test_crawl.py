"""The crawler against a real swarm on loopback: a bootstrap and peers on 127.0.0.1, port 0.

The peers are configured not to explore (no extra links), so once they have
joined their neighbor lists stay put and the crawled graph can be compared with
the truth, read from the cores themselves before and after the crawl.
"""

from __future__ import annotations

import io
import random
from collections.abc import AsyncIterator
from functools import partial
from pathlib import Path

import attrs
import networkx as nx
import pytest
import trio
from rich.console import Console

from bootstrap.server import BootstrapServer, serve_bootstrap
from overlay.core.config import MembershipConfig, PeerConfig
from overlay.core.peer import Peer
from overlay.net.connection import Connection
from overlay.net.keys import KeyPair
from overlay.net.node import IdleConnection, Node, NodeConfig, open_listeners
from overlay.net.peer_node import keyed_peer, link_security, peer_node
from overlay.net.swarm.control import handle_control_line
from overlay.net.swarm.stats import StatsBatches
from overlay.protocol.errors import TransportError
from overlay.protocol.identity import Address, Contact
from overlay.protocol.messages import MAX_MEMBERS_PAGE, MembersReply, MembersRequest
from overlay.sim.topology import graph_of
from overlay.tools.cli_view import (
    WorkerControl,
    live_view,
    swarm_actions,
    swarm_view,
)
from overlay.tools.crawl import Crawl, StatsClient, crawl, fetch_stats, list_members

STEADY = PeerConfig(
    membership=MembershipConfig(
        target_degree=3, max_degree=6, explore_probability=0.0, shuffle_period=3600.0
    )
)
PEERS = 8


@attrs.define
class Swarm:
    server: BootstrapServer
    peers: list[Peer]
    nodes: list[Node]

    def truth(self) -> nx.Graph:
        return graph_of(
            peer.snapshot()
            for peer, node in zip(self.peers, self.nodes, strict=True)
            if not node.stopping
        )


def has_neighbors(peer: Peer, count: int) -> bool:
    return len(peer.membership.active) >= count


async def start_swarm(nursery: trio.Nursery, count: int) -> Swarm:
    server: BootstrapServer = await nursery.start(
        lambda task_status: serve_bootstrap("127.0.0.1", 0, seed=7, task_status=task_status)
    )
    rng = random.Random(11)
    peers: list[Peer] = []
    nodes: list[Node] = []
    for _ in range(count):
        listeners, address = await open_listeners("127.0.0.1", 0)
        key = KeyPair.generate()
        peer = keyed_peer(
            address, STEADY, random.Random(rng.getrandbits(64)), key, bootstrap=server.address
        )
        node = peer_node(peer, NodeConfig(), security=link_security(key))
        await nursery.start(node.serve, listeners)
        peers.append(peer)
        nodes.append(node)
    swarm = Swarm(server, peers, nodes)
    with trio.fail_after(20):
        for peer, node in zip(peers, nodes, strict=True):
            await node.wait_until(partial(has_neighbors, peer, 2))
        # Every peer registered (the listing is what the crawl starts from).
        await server.node.wait_until(lambda: all(p.id in server.cache for p in peers))
    return swarm


@pytest.fixture
async def swarm(nursery: trio.Nursery) -> AsyncIterator[Swarm]:
    yield await start_swarm(nursery, PEERS)


async def crawl_when_steady(swarm: Swarm) -> tuple[nx.Graph, nx.Graph, Crawl]:
    """Crawl until the truth did not change while crawling (bounded tries)."""
    for _ in range(20):
        before = swarm.truth()
        result = await crawl(swarm.server.address, timeout=2.0)
        after = swarm.truth()
        if nx.utils.graphs_equal(before, after):
            return result.graph(), after, result
    raise AssertionError("the overlay never held still for one crawl")


async def test_listing_names_every_registered_peer(swarm: Swarm) -> None:
    entries = await list_members(swarm.server.address, timeout=5.0)
    assert {e.contact.id for e in entries} == {p.id for p in swarm.peers}
    assert {e.contact.address for e in entries} == {p.address for p in swarm.peers}


async def test_crawled_graph_matches_the_overlay(swarm: Swarm) -> None:
    crawled, truth, result = await crawl_when_steady(swarm)
    assert set(crawled.nodes) == {p.id for p in swarm.peers}
    assert {frozenset(e) for e in crawled.edges} == {frozenset(e) for e in truth.edges}
    assert crawled.number_of_edges() >= PEERS  # a real graph, not an empty one
    assert result.registered == PEERS
    assert result.count("alive") == PEERS
    for member in result.members:
        assert member.degree == truth.degree(member.id)


async def test_crashed_peer_is_unreachable_and_not_waited_on(swarm: Swarm) -> None:
    victim, victim_node = swarm.peers[0], swarm.nodes[0]
    victim_node.stop()
    with trio.fail_after(5):
        await victim_node.stopped.wait()
    # Its lease is still at the bootstrap, so the crawl asks it and finds nobody home.
    with trio.fail_after(10):  # bounded: far more than one timeout's worth
        result = await crawl(swarm.server.address, timeout=2.0)
    statuses = {m.id: m.status for m in result.members}
    assert statuses[victim.id] == "unreachable"
    assert sum(1 for s in statuses.values() if s == "alive") == PEERS - 1
    assert victim.id not in result.graph()


async def test_peer_named_but_without_address_is_suspect(swarm: Swarm) -> None:
    # Crawl from one peer only, without the bootstrap's address book: its neighbors are
    # named by id, and nobody says where they listen.
    result = await crawl(None, [swarm.peers[0].address], timeout=2.0)
    statuses = {m.id: m.status for m in result.members}
    assert statuses[swarm.peers[0].id] == "alive"
    neighbors = set(swarm.peers[0].membership.active)
    assert neighbors
    assert all(statuses[n] == "suspect" for n in neighbors)


async def test_unreachable_bootstrap_is_reported() -> None:
    listeners, address = await open_listeners("127.0.0.1", 0)
    for listener in listeners:
        await listener.aclose()  # a port nobody listens on any more
    result = await crawl(address, timeout=1.0)
    assert result.bootstrap_error is not None
    assert result.members == ()
    with pytest.raises(TransportError):
        await fetch_stats(Address("127.0.0.1", address.port), 1.0)


def test_listing_pages_are_bounded() -> None:
    with pytest.raises(ValueError):
        MembersReply(members=tuple([None] * 129), start=0, total=0)  # type: ignore[list-item]
    assert MembersRequest().start == 0


async def test_stats_client_reuses_its_connections(swarm: Swarm) -> None:
    client = StatsClient()
    try:
        first = await crawl(swarm.server.address, timeout=2.0, fetch=client.fetch)
        opened = len(client)
        second = await crawl(swarm.server.address, timeout=2.0, fetch=client.fetch)
    finally:
        await client.aclose()
    assert first.count("alive") == second.count("alive") == PEERS
    assert opened == PEERS
    accepted = [n.counters.get("connections.accepted", 0) for n in swarm.nodes]
    again = await crawl(swarm.server.address, timeout=2.0)  # fresh connections
    assert again.count("alive") == PEERS
    after = [n.counters.get("connections.accepted", 0) for n in swarm.nodes]
    # The two client crawls opened one connection per peer; a plain crawl opens one more.
    assert [b - a for a, b in zip(accepted, after, strict=True)] == [1] * PEERS


# ---------------------------------------------------------------------- swarm control


async def test_control_lines_crash_and_add_peers(swarm: Swarm, nursery: trio.Nursery) -> None:
    victim = swarm.peers[1]
    added: list[Peer] = []

    async def add_peer() -> None:
        listeners, address = await open_listeners("127.0.0.1", 0)
        key = KeyPair.generate()
        peer = keyed_peer(address, STEADY, random.Random(5), key, bootstrap=swarm.server.address)
        node = peer_node(peer, NodeConfig(), security=link_security(key))
        await nursery.start(node.serve, listeners)
        added.append(peer)
        swarm.peers.append(peer)
        swarm.nodes.append(node)

    line = f"crash {victim.address}\n".encode()
    assert await handle_control_line(line, swarm.nodes, add_peer)
    assert swarm.nodes[1].stopping
    assert await handle_control_line(b"add\n", swarm.nodes, add_peer)
    assert len(added) == 1
    assert not await handle_control_line(b"stop\n", swarm.nodes, add_peer)
    with trio.fail_after(20):
        await swarm.server.node.wait_until(lambda: added[0].id in swarm.server.cache)
        result = await crawl(swarm.server.address, timeout=2.0)
    statuses = {m.id: m.status for m in result.members}
    assert statuses[victim.id] == "unreachable"
    assert statuses[added[0].id] == "alive"


@attrs.define
class FakeStdin:
    lines: list[bytes] = attrs.field(factory=list)

    async def send_all(self, data: bytes) -> None:
        self.lines.append(data)


@attrs.define
class FakeProcess:
    stdin: FakeStdin = attrs.field(factory=FakeStdin)


@attrs.define
class FakeWorker:
    peers: list[Address]
    process: FakeProcess = attrs.field(factory=FakeProcess)
    stats: StatsBatches = attrs.field(factory=StatsBatches)


async def test_worker_control_tells_the_worker_that_runs_the_peer() -> None:
    a, b, c = (Address("127.0.0.1", port) for port in (1001, 1002, 1003))
    first, second = FakeWorker([a, b]), FakeWorker([c])
    control = WorkerControl([first, second], [], random.Random(1))
    said = await control.crash(b)
    assert first.process.stdin.lines == [f"crash {b}\n".encode()]
    assert second.process.stdin.lines == []
    assert first.peers == [a] and "crashed" in said
    assert "no worker" in await control.crash(Address("127.0.0.1", 9))
    await control.add()  # both run one peer now: the first of them gets it
    assert first.process.stdin.lines[-1] == b"add\n"
    assert "--items" in await control.search("flood", a)


async def test_swarm_keys_pick_live_targets_of_the_right_role(swarm: Swarm) -> None:
    result = await crawl(swarm.server.address, timeout=2.0)
    crashed: list[Address] = []

    class Control:
        async def crash(self, address: Address) -> str:
            crashed.append(address)
            return "ok"

        async def add(self) -> str:
            return "added"

        async def search(self, mode: str, origin: Address) -> str:
            return f"{mode} from {origin}"

    actions = swarm_actions(Control(), lambda: result, random.Random(3))
    assert set(actions) == {"k", "K", "a", "f", "w"}
    assert await actions["k"]() == "k: ok"
    assert crashed[0] in {p.address for p in swarm.peers}
    assert await actions["K"]() == "K: no super peer to crash"  # nobody is super here
    assert (await actions["w"]()).startswith("walk from 127.0.0.1:")
    assert await actions["a"]() == "added"


async def test_live_view_without_a_terminal_prints_each_refresh(swarm: Swarm) -> None:
    stop = trio.Event()
    calls = 0

    async def source() -> Crawl:
        nonlocal calls
        calls += 1
        if calls == 2:
            stop.set()
        return await crawl(swarm.server.address, timeout=2.0)

    out = io.StringIO()
    console = Console(file=out, width=140, force_terminal=False)
    with trio.fail_after(20):
        last = await live_view(source, console=console, interval=0.05, stop=stop)
    assert last is not None and last.count("alive") == PEERS
    shown = out.getvalue()
    assert shown.count(f"peers {PEERS}") >= 1
    assert calls >= 2


async def test_view_once_prints_one_frame_and_exports(swarm: Swarm, tmp_path: Path) -> None:
    out = io.StringIO()
    console = Console(file=out, width=140, force_terminal=False)
    export = tmp_path / "overlay.graphml"
    result = await live_view(
        lambda: crawl(swarm.server.address, timeout=2.0), console=console, once=True, export=export
    )
    assert result is not None
    assert out.getvalue().count("╭") >= 2  # header and drawing panels
    assert f"peers {PEERS}" in out.getvalue()
    graph = nx.read_graphml(export)
    assert set(graph.nodes) == {p.id for p in swarm.peers}


async def test_swarm_view_runs_until_stopped_and_acts_on_keys(swarm: Swarm) -> None:
    stop = trio.Event()

    class Control:
        async def crash(self, address: Address) -> str:
            return "crashed"

        async def add(self) -> str:
            return "added"

        async def search(self, mode: str, origin: Address) -> str:
            return mode

    class Screen(io.StringIO):
        """Sets ``stop`` once two frames have been printed: the test waits on output."""

        def write(self, text: str) -> int:
            written = super().write(text)
            if self.getvalue().count(f"peers {PEERS}") >= 2:
                stop.set()
            return written

    out = Screen()
    console = Console(file=out, width=140, force_terminal=False)
    with trio.fail_after(20):
        last = await swarm_view(
            swarm.server.address, Control(), console=console, interval=0.05, stop=stop
        )
    assert last is not None and last.count("alive") == PEERS
    assert "k crash" in out.getvalue()  # the keys are listed under the header


async def test_without_the_bootstrap_a_crawl_starts_from_the_last_one(swarm: Swarm) -> None:
    first = await crawl(swarm.server.address, timeout=2.0)
    listeners, dead = await open_listeners("127.0.0.1", 0)
    for listener in listeners:
        await listener.aclose()
    blind = await crawl(dead, timeout=1.0)
    assert blind.bootstrap_error is not None and blind.count("alive") == 0
    again = await crawl(dead, timeout=1.0, fallback=first.alive_addresses())
    assert again.bootstrap_error is not None
    assert again.count("alive") == PEERS


async def test_a_long_listing_comes_in_pages(swarm: Swarm) -> None:
    extra = [
        Contact(f"{i:032x}", Address("127.0.0.1", 20000 + i))
        for i in range(2 * MAX_MEMBERS_PAGE + 17)
    ]
    for contact in extra:
        swarm.server.cache.add(contact, "weak", 1, trio.current_time() + 600)
    with trio.fail_after(10):
        entries = await list_members(swarm.server.address, timeout=5.0)
    listed = {e.contact for e in entries}
    assert len(entries) == len(listed) == len(extra) + PEERS
    assert set(extra) <= listed


async def test_stats_client_reconnects_when_a_peer_closed_its_kept_connection(
    swarm: Swarm,
) -> None:
    """Peers close idle client connections after a few seconds; the next refresh must
    still see every peer (it reconnects once), not report them unreachable."""
    client = StatsClient()
    peer_ids = {peer.id for peer in swarm.peers}
    try:
        first = await crawl(swarm.server.address, timeout=2.0, fetch=client.fetch)
        assert first.count("alive") == PEERS
        for node in swarm.nodes:
            clients = [
                c for c in node.connections if c.remote is not None and c.remote.id not in peer_ids
            ]
            assert clients  # the client's kept connection
            for connection in clients:
                node.end_connection(connection, IdleConnection("test", quiet=True))  # as the sweep

            def closed(node: Node = node, clients: list[Connection] = clients) -> bool:
                return not any(c in node.connections for c in clients)

            with trio.fail_after(5):
                await node.wait_until(closed)
        second = await crawl(swarm.server.address, timeout=2.0, fetch=client.fetch)
    finally:
        await client.aclose()
    assert second.count("alive") == PEERS
