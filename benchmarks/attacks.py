"""Attacks on identity, tried as an attacker would: one process on loopback against a real
swarm, on the plaintext runtime (before issue 15's defences) and on the secure one (after).

    python benchmarks/attacks.py [--only NAME ...] [--runtimes plaintext,secure]
        [--peers 60] [--seed 1] [--watch 40] [--hold 60] [--out benchmarks/results]

For each runtime and each attack, a fresh ``overlay swarm`` (``--peers`` peers, super
peers on, 5 items on 3 peers each, no searches of its own) is started through
:mod:`benchmarks.harness`, crawled until it is one component with every peer alive, and
left ``--settle`` seconds; then this process (the attacker, speaking the wire through
:mod:`benchmarks.attacker`) attacks it and measures, and the swarm is stopped.  The
victim is a weak peer with at least 4 neighbors that holds no item, drawn from the seed.

The attacks (issue 15, "Why"), and what is measured:

* ``framing``: to each of the victim's neighbors, claim the victim's id and send
  :data:`FRAMES` frames no peer handles; the victim's degree every 0.5 s for
  ``--watch``, and how many of those neighbors still list it after.
* ``leave``: the same with one ``Leave``, watched for 3 s.
* ``hijack``: listen on an address of the attacker's under the victim's id and ask
  :data:`HIJACK_TARGETS` other peers to become its neighbor; how many peers then list
  the victim's id, and how many of those links end at the attacker.
* ``eclipse``: :data:`ECLIPSE_IDENTITIES` attacker identities, each on its own /24
  (127.66.k.1), each asking the victim under its own id to be its neighbor; and each
  honest neighbor's id claimed to the victim in a ``Redirect`` toward a free attacker
  identity; again every second for ``--hold`` seconds and while the floods after run;
  attackers among the victim's neighbors at the end, and its flood success for the
  seeded items, before and under the attack.
* ``forged_hits``: become the victim's neighbor under an id of the attacker's own and
  answer every query with a hit naming each of :data:`FORGED_HOLDERS` honest peers; the
  hits ``overlay search`` gets for words no peer holds, and a fetch of the first.
* ``index``: attach to every super peer under a weak peer's id (with the attacker's
  address; again every :data:`REATTACH_PERIOD`, as the peer's own refresh undoes it)
  and publish an item that peer never had; attachments accepted, and whether
  a ``super-flood`` search lists the impersonated peer as its holder.
* ``bootstrap``: once the swarm has run :data:`SERVED` seconds (its super peers have
  served the bootstrap's ``super_seniority``),
  :data:`FAKE_REGISTRATIONS` registrations claiming addresses on one /24
  (127.66.90.x; a quarter as super peers of capacity 1,000,000) within 15 s; how many
  the bootstrap lists, the attacker-controlled share of :data:`NEWCOMERS` newcomers'
  samples and super-peer lists; how many honest peers (a newcomer the swarm adds among
  them) send an ``Attach``, and with it their index, to a fake super peer within
  :data:`ATTACH_WATCH` seconds; then a spoofed ``Unregister`` for an honest peer.
* ``blame``: claim the victim's id to every other peer and send :data:`FRAMES` frames
  no peer handles; how many peers distrusted someone, and the victim's degree after.

On a runtime that proves ids at the handshake, a claim the attacker holds no key for
is refused before any frame: the outcome is then ``refused`` with the count, the first
reason the attacker saw, and the first line of the swarm's log that names the claim.

``--runtimes``: ``plaintext`` is ``overlay swarm --plaintext`` when the swarm has that
flag, and today's runtime (which is plaintext) when it does not; ``secure`` is the
default runtime once it proves ids, and is recorded as not available before then.
Results go to ``attacks.json`` under ``--out``, one section per runtime, merged into the
file that is there: an attack run again replaces its row, the others stay, and each row
says when and on which commit it ran.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import hashlib
import json
import random
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from functools import partial
from pathlib import Path
from typing import Any, Final

if __package__ in (None, ""):  # run as a script: make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import attrs
import trio

from benchmarks.attacker import Impersonator, Link, Refused, dial, new_identity, open_peers
from benchmarks.harness import (
    Child,
    Listening,
    Run,
    as_typed,
    commit_of,
    listening,
    read_result,
    started,
    swarm_command,
)
from benchmarks.runtimes import (
    RUNTIMES,
    runnable,
    runtime_flags,
    runtimes_argument,
    settled,
    use_runtime,
)
from bootstrap.hostcache import HostCacheConfig
from overlay.core.config import MembershipConfig
from overlay.core.peer import PeerSnapshot
from overlay.net.secure import LinkIdentity
from overlay.net.swarm.setup import seeded_items
from overlay.protocol.errors import OverlayError
from overlay.protocol.identity import PUBLIC_KEY_BYTES, Address, Contact, PeerId
from overlay.protocol.messages import (
    MAX_CAPACITY,
    MAX_NAME,
    Attach,
    AttachAccept,
    IndexItem,
    Leave,
    Message,
    NeighborRequest,
    PeerSample,
    Query,
    QueryHit,
    Redirect,
    Register,
    Unregister,
)
from overlay.protocol.signing import SIGNATURE_BYTES
from overlay.tools.cli_search import fetch_via, search_via
from overlay.tools.crawl import Crawl, crawl, fetch_stats, list_members
from search.store import content_key

REPO: Final = Path(__file__).resolve().parents[1]
ATTACKS: Final = (
    "framing",
    "leave",
    "hijack",
    "eclipse",
    "forged_hits",
    "index",
    "bootstrap",
    "blame",
)
ITEMS: Final = 5
COPIES: Final = 3
FRAMES: Final = 10
"""Frames of a kind no peer handles (``Unregister``, the bootstrap's), each a fault."""
HIJACK_TARGETS: Final = 20
ECLIPSE_IDENTITIES: Final = 8
FORGED_HOLDERS: Final = 16
FAKE_REGISTRATIONS: Final = 400
REGISTRATION_WINDOW: Final = 15.0
NEWCOMERS: Final = 5
LEAVE_WATCH: Final = 3.0
ATTACH_WATCH: Final = 15.0
SERVED: Final = HostCacheConfig().super_seniority + 10.0
"""How long the swarm has run, at least, when the bootstrap attack starts."""
REATTACH_PERIOD: Final = 0.5
NO_KEY: Final = bytes(PUBLIC_KEY_BYTES)
NO_SIGNATURE: Final = bytes(SIGNATURE_BYTES)
"""What the attacker puts where a holder's key and signature go: it has neither."""
ATTACK_PREFIX: Final = "127.66"
SETTLE_TIMEOUT: Final = 90.0
STATS_TIMEOUT: Final = 2.0
LOG_LINES: Final = 3


def _progress(text: str) -> None:
    print(f"attacks: {text}", file=sys.stderr, flush=True)


# ---------------------------------------------------------------------- the swarm


@attrs.define
class Target:
    """The running swarm as the attacker sees it: a crawl's address book and snapshots."""

    swarm: Child[Listening]
    bootstrap: Address
    book: dict[PeerId, Address]
    shots: dict[PeerId, PeerSnapshot]
    rng: random.Random
    secure: bool
    identity: LinkIdentity | None
    """The key the attacker proves when it claims someone else's id (None: plaintext)."""
    began: float
    """When the swarm was started (``time.monotonic()``)."""

    def contact(self, peer: PeerId) -> Contact:
        return Contact(peer, self.book[peer])

    def victim(self) -> PeerSnapshot:
        """A weak peer with at least 4 neighbors that holds no item (a search from it
        must cross the overlay), drawn from the seed; the best-connected weak peer
        failing that."""
        weak = sorted(
            (s for s in self.shots.values() if s.role == "weak"), key=lambda s: s.id
        ) or sorted(self.shots.values(), key=lambda s: s.id)
        fit = [s for s in weak if len(s.neighbors) >= 4 and s.item_count == 0]
        if fit:
            return self.rng.choice(fit)
        return max(weak, key=lambda s: len(s.neighbors))

    def log_lines(self, *words: str) -> list[str]:
        """The swarm's log lines (standard error) that name any of ``words``."""
        lines = self.swarm.stderr_tail.splitlines()
        return [line for line in lines if any(w in line for w in words)][:LOG_LINES]


async def survey(bootstrap: Address) -> Crawl:
    return await crawl(bootstrap, timeout=STATS_TIMEOUT)


def attacked_swarm(args: argparse.Namespace, flags: Sequence[str]) -> list[str]:
    return swarm_command(
        args.peers, args.seed, "--control", "--items", str(ITEMS), "--copies", str(COPIES), *flags
    )


@contextlib.asynccontextmanager
async def running_swarm(
    args: argparse.Namespace, flags: Sequence[str], secure: bool
) -> AsyncIterator[Target]:
    command = attacked_swarm(args, flags)
    began = time.monotonic()
    async with started(
        command, listening("bootstrap"), ready_on="stderr", stop="eof", grace=30.0
    ) as swarm:
        bootstrap = swarm.ready.address
        found = await settled(bootstrap, args.peers, SETTLE_TIMEOUT)
        await trio.sleep(args.settle)
        found = await survey(bootstrap)
        book = found.alive_addresses()
        shots = {s.id: s for s in found.snapshots}
        rng = random.Random(f"attacks {args.seed}")
        identity, _ = new_identity(secure, rng)
        yield Target(swarm, bootstrap, book, shots, rng, secure, identity, began)


# ---------------------------------------------------------------------- measuring


async def neighbors_of(address: Address) -> tuple[PeerId, ...] | None:
    try:
        return (await fetch_stats(address, STATS_TIMEOUT)).neighbors
    except OverlayError:
        return None


async def degree_series(address: Address, seconds: float, period: float = 0.5) -> list[Any]:
    """``[seconds since start, degree]`` every ``period`` (degree None: no answer)."""
    series: list[Any] = []
    began = time.monotonic()
    while (elapsed := time.monotonic() - began) < seconds:
        neighbors = await neighbors_of(address)
        series.append([round(elapsed, 2), None if neighbors is None else len(neighbors)])
        await trio.sleep(period)
    return series


def degrees_of(series: Sequence[Any]) -> list[int]:
    return [d for _, d in series if d is not None]


@attrs.define
class Tally:
    """Claims made and refused in one attack."""

    sent: int = 0
    refused: int = 0
    first_refusal: str | None = None

    def refusal(self, error: Refused) -> None:
        self.refused += 1
        if self.first_refusal is None:
            self.first_refusal = str(error)[:300]

    def figures(self, target: Target, claimed: Sequence[str]) -> dict[str, Any]:
        out: dict[str, Any] = {"claims_sent": self.sent, "claims_refused": self.refused}
        if self.refused:
            out["first_refusal"] = self.first_refusal
            out["swarm_log"] = target.log_lines(*claimed)
        return out


async def claim_and_send(
    tally: Tally,
    address: Address,
    claimed: Contact,
    messages: Sequence[Message],
    linger: float,
    *,
    identity: LinkIdentity | None,
) -> Link | None:
    """Dial ``address`` as ``claimed`` (proving ``identity``'s key on a secure runtime),
    send ``messages``, read for ``linger`` seconds, close; the link (None: refused)."""
    try:
        link = await dial(address, claimed, identity)
        await link.send(*messages)
    except Refused as error:
        tally.refusal(error)
        return None
    tally.sent += 1
    await link.collect(linger)
    await link.aclose()
    return link


async def each(jobs: Sequence[Callable[[], Awaitable[object]]], limit: int = 16) -> None:
    """Run the jobs at once, at most ``limit`` at a time."""
    limiter = trio.CapacityLimiter(limit)

    async def one(job: Callable[[], Awaitable[object]]) -> None:
        async with limiter:
            await job()

    async with trio.open_nursery() as nursery:
        for job in jobs:
            nursery.start_soon(one, job)


def attacker_host(block: int, host: int = 1) -> str:
    """An address of the attacker's: one /24 per ``block``."""
    return f"{ATTACK_PREFIX}.{block}.{host}"


# ---------------------------------------------------------------------- the attacks


async def speak_as_victim(
    target: Target, messages: Sequence[Message], watch: float
) -> dict[str, Any]:
    """Claim the victim's id to each of its neighbors and send ``messages``; watch its
    degree for ``watch`` seconds, then ask those neighbors whether they still list it."""
    victim = target.victim()
    before = await neighbors_of(victim.address) or ()
    claim = Contact(victim.id, victim.address)
    tally = Tally()
    await each(
        [
            partial(
                claim_and_send,
                tally,
                target.book[n],
                claim,
                messages,
                0.2,
                identity=target.identity,
            )
            for n in before
            if n in target.book
        ]
    )
    series = await degree_series(victim.address, watch)
    degrees = degrees_of(series)
    still = 0
    for n in before:
        listed = await neighbors_of(target.book[n]) if n in target.book else None
        still += bool(listed and victim.id in listed)
    return {
        "victim": victim.id,
        "degree_before": len(before),
        "degree_min": min(degrees, default=None),
        "degree_at_end": degrees[-1] if degrees else None,
        "old_neighbors_still_listing_victim": still,
        "degree_series": series,
        **tally.figures(target, [victim.id]),
    }


async def framing(target: Target, args: argparse.Namespace) -> dict[str, Any]:
    return await speak_as_victim(target, [Unregister()] * FRAMES, args.watch)


async def leave(target: Target, args: argparse.Namespace) -> dict[str, Any]:
    del args
    return await speak_as_victim(target, [Leave()], LEAVE_WATCH)


async def hijack(target: Target, args: argparse.Namespace) -> dict[str, Any]:
    del args
    victim = target.victim()
    before = set(await neighbors_of(victim.address) or ())
    impostor = await Impersonator.open(attacker_host(60), victim.id, target.identity)
    others = sorted(p for p in target.book if p != victim.id and p not in before)
    chosen = target.rng.sample(others, min(HIJACK_TARGETS, len(others)))
    tally = Tally()
    links: list[Link] = []
    async with trio.open_nursery() as nursery:
        await nursery.start(impostor.run)

        async def take(peer: PeerId) -> None:
            try:
                link = await dial(target.book[peer], impostor.claimed, target.identity)
                await link.send(NeighborRequest())
            except Refused as error:
                tally.refusal(error)
                return
            tally.sent += 1
            links.append(link)
            nursery.start_soon(link.serve)

        await each([partial(take, p) for p in chosen])
        await trio.sleep(8.0)
        listing = await _listing(target, victim.id)
        held = open_peers(links) | impostor.linked_peers()
        nursery.cancel_scope.cancel()
    return {
        "victim": victim.id,
        "victim_degree_before": len(before),
        "peers_listing_victim": len(listing),
        "of_which_linked_to_attacker": len(listing & held),
        **tally.figures(target, [victim.id]),
    }


async def _listing(target: Target, peer: PeerId) -> set[PeerId]:
    """The peers that list ``peer`` as a neighbor now."""
    found = await survey(target.bootstrap)
    return {s.id for s in found.snapshots if peer in s.neighbors}


async def flood_success(victim: Address, keys: Sequence[str]) -> int:
    """Of ``keys``, how many a flood from ``victim`` finds."""
    found = 0
    for key in keys:
        with contextlib.suppress(OverlayError):
            found += bool((await search_via(victim, "flood", key=key, timeout=15.0)).success)
    return found


@attrs.define
class Eclipse:
    """The attackers' side of an eclipse: identities of their own, each on its /24."""

    target: Target
    victim: PeerSnapshot
    impostors: list[Impersonator]
    rng: random.Random
    tally: Tally = attrs.field(factory=Tally)
    joins: Tally = attrs.field(factory=Tally)
    series: list[Any] = attrs.field(factory=list)
    claimed: set[str] = attrs.field(factory=set)
    joining: set[PeerId] = attrs.field(factory=set)

    @property
    def attackers(self) -> dict[PeerId, Contact]:
        return {i.claimed.id: i.claimed for i in self.impostors}

    async def hold(self, began: float, nursery: trio.Nursery) -> None:
        """Every second: each attacker identity not yet a neighbor asks to be one, as
        itself; each honest neighbor's id is claimed to the victim in a ``Redirect``
        toward a free attacker identity (or any, which only drops the link)."""
        victim = self.victim.address
        while True:
            neighbors = await neighbors_of(victim)
            if neighbors is not None:
                attackers = self.attackers
                held = [n for n in neighbors if n in attackers]
                self.series.append([round(time.monotonic() - began, 2), len(neighbors), len(held)])
                for impostor in self.impostors:
                    if impostor.claimed.id not in neighbors:
                        nursery.start_soon(self.join_as_self, impostor)
                free = [c for a, c in attackers.items() if a not in neighbors]
                jobs = []
                for n in neighbors:
                    if n in attackers or n not in self.target.book:
                        continue
                    newcomer = free.pop() if free else self.rng.choice(list(attackers.values()))
                    self.claimed.add(n)
                    redirect = [Redirect(newcomer)]
                    claim = self.target.contact(n)
                    jobs.append(
                        partial(
                            claim_and_send,
                            self.tally,
                            victim,
                            claim,
                            redirect,
                            0.3,
                            identity=self.target.identity,
                        )
                    )
                await each(jobs)
            await trio.sleep(1.0)

    async def join_as_self(self, impostor: Impersonator) -> None:
        """Ask the victim, under the attacker identity's own id, to be its neighbor; keep
        the link as a neighbor would."""
        me = impostor.claimed.id
        if me in self.joining or self.victim.id in open_peers(impostor.links):
            return
        self.joining.add(me)
        try:
            link = await impostor.dial(self.victim.address)
            await link.send(NeighborRequest())
        except Refused as error:
            self.joins.refusal(error)
            return
        finally:
            self.joining.discard(me)
        self.joins.sent += 1
        await link.serve()


async def eclipse(target: Target, args: argparse.Namespace) -> dict[str, Any]:
    victim = target.victim()
    keys = [content_key(value) for value, _ in seeded_items(ITEMS, args.seed)]
    baseline = await flood_success(victim.address, keys)
    rng = random.Random(f"eclipse {args.seed}")
    impostors = [
        await Impersonator.fresh(attacker_host(k), target.secure, rng)
        for k in range(ECLIPSE_IDENTITIES)
    ]
    attack = Eclipse(target, victim, impostors, rng)
    attackers = attack.attackers
    async with trio.open_nursery() as nursery:
        for impostor in impostors:
            await nursery.start(impostor.run)
        nursery.start_soon(attack.hold, time.monotonic(), nursery)
        await trio.sleep(args.hold)
        end = await neighbors_of(victim.address) or ()
        # Measured while the attackers still hold on: the view is theirs only as long
        # as they keep at it.
        after = await flood_success(victim.address, keys)
        nursery.cancel_scope.cancel()
    return {
        "victim": victim.id,
        "attacker_identities": ECLIPSE_IDENTITIES,
        "attacker_prefixes": [attacker_host(k, 0) + "/24" for k in range(ECLIPSE_IDENTITIES)],
        "hold_seconds": args.hold,
        "degree_at_end": len(end),
        "attacker_neighbors_at_end": sum(1 for n in end if n in attackers),
        "flood_success_before": f"{baseline} of {len(keys)}",
        "flood_success_after": f"{after} of {len(keys)}",
        "flood_success_ratio": round(after / baseline, 3) if baseline else None,
        "series_seconds_degree_attackers": attack.series,
        "joins_as_self_sent": attack.joins.sent,
        "joins_as_self_refused": attack.joins.refused,
        **attack.tally.figures(target, sorted(attack.claimed)),
    }


def forger(holders: Sequence[Contact]) -> Callable[[Query], list[Message]]:
    """Answers a query with one hit per honest holder, none of which holds anything."""

    def answer(query: Query) -> list[Message]:
        key = query.key or hashlib.sha256(" ".join(query.keywords).encode()).hexdigest()
        name = " ".join(query.keywords)[:MAX_NAME] or None
        # No holder's key or signature: the attacker has neither (its own would not
        # hash to the holder's id).
        return [
            QueryHit(query.query_id, key, name, 64, holder, 1, NO_KEY, NO_SIGNATURE)
            for holder in holders
        ]

    return answer


async def forged_hits(target: Target, args: argparse.Namespace) -> dict[str, Any]:
    victim = target.victim()
    honest = sorted(p for p in target.book if p != victim.id)
    holders = [
        target.contact(p) for p in target.rng.sample(honest, min(FORGED_HOLDERS, len(honest)))
    ]
    rng = random.Random(f"forger {args.seed}")
    impostor = await Impersonator.fresh(attacker_host(70), target.secure, rng, forger(holders))
    words = f"nothing holds these words {args.seed}"
    tally = Tally()
    async with trio.open_nursery() as nursery:
        await nursery.start(impostor.run)
        try:
            link = await impostor.dial(victim.address)
            await link.send(NeighborRequest())
            tally.sent += 1
            nursery.start_soon(link.serve, impostor.answer)
        except Refused as error:
            tally.refusal(error)
        await trio.sleep(2.0)
        linked = victim.id in impostor.linked_peers() or tally.sent > 0
        result = await search_via(victim.address, "flood", keywords=words, timeout=20.0)
        hits = [h for h in result.hits if h.holder.id in set(honest)]
        fetch: dict[str, Any] = {}
        if hits:
            fetched = await fetch_via(victim.address, hits[0].key, mode="flood", timeout=20.0)
            fetch = {
                "fetched": fetched.value is not None,
                "holders_that_failed": len(fetched.failures),
            }
        nursery.cancel_scope.cancel()
    return {
        "victim": victim.id,
        "attacker_linked_to_victim": linked,
        "keywords": words,
        "hits_shown": len(result.hits),
        "hits_naming_honest_holders": len(hits),
        **fetch,
        **tally.figures(target, [impostor.claimed.id]),
    }


async def with_super_peers(target: Target) -> None:
    """Crawl until most weak peers are attached to super peers (the election waits for
    uptime), and take that crawl as the target's view."""
    with trio.fail_after(SETTLE_TIMEOUT):
        while True:
            found = await survey(target.bootstrap)
            shots = {s.id: s for s in found.snapshots}
            weak = [s for s in shots.values() if s.role == "weak"]
            if len([s for s in weak if s.super_peers]) * 2 > len(weak) > 1:
                target.shots = shots
                target.book = found.alive_addresses()
                return
            await trio.sleep(1.0)


async def keep_attached(link: Link, item: IndexItem) -> None:
    """Attach again and again: the impersonated peer's own lease refresh is refused under
    the attacker's new lease, and the peer then attaches afresh, replacing the entry."""
    with contextlib.suppress(Refused):
        while True:
            await trio.sleep(REATTACH_PERIOD)
            await link.send(Attach(1, False, 1, (item,), NO_KEY))


async def index(target: Target, args: argparse.Namespace) -> dict[str, Any]:
    await with_super_peers(target)
    supers = sorted(p for p, s in target.shots.items() if s.role == "super" and p in target.book)
    weak = sorted(p for p, s in target.shots.items() if s.role == "weak" and p in target.book)
    searcher = target.rng.choice([p for p in weak if target.shots[p].super_peers])
    victim = target.rng.choice([p for p in weak if p != searcher])
    words = f"phantom{args.seed} impostor"
    value = f"an item {victim} never had".encode()
    item = IndexItem(content_key(value), words, len(value), 1, NO_SIGNATURE)
    claim = Contact(victim, Address(attacker_host(80), 7))
    tally = Tally()
    accepted = 0
    async with trio.open_nursery() as nursery:

        async def attach(peer: PeerId) -> None:
            nonlocal accepted
            try:
                link = await dial(target.book[peer], claim, target.identity)
                await link.send(Attach(1, False, 1, (item,), NO_KEY))
            except Refused as error:
                tally.refusal(error)
                return
            tally.sent += 1
            heard = await link.collect(1.5)
            accepted += any(type(m) is AttachAccept for m in heard)
            nursery.start_soon(link.serve)
            nursery.start_soon(keep_attached, link, item)

        await each([partial(attach, p) for p in supers])
        await trio.sleep(1.0)
        result = await search_via(
            target.book[searcher], "super-flood", keywords=words, timeout=20.0
        )
        nursery.cancel_scope.cancel()
    named = [h for h in result.hits if h.holder.id == victim]
    return {
        "impersonated": victim,
        "super_peers": len(supers),
        "attachments_accepted": accepted,
        "super_flood_hits": len(result.hits),
        "hits_naming_impersonated_peer": len(named),
        **tally.figures(target, [victim]),
    }


@attrs.frozen
class Registration:
    """One fake registration: who it claims to be, as what, and the key it proves."""

    contact: Contact
    role: str
    identity: LinkIdentity | None

    async def send(self, tally: Tally, bootstrap: Address) -> None:
        capacity = MAX_CAPACITY if self.role == "super" else 1
        message = Register(0, self.role, capacity)
        await claim_and_send(
            tally, bootstrap, self.contact, [message], 0.05, identity=self.identity
        )


async def newcomer_sample(target: Target, rng: random.Random) -> PeerSample | None:
    """What the bootstrap hands a newcomer (a fresh id on 127.0.0.1) asking as peers do."""
    want = MembershipConfig().bootstrap_want
    identity, me = new_identity(target.secure, rng)
    claim = Contact(me, Address("127.0.0.1", rng.randrange(20000, 60000)))
    try:
        link = await dial(target.bootstrap, claim, identity)
        await link.send(Register(want))
    except Refused:
        return None
    heard = await link.collect(2.0)
    await link.aclose()
    return next((m for m in heard if isinstance(m, PeerSample)), None)


def attacker_share(contacts: Sequence[Contact]) -> float | None:
    if not contacts:
        return None
    fakes = sum(1 for c in contacts if c.address.host.startswith(ATTACK_PREFIX + "."))
    return round(fakes / len(contacts), 3)


async def bootstrap(target: Target, args: argparse.Namespace) -> dict[str, Any]:
    rng = random.Random(f"bootstrap {args.seed}")
    tally = Tally()
    # The bar is for an overlay whose super peers have served a while (a fresh one's first
    # half minute is open: docs/design.md, "Trust"): wait until the bootstrap lists them.
    await trio.sleep(max(0.0, target.began + SERVED - time.monotonic()))
    swarm_age = time.monotonic() - target.began
    # The "super peers" listen (on the same /24), to see whose Attach they draw.
    fake_supers = [
        await Impersonator.fresh(attacker_host(90, 1 + i % 254), target.secure, rng)
        for i in range(0, FAKE_REGISTRATIONS, 4)
    ]
    claims: list[Registration] = []
    for i in range(FAKE_REGISTRATIONS):
        if i % 4 == 0:
            listener = fake_supers[i // 4]
            claims.append(Registration(listener.claimed, "super", listener.identity))
        else:
            identity, me = new_identity(target.secure, rng)
            contact = Contact(me, Address(attacker_host(90, 1 + i % 254), 20000 + i))
            claims.append(Registration(contact, "weak", identity))
    async with trio.open_nursery() as nursery:
        for impostor in fake_supers:
            await nursery.start(impostor.run)
        began = time.monotonic()
        await each([partial(c.send, tally, target.bootstrap) for c in claims], 32)
        took = time.monotonic() - began
        if took > REGISTRATION_WINDOW:
            _progress(f"bootstrap: {FAKE_REGISTRATIONS} registrations took {took:.1f} s")
        members = await list_members(target.bootstrap, STATS_TIMEOUT * 5)
        fake = {c.contact.id for c in claims}
        listed = sum(1 for m in members if m.contact.id in fake)
        samples = [await newcomer_sample(target, rng) for _ in range(NEWCOMERS)]
        await target.swarm.send("add")  # a real newcomer, through the same bootstrap
        await trio.sleep(ATTACH_WATCH)
        attached = {
            link.remote.contact.id
            for impostor in fake_supers
            for link in impostor.links
            if any(type(m) is Attach for m in link.heard)
        }
        nursery.cancel_scope.cancel()
    peers = [c for s in samples if s is not None for c in s.peers]
    supers = [c for s in samples if s is not None for c in s.super_peers]
    honest = sorted(target.book)
    spoofed = target.rng.choice(honest)
    unregister = Tally()
    spoof = target.contact(spoofed)
    await claim_and_send(
        unregister, target.bootstrap, spoof, [Unregister()], 0.5, identity=target.identity
    )
    after = await list_members(target.bootstrap, STATS_TIMEOUT * 5)
    return {
        "swarm_age_seconds": round(swarm_age, 1),
        "registrations_sent": FAKE_REGISTRATIONS,
        "registration_seconds": round(took, 2),
        "within_window": took <= REGISTRATION_WINDOW,
        "registrations_listed": listed,
        "newcomers": NEWCOMERS,
        "newcomer_sample_attacker_share": attacker_share(peers),
        "newcomer_super_list_attacker_share": attacker_share(supers),
        "honest_peers_attaching_to_fake_supers": len(attached - fake),
        "attach_watch_seconds": ATTACH_WATCH,
        "spoofed_unregister_removed_peer": all(m.contact.id != spoofed for m in after),
        "unregister_claims_refused": unregister.refused,
        **tally.figures(target, [c.contact.id for c in claims[:3]]),
    }


async def blame(target: Target, args: argparse.Namespace) -> dict[str, Any]:
    del args
    victim = target.victim()
    before = await neighbors_of(victim.address) or ()
    others = sorted(p for p in target.book if p != victim.id)
    distrusted_before = await _distrusted(target, others)
    claim = Contact(victim.id, victim.address)
    tally = Tally()
    junk = [Unregister()] * FRAMES
    await each(
        [
            partial(
                claim_and_send,
                tally,
                target.book[p],
                claim,
                junk,
                0.2,
                identity=target.identity,
            )
            for p in others
        ]
    )
    await trio.sleep(5.0)
    distrusted_after = await _distrusted(target, others)
    rose = sum(1 for p in others if distrusted_after.get(p, 0) > distrusted_before.get(p, 0))
    series = await degree_series(victim.address, 15.0)
    listing = await _listing(target, victim.id)
    return {
        "victim": victim.id,
        "peers_sent_frames": len(others),
        "peers_that_distrusted_someone": rose,
        "victim_degree_before": len(before),
        "victim_degree_after_20s": next(reversed(degrees_of(series)), None),
        "peers_listing_victim_after": len(listing),
        **tally.figures(target, [victim.id]),
    }


async def _distrusted(target: Target, peers: Sequence[PeerId]) -> dict[PeerId, int]:
    """Each peer's ``standing.distrusted`` counter."""
    counts: dict[PeerId, int] = {}

    async def one(peer: PeerId) -> None:
        with contextlib.suppress(OverlayError):
            reply = await fetch_stats(target.book[peer], STATS_TIMEOUT)
            counts[peer] = sum(c.value for c in reply.counters if c.name == "standing.distrusted")

    await each([partial(one, p) for p in peers])
    return counts


ATTACK: Final[dict[str, Callable[[Target, argparse.Namespace], Awaitable[dict[str, Any]]]]] = {
    "framing": framing,
    "leave": leave,
    "hijack": hijack,
    "eclipse": eclipse,
    "forged_hits": forged_hits,
    "index": index,
    "bootstrap": bootstrap,
    "blame": blame,
}


# ---------------------------------------------------------------------- running


REFUSAL_COUNTERS: Final = (
    "node.connections.impersonation",
    "node.connections.wrong_host",
    "node.connections.address_taken",
)
"""What a peer's runtime counts when it refuses a connection's claims (overlay.net.node)."""


async def refusal_counters(target: Target) -> dict[str, int]:
    """The swarm's refusals of claimed identities, summed over the peers (a fresh swarm
    starts at 0; the swarm's workers log only errors, so these counters are the
    peers' own record of what they refused)."""
    found = await survey(target.bootstrap)
    totals = dict.fromkeys(REFUSAL_COUNTERS, 0)
    for shot in found.snapshots:
        for name in REFUSAL_COUNTERS:
            totals[name] += shot.counters.get(name, 0)
    return totals


async def run_attack(args: argparse.Namespace, name: str, runtime: str) -> dict[str, Any]:
    """One attack on a fresh swarm of ``runtime`` (its flags: :mod:`benchmarks.runtimes`)."""
    flags = runtime_flags(runtime)
    if isinstance(flags, str):
        raise ValueError(flags)
    use_runtime(runtime)
    began = time.monotonic()
    async with running_swarm(args, flags, runtime == "secure") as target:
        _progress(f"{name}: swarm of {len(target.book)} settled; attacking")
        figures = await ATTACK[name](target, args)
        figures["peers_refused_connections"] = await refusal_counters(target)
    figures["seconds"] = round(time.monotonic() - began, 1)
    figures["ran"] = {"date": utc_now(), "commit": commit_of()}
    _progress(f"{name}: {json.dumps({k: v for k, v in figures.items() if 'series' not in k})}")
    return figures


def utc_now() -> str:
    return datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")


async def run_all(args: argparse.Namespace) -> dict[str, Any]:
    sections: dict[str, Any] = {}
    for runtime, flags in runnable(args.runtimes, sections):
        section: dict[str, Any] = {"swarm": as_typed(attacked_swarm(args, flags))}
        for name in args.only:
            section[name] = await run_attack(args, name, runtime)
        sections[runtime] = section
    return sections


def merged(earlier: Any, sections: dict[str, Any]) -> dict[str, Any]:
    """This run's sections over an earlier file's: an attack run again replaces its
    row, the rows not run again stay (each row says when and on which commit it ran)."""
    out: dict[str, Any] = {}
    earlier = earlier if isinstance(earlier, dict) else {}
    ran = {"date": earlier.get("date"), "commit": earlier.get("commit")}
    for runtime in RUNTIMES:
        old = earlier.get(runtime)
        if isinstance(old, dict):  # rows from before rows said when they ran
            old = {
                name: {**row, "ran": row.get("ran", ran)} if name in ATTACKS else row
                for name, row in old.items()
            }
        new = sections.get(runtime)
        if new is None or (old is not None and "not_run" in new):
            row = old  # a runtime not run (or not available) now keeps what it had
        elif old is None or "not_run" in old:
            row = new
        else:
            row = {**old, **new}
        if row is not None:
            out[runtime] = row
    return out


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", action="append", choices=ATTACKS, help="repeatable")
    parser.add_argument("--runtimes", type=runtimes_argument, default=list(RUNTIMES))
    parser.add_argument("--peers", type=int, default=60)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--settle", type=float, default=5.0, help="seconds after one component")
    parser.add_argument("--watch", type=float, default=40.0, help="framing: seconds watched")
    parser.add_argument("--hold", type=float, default=60.0, help="eclipse: seconds held")
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results")
    parser.add_argument("--name", default="attacks.json", help="result file under --out")
    args = parser.parse_args(argv)
    args.only = args.only or list(ATTACKS)
    if args.peers < 8:
        parser.error("--peers is at least 8")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    recording = Run.begin("benchmarks/attacks.py", argv)
    sections = trio.run(run_all, args)
    path = args.out / args.name
    figures = {"peers": args.peers, "seed": args.seed, **merged(read_result(path), sections)}
    record = recording.write(path, figures)
    print(json.dumps({k: record[k] for k in args.runtimes}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
