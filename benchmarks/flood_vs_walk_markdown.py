"""Render the tables of docs/results/flood-vs-walk.md from ``flood_vs_walk.json``.

    python benchmarks/flood_vs_walk_markdown.py [benchmarks/results/flood_vs_walk.json]

The tables and every number in the section's text come from the JSON the sweep
wrote, so the page cannot drift from the results it quotes; the prose around
them is kept short and states only what the numbers show.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

Row = dict[str, Any]
RESULTS = Path(__file__).resolve().parent / "results"


def _f(value: Any, digits: int = 1) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:,.{digits}f}"
    return f"{value:,}"


def _pct(value: float | None, digits: int = 1) -> str:
    return "-" if value is None else f"{100 * value:.{digits}f}%"


def main_table(rows: Sequence[Row], loss: float) -> str:
    lines = [
        "| topology | mode | success | hops to 1st hit (mean / p95) | search msgs/query "
        "| all msgs/query | msgs/peer/query | duplicate ratio | peak load | peers visited "
        "| delivered/s (wall / CPU) |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        if r["table"] != "main" or r["loss"] != loss:
            continue
        lines.append(
            f"| {r['topology']} ({r['nodes']:,}) | {r['mode_name']} | {_pct(r['success_rate'])} "
            f"| {_f(r['hops_mean'], 2)} / {_f(r['hops_p95'], 0)} "
            f"| {_f(r['search_messages_per_query'])} | {_f(r['messages_per_query'])} "
            f"| {_f(r['messages_per_peer_per_query'], 4)} | {_f(r['duplicate_ratio'], 3)} "
            f"| {_f(r['peak_load_mean'])} | {_f(r['visited_mean'])} "
            f"| {_f(r['delivered_per_second'], 0)} / {_f(r['delivered_per_cpu_second'], 0)} |"
        )
    return "\n".join(lines)


def sweep_table(rows: Sequence[Row]) -> str:
    lines = [
        "| topology | placement | average ratio r | 1/r | success | hops (mean) "
        "| search msgs/query | peers visited |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        if r["table"] != "replication":
            continue
        lines.append(
            f"| {r['topology']} | {r['placement']} | {100 * r['replication_ratio']:g}% "
            f"| {1 / r['replication_ratio']:,.0f} | {_pct(r['success_rate'])} "
            f"| {_f(r['hops_mean'], 2)} | {_f(r['search_messages_per_query'])} "
            f"| {_f(r['visited_mean'])} |"
        )
    return "\n".join(lines)


def comparisons(found: dict[str, Any]) -> str:
    lines = [
        "| topology | loss | 32 walkers: success, search msgs | expanding ring "
        "| cheapest flood with >= 99% | flood / walk |",
        "|---|---:|---|---|---|---:|",
    ]
    for c in found["comparisons"]:
        flood = (
            f"TTL {c['flood_ttl']}: {_pct(c['flood_success'])}, {_f(c['flood_messages'], 0)}"
            if c["flood_ttl"]
            else "none measured"
        )
        ratio = f"{c['ratio']:.1f}x" if c["ratio"] else "-"
        lines.append(
            f"| {c['topology']} | {c['loss']:g} | {_pct(c['walk_success'])}, "
            f"{_f(c['walk_messages'], 0)} | {_pct(c['ring_success'])}, "
            f"{_f(c['ring_messages'], 0)} | {flood} | {ratio} |"
        )
    return "\n".join(lines)


def checks(found: dict[str, Any]) -> str:
    return "\n".join(
        f"- **{'holds' if c['holds'] else 'does not hold'}**: {c['claim']}" for c in found["checks"]
    )


RUN = (
    "command",
    "date",
    "commit",
    "wall_seconds",
    "cpu_seconds",
    "workers",
    "complete",
    "unfinished_tasks",
    "python",  # in ``meta`` before benchmarks/harness.py; now in ``machine``
    "machine",
    "load_before",
    "load_after",
    "load_average_before",  # the names before benchmarks/harness.py
    "load_average_after",
)


def run_conditions(report: dict[str, Any]) -> dict[str, Any]:
    """How the sweep ran: the run's keys (benchmarks/harness.py) over the sweep's own
    ``meta``; an older file had them all in ``meta``, some under other names."""
    known = {**report["meta"], **{k: v for k, v in report.items() if k not in ("meta", "rows")}}
    return {key: known[key] for key in RUN if key in known}


def render(report: dict[str, Any]) -> str:
    rows, found = report["rows"], report["claims"]
    parts = [
        "### Main table, no loss",
        main_table(rows, 0.0),
        "### Main table, 10% message loss",
        main_table(rows, 0.1),
        "### Replication sweep",
        sweep_table(rows),
        "### Walkers against floods",
        comparisons(found),
        "### The issue's claims, computed from the rows",
        checks(found),
        "### Run",
        "```\n" + json.dumps(run_conditions(report), indent=1) + "\n```",
    ]
    return "\n\n".join(parts) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    path = Path(args[0]) if args else RESULTS / "flood_vs_walk.json"
    print(render(json.loads(path.read_text())))
    return 0


if __name__ == "__main__":
    sys.exit(main())
