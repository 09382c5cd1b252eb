"""Soak: a real ``overlay swarm`` under continuous churn and a steady query load.

``python -m benchmarks.soak [--peers 300] [--minutes 10] [--seed S]`` starts
``overlay swarm --control --super-peers`` and, for the given time:

* **churn**: every ``--churn-period`` seconds, crashes a random live peer (every
  ``--super-every``-th crash, a super peer) and adds a new one, through the swarm's
  control lines (``crash HOST:PORT`` / ``add``, carried out by the worker processes);
* **content**: ``--items`` items published at the start through ``overlay publish``'s
  client call, each to ``--replicas`` random peers, and one more item per churn round,
  so that items keep being held by live peers while holders die;
* **queries**: ``--query-rate`` searches a second for items that have a live holder,
  from random live peers, alternating flood and walk (:func:`overlay.tools.cli_search.search_via`);
* **samples** every ``--sample-period`` seconds: a crawl (peers alive, components,
  the super layer's index coverage), the window's search success, the RSS and open file
  descriptors of the swarm process and of each worker (``/proc/PID/status``,
  ``/proc/PID/fd``), each process's TCP sockets by kind and state
  (:func:`socket_breakdown`: listening, accepted, dialled to a live or a dead peer,
  half-closed; how a connection leak would show), and the load average;
* **lost items**, checked all the time, ``--lost-checks`` items a batch, in rotation:
  an item with a live holder (in the latest crawl, not crashed by us) is flooded for
  with the full TTL (10, the cap) from a random peer that does not hold it; a flood
  that fails with an error (its origin crashed, the client timed out) is retried from
  another peer and never counts as a miss.  A miss is re-checked ``--recheck-after``
  seconds later: the live holders are asked whether they still have the item, and a
  second full-TTL flood goes out from another peer.  Only an item that a holder still
  has and both floods missed is **lost**, with the reason the crawl suggests
  (:func:`why_lost`: the holder cut off from the origin, farther than the TTL, or a
  flood that should have found it and did not); every other ending of a re-check is
  counted by kind (found on retry, holders gone, unreachable, unverified).  The
  seconds to the first hit of the floods that succeed are recorded too: how close the
  overlay runs to a flood's deadline (2 TTL hop allowances, 2 s).

At the end, ``verdict``: whether memory stopped growing (:data:`MEMORY_RULE`: every
process's least-squares RSS slope over the second half of the samples at most
:data:`GROWTH_TOLERANCE_MB_PER_MIN`) and the lost items by reason
(:data:`LOST_RULE`).  Everything goes to ``benchmarks/results/soak.json``.

``--tracemalloc DIR`` has the workers trace their allocations and dump the top growth
to DIR every ``--tracemalloc-period`` seconds (:mod:`overlay.net.memtrace`; it slows them
down, and its dumps stall them for a moment: use it to find growth, not to measure).
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import json
import os
import random
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Final, Literal

import attrs
import networkx as nx
import trio

from benchmarks.harness import Child, Listening, Run, listening, overlay_command, started
from overlay.net import memtrace
from overlay.protocol.errors import OverlayError
from overlay.protocol.identity import Address
from overlay.sim.topology import super_layer_figures
from overlay.tools.cli_search import publish_via, search_via
from overlay.tools.crawl import Crawl, crawl

RESULTS: Final = Path(__file__).resolve().parent / "results"
FULL_TTL: Final = 10
SEARCH_TIMEOUT: Final = 20.0
CRAWL_TIMEOUT: Final = 5.0
START_TIMEOUT: Final = 300.0
END_TIMEOUT: Final = 120.0
QUERIES_IN_FLIGHT: Final = 8
RECHECK_ENDINGS: Final = ("found_on_retry", "holders_gone", "holders_unreachable", "unverified")
GROWTH_TOLERANCE_MB_PER_MIN: Final = 0.5
"""A process whose RSS rises by at most this over the second half of the run (least-squares
slope) has "stopped growing": the allocator's pages settle in steps, never to exactly
zero.  (0.5 MB a minute is 30 MB an hour: small against a worker's 100-200 MB, large
enough to see.)"""
MEMORY_RULE: Final = (
    "memory stopped growing: every process (the swarm's and each worker) has a "
    f"least-squares RSS slope of at most {GROWTH_TOLERANCE_MB_PER_MIN} MB/min over the "
    "second half of the samples"
)
LOST_RULE: Final = (
    "an item is lost when a holder is alive (in the latest crawl, not crashed by the soak), "
    "a full-TTL flood from a random non-holder misses it, and, a re-check period later, "
    "a holder still answers that it has the item and a second full-TTL flood from another "
    "peer misses it too; floods that fail with an error are retried, never counted as misses"
)


# ---------------------------------------------------------------------- records


@attrs.define
class Item:
    key: str
    holders: set[Address]
    published_at: float


@attrs.define
class Window:
    """Search outcomes since the last sample."""

    tried: dict[str, int] = attrs.field(factory=lambda: {"flood": 0, "walk": 0})
    found: dict[str, int] = attrs.field(factory=lambda: {"flood": 0, "walk": 0})
    errors: int = 0
    lost_checked: int = 0
    lost: list[str] = attrs.field(factory=list)
    """Items confirmed lost in this window (see :func:`confirm_lost`)."""
    first_checks: dict[str, int] = attrs.field(
        factory=lambda: {"found": 0, "missed": 0, "error": 0}
    )
    rechecks: dict[str, int] = attrs.field(factory=lambda: dict.fromkeys(RECHECK_ENDINGS, 0))
    """How the re-checks of first misses that were not losses ended."""
    hit_times: list[float] = attrs.field(factory=list)
    """Seconds to the first hit of the full-TTL floods that found their item: how close
    the overlay runs to the flood's deadline (2 TTL hop allowances)."""


@attrs.define
class Soak:
    args: argparse.Namespace
    rng: random.Random
    swarm: Child[Listening]
    bootstrap: Address
    started: float
    items: dict[str, Item] = attrs.field(factory=dict)
    crashed: set[Address] = attrs.field(factory=set)
    latest: Crawl | None = None
    window: Window = attrs.field(factory=Window)
    samples: list[dict[str, Any]] = attrs.field(factory=list)
    crashes: int = 0
    super_crashes: int = 0
    adds: int = 0
    lost: dict[str, dict[str, Any]] = attrs.field(factory=dict)
    checked: int = 0
    confirming: set[str] = attrs.field(factory=set)
    rotation: int = 0
    counter: itertools.count[int] = attrs.field(factory=itertools.count)

    def alive(self, role: str | None = None) -> list[Address]:
        result = self.latest
        if result is None:
            return []
        return sorted(
            m.address
            for m in result.members
            if m.status == "alive"
            and m.address is not None
            and m.address not in self.crashed
            and role in (None, m.role)
        )

    def live_items(self) -> list[Item]:
        alive = set(self.alive())
        return [item for item in self.items.values() if item.holders & alive]

    async def control(self, line: str) -> None:
        await self.swarm.send(line)

    def elapsed(self) -> float:
        return time.monotonic() - self.started


# ---------------------------------------------------------------------- processes


def rss_and_fds(pid: int) -> tuple[int | None, int | None]:
    rss = memtrace.rss_bytes(pid)
    if rss is None:
        return None, None
    try:
        fds: int | None = len(os.listdir(f"/proc/{pid}/fd"))
    except OSError:
        fds = None
    return rss, fds


TCP_STATES: Final = {
    "01": "established", "02": "syn_sent", "03": "syn_recv", "04": "fin_wait1",
    "05": "fin_wait2", "06": "time_wait", "07": "close", "08": "close_wait",
    "09": "last_ack", "0A": "listen", "0B": "closing",
}  # fmt: skip


def _tcp_table() -> dict[int, tuple[int, int, str]]:
    """Socket inode -> (local port, remote port, state), from /proc/net/tcp (IPv4: the
    swarm listens on 127.0.0.1 only)."""
    table: dict[int, tuple[int, int, str]] = {}
    try:
        with open("/proc/net/tcp", encoding="ascii") as text:
            next(text, None)
            for line in text:
                fields = line.split()
                local, remote, state, inode = fields[1], fields[2], fields[3], int(fields[9])
                table[inode] = (
                    int(local.rpartition(":")[2], 16),
                    int(remote.rpartition(":")[2], 16),
                    TCP_STATES.get(state, state),
                )
    except (OSError, ValueError, IndexError):
        pass
    return table


def socket_breakdown(pids: Sequence[int]) -> dict[int, dict[str, int]]:
    """Per process, its TCP sockets by kind and state: ``listen``; ``in.STATE`` (accepted:
    the local port listens); ``out_live.STATE`` / ``out_dead.STATE`` (dialled: the remote
    port listens in one of ``pids``, or no longer does, i.e. a crashed peer's);
    ``orphan.STATE`` (the other end of a loopback connection no longer exists);
    ``other`` (fds that are not TCP sockets).  For finding connection leaks."""
    table = _tcp_table()
    inodes: dict[int, list[int]] = {}
    for pid in pids:
        found: list[int] = []
        try:
            for fd in os.listdir(f"/proc/{pid}/fd"):
                try:
                    target = os.readlink(f"/proc/{pid}/fd/{fd}")
                except OSError:
                    continue
                if target.startswith("socket:["):
                    found.append(int(target[8:-1]))
        except OSError:
            pass
        inodes[pid] = found
    listening = {
        table[i][0]
        for ids in inodes.values()
        for i in ids
        if i in table and table[i][2] == "listen"
    }
    ends = {(lport, rport) for lport, rport, _ in table.values()}
    report: dict[int, dict[str, int]] = {}
    for pid, ids in inodes.items():
        counts: dict[str, int] = {}
        for inode in ids:
            entry = table.get(inode)
            if entry is None:
                kind = "other"
            else:
                lport, rport, state = entry
                if state == "listen":
                    kind = "listen"
                elif (rport, lport) not in ends:
                    kind = f"orphan.{state}"
                elif lport in listening:
                    kind = f"in.{state}"
                elif rport in listening:
                    kind = f"out_live.{state}"
                else:
                    kind = f"out_dead.{state}"
            counts[kind] = counts.get(kind, 0) + 1
        report[pid] = dict(sorted(counts.items()))
    return report


def children_of(pid: int) -> list[int]:
    """The swarm's worker processes (its children, from /proc)."""
    kids: list[int] = []
    try:
        for task in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{task}/children", encoding="ascii") as text:
                kids += [int(word) for word in text.read().split()]
    except (OSError, ValueError):
        pass
    return sorted(set(kids))


def running_swarm(
    args: argparse.Namespace,
) -> contextlib.AbstractAsyncContextManager[Child[Listening]]:
    """``overlay swarm --control`` for the soak (``ready.address``: its bootstrap); the end
    of its input ends it, and it prints its summary (the last line of ``stdout``)."""
    command = overlay_command(
        "swarm",
        "--peers", str(args.peers), "--port", "0", "--seed", str(args.seed),
        "--duration", str(args.minutes * 60 + END_TIMEOUT + START_TIMEOUT),
        "--interval", str(args.sample_period), "--control", "--json",
    )  # fmt: skip
    command.append("--super-peers" if args.super_peers else "--no-super-peers")
    command += ["--no-searches", "--items", "0"]  # the soak publishes and searches itself
    if args.processes is not None:
        command += ["--processes", str(args.processes)]
    env = {}
    if args.tracemalloc is not None:  # the workers dump their allocations there
        env[memtrace.ENV_DIR] = str(args.tracemalloc)
        env[memtrace.ENV_PERIOD] = str(args.tracemalloc_period)
    return started(
        command,
        listening("bootstrap"),
        ready_on="stderr",
        stop="eof",
        grace=END_TIMEOUT,
        env=env,
    )


# ---------------------------------------------------------------------- the load


async def refresh(soak: Soak) -> Crawl:
    """Crawl from the bootstrap, and from the peers found alive last time as well: the
    bootstrap shares its process (and two cores) with the swarm's observer, and a listing
    that times out must not make the whole swarm look dead.  Fresh connections each time
    (a kept one would be closed as idle between samples, ten seconds apart)."""
    known = soak.latest.alive_addresses() if soak.latest is not None else {}
    result = await crawl(
        soak.bootstrap,
        [a for a in known.values() if a not in soak.crashed],
        timeout=CRAWL_TIMEOUT,
    )
    soak.latest = result
    return result


async def publish(soak: Soak, replicas: int) -> None:
    alive = soak.alive()
    if not alive:
        return
    n = next(soak.counter)
    value = f"soak item {n} seed {soak.args.seed}\n".encode()
    item: Item | None = None
    for via in soak.rng.sample(alive, min(replicas, len(alive))):
        try:
            key = await publish_via(via, value, f"soak item{n}", timeout=SEARCH_TIMEOUT)
        except OverlayError as error:
            print(f"soak: publish via {via}: {error}", file=sys.stderr)
            continue
        if item is None:
            item = soak.items.setdefault(key, Item(key, set(), soak.elapsed()))
        item.holders.add(via)


async def churn(soak: Soak, until: float) -> None:
    args = soak.args
    began = trio.current_time()  # trio's clock, not time.monotonic(): they differ
    for round_ in range(1, 1_000_000):  # bounded; the end time too
        await trio.sleep_until(began + round_ * args.churn_period)
        if trio.current_time() >= until:
            return
        supers = soak.alive("super")
        victims = supers if supers and round_ % args.super_every == 0 else soak.alive()
        if victims:
            victim = soak.rng.choice(victims)
            await soak.control(f"crash {victim}")
            soak.crashed.add(victim)
            soak.crashes += 1
            soak.super_crashes += victim in supers
        await soak.control("add")
        soak.adds += 1
        await publish(soak, args.replicas)


async def query(soak: Soak, mode: str) -> None:
    items = soak.live_items()
    origins = soak.alive()
    if not items or not origins:
        return
    item = soak.rng.choice(items)
    try:
        result = await search_via(
            soak.rng.choice(origins), mode, key=item.key, timeout=SEARCH_TIMEOUT
        )
    except OverlayError:
        soak.window.errors += 1
        soak.window.tried[mode] += 1
        return
    # Counted when it ends, tried and found in the same window.
    soak.window.tried[mode] += 1
    soak.window.found[mode] += result.success


async def queries(soak: Soak, until: float) -> None:
    limiter = trio.CapacityLimiter(QUERIES_IN_FLIGHT)
    period = 1.0 / soak.args.query_rate

    async def one(mode: str) -> None:
        async with limiter:
            await query(soak, mode)

    async with trio.open_nursery() as nursery:
        for n in range(100_000_000):  # bounded; the end time too
            at = trio.current_time() + period
            if at >= until:
                return
            if limiter.borrowed_tokens < QUERIES_IN_FLIGHT:  # never queue up behind a stall
                nursery.start_soon(one, ("flood", "walk")[n % 2])
            await trio.sleep_until(at)


FloodOutcome = Literal["found", "missed", "error"]


async def flood_from(soak: Soak, item: Item, origin: Address) -> FloodOutcome:
    """One full-TTL flood for ``item`` from ``origin``.  An error (the origin crashed, or
    did not answer in time: the client's fault as much as the overlay's) is no evidence
    either way, and is kept apart from a miss."""
    try:
        result = await search_via(origin, "flood", key=item.key, ttl=FULL_TTL)
    except OverlayError:
        return "error"
    if result.error:
        return "error"
    if result.success and result.first_hit_time is not None:
        soak.window.hit_times.append(result.first_hit_time)
    return "found" if result.success else "missed"


async def flood_check(soak: Soak, item: Item) -> tuple[FloodOutcome, Address | None]:
    """A full-TTL flood from a random live peer that does not hold ``item``; after an
    error, once more from another one."""
    outcome: FloodOutcome = "error"
    origin: Address | None = None
    for _ in range(2):
        origins = [a for a in soak.alive() if a not in item.holders]
        if not origins:
            return "error", None
        origin = soak.rng.choice(origins)
        outcome = await flood_from(soak, item, origin)
        if outcome != "error":
            break
    return outcome, origin


def live_holders(soak: Soak, item: Item) -> list[Address]:
    return sorted(item.holders & set(soak.alive()))


async def holder_has(holder: Address, item: Item) -> bool | None:
    """Whether the holder itself still finds ``item`` (in its own store: a TTL-1 flood
    answers from it first); None when the holder does not answer."""
    try:
        result = await search_via(holder, "flood", key=item.key, ttl=1)
    except OverlayError:
        return None
    return None if result.error else bool(result.success)


def why_lost(soak: Soak, origin: Address | None, holders: Sequence[Address]) -> str:
    """What the latest crawl says about a confirmed miss: the holders cut off from the
    origin, or farther than the TTL, or a flood that should have found it and did not."""
    crawled = soak.latest
    if crawled is None or origin is None:
        return "flood_missed"
    ids = {m.address: m.id for m in crawled.members if m.address is not None}
    graph = crawled.graph()
    source = ids.get(origin)
    if source is None or source not in graph:
        return "flood_missed"
    distances = nx.single_source_shortest_path_length(graph, source)
    reachable = [distances[ids[h]] for h in holders if ids.get(h) in distances]
    if not reachable:
        isolated = all(ids.get(h) not in graph or graph.degree(ids[h]) == 0 for h in holders)
        return "holder_isolated" if isolated else "partitioned"
    if min(reachable) > FULL_TTL:
        return "beyond_ttl"
    return "flood_missed"


async def confirm_lost(soak: Soak, item: Item, first_origin: Address | None) -> None:
    """A flood missed ``item``: wait a period (the crawl and the overlay catch up with
    the churn of the moment), then ask its live holders whether they still have it and
    flood once more from another peer.  Only a second miss, with a holder that answers
    and has the item, counts as lost; every other ending is recorded as what it was."""
    missed_at = soak.elapsed()
    await trio.sleep(soak.args.recheck_after)
    holders = live_holders(soak, item)
    if not holders:
        soak.window.rechecks["holders_gone"] += 1
        return
    answers = [await holder_has(h, item) for h in holders]
    having = [h for h, has in zip(holders, answers, strict=True) if has]
    if not having:
        # Every live holder either did not answer (crashed between crawls) or no longer
        # has the item; the latter is a real loss (a store that dropped an item).
        if any(has is False for has in answers):
            record_lost(
                soak,
                item,
                "holder_lacks_item",
                missed_at=missed_at,
                origin=first_origin,
                holders=holders,
            )
        else:
            soak.window.rechecks["holders_unreachable"] += 1
        return
    outcome, origin = await flood_check(soak, item)
    if outcome == "found":
        soak.window.rechecks["found_on_retry"] += 1
    elif outcome == "error":
        soak.window.rechecks["unverified"] += 1
    else:
        reason = why_lost(soak, origin, having)
        record_lost(soak, item, reason, missed_at=missed_at, origin=origin, holders=having)


def record_lost(
    soak: Soak,
    item: Item,
    reason: str,
    *,
    missed_at: float,
    origin: Address | None,
    holders: Sequence[Address],
) -> None:
    soak.window.lost.append(item.key)
    soak.lost.setdefault(
        item.key,
        {
            "reason": reason,
            "first_miss_at": round(missed_at, 1),
            "confirmed_at": round(soak.elapsed(), 1),
            "published_at": round(item.published_at, 1),
            "origin": str(origin) if origin is not None else None,
            "live_holders": [str(h) for h in holders],
            "load_average_1min": round(os.getloadavg()[0], 2),
        },
    )


async def check_lost(soak: Soak, nursery: trio.Nursery) -> int:
    """Full-TTL floods for up to ``--lost-checks`` items with a live holder (in rotation);
    a miss starts :func:`confirm_lost` in ``nursery``.  Returns how many were checked."""
    items = sorted(soak.live_items(), key=lambda item: item.key)
    if not items:
        return 0
    count: int = min(len(items), soak.args.lost_checks)
    start = soak.rotation % len(items)
    chosen = [items[(start + i) % len(items)] for i in range(count)]
    soak.rotation += count
    limiter = trio.CapacityLimiter(4)

    async def check(item: Item) -> None:
        async with limiter:
            outcome, origin = await flood_check(soak, item)
        soak.window.first_checks[outcome] += 1
        if outcome == "missed" and item.key not in soak.confirming:
            soak.confirming.add(item.key)
            nursery.start_soon(confirming, item, origin)

    async def confirming(item: Item, origin: Address | None) -> None:
        try:
            await confirm_lost(soak, item, origin)
        finally:
            soak.confirming.discard(item.key)

    async with trio.open_nursery() as batch:
        for item in chosen:
            batch.start_soon(check, item)
    return count


async def lost_checker(soak: Soak, until: float) -> None:
    """Batches of lost-item checks, back to back (a short pause between), until the end;
    the confirmations of misses run alongside."""
    async with trio.open_nursery() as confirmations:
        for _ in range(1_000_000):  # bounded; the end time too
            if trio.current_time() >= until:
                break
            checked = await check_lost(soak, confirmations)
            soak.checked += checked
            soak.window.lost_checked += checked
            await trio.sleep(1.0 if checked else soak.args.sample_period / 2)
        confirmations.cancel_scope.deadline = until + soak.args.recheck_after + 2 * SEARCH_TIMEOUT


async def sample(soak: Soak) -> dict[str, Any]:
    result = await refresh(soak)
    shots = list(result.snapshots)
    graph = result.graph()
    alive_ids = {s.id for s in shots}
    figures = super_layer_figures(shots, alive_ids) if shots else {}
    window, soak.window = soak.window, Window()
    processes = {"swarm": soak.swarm.process.pid}
    for index, pid in enumerate(children_of(soak.swarm.process.pid)):
        processes[f"worker{index}"] = pid
    memory: dict[str, dict[str, Any]] = {}
    sockets = socket_breakdown(list(processes.values()))
    for name, pid in processes.items():
        rss, fds = rss_and_fds(pid)
        memory[name] = {"pid": pid, "rss_bytes": rss, "fds": fds, "sockets": sockets.get(pid)}
    checked, lost = window.lost_checked, window.lost
    times = sorted(window.hit_times)
    tried = sum(window.tried.values())
    record: dict[str, Any] = {
        "t": round(soak.elapsed(), 1),
        "alive": len(shots),
        "joined": sum(1 for s in shots if s.joined),
        "unreachable": result.count("unreachable"),
        "components": nx.number_connected_components(graph) if graph.number_of_nodes() else 0,
        "supers": sum(1 for s in shots if s.role == "super"),
        "index_coverage": figures.get("index_coverage"),
        "unattached_weak": figures.get("unattached_weak"),
        "crashes": soak.crashes,
        "super_crashes": soak.super_crashes,
        "adds": soak.adds,
        "items": len(soak.items),
        "items_with_live_holder": len(soak.live_items()),
        "searches": dict(window.tried),
        "found": dict(window.found),
        "search_errors": window.errors,
        "search_success": (sum(window.found.values()) / tried) if tried else None,
        "lost_checked": checked,
        "lost": lost,
        "lost_first_checks": dict(window.first_checks),
        "lost_rechecks": dict(window.rechecks),
        "full_flood_hit_seconds": {
            "median": round(times[len(times) // 2], 3),
            "max": round(times[-1], 3),
        }
        if times
        else None,
        "load_average": os.getloadavg(),
        "processes": memory,
        "crawl_seconds": round(result.elapsed, 2),
    }
    soak.samples.append(record)
    print(
        f"soak {record['t']:7.1f} s  alive {record['alive']}  comp {record['components']}  "
        f"supers {record['supers']}  coverage {record['index_coverage']}  "
        f"success {record['search_success']}  lost {len(lost)}/{checked}  "
        f"rss {sum((m['rss_bytes'] or 0) for m in memory.values()) / 2**20:.0f} MB",
        file=sys.stderr,
        flush=True,
    )
    return record


# ---------------------------------------------------------------------- analysis


def slope(points: Sequence[tuple[float, float]]) -> float | None:
    """Least-squares slope of (t seconds, bytes), in MB per minute."""
    if len(points) < 2:
        return None
    n = len(points)
    mean_t = sum(t for t, _ in points) / n
    mean_v = sum(v for _, v in points) / n
    var = sum((t - mean_t) ** 2 for t, _ in points)
    if var == 0:
        return None
    cov = sum((t - mean_t) * (v - mean_v) for t, v in points)
    return cov / var * 60 / 2**20


def lost_by_reason(lost: dict[str, dict[str, Any]]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for record in lost.values():
        counts[record["reason"]] = counts.get(record["reason"], 0) + 1
    return dict(sorted(counts.items()))


def growth(samples: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """RSS slopes over the first and second half, per process and in total; fd ranges."""
    names = sorted({name for s in samples for name in s["processes"]})
    series: dict[str, list[tuple[float, float]]] = {name: [] for name in [*names, "total"]}
    fds: dict[str, list[int]] = {name: [] for name in names}
    for s in samples:
        total = 0
        for name, proc in s["processes"].items():
            if proc["rss_bytes"] is not None:
                series[name].append((s["t"], proc["rss_bytes"]))
                total += proc["rss_bytes"]
            if proc["fds"] is not None:
                fds[name].append(proc["fds"])
        series["total"].append((s["t"], total))
    report: dict[str, Any] = {}
    for name, points in series.items():
        half = len(points) // 2
        first, second = slope(points[: half + 1]), slope(points[half:])
        stopped = second is not None and second <= GROWTH_TOLERANCE_MB_PER_MIN
        report[name] = {
            "rss_mb_first": round(points[0][1] / 2**20, 1) if points else None,
            "rss_mb_last": round(points[-1][1] / 2**20, 1) if points else None,
            "slope_mb_per_min_first_half": round(first, 3) if first is not None else None,
            "slope_mb_per_min_second_half": round(second, 3) if second is not None else None,
            "stopped_growing": stopped,
        }
        if fds.get(name):
            counts = fds[name]
            times = [s["t"] for s in samples if s["processes"].get(name, {}).get("fds") is not None]
            tail = list(zip(times, counts, strict=True))[len(counts) // 2 :]
            fd_slope = slope(tail)  # in "MB" of fds: scale back to fds per minute
            report[name]["fds_per_min_second_half"] = (
                round(fd_slope * 2**20, 2) if fd_slope is not None else None
            )
            half_fd = counts[: max(1, len(counts) // 2)]
            report[name]["fds_first_half_max"] = max(half_fd)
            report[name]["fds_last"] = fds[name][-1]
            report[name]["fds_max"] = max(fds[name])
    return report


# ---------------------------------------------------------------------- main


async def soak_main(args: argparse.Namespace) -> dict[str, Any]:
    rng = random.Random(args.seed)
    async with running_swarm(args) as swarm:
        soak = Soak(args, rng, swarm, swarm.ready.address, time.monotonic())
        with trio.fail_after(START_TIMEOUT):
            for _ in range(10_000):  # bounded; the deadline too
                result = await refresh(soak)
                joined = sum(1 for s in result.snapshots if s.joined)
                if joined >= args.peers and nx.is_connected(result.graph()):
                    break
                await trio.sleep(2.0)
        settled = soak.elapsed()
        print(f"soak: {args.peers} peers joined in {settled:.1f} s", file=sys.stderr)
        for _ in range(args.items):
            await publish(soak, args.replicas)
        soak.started = time.monotonic()  # the clock of the samples starts here
        until = trio.current_time() + args.minutes * 60
        async with trio.open_nursery() as nursery:
            nursery.start_soon(churn, soak, until)
            nursery.start_soon(queries, soak, until)
            nursery.start_soon(lost_checker, soak, until)
            began = trio.current_time()
            for n in range(1, 1_000_000):  # bounded; the end time too
                at = began + n * args.sample_period  # a fixed grid
                if at > until:
                    break
                if at < trio.current_time():
                    continue  # the last sample overran this tick
                await trio.sleep_until(at)
                await sample(soak)
            nursery.cancel_scope.cancel()
    # Stopped (the end of its input ends it); its summary is its last line.
    try:
        summary = json.loads(swarm.stdout.splitlines()[-1]) if swarm.stdout.strip() else None
    except ValueError:
        summary = None
    success = [s["search_success"] for s in soak.samples if s["search_success"] is not None]
    coverage = [s["index_coverage"] for s in soak.samples if s["index_coverage"] is not None]
    memory = growth(soak.samples)
    return {
        "peers": args.peers,
        "minutes": args.minutes,
        "seed": args.seed,
        "super_peers": args.super_peers,
        "churn_period_seconds": args.churn_period,
        "query_rate_per_second": args.query_rate,
        "settle_seconds": round(settled, 1),
        "crashes": soak.crashes,
        "super_crashes": soak.super_crashes,
        "adds": soak.adds,
        "items": len(soak.items),
        "lost_checks": soak.checked,
        "lost_items": len(soak.lost),
        "lost": soak.lost,
        "search_success_mean": sum(success) / len(success) if success else None,
        "search_success_min": min(success) if success else None,
        "index_coverage_mean": sum(coverage) / len(coverage) if coverage else None,
        "index_coverage_min": min(coverage) if coverage else None,
        "memory": memory,
        "memory_stopped_growing": all(
            m["stopped_growing"] for name, m in memory.items() if name != "total"
        ),
        "verdict": {
            "memory_stopped_growing": all(
                m["stopped_growing"] for name, m in memory.items() if name != "total"
            ),
            "memory_rule": MEMORY_RULE,
            "worst_second_half_slope_mb_per_min": max(
                (
                    m["slope_mb_per_min_second_half"]
                    for name, m in memory.items()
                    if name != "total" and m["slope_mb_per_min_second_half"] is not None
                ),
                default=None,
            ),
            "lost_items": len(soak.lost),
            "no_lost_items": not soak.lost,
            "lost_rule": LOST_RULE,
            "lost_by_reason": lost_by_reason(soak.lost),
        },
        "swarm_exit": swarm.process.returncode,
        "swarm_peers_left_gracefully": (summary or {}).get("peers_left_gracefully"),
        "samples": soak.samples,
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.soak", description=__doc__)
    parser.add_argument("--peers", type=int, default=300)
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--processes", type=int, default=None, help="swarm worker processes")
    parser.add_argument("--churn-period", type=float, default=5.0, help="seconds per crash+add")
    parser.add_argument("--super-every", type=int, default=4, help="every Nth crash: a super")
    parser.add_argument("--query-rate", type=float, default=2.0, help="searches per second")
    parser.add_argument("--items", type=int, default=40, help="items published at the start")
    parser.add_argument("--replicas", type=int, default=2, help="holders per published item")
    parser.add_argument(
        "--lost-checks", type=int, default=20, help="items per batch of lost-item checks"
    )
    parser.add_argument("--sample-period", type=float, default=10.0)
    parser.add_argument(
        "--recheck-after", type=float, default=10.0, help="seconds from a miss to its re-check"
    )
    parser.add_argument(
        "--no-super-peers", dest="super_peers", action="store_false", help="flat overlay"
    )
    parser.add_argument(
        "--tracemalloc", type=Path, default=None, metavar="DIR",
        help="have the workers trace allocations and dump them to DIR (overlay.net.memtrace)",
    )  # fmt: skip
    parser.add_argument("--tracemalloc-period", type=float, default=30.0, help="seconds")
    parser.add_argument("--out", type=Path, default=RESULTS / "soak.json")
    args = parser.parse_args(argv)
    if args.peers < 2 or args.minutes <= 0 or args.churn_period <= 0 or args.query_rate <= 0:
        parser.error("--peers >= 2, and --minutes, --churn-period, --query-rate > 0")
    recording = Run.begin("-m benchmarks.soak", argv)
    report = recording.write(args.out, trio.run(soak_main, args))
    keys = ("lost_items", "lost_checks", "search_success_mean", "index_coverage_mean")
    print(json.dumps({k: report[k] for k in keys} | {"memory": report["memory"]["total"]}))
    print(f"wrote {args.out}", file=sys.stderr)
    return 0 if report["lost_items"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
