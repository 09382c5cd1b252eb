"""How fast the live view refreshes at 1,000 peers: crawl time and render time.

Starts ``overlay swarm --peers N`` (a real bootstrap and N peers on loopback, in
worker processes), waits until the bootstrap lists them all, then performs
``--refreshes`` refreshes exactly as ``overlay view`` does (crawl, update the
model, render a full frame into a 160x50 console) and records the times in
``benchmarks/results/view_1000.json``.

Run: ``python benchmarks/view_1000.py [--peers 1000] [--refreshes 10]``.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import platform
import signal
import socket
import statistics
import subprocess
import sys
import time
from functools import partial
from pathlib import Path
from typing import Any

import trio
from rich.console import Console

from overlay.crawl import StatsClient, crawl, fetch_stats, list_members
from overlay.errors import OverlayError
from overlay.identity import Address
from overlay.scenario import Scenario, build
from overlay.view import ViewModel, render, sim_frames

RESULTS = Path(__file__).parent / "results" / "view_1000.json"
START_TIMEOUT = 300.0
STALL = 20.0


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


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
    bootstrap: Address, refreshes: int, timeout: float, *, reuse: bool
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
        result = await crawl(bootstrap, timeout=timeout, fetch=fetch)
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


def render_only(peers: int) -> dict[str, Any]:
    """Model and render times alone, from simulator snapshots of the same size: the part
    of a refresh that does not depend on how busy the peers' machine is."""
    sim = build(Scenario(peers=peers, seed=1, duration=30))
    frames = sim_frames(sim, 20.0, 2.0)
    console = Console(record=True, width=160, height=50, file=io.StringIO())
    times: list[float] = []
    for frame in frames:
        began = time.perf_counter()
        console.print(render(frame, height=30, feed_rows=10, width=160))
        console.export_text()
        times.append(time.perf_counter() - began)
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
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--peers", type=int, default=1000)
    parser.add_argument("--refreshes", type=int, default=10)
    parser.add_argument("--timeout", type=float, default=1.0)
    parser.add_argument("--output", type=Path, default=RESULTS)
    args = parser.parse_args()
    port = free_port()
    bootstrap = Address("127.0.0.1", port)
    command = [
        sys.executable, "-m", "overlay.cli", "swarm", "--peers", str(args.peers),
        "--port", str(port), "--duration", "3600", "--json", "--interval", "3600",
    ]  # fmt: skip
    swarm = subprocess.Popen(
        command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
    )
    try:
        started, listed = trio.run(wait_for_peers, bootstrap, args.peers)
        load_before = os.getloadavg()
        reused = trio.run(partial(measure, bootstrap, args.refreshes, args.timeout, reuse=True))
        fresh = trio.run(partial(measure, bootstrap, args.refreshes, args.timeout, reuse=False))
        load_after = os.getloadavg()
        offline = render_only(args.peers)
    finally:
        swarm.send_signal(signal.SIGINT)  # the swarm leaves gracefully and reaps its workers
        try:
            swarm.wait(timeout=120)
        except subprocess.TimeoutExpired:
            os.killpg(swarm.pid, signal.SIGKILL)
            swarm.wait()
    record = {
        "benchmark": "view_1000",
        "peers": args.peers,
        "refreshes": args.refreshes,
        "per_peer_timeout": args.timeout,
        "swarm_start_seconds": started,
        "peers_listed_at_start": listed,
        "console": "160x50, recorded",
        "load_average_before_after": [load_before, load_after],
        "reused_connections": reused,
        "fresh_connections": fresh,
        "render_only_from_simulator": offline,
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "platform": platform.platform(),
        },
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(record, indent=2, sort_keys=True) + "\n")
    print(json.dumps(record, indent=2, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
