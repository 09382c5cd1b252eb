"""Search on a real swarm under injected message loss, and a partition healed.

    python benchmarks/faults.py [--peers 50] [--losses 0,0.2] [--searches 40]
        [--concurrency 8] [--no-partition] [--json] [--out benchmarks/results]

For each loss rate the script runs ``overlay swarm --loss P`` (every peer drops each
message it sends with probability P, see :mod:`overlay.faults`) with seeded items,
waits until every peer has joined one component, then runs ``--searches`` flood
searches (TTL 7) and as many walks (16 walkers) for seeded keys, from random peers,
through the client protocol (the client's own link is not faulted: only the overlay's
messages are).  The figure is the success rate of each mode against loss 0.

With the partition phase (loss 0 only), the swarm runs with ``--partition-file``; the
script then splits the peers in two halves by writing that file, waits until no link
crosses the halves, heals it by emptying the file and times the seconds until the
overlay is one component again (polling every peer's stats every half second).

Results go to ``faults.json`` under ``--out``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import networkx as nx
import trio

from benchmarks.swarm_1000 import _bootstrap_of, _drain
from overlay.cli_search import search_via
from overlay.crawl import list_members
from overlay.errors import OverlayError
from overlay.faults import write_partition_file
from overlay.identity import Address
from overlay.swarm import collect_stats, seeded_items, snapshot_of
from overlay.topology import graph_of
from search.store import content_key

REPO = Path(__file__).resolve().parents[1]
SEED = 1
ITEMS = 20
REPLICATION = 0.04
JOIN_TIMEOUT = 120.0
SETTLE = 5.0
POLL = 0.5
PARTITION_TIMEOUT = 90.0


def _progress(text: str) -> None:
    print(f"faults: {text}", file=sys.stderr, flush=True)


async def _graph(addresses: Sequence[Address]) -> nx.Graph:
    replies, _ = await collect_stats(addresses, 5.0)
    return graph_of([snapshot_of(r) for r in replies])


async def _converge(bootstrap: Address, peers: int) -> tuple[list[Address], float]:
    started = time.monotonic()
    with trio.fail_after(JOIN_TIMEOUT):
        while len(members := await list_members(bootstrap)) < peers:
            await trio.sleep(POLL)
        addresses = [m.contact.address for m in members]
        while True:
            graph = await _graph(addresses)
            if graph.number_of_nodes() == peers and nx.is_connected(graph):
                return addresses, time.monotonic() - started
            await trio.sleep(POLL)


async def _searches(
    addresses: Sequence[Address], mode: str, count: int, concurrency: int, seed: int
) -> dict[str, Any]:
    keys = [content_key(value) for value, _ in seeded_items(ITEMS, SEED)]
    rng = random.Random(f"{seed} {mode}")
    plan = [(rng.choice(addresses), rng.choice(keys)) for _ in range(count)]
    outcomes: list[tuple[bool, float]] = []
    errors = 0
    limiter = trio.CapacityLimiter(concurrency)

    async def one(via: Address, key: str) -> None:
        nonlocal errors
        async with limiter:
            options: dict[str, Any] = {"ttl": 7} if mode == "flood" else {"walkers": 16}
            started = time.monotonic()
            try:
                result = await search_via(via, mode, key=key, **options)
            except OverlayError:
                errors += 1
                return
            outcomes.append((result.success, time.monotonic() - started))

    async with trio.open_nursery() as nursery:
        for via, key in plan:
            nursery.start_soon(one, via, key)
    found = sum(1 for ok, _ in outcomes if ok)
    return {
        "searches": count,
        "answered": len(outcomes),
        "client_errors": errors,
        "succeeded": found,
        "success_rate": found / count if count else None,
        "median_seconds": statistics.median([s for _, s in outcomes]) if outcomes else None,
    }


def _crossing(graph: nx.Graph, left: set[str]) -> int:
    return sum(1 for a, b in graph.edges if (a in left) != (b in left))


async def _partition(addresses: Sequence[Address], path: Path) -> dict[str, Any]:
    replies, _ = await collect_stats(addresses, 5.0)
    ordered = sorted(replies, key=lambda r: (r.address.port, r.id))
    half = ordered[: len(ordered) // 2]
    left_ids = {r.id for r in half}
    write_partition_file(path, [r.address for r in half])
    cut = time.monotonic()
    split_seconds = None
    with trio.move_on_after(PARTITION_TIMEOUT):
        while True:
            graph = await _graph(addresses)
            if _crossing(graph, left_ids) == 0:
                split_seconds = time.monotonic() - cut
                break
            await trio.sleep(POLL)
    components_during = nx.number_connected_components(await _graph(addresses))
    write_partition_file(path)  # healed
    healed = time.monotonic()
    merge_seconds = None
    with trio.move_on_after(PARTITION_TIMEOUT):
        while True:
            graph = await _graph(addresses)
            if graph.number_of_nodes() == len(addresses) and nx.is_connected(graph):
                merge_seconds = time.monotonic() - healed
                break
            await trio.sleep(POLL)
    return {
        "sides": [len(half), len(ordered) - len(half)],
        "seconds_until_no_link_crosses": split_seconds,
        "components_during": components_during,
        "seconds_to_one_component_after_heal": merge_seconds,
        "poll_seconds": POLL,
    }


async def run_one(args: argparse.Namespace, loss: float, partition: bool) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as scratch:
        partition_file = Path(scratch) / "partition"
        command = [
            sys.executable, "-m", "overlay.cli", "swarm",
            "--peers", str(args.peers), "--processes", str(args.processes),
            "--duration", "3600", "--interval", "3600", "--port", "0", "--json",
            "--seed", str(SEED), "--items", str(ITEMS), "--replication", str(REPLICATION),
            "--loss", repr(loss), "--fault-seed", str(args.seed),
        ]  # fmt: skip
        if partition:
            command += ["--partition-file", str(partition_file)]
        _progress(f"loss {loss}: {' '.join(command[2:])}")
        process = await trio.lowlevel.open_process(
            command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=str(REPO)
        )
        row: dict[str, Any] = {"loss": loss, "command": "overlay " + " ".join(command[4:])}
        out = bytearray()
        try:
            bootstrap, err = await _bootstrap_of(process)
            async with trio.open_nursery() as nursery:
                assert process.stdout is not None and process.stderr is not None
                nursery.start_soon(_drain, process.stdout, out)
                nursery.start_soon(_drain, process.stderr, err)
                addresses, converged = await _converge(bootstrap, args.peers)
                row["converged_seconds"] = converged
                _progress(f"loss {loss}: one component after {converged:.1f} s")
                await trio.sleep(args.settle)
                for mode in ("flood", "walk"):
                    row[mode] = await _searches(
                        addresses, mode, args.searches, args.concurrency, args.seed
                    )
                    _progress(f"loss {loss}: {mode} {row[mode]}")
                if partition:
                    row["partition"] = await _partition(addresses, partition_file)
                    _progress(f"loss {loss}: partition {row['partition']}")
                process.send_signal(signal.SIGTERM)
                with trio.fail_after(120):
                    await process.wait()
                nursery.cancel_scope.cancel()
        finally:
            if process.returncode is None:
                process.kill()
                await process.wait()
        summary = json.loads(bytes(out)) if out.strip() else {}
        row["faults_and_limits"] = summary.get("faults_and_limits")
        row["components_at_end"] = summary.get("components")
        return row


async def run(args: argparse.Namespace) -> list[dict[str, Any]]:
    rows = []
    for loss in args.losses:
        rows.append(await run_one(args, loss, partition=args.partition and loss == 0.0))
    return rows


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--peers", type=int, default=50)
    parser.add_argument("--processes", type=int, default=2)
    parser.add_argument(
        "--losses", type=lambda t: [float(x) for x in t.split(",")], default=[0.0, 0.2]
    )
    parser.add_argument("--searches", type=int, default=40, help="per mode and loss rate")
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--settle", type=float, default=SETTLE, help="seconds to wait after convergence"
    )
    parser.add_argument("--no-partition", dest="partition", action="store_false")
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    started = time.monotonic()
    rows = trio.run(run, args)
    baseline = next((r for r in rows if r["loss"] == 0.0), None)
    for row in rows:
        for mode in ("flood", "walk"):
            base = baseline[mode]["success_rate"] if baseline else None
            rate = row[mode]["success_rate"]
            row[mode]["relative_to_loss_0"] = rate / base if base and rate is not None else None
    result = {
        "command": "python benchmarks/faults.py "
        + " ".join(argv if argv is not None else sys.argv[1:]),
        "peers": args.peers,
        "items": ITEMS,
        "replication": REPLICATION,
        "rows": rows,
        "wall_seconds": time.monotonic() - started,
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "load_average_at_end": os.getloadavg(),
        },
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "faults.json").write_text(json.dumps(result, indent=2) + "\n")
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        for row in rows:
            figures = {m: row[m]["success_rate"] for m in ("flood", "walk")}
            print(f"loss {row['loss']}: success {figures}", row.get("partition", ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
