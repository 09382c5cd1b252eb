"""Flood against random walks on fixed topologies: Lv et al. (ICS 2002), reproduced.

    python benchmarks/flood_vs_walk.py [--quick] [--out DIR] [--queries N] [--json]
        [--workers N | --scheduler tcp://HOST:PORT] [--topologies NAME[,NAME]]

Every search runs on the simulator's static-topology mode
(:class:`overlay.sim.static.StaticNetwork`): the same peer cores as a live swarm, on a
graph that does not change, so flood, expanding ring and walks are compared on the
same topology, the same placement and the same seeded queries.

The design (the full cross product would take hours; this keeps what the claims
need and states what it leaves out):

* **main table**: every topology (random, power-law, p2p-Gnutella04,
  p2p-Gnutella31) x every mode (flood TTL 1..7, expanding ring, walks of k = 1, 16,
  32, 64 checking every 4 hops) x message loss 0 and 10%, with 100 items each on
  1% of the peers (uniform replication), queried with Zipf(1.2) popularity;
* **replication sweep**: 16 walkers on the random graph and on p2p-Gnutella04 x
  placement uniform / proportional / square-root x average ratio 0.1% .. 5%, loss 0;
* 1,000 queries per configuration (``--queries``), from uniformly random sources;
* flood TTLs stop at the first one whose success rate reaches 99%
  (:data:`benchmarks.runner.FLOOD_STOP`): larger ones cost more and find no more,
  and on 10,000-peer graphs they are what would make the sweep take hours;
* lossless floods are simulated once per query, at that stop TTL, and the smaller
  TTLs' rows are derived exactly from the hop counts of its messages (rows marked
  ``derived_from_ttl``; :mod:`benchmarks.runner` says why this is exact, checks it
  on every query, and the tests compare it with simulating every TTL);
* super-layer flood and walk are not in this sweep: the static topologies have no
  super peers (``benchmarks/super_search.py`` sets them against flat floods on a
  simulated overlay that has).

Time: the work is split into tasks of one graph, one loss rate and either the
floods or the other modes, submitted to Dask's distributed scheduler
(:mod:`benchmarks.engine`), the longest first: by default a local cluster of one worker
process per core, or with ``--scheduler tcp://HOST:PORT`` a cluster started beforehand
(``--topologies`` runs the tasks of some graphs only).  A task's rows depend on its
seeds only, so every cluster gives the same rows (``meta.rows_digest`` says so at a
glance).  Measured by simulated deliveries (a fixed cost per message), the full sweep
is about 105 million deliveries, which at the simulator's 70,000 deliveries per CPU
second is about 13 minutes on an otherwise idle 2-core machine (16 before the floods
were derived); a machine shared with other work takes longer in proportion
(``load_before`` and ``load_after`` record it).

``--quick`` runs the same design on ~400-peer graphs (pieces of the real crawls
included) with 50 queries, in seconds; the test suite runs it so this script
cannot rot.  Outputs go to ``--out`` (default ``benchmarks/results/``):
``flood_vs_walk.json`` (every row, the claims and the run's conditions),
``flood_vs_walk.csv`` and four PNG figures.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from rich.console import Console
from rich.table import Table

from benchmarks import plots
from benchmarks.engine import Outcome, SweepError, Where, add_arguments, run_sweep, where_from
from benchmarks.harness import Run
from benchmarks.placement import STRATEGIES, ZIPF_ALPHA
from benchmarks.runner import (
    FLOOD_STOP,
    WALK_TTL,
    ModeSpec,
    Task,
    rows_digest,
    run_task,
)
from benchmarks.topologies import (
    FULL_TOPOLOGIES,
    QUICK_TOPOLOGIES,
    DataMissing,
    TopologySpec,
    crawl_path,
)

Row = dict[str, Any]
DEFAULT_OUT = Path(__file__).resolve().parent / "results"
FLOOD_TTLS = tuple(range(1, 8))
WALKERS = (1, 16, 32, 64)
CHECK_EVERY = 4
LOSSES = (0.0, 0.1)
LOSSY_TOPOLOGIES = ("random", "gnutella04", "gnutella31")
"""Loss 10% is run on these only: the power-law graph's floods and rings are the
sweep's most expensive runs (TTL 3-4 floods reach nearly all of its ~10,000 peers)
and loss on it would add a third to the sweep's time for no claim of the issue."""
MAIN_RATIO = 0.01
QUICK_MAIN_RATIO = 0.05
"""On --quick's 200-peer graphs 1% would be two copies: 5% keeps searches short."""
SWEEP_RATIOS = (0.001, 0.005, 0.01, 0.02, 0.05)
QUICK_SWEEP_RATIOS = (0.02, 0.05)
SWEEP_TOPOLOGIES = ("gnutella04",)
SWEEP_WALKERS = 16
TOPOLOGY_NAMES = tuple(spec.name for spec in FULL_TOPOLOGIES)
NOT_MEASURED = (
    "super-layer flood and super-layer walk: the static topologies have no super peers "
    "(benchmarks/super_search.py compares them with flat floods on a simulated overlay)"
)
PRIORITY = (
    ("main", 0.0, "power-law", "flood"),
    ("main", 0.0, "gnutella04", "flood"),
    ("main", 0.0, "power-law", "search"),
    ("main", 0.0, "gnutella04", "search"),
    ("main", 0.0, "gnutella31", "search"),
    ("main", 0.0, "random", "flood"),
    ("main", 0.0, "random", "search"),
    ("main", 0.0, "gnutella31", "flood"),
    ("replication", 0.0, "gnutella04", "search"),
    ("main", 0.1, "gnutella04", "flood"),
    ("main", 0.1, "gnutella04", "search"),
    ("main", 0.1, "random", "flood"),
    ("main", 0.1, "random", "search"),
    ("main", 0.1, "gnutella31", "flood"),
    ("main", 0.1, "gnutella31", "search"),
)
"""The order tasks start in: what the issue's claims need first (the lossless main
table; the power-law floods, the longest tasks, at the very start so that the
short ones fill in around them), then the replication sweep, then loss.  If a run
is stopped (SIGTERM, Ctrl-C) it writes what it has, so the most useful part is
what is there."""


def _priority(task: Task) -> int:
    group = "flood" if any(m.mode == "flood" for m in task.modes) else "search"
    key = (task.table, task.loss, task.topology.name, group)
    return PRIORITY.index(key) if key in PRIORITY else len(PRIORITY)


def modes_flood() -> tuple[ModeSpec, ...]:
    return tuple(ModeSpec("flood", ttl=ttl) for ttl in FLOOD_TTLS)


def modes_search() -> tuple[ModeSpec, ...]:
    """The ring and the walkers (one task; the floods are another, run in parallel)."""
    return (ModeSpec("ring"), *(ModeSpec("walk", walkers=k, check=CHECK_EVERY) for k in WALKERS))


def plan(
    quick: bool,
    queries: int,
    seed: int,
    data_dir: Path | None,
    only: Sequence[str] | None = None,
) -> list[Task]:
    """The tasks of the design described in the module docstring (those of the
    topologies named in ``only``, if given: each task is the same whatever else runs)."""
    topologies: Sequence[TopologySpec] = [
        spec
        for spec in (QUICK_TOPOLOGIES if quick else FULL_TOPOLOGIES)
        if only is None or spec.name in only
    ]
    tasks: list[Task] = []
    for spec in topologies:
        for loss in LOSSES:
            if loss > 0 and spec.name not in LOSSY_TOPOLOGIES:
                continue
            for modes in (modes_flood(), modes_search()):
                ratio = QUICK_MAIN_RATIO if quick else MAIN_RATIO
                task = Task(
                    "main", spec, loss, (("uniform", ratio),), modes, queries, seed, data_dir
                )
                tasks.append(task)
    ratios = QUICK_SWEEP_RATIOS if quick else SWEEP_RATIOS
    sweep_modes = (ModeSpec("walk", walkers=SWEEP_WALKERS, check=CHECK_EVERY),)
    for spec in topologies:
        if spec.name not in SWEEP_TOPOLOGIES:
            continue
        for strategy in STRATEGIES:
            configs = tuple((strategy, ratio) for ratio in ratios)
            tasks.append(
                Task("replication", spec, 0.0, configs, sweep_modes, queries, seed, data_dir)
            )
    return sorted(tasks, key=_priority)


def _mode_order(row: Row) -> tuple[int, int]:
    if row["mode"] == "flood":
        return (0, row["ttl"])
    if row["mode"] == "ring":
        return (1, 0)
    return (2, row["walkers"] or 0)


def sort_rows(rows: list[Row], topology_order: Sequence[str]) -> list[Row]:
    place = {name: i for i, name in enumerate(topology_order)}
    return sorted(
        rows,
        key=lambda r: (
            r["table"] != "main",
            place.get(r["topology"], 99),
            r["loss"],
            STRATEGIES.index(r["placement"]),
            r["replication_ratio"],
            _mode_order(r),
        ),
    )


def sweep(tasks: Sequence[Task], where: Where, console: Console) -> Outcome[list[Row]]:
    """Run the tasks on the cluster ``where`` names, with progress bars on ``console``;
    their rows task by task, in the order of ``tasks``."""
    return run_sweep(
        tasks,
        run_task,
        labels=[task.label for task in tasks],
        planned=[task.planned_queries() for task in tasks],
        unit="queries",
        where=where,
        console=console,
        describe=lambda rows: f"{len(rows)} rows, {sum(r['cpu_seconds'] for r in rows):.0f} CPU s",
    )


def run_all(
    tasks: list[Task], where: Where, console: Console
) -> tuple[list[Row], list[str], dict[str, Any]]:
    """:func:`sweep`: the rows (task by task, in the plan's order), the labels of the
    tasks that did not finish (on Ctrl-C or SIGTERM the finished tasks' rows still come
    back, so a sweep cut short by a deadline leaves valid, marked, partial results) and
    what the cluster was."""
    outcome = sweep(tasks, where, console)
    rows = [row for result in outcome.results if result is not None for row in result]
    return rows, [tasks[index].label for index in outcome.unfinished], outcome.cluster


# ---------------------------------------------------------------------- claims


def _main_rows(rows: Sequence[Row], topology: str, loss: float) -> list[Row]:
    return [
        r for r in rows if r["table"] == "main" and r["topology"] == topology and r["loss"] == loss
    ]


def compare(
    rows: Sequence[Row], topology: str, loss: float = 0.0, walkers: int = 32
) -> dict[str, Any] | None:
    """Walkers against the cheapest flood reaching 99% success, and the ring, on one graph."""
    mine = _main_rows(rows, topology, loss)
    walk = next((r for r in mine if r["mode"] == "walk" and r["walkers"] == walkers), None)
    ring = next((r for r in mine if r["mode"] == "ring"), None)
    floods = sorted((r for r in mine if r["mode"] == "flood"), key=lambda r: r["ttl"])
    if walk is None or ring is None or not floods:
        return None
    flood = next((r for r in floods if r["success_rate"] >= FLOOD_STOP), None)
    as_good = next((r for r in floods if r["success_rate"] >= walk["success_rate"]), None)
    result: dict[str, Any] = {
        "topology": topology,
        "loss": loss,
        "walkers": walkers,
        "walk_success": walk["success_rate"],
        "walk_messages": walk["search_messages_per_query"],
        "ring_success": ring["success_rate"],
        "ring_messages": ring["search_messages_per_query"],
        "flood_ttl": flood["ttl"] if flood else None,
        "flood_success": flood["success_rate"] if flood else None,
        "flood_messages": flood["search_messages_per_query"] if flood else None,
        "flood_as_good_ttl": as_good["ttl"] if as_good else None,
        "ratio": (
            flood["search_messages_per_query"] / walk["search_messages_per_query"]
            if flood and walk["search_messages_per_query"]
            else None
        ),
    }
    result["ring_between"] = bool(
        flood
        and walk["search_messages_per_query"]
        < ring["search_messages_per_query"]
        < flood["search_messages_per_query"]
    )
    return result


def claims(rows: Sequence[Row]) -> dict[str, Any]:
    """The issue's "must show" items, computed from the rows (true, false or not measured)."""
    out: dict[str, Any] = {"comparisons": [], "checks": []}
    main = [r for r in rows if r["table"] == "main"]
    topologies = plots._topologies(main)
    share = f"{100 * main[0]['replication_ratio']:g}%" if main else "?"
    for name in topologies:
        for loss in LOSSES:
            found = compare(rows, name, loss)
            if found is not None:
                out["comparisons"].append(found)
    for name in ("gnutella04", "power-law"):
        if not _main_rows(rows, name, 0.0):
            continue  # not in this run (--topologies): neither holds nor fails
        found = compare(rows, name, 0.0)
        holds = bool(
            found
            and found["walk_success"] >= 0.99
            and found["ratio"] is not None
            and found["ratio"] >= 30
            and found["ring_between"]
        )
        out["checks"].append(
            {
                "claim": f"{name}, {share} uniform, loss 0: 32 walkers >= 99% success with >= 30x "
                "fewer search messages than the smallest flood TTL reaching 99%; "
                "the expanding ring in between",
                "holds": holds,
                **(found or {}),
            }
        )
    walk16 = next(
        (r for r in _main_rows(rows, "random", 0.0) if r["mode"] == "walk" and r["walkers"] == 16),
        None,
    )
    if walk16 is not None:
        bound = 2.5 / walk16["replication_ratio"]
        out["checks"].append(
            {
                "claim": f"random graph, {share} uniform, loss 0: 16 walkers with checking "
                "use at most 2.5/r search messages (steps + checks) per query",
                "holds": walk16["search_messages_per_query"] <= bound,
                "messages": walk16["search_messages_per_query"],
                "bound": bound,
                "success": walk16["success_rate"],
            }
        )
    return out


# ---------------------------------------------------------------------- output

SCALARS_ONLY = ("hops_histogram", "load_percentiles")


def write_csv(rows: Sequence[Row], path: Path) -> None:
    fields = [key for key in rows[0] if key not in SCALARS_ONLY] if rows else []
    with open(path, "w", newline="", encoding="utf-8") as file:
        writer = csv.DictWriter(file, fieldnames=fields, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)


def _num(value: Any, digits: int = 1) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:,.{digits}f}"
    return f"{value:,}"


def main_table(rows: Sequence[Row]) -> Table:
    table = Table(
        title="Flood vs walk: 100 items each on 1% of the peers (uniform), Zipf(1.2) queries",
        header_style="bold",
    )
    for title in (
        "topology",
        "loss",
        "mode",
        "success",
        "hops mean",
        "hops p95",
        "search msgs/q",
        "all msgs/q",
        "msgs/peer/q",
        "dup ratio",
        "peak load",
        "visited",
        "deliv/s",
        "deliv/cpu-s",
    ):
        table.add_column(title, justify="left" if title in ("topology", "mode") else "right")
    for r in rows:
        if r["table"] != "main":
            continue
        table.add_row(
            f"{r['topology']} ({r['nodes']:,})",
            f"{r['loss']:g}",
            r["mode_name"],
            f"{100 * r['success_rate']:.1f}%",
            _num(r["hops_mean"], 2),
            _num(r["hops_p95"], 0),
            _num(r["search_messages_per_query"]),
            _num(r["messages_per_query"]),
            _num(r["messages_per_peer_per_query"], 4),
            _num(r["duplicate_ratio"], 3),
            _num(r["peak_load_mean"]),
            _num(r["visited_mean"]),
            _num(r["delivered_per_second"], 0),
            _num(r["delivered_per_cpu_second"], 0),
        )
    return table


def sweep_table(rows: Sequence[Row]) -> Table:
    table = Table(
        title=f"Replication sweep: {SWEEP_WALKERS} walkers checking every {CHECK_EVERY}, loss 0",
        header_style="bold",
    )
    for title in (
        "topology",
        "placement",
        "ratio",
        "success",
        "hops mean",
        "search msgs/q",
        "1/r",
        "visited",
        "deliv/s",
    ):
        table.add_column(title, justify="left" if title in ("topology", "placement") else "right")
    for r in rows:
        if r["table"] != "replication":
            continue
        table.add_row(
            r["topology"],
            r["placement"],
            f"{100 * r['replication_ratio']:g}%",
            f"{100 * r['success_rate']:.1f}%",
            _num(r["hops_mean"], 2),
            _num(r["search_messages_per_query"]),
            _num(1 / r["replication_ratio"], 0),
            _num(r["visited_mean"]),
            _num(r["delivered_per_second"], 0),
        )
    return table


def print_claims(found: dict[str, Any], console: Console) -> None:
    for c in found["comparisons"]:
        ratio = f"{c['ratio']:.1f}x" if c["ratio"] else "-"
        console.print(
            f"{c['topology']} loss {c['loss']:g}: walk k=32 {100 * c['walk_success']:.1f}% "
            f"at {c['walk_messages']:,.0f} msgs; ring {100 * c['ring_success']:.1f}% at "
            f"{c['ring_messages']:,.0f}; flood TTL {c['flood_ttl']} "
            f"{_pct(c['flood_success'])} at {_num(c['flood_messages'], 0)}: ratio {ratio}"
        )
    for check in found["checks"]:
        mark = "[green]holds[/]" if check["holds"] else "[red]does not hold[/]"
        console.print(f"{mark}: {check['claim']}")
    console.print(f"not measured: {NOT_MEASURED}")


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.1f}%"


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Flood vs random walks (Lv et al. 2002) on the static-topology simulator."
    )
    parser.add_argument(
        "--quick", action="store_true", help="small graphs and 50 queries: seconds, for tests"
    )
    parser.add_argument(
        "--out", type=Path, default=DEFAULT_OUT, help=f"output directory (default {DEFAULT_OUT})"
    )
    parser.add_argument(
        "--queries",
        type=int,
        default=None,
        help="queries per configuration (default 1000, --quick 50)",
    )
    parser.add_argument(
        "--json",
        action="store_true",
        help="print rows and claims as JSON on stdout instead of tables",
    )
    add_arguments(parser)
    parser.add_argument(
        "--topologies",
        type=lambda text: tuple(name.strip() for name in text.split(",") if name.strip()),
        default=None,
        metavar="NAME[,NAME]",
        help=f"run only the tasks of these topologies (of {', '.join(TOPOLOGY_NAMES)}); "
        "their rows are the full sweep's rows",
    )
    parser.add_argument(
        "--data",
        type=Path,
        default=None,
        help="directory of the Gnutella crawls (default: benchmarks/data/gnutella, in the "
        "repository)",
    )
    parser.add_argument("--seed", type=int, default=2002)
    parser.add_argument(
        "--replot",
        action="store_true",
        help="run nothing: redraw the figures and tables from the JSON in --out",
    )
    args = parser.parse_args(argv)
    args.where = where_from(args, parser)
    if args.queries is None:
        args.queries = 50 if args.quick else 1000
    if args.queries < 1:
        parser.error("--queries must be at least 1")
    unknown = sorted(set(args.topologies or ()) - set(TOPOLOGY_NAMES))
    if unknown or args.topologies == ():
        parser.error(f"--topologies takes names of {', '.join(TOPOLOGY_NAMES)}")
    return args


def show(report: dict[str, Any], figures: list[Path], out: Path, as_json: bool) -> None:
    if as_json:
        print(json.dumps(report))
        return
    console = Console()
    rows = report["rows"]
    console.print(main_table(rows))
    console.print(sweep_table(rows))
    print_claims(report["claims"], console)
    meta = report["meta"]
    wall = report.get("wall_seconds", meta.get("wall_seconds"))  # in meta before the harness
    where = meta.get("cluster", {}).get("scheduler", "a process pool")  # pool: before Dask
    console.print(
        f"{len(rows)} rows in {wall:.0f} s with {meta['workers']} "
        f"workers ({where}); wrote {out / 'flood_vs_walk.json'}, .csv and "
        f"{', '.join(f.name for f in figures)}"
    )


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    console = Console(stderr=True)
    if args.replot:
        report = json.loads((args.out / "flood_vs_walk.json").read_text())
        show(report, plots.draw_all(report["rows"], args.out), args.out, args.json)
        return 0
    topologies = [
        spec
        for spec in (QUICK_TOPOLOGIES if args.quick else FULL_TOPOLOGIES)
        if args.topologies is None or spec.name in args.topologies
    ]
    try:
        for spec in topologies:
            # The workers read the crawls: a remote cluster's may have them where this
            # machine has none (a missing one there fails its task, by name).
            if spec.kind == "crawl" and args.where.scheduler is None:
                crawl_path(spec.name, args.data)
    except DataMissing as error:
        print(f"error: {error}", file=sys.stderr)  # one plain line: no wrapping, no markup
        return 2
    recording = Run.begin("benchmarks/flood_vs_walk.py", argv)
    tasks = plan(args.quick, args.queries, args.seed, args.data, args.topologies)
    try:
        rows, unfinished, cluster = run_all(tasks, args.where, console)
    except SweepError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    rows = sort_rows(rows, [spec.name for spec in topologies])
    found = claims(rows)
    meta = {
        "quick": args.quick,
        "queries_per_config": args.queries,
        "seed": args.seed,
        "workers": cluster["workers"],
        "cluster": cluster,
        # Equal digests, equal rows (timing fields aside): how runs on different
        # clusters are compared (benchmarks.runner.rows_digest).
        "rows_digest": rows_digest(rows),
        # The simulation's own CPU time, task by task in the workers (the run's
        # ``cpu_seconds`` counts this process's as well).
        "cpu_seconds": round(sum(r["cpu_seconds"] for r in rows), 1),
        # What the simulator actually carried (derived rows cost nothing): the figure
        # the sweep's time is proportional to, whatever else runs on the machine.
        "simulated_deliveries": sum(
            r["sim_delivered"] for r in rows if "derived_from_ttl" not in r
        ),
        "complete": not unfinished,
        "unfinished_tasks": unfinished,
        "topologies": {spec.name: spec.describe() for spec in topologies},
        "design": {
            "main": f"every topology x flood TTL {FLOOD_TTLS[0]}..{FLOOD_TTLS[-1]}, expanding "
            f"ring, walks k in {list(WALKERS)} checking every {CHECK_EVERY} x loss "
            f"{list(LOSSES)} (loss > 0 on {list(LOSSY_TOPOLOGIES)} only), 100 items "
            f"each on {QUICK_MAIN_RATIO if args.quick else MAIN_RATIO:.0%} of the peers",
            "replication": f"{SWEEP_WALKERS} walkers on {list(SWEEP_TOPOLOGIES)} x "
            f"{list(STRATEGIES)} x ratios "
            f"{list(QUICK_SWEEP_RATIOS if args.quick else SWEEP_RATIOS)}, loss 0",
            "queries": f"Zipf({ZIPF_ALPHA}) over 100 items, sources uniform over peers",
            "flood_stop": f"flood TTLs stop at the first with success >= {FLOOD_STOP:.0%}; "
            "lossless floods are simulated at that TTL only, smaller TTLs derived exactly; "
            "lossy floods run at most the TTLs the lossless flood needed",
            "walk_ttl": WALK_TTL,
            "not_measured": NOT_MEASURED,
        },
    }
    report = recording.write(
        args.out / "flood_vs_walk.json", {"meta": meta, "claims": found, "rows": rows}
    )
    write_csv(rows, args.out / "flood_vs_walk.csv")
    figures = plots.draw_all(rows, args.out)
    show(report, figures, args.out, args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
