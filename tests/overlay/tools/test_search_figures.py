"""``overlay search`` reports a search's cost network-wide, and the figure is true;
``overlay fetch -o -`` writes to standard output; a default swarm lists both roles.

A real swarm (a subprocess, 30 peers) with no other search traffic: the same item is
searched for from the same peer, by flood and then by walk, with the ``overlay search``
command.  What it reports as the search's messages is compared with the peers' own
message counters (``node.sent.<Kind>`` in every stats reply), read before and after:
the search kinds' growth must match the report within 5%.  The tally also lives up to
what a liar could do to it: a peer asked about ids it never saw says nothing.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import trio

from overlay.net.search_tally import SearchTally, gather_once
from overlay.protocol.identity import Address, Contact
from overlay.protocol.messages import Query, TallyRequest
from overlay.tools.crawl import list_members
from overlay.tools.swarm import collect_stats
from search.store import content_key
from tests.conftest import OVERLAY, REPO, interrupt, start_peer
from tests.keys import model_key, signed_hit

SEARCH_KINDS = ("Query", "QueryHit", "WalkStep", "WalkCheck", "WalkVerdict", "SuperQuery")
PEERS = 30
QUICK_SUPER_LAYER = ("--super-seed-wait", "1.5", "--super-min-uptime", "1.0")
"""Founding the super layer sooner than on real hosts: the test waits for both roles."""
DEADLINE = 60.0
"""Bound on each wait (the machine is shared); never a timing claim."""


async def _search_messages_sent(addresses: list[Address]) -> int:
    replies, failed = await collect_stats(addresses)
    assert failed == 0
    return sum(
        counter.value
        for reply in replies
        for counter in reply.counters
        if counter.name.removeprefix("node.sent.") in SEARCH_KINDS
        and counter.name.startswith("node.sent.")
    )


def _settled(progress: Path) -> bool:
    """The swarm has said (``--progress-out``) that its overlay settled: every peer joined,
    one component, both roles, every weak peer attached and indexed.  Searching before
    that can miss an item whose holder has no links yet (CI saw a flood fail that way)."""
    if not progress.exists():
        return False
    lines = progress.read_text(encoding="utf-8").splitlines()
    return any(json.loads(line)["settled_seconds"] is not None for line in lines if line)


async def test_search_reports_what_the_peers_counters_say_it_cost(tmp_path: Path) -> None:
    progress = tmp_path / "progress.jsonl"
    process = await trio.lowlevel.open_process(
        [*OVERLAY, "swarm", "--peers", str(PEERS), "--duration", "0", "--port", "0",
         "--no-searches", "--progress-out", str(progress), *QUICK_SUPER_LAYER],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        cwd=str(REPO),
    )  # fmt: skip
    assert process.stderr is not None
    try:
        err = b""
        with trio.fail_after(DEADLINE):
            while b"try: overlay search" not in err or not err.endswith(b"\n"):
                chunk = await process.stderr.receive_some(65536)
                assert chunk, err.decode()
                err += chunk
        text = err.decode()
        bootstrap = Address.parse(text.split("bootstrap listening on ")[1].split()[0])
        words = text.split("try: overlay search --via ")[1].split()
        via, key = words[0], words[3]
        with trio.fail_after(DEADLINE):
            while True:
                listed = [entry.contact.address for entry in await list_members(bootstrap)]
                if len(listed) == PEERS:
                    break
                await trio.sleep(0.2)
        # A default swarm runs the super layer: `overlay members` lists both roles.
        with trio.fail_after(DEADLINE):
            while True:
                listing = await trio.run_process(
                    [*OVERLAY, "members", "--bootstrap", str(bootstrap), "--json"],
                    capture_stdout=True,
                    cwd=str(REPO),
                )
                roles = {member["role"] for member in json.loads(listing.stdout)}
                if roles == {"super", "weak"}:
                    break
                await trio.sleep(0.5)
        with trio.fail_after(DEADLINE):
            while not _settled(progress):
                await trio.sleep(0.2)
        for mode in ("flood", "walk"):
            before = await _search_messages_sent(listed)
            done = await trio.run_process(
                [*OVERLAY, "search", "--via", via, "--mode", mode, key, "--json"],
                capture_stdout=True,
                capture_stderr=True,
                cwd=str(REPO),
                check=False,
            )
            assert done.returncode == 0, done.stderr.decode()
            report = json.loads(done.stdout)
            after = await _search_messages_sent(listed)
            reported = report["messages"]["total"]
            counted = after - before
            assert report["success"], mode
            assert abs(reported - counted) <= 0.05 * counted, (mode, reported, counted)
            # Network-wide, not the origin's share alone.
            assert reported > report["messages_at_origin"]["total"], mode
            assert report["peers_counted"]["senders"] > 1, mode
    finally:
        await interrupt(process)


def test_the_tally_is_bounded_expires_and_answers_only_what_it_saw() -> None:
    tally = SearchTally(size=2, keep=10.0)
    contact = Contact("e" * 32, Address("127.0.0.1", 1))
    query = Query("a" * 32, contact, "0" * 64, (), 3)
    tally.sent(query, 0.0)
    assert tally.again(query)  # the same object to another neighbor
    assert not tally.again(Query("a" * 32, contact, "0" * 64, (), 3))  # an equal one is not
    tally.sent(signed_hit(model_key(1), "a" * 32, "0" * 64, None, 1, contact), 1.0)
    assert not tally.again(query)
    assert tally.counts("a" * 32) == {"query": 2, "hit": 1}
    # Asked about ids it never saw (a stranger guessing), it says nothing.
    assert tally.answer(["f" * 32], 2.0) == ()
    tally.sent(Query("b" * 32, contact, "0" * 64, (), 3), 2.0)
    tally.sent(Query("c" * 32, contact, "0" * 64, (), 3), 3.0)
    assert len(tally) == 2 and tally.counts("a" * 32) == {}  # the oldest went first
    assert [t.query_id for t in tally.answer(["b" * 32, "c" * 32], 12.5)] == ["c" * 32]
    assert tally.counts("b" * 32) == {}  # forgotten 10 s after its first message


async def test_a_gathering_bounds_how_many_peers_it_asks() -> None:
    """A liar may name any links; the asker follows at most ``limit`` addresses (here
    none answers: they are closed ports)."""
    starts = [Address("127.0.0.1", 1), Address("127.0.0.1", 2), Address("127.0.0.1", 3)]
    found = await gather_once(starts, ["a" * 32], timeout=1.0, limit=2)
    assert found.asked == 2 and found.answered == 0 and found.by_id == {}
    assert TallyRequest(("a" * 32,)).query_ids == ("a" * 32,)


async def test_fetch_to_standard_output(nursery: trio.Nursery) -> None:
    """``overlay fetch KEY -o -`` writes the verified value to standard output, and
    nothing else: the report goes to standard error."""
    peer, _node = await start_peer(nursery, bootstrap=None)
    value = b"bytes for standard output\n"
    peer.search.publish(value, "stdout item")
    key = content_key(value)
    done = await trio.run_process(
        [*OVERLAY, "fetch", "--via", str(peer.address), key, "-o", "-"],
        capture_stdout=True,
        capture_stderr=True,
        cwd=str(REPO),
        check=False,
    )
    assert done.returncode == 0, done.stderr.decode()
    assert done.stdout == value
    assert b"written to standard output" in done.stderr
    assert not (REPO / "-").exists()
