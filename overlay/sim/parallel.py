"""A scenario run over several worker processes, with the very same result as one.

The peers are split over ``workers`` processes by index (peer i runs in worker
i mod workers; worker 0 also runs the bootstrap), each a
:class:`~overlay.sim.simulator.Simulator` with a :class:`~overlay.sim.simulator.Shard`.
The synchronisation is conservative, with the link latency L (the fewest ticks any
message takes) as lookahead: the run advances in windows [t, t + L), in which every
worker runs its own events alone, since nothing another worker sends in the window
can land before t + L; at the end of the window the workers' messages for each
other are handed over, through this process, as pickled lists.

Why the result does not depend on the number of workers (the simulator's docstring
has the rest): each peer's randomness is its own; a tick's events run in an order
set by who caused them, not by who delivered them; the scenario's schedule and
choices are replicated in every worker, and what one of its actions must know of
the whole run it asks for with :meth:`~overlay.sim.simulator.Simulator.gather`, which
this process answers once every worker has asked; the summary is computed here from
every worker's snapshots, in the order the peers were started.
"""

from __future__ import annotations

import io
import math
import multiprocessing
import pickle
import resource
import time
from collections.abc import Callable
from multiprocessing.connection import Connection
from typing import Any

import attrs

from overlay.core.peer import PeerSnapshot
from overlay.protocol.identity import Address, Contact, PeerId
from overlay.sim.scenario import Scenario, build
from overlay.sim.simulator import (
    TICKS_PER_SECOND,
    Outgoing,
    Shard,
    Simulator,
    few_collections,
    for_summary,
    latency_ticks,
)
from overlay.sim.topology import summarize

SNAPSHOT_CHUNK = 5_000
"""Snapshots per message at the end: bounds what a worker holds pickled at once."""

_contacts: dict[PeerId, Contact] = {}
"""In a worker: one Contact per peer for all the messages it received from the
others.  Unpickled as they are, every message would bring fresh copies of the
contacts it names, and the views that keep them would hold thousands of copies of
each (a peer keeps about 40 contacts): memory the run of one process does not
spend.  It holds one entry per peer of the run that ever wrote to this worker."""


def _contact(peer_id: PeerId, host: str, port: int) -> Contact:
    known = _contacts.get(peer_id)
    if known is None or known.address.host != host or known.address.port != port:
        known = _contacts[peer_id] = Contact(peer_id, Address(host, port))
    return known


class _Pickler(pickle.Pickler):
    """Pickles a Contact as a call to :func:`_contact`, which gives the receiving
    worker's one copy of it."""

    def reducer_override(self, obj: Any) -> Any:
        if type(obj) is Contact:
            return _contact, (obj.id, obj.address.host, obj.address.port)
        return NotImplemented


def _dumps(messages: list[Outgoing]) -> bytes:
    buffer = io.BytesIO()
    _Pickler(buffer, pickle.HIGHEST_PROTOCOL).dump(messages)
    return buffer.getvalue()


class WorkerFailed(RuntimeError):
    """A worker process died or answered out of turn (its exit code in the message)."""


@attrs.frozen
class Totals:
    """One worker's counts at the end of a run."""

    delivered: int
    lost: int
    sent: dict[str, int]
    dead: frozenset[PeerId]
    started_peers: int
    peak_rss_bytes: int
    cpu_seconds: float


@attrs.frozen
class Usage:
    """What a parallel run cost: peak resident memory of the coordinating process and of
    each worker (``ru_maxrss``), and the workers' CPU time."""

    parent_rss_bytes: int
    worker_rss_bytes: tuple[int, ...]
    cpu_seconds: float

    @property
    def peak_rss_bytes(self) -> int:
        """Summed: an upper bound on what the run held at once."""
        return self.parent_rss_bytes + sum(self.worker_rss_bytes)


def _serve(conn: Connection, scenario: Scenario, shard: Shard) -> None:
    """A worker's whole life: build its part, run windows until told to finish, then
    send its snapshots and totals."""

    def gather(items: list[Any]) -> list[Any]:
        conn.send(("gather", items))
        merged: list[Any] = conn.recv()
        return merged

    sim = build(scenario, shard)
    sim.gatherer = gather
    with few_collections():
        while True:
            command = conn.recv()
            if command[0] == "run":
                _, end, blobs = command
                for blob in blobs:
                    sim.receive_incoming(pickle.loads(blob))  # from our own workers
                sim.run_ticks(end)
                out = sim.take_outgoing()
                blobs = [_dumps(part) if part else None for part in out]
                conn.send(("done", blobs))
            else:
                break
    _send_results(conn, sim)


def _send_results(conn: Connection, sim: Simulator) -> None:
    numbered = [(sim.nodes[address].number, peer) for address, peer in sim.peers.items()]
    for start in range(0, len(numbered), SNAPSHOT_CHUNK):
        chunk = [
            (number, for_summary(peer)) for number, peer in numbered[start : start + SNAPSHOT_CHUNK]
        ]
        conn.send(("snapshots", chunk))
    usage = resource.getrusage(resource.RUSAGE_SELF)
    conn.send(
        (
            "totals",
            Totals(
                delivered=sim.delivered,
                lost=sim.lost,
                sent=sim.sent,
                dead=frozenset(sim.dead),
                started_peers=sim.started_peers,
                peak_rss_bytes=usage.ru_maxrss * 1024,
                cpu_seconds=usage.ru_utime + usage.ru_stime,
            ),
        )
    )


def shared_ids(shot: PeerSnapshot, ids: dict[PeerId, PeerId]) -> PeerSnapshot:
    """``shot`` naming peers with the strings ``ids`` holds (adding those it lacks).

    Unpickled, every chunk of snapshots brings its own copy of every id it names: at
    100,000 peers, each with 30 passive entries and 6 neighbors of 81 bytes, that was
    about 300 MB in this process, for ids of which there are only 100,000."""

    def shared(names: tuple[PeerId, ...]) -> tuple[PeerId, ...]:
        return tuple([ids.setdefault(name, name) for name in names])

    return attrs.evolve(
        shot,
        id=ids.setdefault(shot.id, shot.id),
        neighbors=shared(shot.neighbors),
        passive=shared(shot.passive),
    )


class ParallelRun:
    """A scenario split over ``workers`` processes, advanced with :meth:`run_until`."""

    def __init__(self, scenario: Scenario, workers: int) -> None:
        if workers < 1:
            raise ValueError(f"workers must be at least 1, got {workers}")
        self.scenario = scenario
        self.workers = workers
        self.tick = 0
        self.lookahead = latency_ticks(scenario.latency)
        context = multiprocessing.get_context("fork")
        self._conns: list[Connection] = []
        self._processes: list[Any] = []
        for worker in range(workers):
            mine, theirs = context.Pipe()
            process = context.Process(
                target=_serve,
                args=(theirs, scenario, Shard(worker, workers)),
                name=f"sim-worker-{worker}",
                daemon=True,
            )
            process.start()
            theirs.close()
            self._conns.append(mine)
            self._processes.append(process)
        self._inbox: list[list[bytes]] = [[] for _ in range(workers)]
        """Pickled messages for each worker, to hand over with its next window."""

    def _recv(self, worker: int) -> Any:
        try:
            return self._conns[worker].recv()
        except EOFError:
            process = self._processes[worker]
            process.join(5)
            raise WorkerFailed(f"worker {worker} died (exit code {process.exitcode})") from None

    def run_until(self, time: float) -> None:
        """Run every worker up to and including simulated time ``time``."""
        end = int(time * TICKS_PER_SECOND + 1e-9)
        while self.tick <= end:
            last = min(self.tick + self.lookahead - 1, end)
            self._window(last)
            self.tick = last + 1

    def _window(self, last: int) -> None:
        for worker, conn in enumerate(self._conns):
            conn.send(("run", last, self._inbox[worker]))
        self._inbox = [[] for _ in range(self.workers)]
        while True:
            replies = [self._recv(worker) for worker in range(self.workers)]
            kinds = {reply[0] for reply in replies}
            if kinds == {"gather"}:
                merged = [item for reply in replies for item in reply[1]]
                for conn in self._conns:
                    conn.send(merged)
                continue
            if kinds != {"done"}:
                raise WorkerFailed(f"workers out of step: {sorted(kinds)}")
            break
        for reply in replies:  # worker by worker: the order receive_incoming sees
            for target, blob in enumerate(reply[1]):
                if blob is not None:
                    self._inbox[target].append(blob)

    def finish(self) -> tuple[list[PeerSnapshot], list[Totals]]:
        """Stop the workers; their peers' snapshots (in the order the peers were
        started) and their totals."""
        for conn in self._conns:
            conn.send(("finish",))
        numbered: list[tuple[int, PeerSnapshot]] = []
        ids: dict[PeerId, PeerId] = {}
        totals: list[Totals] = []
        for worker in range(self.workers):
            while True:
                kind, payload = self._recv(worker)
                if kind == "snapshots":
                    numbered.extend((number, shared_ids(shot, ids)) for number, shot in payload)
                else:
                    totals.append(payload)
                    break
        for process in self._processes:
            process.join()
        numbered.sort(key=lambda pair: pair[0])
        return [snapshot for _, snapshot in numbered], totals

    def close(self) -> None:
        """Stop any worker still running (after an error)."""
        for process in self._processes:
            if process.is_alive():
                process.terminate()
                process.join()


def run_parallel(
    scenario: Scenario,
    workers: int,
    *,
    progress: Callable[[float], None] | None = None,
) -> tuple[dict[str, Any], Usage]:
    """Run a scenario over ``workers`` processes.  Its summary, the same as
    :func:`overlay.sim.scenario.run` returns, but for the wall-clock fields and
    ``workers``; and what it cost."""
    started = time.perf_counter()
    run = ParallelRun(scenario, workers)
    try:
        second = 0.0
        while second < scenario.duration:
            second = min(second + 1, scenario.duration)
            run.run_until(second)
            if progress is not None:
                progress(second)
        wall = time.perf_counter() - started
        snapshots, totals = run.finish()
    finally:
        run.close()
    sent: dict[str, int] = {}
    for part in totals:
        for kind, count in part.sent.items():
            sent[kind] = sent.get(kind, 0) + count
    delivered = sum(part.delivered for part in totals)
    summary = summarize(
        snapshots,
        peers=totals[0].started_peers,
        dead=set().union(*(part.dead for part in totals)),
        messages=dict(sorted(sent.items())),
        seed=scenario.seed,
    )
    summary.update(
        {
            "seed": scenario.seed,
            "sim_seconds": math.floor(scenario.duration * TICKS_PER_SECOND + 1e-9)
            / TICKS_PER_SECOND,
            "wall_seconds": wall,
            "delivered_messages": delivered,
            "lost_messages": sum(part.lost for part in totals),
            "messages_per_wall_second": delivered / wall if wall > 0 else 0.0,
            "workers": workers,
        }
    )
    usage = Usage(
        parent_rss_bytes=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
        worker_rss_bytes=tuple(part.peak_rss_bytes for part in totals),
        cpu_seconds=sum(part.cpu_seconds for part in totals),
    )
    return summary, usage
