"""The crawler against a real swarm on loopback: a bootstrap and peers on 127.0.0.1, port 0.

The peers are configured not to explore (no extra links), so once they have
joined their neighbor lists stay put and the crawled graph can be compared with
the truth, read from the cores themselves before and after the crawl.
"""

from __future__ import annotations

import random
from collections.abc import AsyncIterator
from functools import partial

import attrs
import networkx as nx
import pytest
import trio

from bootstrap.server import BootstrapServer, serve_bootstrap
from overlay.config import MembershipConfig, PeerConfig
from overlay.crawl import Crawl, crawl, fetch_stats, list_members
from overlay.errors import TransportError
from overlay.identity import Address
from overlay.messages import MembersReply, MembersRequest
from overlay.node import Node, NodeConfig, open_listeners, peer_node
from overlay.peer import Peer
from overlay.topology import graph_of

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
        peer = Peer(address, STEADY, random.Random(rng.getrandbits(64)), bootstrap=server.address)
        node = peer_node(peer, NodeConfig())
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
