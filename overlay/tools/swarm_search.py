"""The searches of ``overlay swarm``'s main job, and the table that reports them.

Once the swarm has settled (:func:`settled`), every seeded item is searched for by each
mode (flood and walk over the random graph; super-flood and super-walk over the super
layer when it runs) from one peer that does not hold it, drawn from the swarm's seed.
Each search's cost is read afterwards from every peer's own tally
(:mod:`overlay.net.search_tally`): messages per query network-wide, with the meaning
``overlay sim query`` gives them.  The table has one row per mode: searches and
successes, messages per query (query / hit / check), hops and time to the first hit.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import Any, Final

import attrs
import networkx as nx
import trio
from rich.console import Console
from rich.table import Table

from overlay.core.peer import PeerSnapshot
from overlay.net.search_tally import gather
from overlay.protocol.errors import OverlayError
from overlay.protocol.identity import Address
from overlay.protocol.messages import ClientSearchResult
from overlay.sim.topology import graph_of, super_layer_figures
from overlay.tools.cli_search import search_via
from search.outcome import FLAT_MODES, KINDS, SUPER_MODES

SEARCH_MODES: Final = ("flood", "walk")
"""The flat searches the main job compares (the expanding ring is a flood in steps)."""
SEARCH_TIMEOUT: Final = 30.0
SEARCHES_AT_ONCE: Final = 4
MIN_COVERAGE: Final = 0.999
"""Index coverage at which the super layer counts as settled."""

assert set(SEARCH_MODES) <= set(FLAT_MODES)


def settled(shots: Sequence[PeerSnapshot], expected: int, layered: bool) -> bool:
    """Has the overlay settled enough to search it?  Every one of ``expected`` peers
    answered and joined, one component; with the super layer, super peers elected,
    every weak peer attached to its k super peers and the index covering what the weak
    peers hold."""
    if len(shots) < expected or not all(shot.joined for shot in shots):
        return False
    graph = graph_of(list(shots))
    if graph.number_of_nodes() == 0 or not nx.is_connected(graph):
        return False
    if not layered:
        return True
    if not any(shot.role == "super" for shot in shots):
        return False
    figures = super_layer_figures(list(shots), {shot.id for shot in shots})
    coverage = figures["index_coverage"]
    return figures["unattached_weak"] == 0 and coverage is not None and coverage >= MIN_COVERAGE


@attrs.frozen
class PlannedSearch:
    item: int
    key: str
    mode: str
    origin: Address


def plan_searches(
    keys: Sequence[str],
    holders: Sequence[Sequence[int]],
    addresses: Sequence[Address],
    modes: Sequence[str],
    seed: int,
) -> list[PlannedSearch]:
    """For each item, one origin that does not hold it (peer i = the i-th started),
    searching by every mode: the modes are compared from the same place."""
    rng = random.Random(f"swarm searches {seed}")
    planned = []
    for item, key in enumerate(keys):
        held = set(holders[item]) if item < len(holders) else set()
        candidates = [a for i, a in enumerate(addresses) if i not in held] or list(addresses)
        if not candidates:
            break
        origin = rng.choice(candidates)
        planned += [PlannedSearch(item, key, mode, origin) for mode in modes]
    return planned


def modes_for(layered: bool) -> tuple[str, ...]:
    return SEARCH_MODES + (SUPER_MODES if layered else ())


async def run_searches(
    planned: Sequence[PlannedSearch], everyone: Sequence[Address]
) -> list[dict[str, Any]]:
    """Run the planned searches (a few at once), then read every peer's tally of them."""
    results: list[ClientSearchResult | str] = [""] * len(planned)
    limiter = trio.CapacityLimiter(SEARCHES_AT_ONCE)

    async def one(index: int) -> None:
        search = planned[index]
        async with limiter:
            try:
                results[index] = await search_via(
                    search.origin, search.mode, key=search.key, timeout=SEARCH_TIMEOUT
                )
            except OverlayError as error:
                results[index] = str(error)

    async with trio.open_nursery() as nursery:
        for index in range(len(planned)):
            nursery.start_soon(one, index)
    wire_ids = [w for r in results if isinstance(r, ClientSearchResult) for w in r.wire_ids]
    network = await gather(everyone, wire_ids) if wire_ids else None
    records = []
    for search, result in zip(planned, results, strict=True):
        record: dict[str, Any] = {
            "item": search.item,
            "key": search.key,
            "mode": search.mode,
            "origin": str(search.origin),
        }
        if isinstance(result, str) or result.error:
            record.update(success=False, error=result if isinstance(result, str) else result.error)
        else:
            record.update(
                success=result.success,
                hits=len(result.hits),
                first_hit_hops=result.first_hit_hops,
                first_hit_time=result.first_hit_time,
                messages=network.messages(result.wire_ids) if network is not None else None,
                error=None,
            )
        records.append(record)
    return records


def by_mode(records: Sequence[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Per mode: searches, successes, mean messages per query by kind, hops and time to
    the first hit (means over the successful searches)."""
    table: dict[str, dict[str, Any]] = {}
    for mode in dict.fromkeys(r["mode"] for r in records):
        rows = [r for r in records if r["mode"] == mode]
        found = [r for r in rows if r["success"]]
        counted = [r["messages"] for r in rows if r.get("messages") is not None]
        per_query = {kind: _mean([m[kind] for m in counted]) for kind in (*KINDS, "total")}
        table[mode] = {
            "searches": len(rows),
            "found": len(found),
            "success_rate": len(found) / len(rows) if rows else 0.0,
            "messages_per_query": per_query if counted else None,
            "first_hit_hops": _mean([r["first_hit_hops"] for r in found]),
            "first_hit_seconds": _mean([r["first_hit_time"] for r in found]),
        }
    return table


def _mean(values: Sequence[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return sum(present) / len(present) if present else None


def print_search_table(search: dict[str, Any], console: Console) -> None:
    table = Table(title="searches (each item once per mode, from a peer that lacks it)")
    for column in ("mode", "found", "msgs/query", "query/hit/check", "hops", "1st hit ms"):
        table.add_column(column, justify="left" if column == "mode" else "right")
    for mode, row in search["modes"].items():
        per_query = row["messages_per_query"]
        hops = row["first_hit_hops"]
        seconds = row["first_hit_seconds"]
        table.add_row(
            mode,
            f"{row['found']} / {row['searches']}",
            f"{per_query['total']:.1f}" if per_query else "-",
            (
                f"{per_query['query']:.1f}/{per_query['hit']:.1f}/{per_query['check']:.1f}"
                if per_query
                else "-"
            ),
            f"{hops:.1f}" if hops is not None else "-",
            f"{1000 * seconds:.1f}" if seconds is not None else "-",
        )
    console.print(table)
    console.print(
        "msgs/query: what every peer says it sent for the search, added up (as `overlay "
        "sim query` counts); a hit message is one hop of a hit on its way back; hops and "
        "1st hit: to the first hit, means over the searches that found it",
        style="dim",
        highlight=False,
    )
