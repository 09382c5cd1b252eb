"""How fast the live view refreshes at 1,000 peers: crawl time and render time.

Starts a swarm (a real bootstrap and N peers on loopback, in ``overlay swarm``'s
worker processes), waits until the bootstrap lists them all, then measures, by
``--modes``:

* ``batched``: ``overlay swarm --view``'s way: each worker is asked once per frame
  for the stats of all its peers (:mod:`overlay.net.swarm.stats`), the crawl asks only
  the rest over TCP, then the model is updated and a frame rendered into a 160x50
  console; seconds per snapshot, model update and render over ``--frames`` frames.
* ``rolling``: ``overlay view --bootstrap``'s way: a :class:`RollingCrawl` runs in
  the background and :func:`live_view` draws a frame every second from its latest
  data; frames per second achieved over ``--frames`` frames and the data's age.
* ``tcp``: one full crawl per refresh over TCP (``--refreshes`` of them), with kept
  and with fresh connections (``reused_connections``, ``fresh_connections``).

For ``batched`` and ``rolling`` this script is the swarm's parent, as ``overlay
swarm`` is: the bootstrap runs in this process, the peers in two worker processes
(``python -m overlay.net.swarm.worker``).  With ``--modes tcp`` alone it starts ``overlay swarm``
itself (or, with ``--direct``, a bootstrap and workers by hand).

Run: ``python benchmarks/view_1000.py [--peers 1000] [--modes batched,rolling,tcp]
[--frames 25] [--refreshes 10] [--output FILE] [--before FILE]``.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import itertools
import json
import random
import signal
import statistics
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import trio
from rich.console import Console

from benchmarks.harness import (
    Run,
    WorkerStarted,
    listening,
    overlay_command,
    read_result,
    started,
    worker_command,
)
from bootstrap.server import BootstrapServer, serve_bootstrap
from overlay.net.node import NodeConfig, one_host
from overlay.net.peer_node import peer_node, peer_stats
from overlay.net.secure import PLAINTEXT
from overlay.protocol.errors import OverlayError
from overlay.protocol.identity import Address
from overlay.protocol.messages import StatsReply
from overlay.protocol.wire import FrameDecoder, encode_frame
from overlay.sim.scenario import Scenario, build
from overlay.tools.cli_view import WorkerControl, live_view, rolling_source
from overlay.tools.crawl import (
    Crawl,
    RollingCrawl,
    StatsClient,
    crawl,
    fetch_stats,
    list_members,
    snapshot_from,
)
from overlay.tools.swarm import Worker, _stop_worker, start_worker, wait_ready
from overlay.tools.view import ViewModel, render, sim_frames

RESULTS = Path(__file__).parent / "results" / "view_1000.json"
START_TIMEOUT = 300.0
STALL = 20.0


async def wait_for_peers(bootstrap: Address, peers: int) -> tuple[float, int]:
    """Wait until the bootstrap lists every peer, or the count stops growing for
    :data:`STALL` seconds (a machine too busy to keep every lease fresh); polled once
    a second and bounded.  Returns the seconds waited and the peers listed."""
    began = time.monotonic()
    best, best_at = 0, began
    with trio.move_on_after(START_TIMEOUT):
        while True:
            try:
                listed = len(await list_members(bootstrap, 5.0))
            except OverlayError:
                listed = 0  # the bootstrap is not up yet
            now = time.monotonic()
            if listed > best:
                best, best_at = listed, now
            if best >= peers or (best and now - best_at > STALL):
                break
            await trio.sleep(1.0)
    return time.monotonic() - began, best


async def measure(
    bootstrap: Address | None,
    refreshes: int,
    timeout: float,
    *,
    reuse: bool,
    seeds: Sequence[Address] = (),
) -> dict[str, Any]:
    """``refreshes`` refreshes as the view does them; ``reuse``: keep connections open
    between crawls (what ``overlay view`` does) or open one per request."""
    client = StatsClient()
    fetch = client.fetch if reuse else fetch_stats
    model = ViewModel(title="benchmark")
    console = Console(record=True, width=160, height=50, file=io.StringIO())
    rows: list[dict[str, float]] = []
    sizes: list[int] = []
    for _ in range(refreshes):
        began = time.perf_counter()
        result = await crawl(bootstrap, seeds, timeout=timeout, fetch=fetch)
        crawled = time.perf_counter()
        frame = model.update_from_crawl(result, time.monotonic())
        modelled = time.perf_counter()
        console.print(render(frame, height=30, feed_rows=10, width=160))
        console.export_text()  # what a terminal would be sent, as text
        rendered = time.perf_counter()
        sizes.append(len(result.snapshots))
        rows.append(
            {
                "crawl": crawled - began,
                "model": modelled - crawled,
                "render": rendered - modelled,
                "total": rendered - began,
            }
        )
        await trio.sleep(max(0.0, 1.0 - (rendered - began)))  # refresh once a second at most
    await client.aclose()
    summary: dict[str, Any] = {"peers_answering": sizes, "reused_connections": reuse}
    for key in ("crawl", "model", "render", "total"):
        values = [row[key] for row in rows]
        summary[f"{key}_seconds"] = {
            "median": statistics.median(values),
            "max": max(values),
            "min": min(values),
        }
    summary["refreshes_per_second_possible"] = 1.0 / statistics.median(r["total"] for r in rows)
    summary["last_frame_figures"] = {
        "peers": frame.figures.peers,
        "components": frame.figures.components,
        "avg_path_length": frame.figures.avg_path_length,
        "messages_per_second": frame.figures.messages_per_second,
    }
    return summary


# ---------------------------------------------------------------------- batched and rolling


def spread(values: Sequence[float]) -> dict[str, float]:
    ordered = sorted(values)
    if not ordered:
        return {}
    return {
        "median": statistics.median(ordered),
        "p95": ordered[min(len(ordered) - 1, int(0.95 * len(ordered)))],
        "max": ordered[-1],
        "min": ordered[0],
    }


async def start_owned(
    nursery: trio.Nursery, peers: int, processes: int = 2
) -> tuple[BootstrapServer, list[Worker]]:
    """The bootstrap here and the peers in ``overlay swarm``'s worker processes, as
    ``overlay swarm`` starts them (same worker command, same bootstrap limits)."""
    server: BootstrapServer = await nursery.start(
        lambda task_status: serve_bootstrap(
            "127.0.0.1",
            0,
            node_config=one_host(
                NodeConfig(max_connections=max(4096, 2 * peers), idle_timeout=15.0)
            ),
            seed=1,
            task_status=task_status,
        )
    )
    workers: list[Worker] = []
    for index in range(processes):
        count = peers // processes + (1 if index < peers % processes else 0)
        command = worker_command(
            "--bootstrap", str(server.address), "--count", str(count),
            "--seed", str(1_000_003 + index), "--spread", str(min(5.0, count / 200)),
        )  # fmt: skip
        # overlay swarm's own start_worker, not benchmarks.harness.started: the batched
        # mode asks the workers for stats through it (WorkerControl), as the swarm does.
        workers.append(await start_worker(nursery, index, count, command))
    await wait_ready(workers, START_TIMEOUT)
    return server, workers


async def measure_batched(
    bootstrap: Address, workers: Sequence[Worker], frames: int, timeout: float
) -> dict[str, Any]:
    """``frames`` refreshes as ``overlay swarm --view`` does them (one batch per worker,
    TCP for the rest, model, render), one a second at most."""
    control = WorkerControl(workers, [], random.Random(1))
    client = StatsClient()
    model = ViewModel(title="benchmark")
    console = Console(record=True, width=160, height=50, file=io.StringIO())
    rows: list[dict[str, float]] = []
    batch_sizes: list[int] = []
    answering: list[int] = []
    fallback: dict[str, Address] | None = None
    snapshot_seconds: list[float] = []

    async def batch() -> list[StatsReply]:
        began = time.perf_counter()
        replies = await control.snapshots()
        snapshot_seconds.append(time.perf_counter() - began)
        batch_sizes.append(len(replies))
        return replies

    for _ in range(frames):
        began = time.perf_counter()
        result = await crawl(
            bootstrap, timeout=timeout, fetch=client.fetch, fallback=fallback, prefetch=batch
        )
        fallback = result.alive_addresses()
        crawled = time.perf_counter()
        frame = model.update_from_crawl(result, time.monotonic())
        modelled = time.perf_counter()
        console.print(render(frame, height=30, feed_rows=10, width=160))
        console.export_text()
        rendered = time.perf_counter()
        answering.append(result.count("alive"))
        rows.append(
            {
                "snapshot": snapshot_seconds[-1],
                "crawl": crawled - began,
                "model": modelled - crawled,
                "render": rendered - modelled,
                "total": rendered - began,
            }
        )
        await trio.sleep(max(0.0, 1.0 - (rendered - began)))
    await client.aclose()
    summary: dict[str, Any] = {
        "frames": frames,
        "peers_in_batches": batch_sizes,
        "peers_answering": answering,
        "note": "snapshot: one batched request per worker, all workers at once; crawl: "
        "snapshot + the bootstrap's listing + TCP for peers not in a batch",
    }
    for key in ("snapshot", "crawl", "model", "render", "total"):
        summary[f"{key}_seconds"] = spread([row[key] for row in rows])
    summary["refreshes_per_second_possible"] = 1.0 / statistics.median(r["total"] for r in rows)
    return summary


async def measure_rolling(bootstrap: Address, frames: int, interval: float) -> dict[str, Any]:
    """``overlay view --bootstrap``'s loop (:func:`live_view` over a :class:`RollingCrawl`)
    for ``frames`` frames; when each frame was asked for, and how old its data was."""
    client = StatsClient()
    rolling = RollingCrawl(bootstrap, period=interval, fetch=client.fetch)
    source = rolling_source(rolling)
    stop = trio.Event()
    calls: list[float] = []
    first_frame: list[float] = []
    ages: list[float] = []
    oldest: list[float] = []
    alive: list[int] = []
    unreachable: list[int] = []
    began = trio.current_time()

    async def recorded() -> Crawl:
        calls.append(trio.current_time())
        result = await source()
        if not first_frame:
            first_frame.append(trio.current_time() - began)
        elif len(calls) > 1:  # the first frame waits for the first round: not steady
            ages.extend(result.ages)
            oldest.append(result.data_age or 0.0)
        alive.append(result.count("alive"))
        unreachable.append(result.count("unreachable"))
        if len(calls) >= frames:
            stop.set()
        return result

    console = Console(width=160, height=50, file=io.StringIO(), force_terminal=False)
    try:
        async with trio.open_nursery() as nursery:
            await nursery.start(rolling.run)
            await live_view(recorded, console=console, interval=interval, stop=stop)
            nursery.cancel_scope.cancel()
    finally:
        await client.aclose()
    gaps = [b - a for a, b in itertools.pairwise(calls)]
    return {
        "frames": len(calls),
        "interval": interval,
        "stale_bound": rolling.stale,
        "request_timeout": rolling.timeout,
        "first_frame_seconds": first_frame[0] if first_frame else None,
        "frames_per_second": (len(calls) - 1) / (calls[-1] - calls[0]) if len(calls) > 1 else 0,
        "seconds_between_frames": spread(gaps),
        "data_age_seconds_all_peers": spread(ages),
        "data_age_seconds_oldest_per_frame": spread(oldest),
        "peers_alive_per_frame": alive,
        "peers_unreachable_per_frame": unreachable,
        "note": "data age: seconds since the request that brought a peer's shown snapshot "
        "was sent, over every peer shown in every frame after the first",
    }


async def owned_run(args: argparse.Namespace, modes: set[str]) -> dict[str, Any]:
    """Bring the swarm up (this process as its parent), measure every mode, tear it down."""
    record: dict[str, Any] = {}
    async with trio.open_nursery() as nursery:
        began = time.monotonic()
        server, workers = await start_owned(nursery, args.peers)
        try:
            _waited, listed = await wait_for_peers(server.address, args.peers)
            record["swarm_start_seconds"] = time.monotonic() - began
            record["peers_listed_at_start"] = listed
            record["peers_reported_by_workers"] = sum(len(w.peers) for w in workers)
            if "batched" in modes:
                record["batched"] = await measure_batched(
                    server.address, workers, args.frames, args.timeout
                )
            if "rolling" in modes:
                record["rolling"] = await measure_rolling(server.address, args.frames, 1.0)
            if "tcp" in modes:
                record["reused_connections"] = await measure(
                    server.address, args.refreshes, args.timeout, reuse=True
                )
                record["fresh_connections"] = await measure(
                    server.address, args.refreshes, args.timeout, reuse=False
                )
        finally:
            with trio.CancelScope(shield=True):
                stopping = time.monotonic()
                async with trio.open_nursery() as leaving:
                    for worker in workers:
                        leaving.start_soon(_stop_worker, worker)
                record["teardown_seconds"] = time.monotonic() - stopping
            nursery.cancel_scope.cancel()
    return record


def render_only(peers: int) -> dict[str, Any]:
    """Model and render times alone, from simulator snapshots of the same size: the part
    of a refresh that does not depend on how busy the peers' machine is."""
    sim = build(Scenario(peers=peers, seed=1, duration=30, super_peers=False))
    frames = sim_frames(sim, 20.0, 2.0)
    console = Console(record=True, width=160, height=50, file=io.StringIO())
    times: list[float] = []
    for frame in frames:
        began = time.perf_counter()
        console.print(render(frame, height=30, feed_rows=10, width=160))
        console.export_text()
        times.append(time.perf_counter() - began)
    # The crawler's own share of a crawl: decoding every reply into a snapshot.
    wire = [
        encode_frame(peer_stats(p, peer_node(p, NodeConfig(), security=PLAINTEXT)))
        for p in sim.alive_peers()
    ]
    began = time.perf_counter()
    for data in wire:
        for message in FrameDecoder().feed(data):
            assert isinstance(message, StatsReply)
            snapshot_from(message)
    decode = time.perf_counter() - began
    model = ViewModel()
    shots = sim.snapshots()
    began = time.perf_counter()
    for step in range(5):
        model.update(shots, float(step))
    return {
        "peers": len(shots),
        "render_seconds_median": statistics.median(times),
        "render_seconds_max": max(times),
        "model_update_seconds_mean": (time.perf_counter() - began) / 5,
        "decode_all_replies_seconds": decode,
        "reply_bytes_mean": sum(map(len, wire)) / len(wire),
    }


async def tcp_run(args: argparse.Namespace) -> dict[str, Any]:
    """``--modes tcp`` alone: bring up ``overlay swarm`` (or, with ``--direct``, a bootstrap
    and two of its worker processes by hand), measure the TCP crawls, stop it."""
    async with contextlib.AsyncExitStack() as processes:
        began = time.monotonic()
        seeds: list[Address] = []
        bootstrap: Address | None = None
        if args.direct:
            # By hand, so that the peers' addresses come from the workers and the crawl
            # does not depend on the bootstrap keeping up with 1,000 leases.
            boot = await processes.enter_async_context(
                started(
                    overlay_command("bootstrap", "--port", "0"),
                    listening("bootstrap"),
                    stop=signal.SIGINT,
                    grace=30,
                )
            )
            for index, count in enumerate((args.peers // 2, args.peers - args.peers // 2)):
                command = worker_command(
                    "--bootstrap", str(boot.ready.address), "--count", str(count),
                    "--seed", str(1_000_003 + index), "--spread", "2.5",
                )  # fmt: skip
                worker = await processes.enter_async_context(
                    started(command, WorkerStarted(), timeout=START_TIMEOUT, stop="eof", grace=60)
                )
                seeds += worker.ready
            listed = len(seeds)
        else:
            command = overlay_command(
                "swarm", "--peers", str(args.peers), "--port", "0",
                "--duration", "3600", "--json", "--interval", "3600",
                "--no-super-peers", "--items", "0",  # the flat overlay, as recorded
            )  # fmt: skip
            swarm = await processes.enter_async_context(
                started(
                    command,
                    listening("bootstrap"),
                    ready_on="stderr",
                    stop=signal.SIGINT,  # the swarm leaves gracefully and reaps its workers
                    grace=120,
                )
            )
            bootstrap = swarm.ready.address
            _waited, listed = await wait_for_peers(bootstrap, args.peers)
        swarm_start = time.monotonic() - began
        reused = await measure(bootstrap, args.refreshes, args.timeout, reuse=True, seeds=seeds)
        fresh = await measure(bootstrap, args.refreshes, args.timeout, reuse=False, seeds=seeds)
        offline = render_only(args.peers)
    return {
        "benchmark": "view_1000",
        "mode": "direct (worker-reported addresses)" if args.direct else "overlay swarm + listing",
        "peers": args.peers,
        "refreshes": args.refreshes,
        "per_peer_timeout": args.timeout,
        "swarm_start_seconds": swarm_start,
        "peers_listed_at_start": listed,
        "console": "160x50, recorded",
        "reused_connections": reused,
        "fresh_connections": fresh,
        "render_only_from_simulator": offline,
    }


def owned_figures(args: argparse.Namespace, modes: set[str]) -> dict[str, Any]:
    """``--modes`` with batched or rolling: this process is the swarm's parent."""
    record = trio.run(owned_run, args, modes)
    record.update(
        {
            "benchmark": "view_1000",
            "mode": "owned swarm: this process runs the bootstrap and the view, "
            "2 worker processes run the peers (as `overlay swarm` does)",
            "modes": sorted(modes),
            "peers": args.peers,
            "refreshes": args.refreshes,
            "frames": args.frames,
            "per_peer_timeout": args.timeout,
            "console": "160x50, recorded",
            "render_only_from_simulator": render_only(args.peers),
        }
    )
    return record


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--peers", type=int, default=1000)
    parser.add_argument("--refreshes", type=int, default=10)
    parser.add_argument("--timeout", type=float, default=1.0)
    parser.add_argument("--output", type=Path, default=RESULTS)
    parser.add_argument(
        "--direct",
        action="store_true",
        help="start the bootstrap and workers by hand and crawl the addresses the workers "
        "report (no listing), instead of `overlay swarm` and the bootstrap's listing",
    )
    parser.add_argument(
        "--modes",
        default="batched,rolling,tcp",
        help="comma-separated, of: batched, rolling, tcp (see the module's docstring)",
    )
    parser.add_argument(
        "--frames", type=int, default=25, help="frames for the batched and rolling modes"
    )
    parser.add_argument(
        "--before",
        type=Path,
        default=None,
        help="an earlier result file, kept in the new one under 'before'",
    )
    args = parser.parse_args(argv)
    modes = set(args.modes.split(","))
    if not modes or modes - {"batched", "rolling", "tcp"}:
        parser.error("--modes takes batched, rolling and tcp")
    if args.direct and modes & {"batched", "rolling"}:
        parser.error("--direct goes with --modes tcp alone")
    recording = Run.begin("benchmarks/view_1000.py", argv)
    before = read_result(args.before) if args.before is not None else None  # may be --output
    if modes & {"batched", "rolling"}:
        figures = owned_figures(args, modes)
    else:
        figures = trio.run(tcp_run, args)
    record = recording.write(args.output, figures, before=before)
    print(json.dumps(record, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
