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
  from random live peers, alternating flood and walk (:func:`overlay.cli_search.search_via`);
* **samples** every ``--sample-period`` seconds: a crawl (peers alive, components,
  the super layer's index coverage), the window's search success, the RSS and open file
  descriptors of the swarm process and of each worker (``/proc/PID/status``,
  ``/proc/PID/fd``), and **lost items**: an item whose holder is alive (answered the
  crawl, not crashed by us) that a full-TTL flood (TTL 10, the cap) from a random peer
  and a second one from another peer both fail to find.  The checks run all the time,
  ``--lost-checks`` items a batch, in rotation, so every item is checked again and again;
  a sample counts those of its window.

At the end: whether memory stopped growing (least-squares RSS slope, in MB per minute,
over the first and the second half of the run, per process and in total) and the count
of lost items.  Everything goes to ``benchmarks/results/soak.json``.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Final

import attrs
import networkx as nx
import trio

from overlay.cli_search import publish_via, search_via
from overlay.crawl import Crawl, crawl
from overlay.errors import OverlayError
from overlay.identity import Address
from overlay.topology import super_layer_figures

RESULTS: Final = Path(__file__).resolve().parent / "results"
REPO: Final = Path(__file__).resolve().parent.parent
FULL_TTL: Final = 10
SEARCH_TIMEOUT: Final = 20.0
CRAWL_TIMEOUT: Final = 5.0
START_TIMEOUT: Final = 300.0
END_TIMEOUT: Final = 120.0
QUERIES_IN_FLIGHT: Final = 8
GROWTH_TOLERANCE_MB_PER_MIN: Final = 0.5
"""A second-half RSS slope at most this (or at most a quarter of the first half's) counts
as "stopped growing": the allocator's pages settle in steps, never to exactly zero."""


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


@attrs.define
class Soak:
    args: argparse.Namespace
    rng: random.Random
    swarm: trio.Process
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
        stdin = self.swarm.stdin
        assert stdin is not None
        await stdin.send_all(line.encode() + b"\n")

    def elapsed(self) -> float:
        return time.monotonic() - self.started


# ---------------------------------------------------------------------- processes


def rss_and_fds(pid: int) -> tuple[int | None, int | None]:
    rss: int | None = None
    try:
        with open(f"/proc/{pid}/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    rss = int(line.split()[1]) * 1024
    except (OSError, ValueError):
        return None, None
    try:
        fds: int | None = len(os.listdir(f"/proc/{pid}/fd"))
    except OSError:
        fds = None
    return rss, fds


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


async def start_swarm(args: argparse.Namespace, log: Path) -> tuple[trio.Process, Address]:
    command = [
        sys.executable, "-m", "overlay.cli", "swarm",
        "--peers", str(args.peers), "--port", "0", "--seed", str(args.seed),
        "--duration", str(args.minutes * 60 + END_TIMEOUT + START_TIMEOUT),
        "--interval", str(args.sample_period), "--control", "--json",
    ]  # fmt: skip
    if args.super_peers:
        command.append("--super-peers")
    if args.processes is not None:
        command += ["--processes", str(args.processes)]
    with log.open("wb") as errors:
        process = await trio.lowlevel.open_process(
            command,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=errors,
            cwd=str(REPO),
            env=dict(os.environ, PYTHONUNBUFFERED="1"),
        )
    with trio.fail_after(60):
        for _ in range(600):  # bounded; the deadline too
            for line in log.read_text(errors="replace").splitlines():
                if "bootstrap listening on" in line:
                    return process, Address.parse(line.split()[-1])
            await trio.sleep(0.1)
    raise RuntimeError("the swarm never said where its bootstrap listens")


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


async def flood_finds(soak: Soak, item: Item, origin: Address) -> bool:
    try:
        result = await search_via(origin, "flood", key=item.key, ttl=FULL_TTL)
    except OverlayError:
        return False
    return bool(result.success)


async def check_lost(soak: Soak) -> tuple[int, list[str]]:
    """Full-TTL floods for up to ``--lost-checks`` items with a live holder (in rotation);
    an item two floods from two peers both miss is lost.  Returns (checked, lost keys)."""
    items = sorted(soak.live_items(), key=lambda item: item.key)
    origins = soak.alive()
    if not items or len(origins) < 2:
        return 0, []
    count = min(len(items), soak.args.lost_checks)
    start = soak.rotation % len(items)
    chosen = [items[(start + i) % len(items)] for i in range(count)]
    soak.rotation += count
    lost: list[str] = []

    async def check(item: Item) -> None:
        first, second = soak.rng.sample(origins, 2)
        if await flood_finds(soak, item, first) or await flood_finds(soak, item, second):
            return
        lost.append(item.key)

    limiter = trio.CapacityLimiter(4)

    async def bounded(item: Item) -> None:
        async with limiter:
            await check(item)

    async with trio.open_nursery() as nursery:
        for item in chosen:
            nursery.start_soon(bounded, item)
    return count, lost


async def lost_checker(soak: Soak, until: float) -> None:
    """Batches of lost-item checks, back to back (a short pause between), until the end."""
    for _ in range(1_000_000):  # bounded; the end time too
        if trio.current_time() >= until:
            return
        checked, lost = await check_lost(soak)
        soak.checked += checked
        soak.window.lost_checked += checked
        soak.window.lost += lost
        alive = set(soak.alive())
        for key in lost:
            soak.lost.setdefault(
                key,
                {
                    "at": round(soak.elapsed(), 1),
                    "holders": sorted(str(a) for a in soak.items[key].holders & alive),
                },
            )
        await trio.sleep(1.0 if checked else soak.args.sample_period / 2)


async def sample(soak: Soak) -> dict[str, Any]:
    result = await refresh(soak)
    shots = list(result.snapshots)
    graph = result.graph()
    alive_ids = {s.id for s in shots}
    figures = super_layer_figures(shots, alive_ids) if shots else {}
    window, soak.window = soak.window, Window()
    processes = {"swarm": soak.swarm.pid}
    for index, pid in enumerate(children_of(soak.swarm.pid)):
        processes[f"worker{index}"] = pid
    memory: dict[str, dict[str, int | None]] = {}
    for name, pid in processes.items():
        rss, fds = rss_and_fds(pid)
        memory[name] = {"pid": pid, "rss_bytes": rss, "fds": fds}
    checked, lost = window.lost_checked, window.lost
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
        stopped = second is not None and (
            second <= GROWTH_TOLERANCE_MB_PER_MIN
            or (first is not None and first > 0 and second <= 0.25 * first)
        )
        report[name] = {
            "rss_mb_first": round(points[0][1] / 2**20, 1) if points else None,
            "rss_mb_last": round(points[-1][1] / 2**20, 1) if points else None,
            "slope_mb_per_min_first_half": round(first, 3) if first is not None else None,
            "slope_mb_per_min_second_half": round(second, 3) if second is not None else None,
            "stopped_growing": stopped,
        }
        if fds.get(name):
            half_fd = fds[name][: max(1, len(fds[name]) // 2)]
            report[name]["fds_first_half_max"] = max(half_fd)
            report[name]["fds_last"] = fds[name][-1]
            report[name]["fds_max"] = max(fds[name])
    return report


# ---------------------------------------------------------------------- main


async def soak_main(args: argparse.Namespace) -> dict[str, Any]:
    rng = random.Random(args.seed)
    with tempfile.TemporaryDirectory() as scratch:
        log = Path(scratch) / "swarm.stderr"
        process, bootstrap = await start_swarm(args, log)
        soak = Soak(args, rng, process, bootstrap, time.monotonic())
        summary: dict[str, Any] | None = None
        try:
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
        finally:
            with trio.CancelScope(shield=True):
                if process.stdin is not None:
                    await process.stdin.aclose()  # the end of input ends the swarm
                out = b""
                with trio.move_on_after(END_TIMEOUT):
                    assert process.stdout is not None
                    for _ in range(100_000):
                        data = await process.stdout.receive_some(1 << 20)
                        if not data:
                            break
                        out += data
                    await process.wait()
                if process.returncode is None:
                    process.kill()
                    await process.wait()
                try:
                    summary = json.loads(out.splitlines()[-1]) if out.strip() else None
                except ValueError:
                    summary = None
    success = [s["search_success"] for s in soak.samples if s["search_success"] is not None]
    coverage = [s["index_coverage"] for s in soak.samples if s["index_coverage"] is not None]
    memory = growth(soak.samples)
    return {
        "command": "python -m benchmarks.soak " + " ".join(sys.argv[1:]),
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
        "memory_stopped_growing": memory["total"]["stopped_growing"],
        "swarm_exit": process.returncode,
        "swarm_peers_left_gracefully": (summary or {}).get("peers_left_gracefully"),
        "load_average": os.getloadavg(),
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
        "--no-super-peers", dest="super_peers", action="store_false", help="flat overlay"
    )
    parser.add_argument("--out", type=Path, default=RESULTS / "soak.json")
    args = parser.parse_args(argv)
    if args.peers < 2 or args.minutes <= 0 or args.churn_period <= 0 or args.query_rate <= 0:
        parser.error("--peers >= 2, and --minutes, --churn-period, --query-rate > 0")
    report = trio.run(soak_main, args)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=1, sort_keys=True) + "\n")
    keys = ("lost_items", "lost_checks", "search_success_mean", "index_coverage_mean")
    print(json.dumps({k: report[k] for k in keys} | {"memory": report["memory"]["total"]}))
    print(f"wrote {args.out}", file=sys.stderr)
    return 0 if report["lost_items"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
