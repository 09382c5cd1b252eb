"""Search over TCP (issue 4, item 9): real sockets on 127.0.0.1.

A swarm of 200 peers runs in this process (one ``trio.run``, a :class:`Node` per peer),
so that a test can reach into one peer (to make it serve tampered bytes) while every
message still crosses a real socket.  Clients talk to peers exactly as the ``overlay
publish / search / fetch`` commands do, through :mod:`overlay.tools.cli_search`; the CLI
itself and ``overlay swarm --items`` are run as subprocesses.
"""

from __future__ import annotations

import json
import random
import signal
import subprocess
from collections.abc import Callable
from functools import partial
from pathlib import Path

import attrs
import msgpack
import networkx as nx
import pytest
import trio

from bootstrap.server import BootstrapServer
from overlay.core.config import MembershipConfig, PeerConfig
from overlay.core.peer import Peer
from overlay.net.client_requests import prefix_diverse
from overlay.net.keys import derived_key
from overlay.net.node import Node, NodeConfig, one_host, open_listeners
from overlay.net.peer_node import keyed_peer, link_security, peer_node
from overlay.net.swarm.setup import seeded_items
from overlay.protocol.identity import Address, Contact, new_peer_id
from overlay.protocol.messages import MAX_KEYWORDS_FIELD, ClientSearchResult, Query, QueryHit
from overlay.tools.cli_search import fetch_error, fetch_via, publish_via, search_via
from overlay.tools.crawl import list_members
from overlay.tools.swarm import fetch_stats
from search.config import SearchConfig
from search.errors import ContentMismatch
from search.store import Item, content_key
from tests.conftest import HANG_GUARD, OVERLAY, REPO, handshaken, start_bootstrap
from tests.keys import signed_hit

SWARM = 200
JOIN_BATCH = 25
JOIN_BOUND = 300.0
"""Bound on 200 peers joining in one process: about 5 s on a quiet machine, several times
that beside a CPU-bound job, and over 150 s when the suite's worker got a tenth of a
core beside five other jobs; a guard against a hang, never a timing claim."""
MEMBERSHIP = MembershipConfig(
    target_degree=4,
    max_degree=8,
    shuffle_period=10.0,
    shuffle_timeout=3.0,
    heartbeat_period=3.0,
    failure_timeout=20.0,
    request_timeout=3.0,
    bootstrap_retry=1.0,
)
"""Slow timers: 200 peers share one process here, and nothing these tests assert
depends on shuffles or heartbeats.  With a heartbeat a second and a failure timeout of
6 s, the swarm's own upkeep took the process's whole share of a busy machine (beside
five other jobs, about a quarter of a core): handshakes waited over 10 s, links were
declared dead and remade, and the overlay was never connected all at once within 90 s.
Joins retry after 3 s without an answer rather than 1 s, for the same reason."""
SEARCH = SearchConfig(hop_allowance=0.5, fetch_timeout=15.0)
"""A flood waits ``2 x TTL`` hop allowances for hits; the default (0.1 s) is ample on an
idle machine, but 200 peers in one process on a busy one can take longer per hop.  The
fetch timeout is for a holder in the same starved process.  Both stay within the 20 s a
peer gives any client request (the expanding ring's rings add up to 14 s)."""
SMALL_SEARCH = SearchConfig()
"""A few dozen peers in one process answer well within the default allowance.  A flood
waits out its whole window (``2 x TTL`` allowances) even once every hit is in, so the
200-peer allowance would only make each small swarm's floods three times as long."""
NODE = one_host(
    NodeConfig(
        max_connections=256, handshake_timeout=30.0, idle_timeout=30.0, transient_idle_timeout=2.0
    )
)
"""Walkers check in with their origin directly, so an origin briefly has a connection
from most peers a walk passed through: more than the default 64.  The handshake timeout
is generous because the whole swarm shares one event loop, which stalls for seconds
while 200 peers join at once on a busy machine."""
MODES = ("flood", "walk", "ring")


@attrs.define
class Swarm:
    bootstrap: BootstrapServer
    peers: list[Peer]
    nodes: list[Node]

    def graph(self) -> nx.Graph:
        graph = nx.Graph()
        graph.add_nodes_from(peer.id for peer in self.peers)
        for peer in self.peers:
            graph.add_edges_from((peer.id, other) for other in peer.membership.active)
        return graph

    def describe(self) -> str:
        """What a failed wait reports: components, isolated and unjoined peers, and the
        runtime's link failures."""
        graph = self.graph()
        sizes = sorted((len(c) for c in nx.connected_components(graph)), reverse=True)
        lonely = sum(1 for peer in self.peers if graph.degree(peer.id) == 0)
        unjoined = sum(1 for peer in self.peers if not peer.membership.ever_joined)
        totals: dict[str, int] = {}
        for peer, node in zip(self.peers, self.nodes, strict=True):
            for name, value in [*peer.membership.counters.items(), *node.counters.items()]:
                if any(word in name for word in ("suspect", "down", "timeout", "closed", "late")):
                    totals[name] = totals.get(name, 0) + value
        return (
            f"components {sizes[:8]}, {lonely} without a neighbor, {unjoined} not joined; "
            f"{dict(sorted(totals.items()))}"
        )

    def connected(self) -> bool:
        graph = self.graph()
        return all(graph.degree(peer.id) > 0 for peer in self.peers) and nx.is_connected(graph)


async def until(predicate: Callable[[], bool], seconds: float, step: float = 0.05) -> None:
    """Wait for a condition on many peers at once (no single node's event covers it),
    re-checking every ``step`` under a hard bound."""
    with trio.fail_after(seconds):
        while not predicate():
            await trio.sleep(step)


def joined(peers: list[Peer]) -> bool:
    return all(peer.membership.ever_joined for peer in peers)


async def start_swarm(
    nursery: trio.Nursery, count: int = SWARM, search: SearchConfig = SEARCH
) -> Swarm:
    server = await start_bootstrap(
        nursery,
        node_config=one_host(NodeConfig(max_connections=4 * count, handshake_timeout=30.0)),
    )
    swarm = Swarm(server, [], [])
    for index in range(count):
        if index and index % JOIN_BATCH == 0:
            # In batches: a busy machine gave 200 peers registering at once to a
            # bootstrap in the same event loop handshakes slower than their timeout, and
            # their retries slower still.
            await until(partial(joined, swarm.peers[-JOIN_BATCH:]), JOIN_BOUND)
        listeners, address = await open_listeners("127.0.0.1", 0)
        key = derived_key(5000, index)
        config = PeerConfig(membership=MEMBERSHIP, search=search)
        peer = keyed_peer(
            address, config, random.Random(5000 + index), key, bootstrap=server.address
        )
        node = peer_node(peer, NODE, security=link_security(key))
        await nursery.start(node.serve, listeners)
        swarm.peers.append(peer)
        swarm.nodes.append(node)
    # Building the graph of 200 peers is itself work: checked twice a second.
    try:
        await until(swarm.connected, JOIN_BOUND, step=0.5)
    except trio.TooSlowError:  # pragma: no cover - on failure: say how far it got
        raise AssertionError(f"never connected: {swarm.describe()}") from None
    return swarm


def diagnose(swarm: Swarm, origin: Peer, key: str) -> str:  # pragma: no cover - on failure
    """What the origin's searches for ``key`` saw, and the swarm's drops and refusals."""
    found = [
        f"{r.mode} hits={[h.holder.id[:8] for h in r.hits]} took={r.finished - r.started:.2f}s"
        for r in origin.search.results.values()
        if key in r.criteria
    ]
    totals: dict[str, int] = {}
    for peer, node in zip(swarm.peers, swarm.nodes, strict=True):
        for name, value in [*peer.search.counters.items(), *node.counters.items()]:
            if any(word in name for word in ("drop", "refus", "distrust", "limit", "full")):
                totals[name] = totals.get(name, 0) + value
    return f"origin {origin.id[:8]}: {found}; swarm {dict(sorted(totals.items()))}"


def counters(reply: object) -> dict[str, int]:
    return {c.name: c.value for c in getattr(reply, "counters", ())}


def holders_of(result: ClientSearchResult) -> set[str]:
    return {hit.holder.id for hit in result.hits}


# ---------------------------------------------------------------------- the 200-peer swarm


async def test_flood_walk_and_ring_find_fetch_and_refuse_tampered_bytes_in_200_peers(
    nursery: trio.Nursery, monkeypatch: pytest.MonkeyPatch
) -> None:
    swarm = await start_swarm(nursery)
    peers = swarm.peers
    rng = random.Random(4)
    # One item on two peers (1% of the swarm), published through the client protocol.
    value = b"The free software manual, chapter one.\n" * 40
    name = "Free Software Manual.txt"
    holders = [peers[17], peers[142]]
    for holder in holders:
        assert await publish_via(holder.address, value, name) == content_key(value)
    key = content_key(value)
    assert all(key in holder.search.store for holder in holders)
    holder_ids = {holder.id for holder in holders}
    others = [peer for peer in peers if peer.id not in holder_ids]

    async def search(mode: str, by_key: bool, origin: Peer) -> None:
        if by_key:
            result = await search_via(origin.address, mode, key=key)
        else:
            result = await search_via(origin.address, mode, keywords="MANUAL free")
        what = f"{mode} by {'key' if by_key else 'keywords'}"
        assert result.error == "", what
        assert result.success, what
        assert result.mode == mode
        assert holders_of(result) <= holder_ids and holders_of(result), what
        assert {hit.key for hit in result.hits} == {key}
        assert all(hit.name == name and hit.size == len(value) for hit in result.hits)
        assert result.first_hit_hops is not None and result.first_hit_hops >= 1
        tally = {c.name: c.value for c in result.messages}  # what the origin sent
        assert tally["query"] >= 1, (what, tally)
        assert result.search_id in result.wire_ids, what
        if mode == "walk":
            assert result.first_hit_hops <= 256
        else:
            assert result.first_hit_hops <= 10

    async def search_for_nothing() -> None:
        """A search for something nobody holds fails cleanly."""
        missing = await search_via(others[3].address, "flood", key=content_key(b"nobody has this"))
        assert not missing.success and missing.hits == () and missing.error == ""

    async def refuse_tampered_bytes() -> None:
        """A holder that serves tampered bytes is refused, and the error names it."""
        liar = others[90]
        secret = b"a second item, held by one peer only"
        secret_key = await publish_via(liar.address, secret, "second item")
        honest_get = liar.search.store.get
        forged = Item(b"tampered bytes", "second item")

        def tampered_get(wanted: str) -> Item | None:
            return forged if wanted == secret_key else honest_get(wanted)

        monkeypatch.setattr(liar.search.store, "get", tampered_get)
        asker = others[120]
        refused = await fetch_via(asker.address, secret_key, holder=liar.contact)
        assert refused.value is None
        assert [f.holder for f in refused.failures] == [liar.contact]
        failure = refused.failures[0]
        assert failure.kind == "mismatch"
        assert failure.actual == content_key(b"tampered bytes")
        assert str(liar.contact) in failure.error
        error = fetch_error(refused)
        assert isinstance(error, ContentMismatch) and error.holder == liar.contact
        # The asker's core refused it with the typed error and counted it.
        results = list(asker.search.fetches.values())
        assert any(
            isinstance(r.error, ContentMismatch) and r.error.holder == liar.contact for r in results
        )
        assert counters(await fetch_stats(asker.address))["search.fetch.mismatch"] == 1
        # Found by a search instead of named: the only holder lies, so nothing is handed on.
        # (On a busy machine this once said "no holder found": a copy of the flood was
        # dropped on a link the runtime was ending, and the flood missed the liar; such
        # copies now go on a fresh connection, test_node.py shows it.)
        searched = await fetch_via(others[7].address, secret_key, mode="flood")
        assert searched.value is None and searched.error == "every holder failed", diagnose(
            swarm, others[7], secret_key
        )
        assert [f.holder.id for f in searched.failures] == [liar.id]
        assert isinstance(fetch_error(searched), ContentMismatch)

    # All at once, each from its own origin: a flood waits out its whole window for hits,
    # and one after another they were most of this test's time.  (The liar's item is
    # another key: the searches for the manual never meet its tampered bytes.)
    async with trio.open_nursery() as searching:
        for mode in MODES:
            for by_key in (True, False):
                searching.start_soon(search, mode, by_key, rng.choice(others))
        searching.start_soon(search_for_nothing)
        searching.start_soon(refuse_tampered_bytes)

    # Fetch: the bytes that come back are the bytes that were published.
    origin = others[50]
    fetched = await fetch_via(origin.address, key)
    assert fetched.value == value
    assert fetched.holder is not None and fetched.holder.id in holder_ids
    assert fetched.failures == ()


# ---------------------------------------------------------------------- bad input


async def test_bad_search_input_over_tcp_shows_in_the_counters_and_disturbs_nothing(
    nursery: trio.Nursery,
) -> None:
    swarm = await start_swarm(nursery, count=40, search=SMALL_SEARCH)
    target = swarm.peers[0]
    holder = swarm.peers[25]
    key = await publish_via(holder.address, b"still findable", "still findable")
    client, me = await handshaken(target.address)
    before = counters(await fetch_stats(target.address))

    # A repeated id is dropped (TTL 1: the peer does not forward, so no echo comes back).
    first_id = new_peer_id(random.Random(1))
    query = Query(first_id, me, key, (), ttl=1)
    await client.send_message(query)
    await client.send_message(query)
    # A hit for a query id the peer never saw is dropped.
    stranger = derived_key(2, 0)
    named = Contact(stranger.peer_id, me.address)
    await client.send_message(
        signed_hit(stranger, new_peer_id(random.Random(2)), key, "x", 1, named, hops=1)
    )
    # A keyword list over the peer's limit (8) but within the wire's (32) is refused.
    await client.send_message(
        Query(new_peer_id(random.Random(3)), me, None, tuple(f"w{i}" for i in range(12)), ttl=3)
    )
    with trio.fail_after(10):
        await target_node(swarm, target).wait_until(
            lambda: (
                target.search.counters.get("search.dropped.unknown_hit", 0) >= 1
                and target.search.counters.get("search.refused.keywords", 0) >= 1
                and target.search.counters.get("search.duplicate", 0)
                >= before.get("search.duplicate", 0) + 1
            )
        )
    middle = counters(await fetch_stats(target.address))
    assert middle.get("search.duplicate", 0) - before.get("search.duplicate", 0) == 1
    assert (
        middle.get("search.dropped.unknown_hit", 0) - before.get("search.dropped.unknown_hit", 0)
        == 1
    )
    assert middle.get("search.refused.keywords", 0) - before.get("search.refused.keywords", 0) == 1
    assert middle.get("search.queries_handled", 0) - before.get("search.queries_handled", 0) == 1

    # A TTL over the cap (10) is clamped; the query still works, as a TTL-10 flood.
    await client.send_message(Query(new_peer_id(random.Random(4)), me, key, (), ttl=200))
    hit = await client.receive()
    assert isinstance(hit, QueryHit) and hit.key == key and hit.holder.id == holder.id
    after = counters(await fetch_stats(target.address))
    assert after.get("search.ttl_clamped", 0) - middle.get("search.ttl_clamped", 0) == 1

    # A keyword list over the wire's own bound cannot even be decoded: the connection
    # that sent it is closed, and counted.
    rogue, rogue_me = await handshaken(target.address)
    words = [f"w{i}" for i in range(MAX_KEYWORDS_FIELD + 1)]
    body = msgpack.packb(
        [
            "Query",
            new_peer_id(random.Random(5)),
            [rogue_me.id, ["127.0.0.1", rogue_me.address.port]],
            None,
            words,
            3,
            0,
            False,
        ],
        use_bin_type=True,
    )
    await rogue.send(len(body).to_bytes(4, "big") + body)
    with trio.fail_after(5):
        assert await rogue.closed_by_remote()
    final = counters(await fetch_stats(target.address))
    assert final["node.connections.bad_input"] >= 1

    # None of it disturbed the peer: a search from it still finds the item.
    result = await search_via(target.address, "flood", key=key)
    assert result.success and holders_of(result) == {holder.id}
    await client.stream.aclose()


def target_node(swarm: Swarm, peer: Peer) -> Node:
    return swarm.nodes[swarm.peers.index(peer)]


async def test_client_requests_that_cannot_be_served_get_an_error_reply(
    nursery: trio.Nursery,
) -> None:
    swarm = await start_swarm(nursery, count=5, search=SMALL_SEARCH)
    via = swarm.peers[0].address
    result = await search_via(via, "sideways", key=content_key(b"x"))
    assert not result.success and "unknown mode" in result.error
    nothing = await fetch_via(via, content_key(b"nobody"), mode="flood")
    assert nothing.value is None and nothing.error == "no holder found"
    # A value the peer holds itself comes straight from its store.
    key = await publish_via(via, b"local", None)
    local = await fetch_via(via, key)
    assert local.value == b"local" and local.holder == swarm.peers[0].contact


# ---------------------------------------------------------------------- the commands


async def test_publish_search_and_fetch_commands(nursery: trio.Nursery, tmp_path: Path) -> None:
    swarm = await start_swarm(nursery, count=12, search=SMALL_SEARCH)
    source = tmp_path / "Annual Report 2026.txt"
    source.write_bytes(b"numbers, numbers\n" * 100)
    via_holder = str(swarm.peers[3].address)
    via_asker = str(swarm.peers[9].address)

    async def overlay(*args: str) -> subprocess.CompletedProcess[bytes]:
        return await trio.run_process(
            [*OVERLAY, *args],
            capture_stdout=True,
            capture_stderr=True,
            cwd=str(REPO),
            check=False,
        )

    published = await overlay("publish", "--via", via_holder, str(source))
    assert published.returncode == 0, published.stderr.decode()
    key = published.stdout.decode().strip()
    assert key == content_key(source.read_bytes())

    async def search(mode: str) -> None:
        found = await overlay(
            "search", "--via", via_asker, "--mode", mode, "--keywords", "annual report", "--json"
        )
        assert found.returncode == 0, found.stderr.decode()
        report = json.loads(found.stdout)
        assert report["success"] and report["hits"][0]["key"] == key
        assert report["hits"][0]["holder"]["address"] == via_holder
        assert report["messages"]["query"] >= 1

    async def search_for_absent() -> None:
        absent = await overlay(
            "search", "--via", via_asker, "--mode", "flood", content_key(b"absent"), "--json"
        )
        assert absent.returncode == 1 and json.loads(absent.stdout)["success"] is False

    async def fetch() -> None:
        target = tmp_path / "copy.txt"
        fetched = await overlay("fetch", "--via", via_asker, key, "-o", str(target))
        assert fetched.returncode == 0, fetched.stderr.decode()
        assert target.read_bytes() == source.read_bytes()

    async def fetch_absent() -> None:
        missing = tmp_path / "missing.txt"
        failed = await overlay(
            "fetch",
            "--via",
            via_asker,
            content_key(b"absent"),
            "-o",
            str(missing),
            "--mode",
            "flood",
        )
        assert failed.returncode == 1 and not missing.exists()
        assert b"no holder found" in failed.stderr

    # The commands at once: each is a process to start, and a flood waits out its window.
    async with trio.open_nursery() as commands:
        for mode in MODES:
            commands.start_soon(search, mode)
        commands.start_soon(search_for_absent)
        commands.start_soon(fetch)
        commands.start_soon(fetch_absent)


async def test_swarm_seeds_items_that_can_be_found_while_it_runs() -> None:
    peers, items, replication = 30, 3, 0.1
    process = await trio.lowlevel.open_process(
        [
            *OVERLAY,
            "swarm",
            "--peers",
            str(peers),
            "--items",
            str(items),
            "--replication",
            str(replication),
            "--duration",
            "600",
            "--port",
            "0",
            "--json",
            "--seed",
            "3",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        cwd=str(REPO),
    )
    assert process.stdout is not None and process.stderr is not None
    try:
        err = b""
        with trio.fail_after(HANG_GUARD):
            while b"bootstrap listening on" not in err or b"\n" not in err.split(b"on ", 1)[1]:
                chunk = await process.stderr.receive_some(4096)
                assert chunk, err
                err += chunk
        bootstrap = Address.parse(err.split(b"bootstrap listening on ")[1].split()[0].decode())
        keys = [content_key(value) for value, _ in seeded_items(items, 3)]
        with trio.fail_after(HANG_GUARD):
            while True:
                members = await list_members(bootstrap)
                if len(members) == peers:
                    break
                await trio.sleep(0.2)
        via = members[0].contact.address

        # Every seeded item is held by round(0.1 * 30) = 3 peers: a flood of TTL 10 over
        # a connected swarm of 30 finds all three (retried while the swarm still forms).
        async def find(index: int, key: str) -> None:
            with trio.fail_after(HANG_GUARD):
                while True:
                    result = await search_via(via, "flood", key=key, ttl=10, want=64)
                    if len(holders_of(result)) == 3:
                        break
            by_words = await search_via(via, "flood", keywords=f"item{index} seed3", ttl=10)
            assert by_words.success and {hit.key for hit in by_words.hits} == {key}

        # The items at once: each flood waits out its whole window for hits.
        async with trio.open_nursery() as searching:
            for index, key in enumerate(keys):
                searching.start_soon(find, index, key)
        process.send_signal(signal.SIGTERM)
        out = b""
        with trio.fail_after(60):
            while chunk := await process.stdout.receive_some(65536):
                out += chunk
            assert await process.wait() == 0
        summary = json.loads(out)
        assert summary["items"]["keys"] == keys
        assert summary["items"]["holders_per_item"] == 3
        assert summary["peers_left_gracefully"] == peers
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()


def test_a_fetch_tries_one_holder_per_prefix_before_a_second() -> None:
    sybils = [
        Contact(new_peer_id(random.Random(n)), Address(f"127.66.0.{n}", 9000)) for n in range(1, 6)
    ]
    honest = [
        Contact(new_peer_id(random.Random(10 + n)), Address(f"10.{n}.0.1", 9000)) for n in range(2)
    ]
    came = [*sybils[:3], honest[0], *sybils[3:], honest[1]]
    assert prefix_diverse(came) == [sybils[0], honest[0], honest[1], *sybils[1:]]
    assert prefix_diverse([]) == []
