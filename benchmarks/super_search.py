"""Search over the super layer against flat flooding, on the same simulated overlay.

    python benchmarks/super_search.py [--peers 2000] [--seed 1] [--keys 40] [--queries 200]
        [--out benchmarks/results/super_search.json]

N peers run with the super layer on until it settles; then each of ``--keys`` keys is
put on 1 % of the peers, and ``--queries`` searches for them start at random weak
peers, in each mode: super-flood, super-walk, and flat floods of TTL 2 to 6 (the flat
graph is still there beside the super layer).  For each mode the script records the
success rate and the search messages per query (queries, walk steps and super-layer
queries; hits counted apart), so the cost of the super layer can be set against the
flat flood that reaches the same success.  A benchmark: it asserts nothing.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.harness import Run
from overlay.sim.scenario import Scenario, build
from overlay.sim.simulator import Simulator
from search.store import Criteria, content_key

RESULTS = Path(__file__).resolve().parent / "results"
QUERY_KINDS = ("Query", "WalkStep", "SuperQuery")


def batch(
    sim: Simulator,
    rng: random.Random,
    keys: list[str],
    queries: int,
    mode: str,
    **options: Any,
) -> dict[str, Any]:
    weak = sorted(a for a, p in sim.peers.items() if p.role == "weak")
    before = sim.sent
    started: list[tuple[Any, str]] = []
    for n in range(queries):
        origin = sim.peers[rng.choice(weak)]
        search_id, effects = origin.search.start(
            mode, Criteria.for_key(keys[n % len(keys)]), sim.now, **options
        )
        sim.apply(origin.address, effects)
        started.append((origin, search_id))
        sim.run_until(sim.now + 0.05)
    sim.run_until(sim.now + 15)
    after = sim.sent
    sent = {k: after.get(k, 0) - before.get(k, 0) for k in after}
    succeeded = sum(1 for origin, sid in started if origin.search.results[sid].success)
    return {
        "mode": mode,
        **options,
        "success": succeeded / queries,
        "query_messages_per_query": sum(sent.get(k, 0) for k in QUERY_KINDS) / queries,
        "hit_messages_per_query": sent.get("QueryHit", 0) / queries,
    }


def measure(args: argparse.Namespace) -> dict[str, Any]:
    scenario = Scenario(
        peers=args.peers, seed=args.seed, duration=args.settle, super_peers=True, items_per_peer=1
    )
    sim = build(scenario)
    sim.run_until(args.settle)
    rng = random.Random(args.seed)
    addresses = sorted(sim.peers)
    holders = max(1, round(0.01 * len(addresses)))
    keys = []
    for n in range(args.keys):
        value = f"benchmark item {n}".encode()
        keys.append(content_key(value))
        for address in rng.sample(addresses, holders):
            sim.apply(address, sim.peers[address].publish(value, f"bench {n}", sim.now))
    sim.run_until(sim.now + 5)
    rows = [
        batch(sim, rng, keys, args.queries, "super-flood"),
        batch(sim, rng, keys, args.queries, "super-walk"),
    ]
    for ttl in range(2, 7):
        rows.append(batch(sim, rng, keys, args.queries, "flood", ttl=ttl))
    supers = sum(1 for p in sim.peers.values() if p.role == "super")
    target = min(rows[0]["success"], 0.99)
    flat = [r for r in rows if r["mode"] == "flood" and r["success"] >= target]
    cheapest = min(flat, key=lambda r: r["query_messages_per_query"], default=None)
    return {
        "peers": args.peers,
        "seed": args.seed,
        "supers": supers,
        "holders_per_key": holders,
        "rows": rows,
        "flat_flood_reaching_same_success": cheapest,
        "super_flood_cost_ratio": (
            rows[0]["query_messages_per_query"] / cheapest["query_messages_per_query"]
            if cheapest
            else None
        ),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--peers", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--settle", type=float, default=90.0)
    parser.add_argument("--keys", type=int, default=40)
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--out", type=Path, default=RESULTS / "super_search.json")
    args = parser.parse_args(argv)
    recording = Run.begin("benchmarks/super_search.py", argv)
    result = recording.write(args.out, measure(args))
    print(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
