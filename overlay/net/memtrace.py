"""Memory tracing of a swarm worker, for finding growth in soaks (off by default).

With ``OVERLAY_TRACEMALLOC=DIR`` in its environment, a swarm worker
(:func:`overlay.net.swarm.worker.worker_main`) starts :mod:`tracemalloc` and, every
``OVERLAY_TRACEMALLOC_PERIOD`` seconds (default 30), writes
``DIR/worker-PID.txt``: the allocations that grew most since the first dump
(grouped by the line that allocated them), the largest ones now, and the count of
live objects of the commonest types.  It is a diagnostic for ``benchmarks/soak.py``
runs, not part of the protocol; tracing slows the worker down severalfold.
"""

from __future__ import annotations

import collections
import ctypes
import gc
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Final

import trio

if TYPE_CHECKING:
    import tracemalloc

ENV_DIR: Final = "OVERLAY_TRACEMALLOC"
ENV_PERIOD: Final = "OVERLAY_TRACEMALLOC_PERIOD"
ENV_FRAMES: Final = "OVERLAY_TRACEMALLOC_FRAMES"
TOP: Final = 40


def rss_bytes(pid: int | str = "self") -> int | None:
    """Resident memory of process ``pid`` (default: this one) from ``/proc``, or None
    when the process is gone or there is no ``/proc`` (not Linux)."""
    try:
        with open(f"/proc/{pid}/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError):
        return None
    return None


def release_free_memory() -> bool:
    """Ask the C allocator to give the pages it holds free back to the system
    (glibc's ``malloc_trim(0)``); False where there is no such call (not glibc).

    glibc returns freed memory to the system only from the top of its heap; what is
    freed in the middle (OpenSSL's cipher and hash contexts of ended links and
    handshakes, freed among longer-lived blocks) stays resident.  Calling this after a
    burst of connections shows how much of a process's RSS is such free space."""
    try:
        libc = ctypes.CDLL(None)
        trim = libc.malloc_trim
    except (OSError, AttributeError):
        return False
    trim.argtypes = [ctypes.c_size_t]
    trim.restype = ctypes.c_int
    return bool(trim(0))


TRIM_PERIOD: Final = 30.0
"""Seconds between two :func:`release_free_memory` calls of a swarm worker."""
ENV_TRIM_PERIOD: Final = "OVERLAY_MALLOC_TRIM_PERIOD"
"""Overrides :data:`TRIM_PERIOD` in a worker's environment; 0 turns the trimming off
(to measure what it does, as ``docs/results/trust-overhead.md`` reports)."""


def trim_period() -> float:
    """The worker's trimming period (:data:`ENV_TRIM_PERIOD`, else :data:`TRIM_PERIOD`)."""
    return float(os.environ.get(ENV_TRIM_PERIOD, TRIM_PERIOD))


async def release_free_memory_periodically(period: float = TRIM_PERIOD) -> None:
    """Give the allocator's free pages back every ``period`` seconds, until cancelled.

    A worker under churn opens and ends links all the time, each with some kilobytes
    of OpenSSL state (handshake hashes, cipher contexts) allocated among longer-lived
    blocks: what they free stays resident, and a soak saw the workers' RSS creep up
    though every table in them is bounded.  One call costs a few milliseconds for a
    heap of a hundred megabytes."""
    for _ in range(10_000_000):  # bounded; cancelled with the worker
        await trio.sleep(period)
        release_free_memory()


def requested() -> Path | None:
    """The dump directory named in the environment, if tracing was asked for."""
    value = os.environ.get(ENV_DIR)
    return Path(value) if value else None


def start() -> None:
    import tracemalloc  # noqa: PLC0415  (lazy, worker memory: with pickle ~450 KiB)

    # One frame by default: deeper tracebacks slow a busy worker down several times.
    tracemalloc.start(int(os.environ.get(ENV_FRAMES, "1")))


PROJECT: Final = ("overlay.", "search.", "bootstrap.")


def _type_counts(limit: int) -> list[tuple[str, int]]:
    """The commonest types, then every type of this project's (a peer that outlives its
    crash shows as one Peer, Node, Membership... too many)."""
    counts: collections.Counter[str] = collections.Counter(
        f"{type(obj).__module__}.{type(obj).__qualname__}" for obj in gc.get_objects()
    )
    ours = sorted((name, n) for name, n in counts.items() if name.startswith(PROJECT))
    return [*counts.most_common(limit), ("--- project types", 0), *ours]


def dump(path: Path, first: tracemalloc.Snapshot | None, began: float, extra: str = "") -> None:
    """Write one report to ``path`` (replacing it)."""
    import tracemalloc  # noqa: PLC0415  (lazy: worker memory, see start())

    snapshot = tracemalloc.take_snapshot().filter_traces(
        (tracemalloc.Filter(False, tracemalloc.__file__),)
    )
    current, peak = tracemalloc.get_traced_memory()
    lines = [
        f"t={time.monotonic() - began:.1f}s traced={current / 2**20:.1f}MB "
        f"peak={peak / 2**20:.1f}MB {extra}",
        "",
    ]
    if first is not None:
        lines.append("== growth since the first dump (by line) ==")
        lines.extend(str(diff) for diff in snapshot.compare_to(first, "lineno")[:TOP])
        lines.append("")
        lines.append("== growth since the first dump (by traceback, top 10) ==")
        for diff in snapshot.compare_to(first, "traceback")[:10]:
            lines.append(f"{diff.size_diff / 1024:+.1f} KiB, {diff.count_diff:+d} blocks")
            lines.extend("    " + line for line in diff.traceback.format())
        lines.append("")
    lines.append("== largest now (by line) ==")
    for stat in snapshot.statistics("lineno")[:TOP]:
        lines.append(str(stat))
    lines.append("")
    lines.append("== live objects by type ==")
    lines.extend(f"{count:9d} {name}" for name, count in _type_counts(TOP))
    path.write_text("\n".join(lines) + "\n")
    history = path.with_suffix(".series")
    with history.open("a") as out:
        out.write(f"{time.monotonic() - began:.1f} {current} {extra}\n")


async def dump_periodically(directory: Path, describe: Callable[[], str]) -> None:
    """Dump every period until cancelled; the first dump is the baseline of the diffs."""
    import tracemalloc  # noqa: PLC0415  (lazy: worker memory, see start())

    directory.mkdir(parents=True, exist_ok=True)
    period = float(os.environ.get(ENV_PERIOD, "30"))
    path = directory / f"worker-{os.getpid()}.txt"
    began = time.monotonic()
    first: tracemalloc.Snapshot | None = None
    for _ in range(10_000_000):  # bounded; cancelled with the worker
        await trio.sleep(period)
        dump(path, first, began, describe())
        if first is None:
            first = tracemalloc.take_snapshot().filter_traces(
                (tracemalloc.Filter(False, tracemalloc.__file__),)
            )
