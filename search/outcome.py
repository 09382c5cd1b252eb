"""What a search found and what it cost.

Two views, because no single peer sees everything:

* :class:`SearchResult` is what the origin knows: success, the hits, how far away
  and how soon the first one came, how many walkers or rings it used.  The core
  builds it and keeps it for the runtime to read.
* :class:`QueryOutcome` adds what only an observer of the whole network knows:
  the messages the search caused, by kind, the duplicate receptions and the
  distinct peers it visited.  :class:`QueryTracker` collects those in the
  simulator from every ``Send`` (the runtime's effect hook) and every reception
  (the search component's ``observer`` hook).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any, Final

import attrs

from overlay.protocol.identity import Contact, PeerId
from overlay.protocol.messages import (
    Fetch,
    FetchReply,
    Message,
    Query,
    QueryHit,
    SuperQuery,
    WalkCheck,
    WalkStep,
    WalkVerdict,
)
from search.errors import FetchError

FLAT_MODES: Final = ("flood", "walk", "ring")
"""Searches over the flat random graph (any overlay, static topologies included)."""
SUPER_MODES: Final = ("super-flood", "super-walk")
"""Searches over the super layer (peers that run it: ``--super-peers``)."""
MODES: Final = FLAT_MODES + SUPER_MODES
KINDS: Final = ("query", "hit", "check", "fetch")
KIND_OF: Final[dict[type[Message], str]] = {
    Query: "query",
    WalkStep: "query",
    SuperQuery: "query",
    QueryHit: "hit",
    WalkCheck: "check",
    WalkVerdict: "check",
    Fetch: "fetch",
    FetchReply: "fetch",
}
"""Search messages by the kind an outcome counts them under (walk steps are queries,
a check and its verdict are both checks, as Lv et al. count them)."""


@attrs.frozen
class Hit:
    """One item found: what it is, who holds it, how far and how soon (from the start)."""

    key: str
    name: str | None
    size: int
    holder: Contact
    hops: int
    time: float


@attrs.frozen
class SearchResult:
    """A finished search, as its origin saw it."""

    search_id: str
    mode: str
    criteria: str
    success: bool
    hits: tuple[Hit, ...]
    started: float
    finished: float
    wire_ids: tuple[str, ...]
    """The query ids on the wire: one per ring for the expanding ring, else the search id."""
    walkers: int = 0
    relaunched: int = 0
    rings: tuple[int, ...] = ()

    @property
    def first_hit(self) -> Hit | None:
        return min(self.hits, key=lambda hit: hit.time) if self.hits else None


@attrs.frozen
class FetchResult:
    """A finished fetch: the verified value, or the typed error saying why not."""

    request_id: str
    key: str
    holder: Contact
    value: bytes | None
    error: FetchError | None

    def value_or_raise(self) -> bytes:
        if self.error is not None:
            raise self.error
        assert self.value is not None
        return self.value


@attrs.frozen
class QueryOutcome:
    """One query's result and its cost over the whole network."""

    result: SearchResult
    messages: dict[str, int]
    """Messages sent, by kind (:data:`KINDS`), lost ones included: they cost all the same."""
    duplicates: int
    """Receptions of a query id by a peer that had already seen it."""
    visited: tuple[PeerId, ...]
    """Distinct peers that received the query (the origin included), in id order."""
    fetch: FetchResult | None = None

    @property
    def success(self) -> bool:
        return self.result.success

    def to_json(self, name: Callable[[Contact], Any] = str) -> dict[str, Any]:
        """A plain dict for ``--json``; ``name`` renders peers (the static mode: node ids)."""
        result = self.result
        first = result.first_hit
        out: dict[str, Any] = {
            "query_id": result.search_id,
            "mode": result.mode,
            "criteria": result.criteria,
            "success": result.success,
            "hits": [
                {
                    "key": hit.key,
                    "name": hit.name,
                    "size": hit.size,
                    "holder": name(hit.holder),
                    "hops": hit.hops,
                    "time": round(hit.time, 6),
                }
                for hit in result.hits
            ],
            "messages": {
                **{kind: self.messages.get(kind, 0) for kind in KINDS},
                "total": sum(self.messages.values()),
            },
            "duplicates": self.duplicates,
            "visited_count": len(self.visited),
            "first_hit_hops": first.hops if first is not None else None,
            "first_hit_time": round(first.time, 6) if first is not None else None,
            "duration": round(result.finished - result.started, 6),
        }
        if result.mode == "walk":
            out["walkers"] = result.walkers
            out["relaunched"] = result.relaunched
        if result.mode == "ring":
            out["rings"] = list(result.rings)
        if self.fetch is not None:
            out["fetch"] = {
                "holder": name(self.fetch.holder),
                "ok": self.fetch.error is None,
                "error": str(self.fetch.error) if self.fetch.error is not None else None,
            }
        return out


def counted_as(message: Message) -> tuple[str, str] | None:
    """(wire id, kind) a search message counts under; None for any other message.  The
    simulator's tracker and every peer's own tally over TCP count with this one rule."""
    kind = KIND_OF.get(type(message))
    if kind is None:
        return None
    wire_id = wire_id_of(message)
    return None if wire_id is None else (wire_id, kind)


def wire_id_of(message: Message) -> str | None:
    """The query id (or fetch request id) a search message is counted under."""
    query_id = getattr(message, "query_id", None)
    if query_id is None:
        query_id = getattr(message, "request_id", None)
    return query_id if type(query_id) is str else None


@attrs.define
class _Tally:
    messages: dict[str, int] = attrs.field(factory=dict)
    visited: dict[PeerId, None] = attrs.field(factory=dict)
    duplicates: int = 0


class QueryTracker:
    """Counts, per wire id, the messages sent and the peers reached, across all peers.

    Plug :meth:`on_message` into the runtime's effect hook and :meth:`on_visit` into
    every peer's ``search.observer``; then :meth:`outcome` assembles a
    :class:`QueryOutcome` from a finished :class:`SearchResult`.
    """

    def __init__(self) -> None:
        self._tallies: dict[str, _Tally] = {}

    def _tally(self, wire_id: str) -> _Tally:
        tally = self._tallies.get(wire_id)
        if tally is None:
            tally = self._tallies[wire_id] = _Tally()
        return tally

    def on_message(self, message: Message) -> None:
        counted = counted_as(message)
        if counted is None:
            return
        wire_id, kind = counted
        messages = self._tally(wire_id).messages
        messages[kind] = messages.get(kind, 0) + 1

    def on_visit(self, wire_id: str, peer: PeerId, duplicate: bool) -> None:
        tally = self._tally(wire_id)
        if duplicate:
            tally.duplicates += 1
        tally.visited[peer] = None

    def forget(self, wire_ids: Iterable[str]) -> None:
        for wire_id in wire_ids:
            self._tallies.pop(wire_id, None)

    def outcome(
        self,
        result: SearchResult,
        *,
        extra_ids: Iterable[str] = (),
        fetch: FetchResult | None = None,
        forget: bool = True,
    ) -> QueryOutcome:
        """Sum the tallies of the search's wire ids (and ``extra_ids``, e.g. a fetch)."""
        messages: dict[str, int] = dict.fromkeys(KINDS, 0)
        visited: dict[PeerId, None] = {}
        duplicates = 0
        for wire_id in (*result.wire_ids, *extra_ids):
            tally = self._tallies.pop(wire_id, None) if forget else self._tallies.get(wire_id)
            if tally is None:
                continue
            for kind, count in tally.messages.items():
                messages[kind] = messages.get(kind, 0) + count
            visited.update(tally.visited)
            duplicates += tally.duplicates
        return QueryOutcome(
            result=result,
            messages=messages,
            duplicates=duplicates,
            visited=tuple(sorted(visited)),
            fetch=fetch,
        )
