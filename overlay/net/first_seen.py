"""When each peer of a swarm worker first saw each query id: how fast a flood spreads.

``overlay swarm --first-seen DIR`` hands DIR to its workers; each worker hooks one
:class:`FirstSeen` into the search core of every peer it runs (the core's
``observer``, called on every reception of a query or walker and once at the origin
when it starts a search) and, when it leaves, writes what it saw to
``DIR/first-seen-<pid>.json``.  A flood's reach time is then the latest first
sighting of its id over all peers minus the origin's own sighting (the moment the
origin sent it), e.g. in ``benchmarks/live_vs_sim.py``.

The times come from :func:`time.monotonic`, read here in the runtime (the core is
handed no clock for this and stays pure).  On Linux that is ``CLOCK_MONOTONIC``,
one clock for every process of the machine, so sightings in different worker
processes compare directly; trio's own clock would not do, as it adds a random
offset per process.

Bounded: at most ``limit`` sightings are kept per worker; later ones are counted
as ``dropped`` and written along, so a reader knows the record is incomplete.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any, Final

from overlay.protocol.identity import PeerId

DEFAULT_LIMIT: Final = 1_000_000
"""Sightings one worker keeps (a flood of 1,000 peers is 1,000; this is ample)."""
FILE_PREFIX: Final = "first-seen-"


class FirstSeen:
    """The first time each (query id, peer) pair was seen, for one worker's peers."""

    def __init__(self, limit: int = DEFAULT_LIMIT) -> None:
        self.limit = limit
        self.seen: dict[str, dict[PeerId, float]] = {}
        self.count = 0
        self.dropped = 0

    def observe(self, query_id: str, peer: PeerId, duplicate: bool) -> None:
        """The core's observer hook (:data:`search.context.Observer`)."""
        if duplicate:
            return
        by_peer = self.seen.get(query_id)
        if by_peer is not None and peer in by_peer:
            return
        if self.count >= self.limit:
            self.dropped += 1
            return
        if by_peer is None:
            by_peer = self.seen[query_id] = {}
        by_peer[peer] = time.monotonic()
        self.count += 1

    def as_json(self) -> dict[str, Any]:
        return {"clock": "monotonic", "dropped": self.dropped, "seen": self.seen}

    def write(self, directory: Path) -> Path:
        """Write ``DIR/first-seen-<pid>.json`` (atomically: readers never see half)."""
        directory.mkdir(parents=True, exist_ok=True)
        path = directory / f"{FILE_PREFIX}{os.getpid()}.json"
        partial = path.with_suffix(".partial")
        partial.write_text(json.dumps(self.as_json()), encoding="utf-8")
        partial.replace(path)
        return path


def read_first_seen(directory: Path) -> tuple[dict[str, dict[PeerId, float]], int]:
    """Merge every worker's file in ``directory``: sightings by query id, and how many
    sightings the workers dropped (0 when the record is complete)."""
    merged: dict[str, dict[PeerId, float]] = {}
    dropped = 0
    for path in sorted(directory.glob(f"{FILE_PREFIX}*.json")):
        data = json.loads(path.read_text(encoding="utf-8"))
        dropped += int(data.get("dropped", 0))
        for query_id, by_peer in data["seen"].items():
            merged.setdefault(query_id, {}).update(by_peer)
    return merged, dropped
