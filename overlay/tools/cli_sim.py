"""``overlay sim``: run a scenario in the simulator and print its summary."""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable
from typing import Any

from rich.console import Console

from overlay.net.options import add_super_peers_argument
from overlay.sim.scenario import Scenario, build, run
from overlay.tools.cli_sim_query import register_sim_query


def register(subparsers: Any) -> None:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "sim",
        help="simulate an overlay in virtual time from a seed",
        description="Simulate N peers joining through a bootstrap node, with optional loss, "
        "churn, a mass crash and a partition, and print the topology summary.",
    )
    parser.add_argument("--peers", type=int, default=1000, help="peers to start (default 1000)")
    parser.add_argument("--seed", type=int, default=1, help="random seed (default 1)")
    parser.add_argument("--duration", type=float, default=60.0, help="simulated seconds")
    parser.add_argument("--loss", type=float, default=0.0, help="message loss probability")
    parser.add_argument("--latency", type=float, default=0.02, help="link latency, seconds")
    parser.add_argument("--jitter", type=float, default=0.0, help="extra uniform latency")
    parser.add_argument(
        "--churn", type=float, default=0.0, help="peers crashing and joining per second"
    )
    parser.add_argument(
        "--leave-fraction", type=float, default=0.0, help="share of churn that leaves gracefully"
    )
    parser.add_argument(
        "--crash-fraction",
        type=float,
        default=0.0,
        help="crash this share of the live peers at once, at --crash-at",
    )
    parser.add_argument(
        "--crash-at", type=float, default=None, help="when (s) the --crash-fraction crash happens"
    )
    parser.add_argument(
        "--recover-after",
        type=float,
        default=None,
        help="bring each crashed peer back this many seconds later (same address, new id)",
    )
    parser.add_argument(
        "--partition-at",
        type=float,
        default=None,
        help="split the live peers in two random halves at this time (s)",
    )
    parser.add_argument(
        "--heal-at", type=float, default=None, help="heal the partition at this time (s)"
    )
    parser.add_argument(
        "--join-window",
        type=float,
        default=None,
        help="peers join uniformly over this many seconds (default peers/1000, in [1, 10])",
    )
    add_super_peers_argument(parser, "elect super peers and keep their index")
    parser.add_argument("--items-per-peer", type=int, default=3, help="items each peer holds")
    parser.add_argument(
        "--crash-super-fraction",
        type=float,
        default=0.0,
        help="crash this share of the super peers at once, at --crash-super-at",
    )
    parser.add_argument(
        "--crash-super-at",
        type=float,
        default=None,
        help="when (s) the --crash-super-fraction crash happens",
    )
    parser.add_argument(
        "--workers",
        type=int,
        default=os.cpu_count() or 1,
        help="worker processes to split the peers over (default: all cores, here "
        f"{os.cpu_count() or 1}); the result is the same for any number",
    )
    parser.add_argument("--json", action="store_true", help="print the summary as JSON")
    parser.add_argument(
        "--view",
        action="store_true",
        help="replay the run in the live topology view, one frame per simulated second",
    )
    parser.add_argument(
        "--pace", type=float, default=1.0, help="with --view: wall seconds per frame (0: fast)"
    )
    parser.set_defaults(run=run_sim)
    below = parser.add_subparsers(dest="sim_command", metavar="query", required=False)
    register_sim_query(below)


def scenario_from(args: argparse.Namespace) -> Scenario:
    return Scenario(
        peers=args.peers,
        seed=args.seed,
        duration=args.duration,
        loss=args.loss,
        latency=args.latency,
        jitter=args.jitter,
        churn=args.churn,
        leave_fraction=args.leave_fraction,
        crash_fraction=args.crash_fraction,
        crash_at=args.crash_at,
        recover_after=args.recover_after,
        partition_at=args.partition_at,
        heal_at=args.heal_at,
        join_window=args.join_window,
        super_peers=args.super_peers,
        items_per_peer=args.items_per_peer,
        crash_super_fraction=args.crash_super_fraction,
        crash_super_at=args.crash_super_at,
    )


def impossible(args: argparse.Namespace) -> str | None:
    """An option combination that cannot mean anything, in one line naming the flags."""
    end = args.duration

    def at(flag: str, value: float | None) -> str | None:
        if value is not None and not 0 <= value <= end:
            return f"{flag} {value:g} is outside the run (--duration {end:g})"
        return None

    pairs = (
        ("--crash-fraction", args.crash_fraction > 0, "--crash-at", args.crash_at is not None),
        (
            "--crash-super-fraction",
            args.crash_super_fraction > 0,
            "--crash-super-at",
            args.crash_super_at is not None,
        ),
    )
    for share, has_share, when, has_when in pairs:
        if has_share != has_when:
            return f"{share} and {when} go together: give both or neither"
    for flag, value in (
        ("--crash-at", args.crash_at),
        ("--crash-super-at", args.crash_super_at),
        ("--partition-at", args.partition_at),
        ("--heal-at", args.heal_at),
    ):
        problem = at(flag, value)
        if problem is not None:
            return problem
    if args.heal_at is not None and args.partition_at is None:
        return "--heal-at needs a --partition-at to heal"
    if args.heal_at is not None and args.heal_at <= (args.partition_at or 0.0):
        return f"--heal-at {args.heal_at:g} comes before --partition-at {args.partition_at:g}"
    if args.recover_after is not None and args.crash_at is None:
        return "--recover-after needs a crash to recover from (--crash-fraction, --crash-at)"
    if args.crash_super_at is not None and not args.super_peers:
        return "--crash-super-fraction/--crash-super-at need super peers (not --no-super-peers)"
    if args.workers < 1:
        return f"--workers {args.workers}: give at least one"
    if args.leave_fraction > 0 and args.churn == 0:
        return "--leave-fraction is a share of --churn, which is 0"
    return None


def run_sim(args: argparse.Namespace) -> int:
    problem = impossible(args)
    if problem is not None:
        print(f"overlay sim: {problem}", file=sys.stderr)
        return 2
    try:
        scenario = scenario_from(args)
    except ValueError as error:
        print(f"overlay sim: {error}", file=sys.stderr)
        return 2
    if args.view:
        return replay(scenario, args)
    stderr = Console(stderr=True)
    if stderr.is_terminal:
        summary = simulate_in_sight(scenario, args.workers, stderr)
    else:
        summary = simulate(scenario, args.workers)  # nobody to show a progress bar
    if args.json:
        print(json.dumps(summary, sort_keys=True))
    else:
        print_summary(summary, Console())
    return 0


def simulate(
    scenario: Scenario, workers: int, progress: Callable[[float], None] | None = None
) -> dict[str, Any]:
    if workers == 1:
        return run(scenario, progress=progress)
    # One process needs none of the workers' machinery (multiprocessing, pickling).
    from overlay.sim.parallel import run_parallel  # noqa: PLC0415

    summary, _ = run_parallel(scenario, workers, progress=progress)
    return summary


def simulate_in_sight(scenario: Scenario, workers: int, stderr: Console) -> dict[str, Any]:
    """:func:`simulate` with a progress bar on a terminal (loaded only then)."""
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn  # noqa: PLC0415

    with Progress(
        TextColumn("simulating"),
        BarColumn(),
        TextColumn("{task.completed:.0f}/{task.total:.0f} s"),
        TimeElapsedColumn(),
        console=stderr,
        transient=True,
    ) as progress:
        task = progress.add_task("sim", total=scenario.duration)

        def advance(second: float) -> None:
            progress.update(task, completed=second)

        return simulate(scenario, workers, advance)


def replay(scenario: Scenario, args: argparse.Namespace) -> int:
    """``overlay sim --view``: the same live view as a real swarm, fed by the simulator."""
    from overlay.tools.cli_view import replay_sim  # noqa: PLC0415 - the view is loaded on demand

    sim = build(scenario)
    console = Console()
    replay_sim(sim, until=scenario.duration, console=console, step=1.0, pace=args.pace)
    summary = sim.summary()
    if args.json:
        print(json.dumps(summary, sort_keys=True))
    else:
        print_summary(summary, console)
    return 0


def print_summary(summary: dict[str, Any], console: Console) -> None:
    from rich.table import Table  # noqa: PLC0415  (a --json run prints none)

    table = Table(title="overlay summary", show_header=False)
    table.add_column("figure")
    table.add_column("value", justify="right")
    degree = summary["degree"]
    roles = summary.get("roles", {})
    rows = [
        ("peers started", summary["peers"]),
        ("alive", summary["alive"]),
        ("still joining", summary["joining"]),
        ("components", summary["components"]),
        ("largest component", f"{summary['largest_component_fraction']:.1%}"),
        ("degree min / mean / max", f"{degree['min']} / {degree['mean']:.2f} / {degree['max']}"),
        ("clustering", f"{summary['clustering']:.4f}"),
        ("average path length", f"{summary['avg_path_length']:.2f}"),
        ("dangling view entries", summary["dangling_entries"]),
        ("roles (super / weak)", f"{roles.get('super', 0)} / {roles.get('weak', 0)}"),
        ("messages sent", sum(summary["messages"].values())),
    ]
    if summary.get("index_coverage") is not None:
        rows += [
            ("weak peers short of super peers", summary["unattached_weak"]),
            ("index coverage", f"{summary['index_coverage']:.4f}"),
            ("stale index entries", summary["stale_index_entries"]),
            ("role changes", summary["role_changes"]),
        ]
    for key, label in (
        ("sim_seconds", "simulated seconds"),
        ("wall_seconds", "wall seconds"),
        ("messages_per_wall_second", "delivered messages / wall s"),
    ):
        if key in summary:
            rows.append((label, f"{summary[key]:,.1f}"))
    for label, value in rows:
        table.add_row(label, str(value))
    console.print(table)
