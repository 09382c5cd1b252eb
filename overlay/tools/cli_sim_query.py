"""``overlay sim query``: one search on a static topology in the simulator, wired under
``overlay sim`` by :mod:`overlay.tools.cli_sim`; it takes the options
:func:`add_query_arguments` defines.

It lives apart from the TCP clients (:mod:`overlay.tools.cli_search`) so that
``overlay sim`` does not load the TCP runtime.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from rich.console import Console

from overlay.sim.static import StaticNetwork, TopologyError
from search.config import SearchConfig
from search.outcome import FLAT_MODES


def register_sim_query(sim_subparsers: Any) -> None:
    """``overlay sim query``: registered under ``overlay sim`` by :mod:`overlay.tools.cli_sim`."""
    parser: argparse.ArgumentParser = sim_subparsers.add_parser(
        "query",
        help="search a static topology in the simulator (flood, walk or ring)",
        description="Read a graph (networkx edge list of integer node ids) and an item "
        'placement (JSON {"KEY": [node, ...]}), run one search from SOURCE in the '
        "simulator and print its outcome.",
    )
    add_query_arguments(parser)
    parser.set_defaults(run=run_query)


def add_query_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--topology", required=True, help="edge list file")
    parser.add_argument("--placement", required=True, help='JSON {"KEY": [node, ...]}')
    parser.add_argument(
        "--mode", required=True, choices=FLAT_MODES, help="flood, walk or the expanding ring"
    )
    parser.add_argument("--source", required=True, type=int, help="node the query starts at")
    target = parser.add_mutually_exclusive_group(required=True)
    target.add_argument("--key", help="a placement KEY or a 64-hex content key")
    target.add_argument("--keywords", help="words that must all be in the item's name")
    parser.add_argument(
        "--ttl",
        type=int,
        default=None,
        help="flood TTL (default 7, cap 10), largest ring, or walk hops (default 256)",
    )
    parser.add_argument("--walkers", type=int, default=None, help="walkers (default 16)")
    parser.add_argument(
        "--check",
        type=int,
        default=None,
        help="walkers check with the origin every C hops (default 4)",
    )
    parser.add_argument("--want", type=int, default=None, help="hits wanted (default 1)")
    parser.add_argument(
        "--direct",
        action="store_true",
        help="flood hits go straight to the origin, not back along the path",
    )
    parser.add_argument(
        "--fetch", action="store_true", help="also fetch the first hit's value and verify it"
    )
    parser.add_argument("--seed", type=int, default=1, help="random seed (default 1)")
    parser.add_argument("--loss", type=float, default=0.0, help="message loss probability")
    parser.add_argument("--latency", type=float, default=0.02, help="link latency, seconds")
    parser.add_argument("--jitter", type=float, default=0.0, help="extra uniform latency")
    parser.add_argument("--json", action="store_true", help="print the outcome as JSON")


def positive_options(args: argparse.Namespace, names: tuple[str, ...]) -> str | None:
    """The first of ``names`` given as less than 1, as a one-line complaint."""
    for name in names:
        value = getattr(args, name, None)
        if value is not None and value < 1:
            return f"--{name} must be at least 1, not {value}"
    return None


def run_query(args: argparse.Namespace) -> int:
    problem = positive_options(args, ("ttl", "walkers", "check", "want"))
    if problem is not None:
        print(f"overlay sim query: {problem}", file=sys.stderr)
        return 2
    try:
        network = StaticNetwork.from_files(
            args.topology,
            args.placement,
            seed=args.seed,
            loss=args.loss,
            latency=getattr(args, "latency", 0.02),
            jitter=getattr(args, "jitter", 0.0),
            search_config=SearchConfig(),
        )
        outcome = network.query(
            args.source,
            args.mode,
            key=args.key,
            keywords=args.keywords,
            ttl=args.ttl,
            walkers=args.walkers,
            check=args.check,
            want=getattr(args, "want", None),
            direct=True if getattr(args, "direct", False) else None,
            fetch=getattr(args, "fetch", False),
        )
    except (TopologyError, ValueError) as error:
        print(f"overlay sim query: {error}", file=sys.stderr)
        return 2
    report = network.outcome_json(outcome)
    if args.json:
        print(json.dumps(report, sort_keys=True))
    else:
        print_outcome(report, Console())
    return 0 if outcome.success else 1  # as `overlay search`: found or not


def print_outcome(report: dict[str, Any], console: Console) -> None:
    from rich.table import Table  # noqa: PLC0415  (a --json run, or `overlay sim`, prints none)

    table = Table(title=f"{report['mode']} query", show_header=False)
    table.add_column("figure")
    table.add_column("value", justify="right")
    messages = report["messages"]
    rows = [
        ("success", report["success"]),
        ("hits", len(report["hits"])),
        ("holders", ", ".join(str(hit["holder"]) for hit in report["hits"][:8])),
        (
            "messages: query / hit / check / fetch",
            f"{messages['query']} / {messages['hit']} / {messages['check']} / {messages['fetch']}",
        ),
        ("messages in all", messages["total"]),
        ("duplicate receptions", report["duplicates"]),
        ("peers visited", report["visited_count"]),
        ("hops to first hit", report["first_hit_hops"]),
        ("time to first hit (s)", report["first_hit_time"]),
    ]
    if "rings" in report:
        rows.append(("rings", ", ".join(map(str, report["rings"]))))
    if "walkers" in report:
        rows.append(("walkers (relaunched)", f"{report['walkers']} ({report['relaunched']})"))
    if "fetch" in report:
        fetch = report["fetch"]
        rows.append(("fetch", "verified" if fetch["ok"] else fetch["error"]))
    for label, value in rows:
        table.add_row(label, str(value))
    console.print(table)
