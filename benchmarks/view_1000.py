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
from collections.abc import Sequence
from functools import partial
from pathlib import Path
from typing import Any

import trio
from rich.console import Console

from overlay.crawl import StatsClient, crawl, fetch_stats, list_members, snapshot_from
from overlay.errors import OverlayError
from overlay.identity import Address
from overlay.messages import StatsReply
from overlay.node import NodeConfig, peer_node, peer_stats
from overlay.scenario import Scenario, build
from overlay.view import ViewModel, render, sim_frames
from overlay.wire import FrameDecoder, encode_frame

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
    # The crawler's own share of a crawl: decoding every reply into a snapshot.
    wire = [encode_frame(peer_stats(p, peer_node(p, NodeConfig()))) for p in sim.alive_peers()]
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


def start_direct(peers: int, port: int) -> tuple[list[subprocess.Popen[bytes]], list[Address]]:
    """A bootstrap process and two worker processes of ``overlay swarm`` (its own worker
    entry point), started by hand so that the peers' addresses come from the workers
    and the crawl does not depend on the bootstrap keeping up with 1,000 leases."""
    boot = subprocess.Popen(
        [sys.executable, "-m", "overlay.cli", "bootstrap", "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    processes = [boot]
    addresses: list[Address] = []
    for index, count in enumerate((peers // 2, peers - peers // 2)):
        command = [
            sys.executable, "-m", "overlay.swarm", "--bootstrap", f"127.0.0.1:{port}",
            "--count", str(count), "--seed", str(1_000_003 + index), "--spread", "2.5",
        ]  # fmt: skip
        processes.append(
            subprocess.Popen(
                command,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.DEVNULL,
                start_new_session=True,
            )
        )
    for worker in processes[1:]:
        assert worker.stdout is not None
        for line in worker.stdout:  # ends at {"ready": n} (or when the worker dies)
            record = json.loads(line)
            if "peer" in record:
                addresses.append(Address.parse(record["peer"]))
            if "ready" in record:
                break
    return processes, addresses


def stop_direct(processes: list[subprocess.Popen[bytes]]) -> None:
    for worker in processes[1:]:
        if worker.stdin is not None:
            worker.stdin.close()  # the workers' signal to leave
    for process in processes[1:]:
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
    processes[0].send_signal(signal.SIGINT)
    try:
        processes[0].wait(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(processes[0].pid, signal.SIGKILL)
        processes[0].wait()


def main() -> int:
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
    args = parser.parse_args()
    port = free_port()
    bootstrap = Address("127.0.0.1", port)
    seeds: list[Address] = []
    began = time.monotonic()
    if args.direct:
        processes, seeds = start_direct(args.peers, port)
        swarm = None
        started, listed = time.monotonic() - began, len(seeds)
    else:
        command = [
            sys.executable, "-m", "overlay.cli", "swarm", "--peers", str(args.peers),
            "--port", str(port), "--duration", "3600", "--json", "--interval", "3600",
        ]  # fmt: skip
        swarm = subprocess.Popen(
            command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
        )
    source = None if args.direct else bootstrap
    try:
        if swarm is not None:
            started, listed = trio.run(wait_for_peers, bootstrap, args.peers)
        load_before = os.getloadavg()
        reused = trio.run(
            partial(measure, source, args.refreshes, args.timeout, reuse=True, seeds=seeds)
        )
        fresh = trio.run(
            partial(measure, source, args.refreshes, args.timeout, reuse=False, seeds=seeds)
        )
        load_after = os.getloadavg()
        offline = render_only(args.peers)
    finally:
        if swarm is None:
            stop_direct(processes)
        else:
            swarm.send_signal(signal.SIGINT)  # the swarm leaves gracefully, reaps its workers
            try:
                swarm.wait(timeout=120)
            except subprocess.TimeoutExpired:
                os.killpg(swarm.pid, signal.SIGKILL)
                swarm.wait()
    record = {
        "benchmark": "view_1000",
        "mode": "direct (worker-reported addresses)" if args.direct else "overlay swarm + listing",
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
