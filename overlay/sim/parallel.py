"""A scenario run over several worker processes, with the very same result as one.

The peers are split over ``workers`` processes by index (peer i runs in worker
i mod workers; worker 0 also runs the bootstrap), each a
:class:`~overlay.sim.simulator.Simulator` with a :class:`~overlay.sim.simulator.Shard`.
The synchronisation is conservative, with the link latency L (the fewest ticks any
message takes) as lookahead: the run advances in windows [t, t + L), in which every
worker runs its own events alone, since nothing another worker sends in the window
can land before t + L. Every link has that same latency (jitter only adds to it), so
a lookahead per pair of workers would be the same L: the window cannot be wider.

At the end of a window each worker sends every other one, over a pipe of their own,
one frame (:mod:`overlay.sim.exchange`): its messages for that worker's peers and
the earliest tick at which it has anything to do. Every worker then knows the
earliest tick of the whole run and starts its next window there, so stretches with
no event anywhere are skipped, all workers agreeing without asking anyone. This
process only tells the workers how far to run (one simulated second at a time, for
the progress bar) and collects the results: it is not on the path of a window.
Frames are sent from a thread of each worker, so that two workers sending each other
more than a pipe holds do not wait on each other forever.

Why the result does not depend on the number of workers (the simulator's docstring
has the rest): each peer's randomness is its own; a tick's events run in an order
set by who caused them, not by who delivered them; the scenario's schedule and
choices are replicated in every worker, and what one of its actions must know of
the whole run it asks for with :meth:`~overlay.sim.simulator.Simulator.gather`, which
the workers answer among themselves; the summary is computed here from every
worker's snapshots, in the order the peers were started.
"""

from __future__ import annotations

import math
import multiprocessing
import pickle
import queue
import resource
import threading
import time
from collections.abc import Callable
from multiprocessing.connection import Connection
from typing import Any

import attrs

from overlay.collector import few_collections
from overlay.core.peer import PeerSnapshot
from overlay.protocol.identity import Address, PeerId
from overlay.sim.exchange import Decoder, Encoder, dumps
from overlay.sim.scenario import Scenario, build
from overlay.sim.simulator import (
    TICKS_PER_SECOND,
    Shard,
    Simulator,
    for_summary,
    latency_ticks,
)
from overlay.sim.topology import summarize

SNAPSHOT_CHUNK = 5_000
"""Snapshots per message at the end: bounds what a worker holds pickled at once."""
NEVER = 1 << 62
"""A tick no run reaches: "nothing to do" in a frame."""


class WorkerFailed(RuntimeError):
    """A worker process died or answered out of turn (its exit code in the message)."""


@attrs.define
class Phases:
    """Where one worker's wall time went, in seconds (``time.perf_counter``)."""

    compute: float = 0.0
    """Running its events (``Simulator.run_ticks``), gathers left out."""
    encode: float = 0.0
    """Encoding its messages for the others."""
    decode: float = 0.0
    """Decoding theirs and queueing them."""
    wait: float = 0.0
    """Waiting for the others' frames: the barrier at the end of each window."""
    gather: float = 0.0
    """Answering the scenario's questions to every worker (``Simulator.gather``)."""
    idle: float = 0.0
    """Waiting for this process to say how far to run next."""
    windows: int = 0
    frames_bytes: int = 0
    """What it sent the others, encoded."""


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
    phases: Phases


@attrs.frozen
class Usage:
    """What a parallel run cost: peak resident memory of the coordinating process and of
    each worker (``ru_maxrss``), the workers' CPU time and where their wall time went."""

    parent_rss_bytes: int
    worker_rss_bytes: tuple[int, ...]
    cpu_seconds: float
    phases: tuple[Phases, ...] = ()

    @property
    def peak_rss_bytes(self) -> int:
        """Summed: an upper bound on what the run held at once."""
        return self.parent_rss_bytes + sum(self.worker_rss_bytes)


class _Links:
    """One worker's pipes to every other worker, and the thread that writes to them."""

    def __init__(self, worker: int, pipes: list[Connection | None]) -> None:
        self.worker = worker
        self.pipes = pipes
        """By worker; None at this worker's own place."""
        self._out: queue.SimpleQueue[tuple[Connection, bytes] | None] = queue.SimpleQueue()
        self._writer = threading.Thread(target=self._write, name="sim-frames", daemon=True)
        self._writer.start()

    def _write(self) -> None:
        while (item := self._out.get()) is not None:
            pipe, frame = item
            try:
                pipe.send_bytes(frame)
            except OSError:
                return  # that worker is gone: reading from it will say so

    def exchange(self, frames: list[bytes | None]) -> list[bytes | None]:
        """Send each other worker its frame and receive theirs, worker by worker."""
        for pipe, frame in zip(self.pipes, frames, strict=True):
            if pipe is not None and frame is not None:
                self._out.put((pipe, frame))
        received: list[bytes | None] = []
        for worker, pipe in enumerate(self.pipes):
            if pipe is None:
                received.append(None)
                continue
            try:
                received.append(pipe.recv_bytes())
            except EOFError:
                raise WorkerFailed(f"worker {worker} is gone") from None
        return received

    def close(self) -> None:
        self._out.put(None)
        self._writer.join()


class _Worker:
    """A worker's part of the run: its simulator, the pipes, the window it is at."""

    def __init__(self, scenario: Scenario, shard: Shard, links: _Links) -> None:
        self.sim = build(scenario, shard)
        self.sim.gatherer = self._gather
        self.links = links
        self.phases = Phases()
        self.lookahead = latency_ticks(scenario.latency)
        self.start = 0
        """The first tick of the next window: every worker has the same."""
        codes: dict[Address, int | Address] = {}
        self.encoders = [
            None if worker == shard.worker else Encoder(codes) for worker in range(shard.count)
        ]
        self.decoder = Decoder()

    def _gather(self, items: list[Any]) -> list[Any]:
        began = time.perf_counter()
        mine = pickle.dumps(items, pickle.HIGHEST_PROTOCOL)
        frames = self.links.exchange([mine] * len(self.links.pipes))
        merged: list[Any] = []
        for worker, frame in enumerate(frames):
            merged.extend(items if worker == self.links.worker else pickle.loads(frame or b""))
        self.phases.gather += time.perf_counter() - began
        return merged

    def run_until(self, end: int) -> None:
        """Run windows up to and including tick ``end``."""
        sim = self.sim
        phases = self.phases
        clock = time.perf_counter
        while self.start <= end:
            last = min(self.start + self.lookahead - 1, end)
            began = clock()
            gathered = phases.gather
            sim.run_ticks(last)
            encoding = clock()
            phases.compute += encoding - began - (phases.gather - gathered)
            outgoing = sim.take_outgoing()
            earliest = _next_tick(sim)
            for part in outgoing:
                if part:
                    earliest = min(earliest, *(message[0] for message in part))
            frames: list[bytes | None] = []
            for encoder, part in zip(self.encoders, outgoing, strict=True):
                frames.append(None if encoder is None else encoder.encode(earliest, part))
            phases.frames_bytes += sum(len(frame) for frame in frames if frame is not None)
            waiting = clock()
            phases.encode += waiting - encoding
            received = self.links.exchange(frames)
            decoding = clock()
            phases.wait += decoding - waiting
            for frame in received:
                if frame is not None:
                    their_earliest, messages = self.decoder.decode(frame)
                    earliest = min(earliest, their_earliest)
                    sim.receive_incoming(messages)
            phases.decode += clock() - decoding
            phases.windows += 1
            self.start = max(last + 1, earliest)


def _next_tick(sim: Simulator) -> int:
    """The earliest tick at which ``sim`` has an event or a scenario action."""
    ticks = [tick for tick in (sim.next_event_tick(), sim.next_action_tick()) if tick is not None]
    return min(ticks, default=NEVER)


def _serve(
    conn: Connection, scenario: Scenario, shard: Shard, pipes: list[list[Connection | None]]
) -> None:
    """A worker's whole life: build its part, run as far as told until told to finish,
    then send its snapshots and totals."""
    mine = pipes[shard.worker]
    for row in pipes:  # the ends of other workers' pipes: ours must see them close
        for pipe in row:
            if pipe is not None and all(pipe is not own for own in mine):
                pipe.close()
    links = _Links(shard.worker, mine)
    worker = _Worker(scenario, shard, links)
    with few_collections():
        while True:
            waiting = time.perf_counter()
            command = conn.recv()
            worker.phases.idle += time.perf_counter() - waiting
            if command[0] != "run":
                break
            worker.run_until(command[1])
            conn.send(("done",))
    links.close()
    _send_results(conn, worker.sim, worker.phases)


def _send_results(conn: Connection, sim: Simulator, phases: Phases) -> None:
    numbered = [(sim.nodes[address].number, peer) for address, peer in sim.peers.items()]
    for start in range(0, len(numbered), SNAPSHOT_CHUNK):
        chunk = [
            (number, for_summary(peer)) for number, peer in numbered[start : start + SNAPSHOT_CHUNK]
        ]
        conn.send_bytes(dumps(("snapshots", chunk)))
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
                phases=phases,
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
        context = multiprocessing.get_context("fork")
        # pipes[i][j]: worker i's end of its pipe with worker j.
        pipes: list[list[Connection | None]] = [[None] * workers for _ in range(workers)]
        for i in range(workers):
            for j in range(i + 1, workers):
                pipes[i][j], pipes[j][i] = context.Pipe()
        self._conns: list[Connection] = []
        self._processes: list[Any] = []
        for worker in range(workers):
            mine, theirs = context.Pipe()
            process = context.Process(
                target=_serve,
                args=(theirs, scenario, Shard(worker, workers), pipes),
                name=f"sim-worker-{worker}",
                daemon=True,
            )
            process.start()
            theirs.close()
            self._conns.append(mine)
            self._processes.append(process)
        for row in pipes:
            for pipe in row:
                if pipe is not None:
                    pipe.close()

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
        for conn in self._conns:
            conn.send(("run", end))
        for worker in range(self.workers):
            reply = self._recv(worker)
            if reply != ("done",):
                raise WorkerFailed(f"worker {worker} answered {reply[0]!r} out of turn")

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
        phases=tuple(part.phases for part in totals),
    )
    return summary, usage
