"""Sweeps of independent simulations through Dask's distributed scheduler.

A sweep is a list of tasks that share nothing (each builds its own network from its own
seeds) and a function that turns one task into its result.  :func:`run_sweep` submits
them to a Dask cluster and hands the results back **in the order of the tasks**,
whichever worker ran each and in whatever order they finished, so that a sweep gives
the same rows for the same seeds on one machine or on many:

* by default on a local cluster (:class:`Where` with no scheduler): one worker process
  per core, one thread each (the tasks are CPU-bound Python, so threads would only
  contend for the interpreter lock), listening on 127.0.0.1 only, its HTTP port too;
* with ``--scheduler tcp://HOST:PORT``, on a cluster started beforehand (``dask
  scheduler`` and ``dask worker`` processes, on this machine or others; the recipe is
  in docs/sweeps.md).  The scheduler and the workers run the code they import, not the
  client's: before it submits anything the sweep compares a digest of their sources
  (:func:`code_digest`) with its own and refuses to run on a mismatch.

Progress goes through Dask's own event log: a task reports through the
:class:`TaskProgress` it is handed, which in a worker is :class:`EventProgress`
(``Worker.log_event``, carried to the client by the scheduler and delivered to
``Client.subscribe_topic``), and the client draws rich progress bars from those events,
one per running task and one for the sweep.  Nothing but the bars depends on them: a
lost or late event changes no result.

Ctrl-C or SIGTERM stops a sweep with what it has: the results of the finished tasks
come back, the others are cancelled and named (a running task on a remote worker runs
to its end, since Python code cannot be interrupted from outside, and its result is
dropped).

Why Dask rather than Ray: the tasks are a few dozen coarse, independent Python calls
whose results are small lists, which is exactly Dask's ``submit`` / ``as_completed``;
``dask[distributed]`` is Python packages (tornado, cloudpickle, msgpack, psutil...,
about 40 MB) that install from the package index in seconds; its scheduler and workers are plain
processes started by ``dask scheduler`` / ``dask worker``, which is the shape of a
cluster a researcher has (or makes with SSH or a batch system).  Ray brings a native
runtime (a control store, a raylet and an object store per node, its own dashboard)
that this workload would not use.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import re
import signal
import threading
import uuid
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, Final, Generic, Protocol, TypeVar

import attrs
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

T = TypeVar("T")
R = TypeVar("R")

REPO: Final = Path(__file__).resolve().parents[1]
CODE_FOLDERS: Final = ("overlay", "search", "bootstrap", "benchmarks")
"""What a task's result can depend on: the digest covers every Python file here."""
CONNECT_TIMEOUT: Final = 30.0
WORKERS_TIMEOUT: Final = 60.0
"""How long a sweep waits for a remote cluster to have at least one worker."""
SCHEDULER_ADDRESS: Final = re.compile(r"(tcp|tls)://[^\s/]+:\d{1,5}")
INSTALL_HINT: Final = "pip install -e '.[cluster]'"


class SweepError(RuntimeError):
    """The sweep cannot run (no engine, no workers, other code) or a task failed."""


# ---------------------------------------------------------------------- progress


class TaskProgress(Protocol):
    """What a task tells about its own progress, in units of its choosing (queries,
    simulated seconds).  It is for people only: no result may depend on it."""

    def start(self, total: float) -> None:
        """The task begins, with this much work planned (replacing the planner's guess)."""

    def advance(self, amount: float) -> None:
        """This much more work is done."""

    def shrink(self, amount: float) -> None:
        """This much planned work will not run after all (a stop rule ended it early)."""


class NoProgress:
    """Progress nobody watches: tasks run directly (tests, a serial run)."""

    def start(self, total: float) -> None:
        pass

    def advance(self, amount: float) -> None:
        pass

    def shrink(self, amount: float) -> None:
        pass


NO_PROGRESS: Final = NoProgress()

EVENT_KINDS: Final = ("start", "advance", "shrink")


@attrs.frozen
class EventProgress:
    """Progress of task ``index``, sent as ``[index, kind, amount]`` events under
    ``topic`` through the Dask worker that runs it (``Worker.log_event``)."""

    topic: str
    index: int

    def _log(self, kind: str, amount: float) -> None:
        from distributed import get_worker  # noqa: PLC0415  (only ever called in a worker)

        get_worker().log_event(self.topic, [self.index, kind, amount])

    def start(self, total: float) -> None:
        self._log("start", total)

    def advance(self, amount: float) -> None:
        self._log("advance", amount)

    def shrink(self, amount: float) -> None:
        self._log("shrink", amount)


class Bars:
    """Rich progress bars drawn from the tasks' events: one for the sweep, one for each
    running task.  Events arrive on the client's event-loop thread, task completions on
    the caller's; a lock keeps the two apart."""

    def __init__(
        self, progress: Progress, labels: Sequence[str], planned: Sequence[float], unit: str
    ) -> None:
        self.progress = progress
        self.labels = list(labels)
        self.planned = [float(p) for p in planned]
        self.done = [0.0] * len(self.planned)
        self.bars: dict[int, TaskID] = {}
        self.finished: set[int] = set()
        self.lock = threading.Lock()
        self.overall = progress.add_task(f"all {unit}", total=sum(self.planned))

    def on_event(self, event: tuple[float, Any]) -> None:
        """A ``subscribe_topic`` handler: one ``(timestamp, [index, kind, amount])``.
        Anything else is ignored (it can only come from code that is not ours)."""
        message = event[1] if isinstance(event, tuple | list) and len(event) == 2 else None
        if not isinstance(message, list | tuple) or len(message) != 3:
            return
        index, kind, amount = message
        if (
            not isinstance(index, int)
            or not 0 <= index < len(self.planned)
            or kind not in EVENT_KINDS
            or not isinstance(amount, int | float)
        ):
            return
        with self.lock:
            if index in self.finished:
                return  # a late event of a task whose result is already in
            if kind == "start":
                # Also the restart of a task whose worker died: it begins again from 0.
                self.planned[index] = float(amount)
                self.done[index] = 0.0
                if index in self.bars:
                    self.progress.reset(self.bars[index], total=amount)
                else:
                    self.bars[index] = self.progress.add_task(
                        f"  {self.labels[index]}", total=amount
                    )
            elif kind == "advance":
                self.done[index] += amount
            else:
                self.planned[index] = max(self.done[index], self.planned[index] - amount)
            if index in self.bars:
                self.progress.update(
                    self.bars[index], completed=self.done[index], total=self.planned[index]
                )
            self._update_overall()

    def finish(self, index: int) -> None:
        """Task ``index`` returned its result: its bar goes, its work counts as done."""
        with self.lock:
            self.finished.add(index)
            self.done[index] = self.planned[index]
            bar = self.bars.pop(index, None)
            if bar is not None:
                self.progress.remove_task(bar)
            self._update_overall()

    def _update_overall(self) -> None:
        self.progress.update(self.overall, completed=sum(self.done), total=sum(self.planned))


# ---------------------------------------------------------------------- where


@attrs.frozen
class Where:
    """The cluster a sweep runs on: a running scheduler's address, or (None) a local
    cluster of ``workers`` processes (None: one per core)."""

    scheduler: str | None = None
    workers: int | None = None


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options every sweep script takes to say where it runs."""
    parser.add_argument(
        "--scheduler",
        metavar="tcp://HOST:PORT",
        default=None,
        help="run the tasks on the Dask cluster whose scheduler is there (default: a "
        "local cluster); its scheduler and workers must run this checkout's code",
    )
    parser.add_argument(
        "--workers",
        type=int,
        default=None,
        help="worker processes of the local cluster (default: one per core)",
    )


def where_from(args: argparse.Namespace, parser: argparse.ArgumentParser) -> Where:
    """The :class:`Where` the options of :func:`add_arguments` name (``parser.error`` on
    a malformed address, a worker count below 1, or both options at once)."""
    scheduler: str | None = args.scheduler
    workers: int | None = args.workers
    if scheduler is not None and not SCHEDULER_ADDRESS.fullmatch(scheduler):
        parser.error(f"--scheduler must look like tcp://HOST:PORT, not {scheduler!r}")
    if scheduler is not None and workers is not None:
        parser.error("--workers sizes the local cluster; a --scheduler's cluster has its own")
    if workers is not None and workers < 1:
        parser.error("--workers must be at least 1")
    return Where(scheduler, workers)


def code_digest(root: Path = REPO) -> str:
    """SHA-256 over the relative path and content of every ``.py`` file in
    :data:`CODE_FOLDERS` under ``root``: equal digests, same code."""
    digest = hashlib.sha256()
    for folder in CODE_FOLDERS:
        for path in sorted((root / folder).rglob("*.py")):
            digest.update(path.relative_to(root).as_posix().encode() + b"\0")
            digest.update(path.read_bytes() + b"\0")
    return digest.hexdigest()


def _engine() -> Any:
    try:
        import distributed  # noqa: PLC0415  (an optional extra: imported when a sweep runs)
    except ImportError as error:
        raise SweepError(
            f"sweeps run on Dask's distributed scheduler, which is not installed: {INSTALL_HINT}"
        ) from error
    return distributed


@contextlib.contextmanager
def connected(where: Where) -> Iterator[Any]:
    """A ``distributed.Client`` of the cluster ``where`` names, for the block (a local
    cluster is started and, at the end, stopped with its workers)."""
    distributed = _engine()
    if where.scheduler is not None:
        try:
            client = distributed.Client(where.scheduler, timeout=CONNECT_TIMEOUT)
        except OSError as error:
            raise SweepError(f"no Dask scheduler at {where.scheduler}: {error}") from error
        with client:
            yield client
        return
    cluster = distributed.LocalCluster(
        n_workers=where.workers,
        threads_per_worker=1,
        processes=True,
        host="127.0.0.1",
        dashboard_address="127.0.0.1:0",  # loopback only, any free port
    )
    with cluster, distributed.Client(cluster) as client:
        yield client


def check_workers(client: Any, where: Where) -> dict[str, Any]:
    """Wait (bounded) for a worker, check every worker runs this code; describe the cluster."""
    try:
        client.wait_for_workers(1, timeout=WORKERS_TIMEOUT)
    except TimeoutError as error:
        raise SweepError(
            f"the scheduler at {where.scheduler} has no worker after {WORKERS_TIMEOUT:g} s"
        ) from error
    mine = code_digest()
    try:
        # The scheduler unpickles the tasks too (their classes live in benchmarks/).
        theirs: dict[str, str] = {"the scheduler": client.run_on_scheduler(code_digest)}
        theirs.update(client.run(code_digest))
    except Exception as error:  # whatever a process that cannot import us raises
        raise SweepError(
            f"the cluster cannot run this repository's code ({error!r}): start its "
            "scheduler and workers with this checkout on PYTHONPATH "
            "(see docs/sweeps.md)"
        ) from error
    other = sorted(who for who, digest in theirs.items() if digest != mine)
    if other:
        raise SweepError(
            f"{', '.join(other)} run(s) other code than this checkout "
            f"(the digest of {', '.join(CODE_FOLDERS)} differs): the rows could differ"
        )
    threads: dict[str, int] = client.nthreads()
    return {
        "engine": f"dask.distributed {_engine().__version__}",
        "scheduler": where.scheduler or "local cluster",
        "workers": len(threads),
        "threads": sum(threads.values()),
        "code_digest": mine,
    }


# ---------------------------------------------------------------------- the sweep


@attrs.frozen
class Outcome(Generic[R]):
    """A sweep's results, in the order of its tasks (None: the task did not finish)."""

    results: list[R | None]
    cluster: dict[str, Any]
    ran_on: list[str | None]
    """The address of the worker that holds each task's result (the one that ran it);
    ``cluster["tasks_per_worker"]`` counts them."""

    @property
    def unfinished(self) -> list[int]:
        return [index for index, result in enumerate(self.results) if result is None]


def _stop_on_sigterm(_signum: int, _frame: object) -> None:
    raise KeyboardInterrupt  # handled like Ctrl-C: keep what is done


@contextlib.contextmanager
def _sigterm_stops() -> Iterator[None]:
    """SIGTERM raises KeyboardInterrupt for the block (main thread only: elsewhere Python
    cannot take signals, and whoever runs us there stops us by other means)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGTERM, _stop_on_sigterm)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _collect(
    futures: Sequence[Any],
    results: list[Any],
    *,
    labels: Sequence[str],
    bars: Bars,
    console: Console,
    describe: Callable[[Any], str],
) -> None:
    """Fill ``results`` (by task index) as the ``futures`` finish, in whatever order."""
    index_of = {future.key: index for index, future in enumerate(futures)}
    for future in _engine().as_completed(futures):
        index = index_of[future.key]
        try:
            result = future.result()
        except Exception as error:
            raise SweepError(f"task {labels[index]} failed: {error!r}") from error
        if result is None:
            raise SweepError(f"task {labels[index]} returned nothing")
        results[index] = result
        bars.finish(index)
        console.log(f"finished {labels[index]}: {describe(result)}")


def run_sweep(
    tasks: Sequence[T],
    run: Callable[[T, TaskProgress], R],
    *,
    labels: Sequence[str],
    planned: Sequence[float],
    unit: str,
    where: Where,
    console: Console,
    describe: Callable[[R], str] = lambda _result: "done",
) -> Outcome[R]:
    """Run ``run(task, progress)`` for every task on the cluster ``where`` names.

    ``run`` must be importable by name on the workers (a function of a module, not of
    ``__main__``); ``labels`` name the tasks for people, ``planned`` is each task's work
    in ``unit`` for the bars.  The tasks start in their order (the first has the
    highest priority: put the longest first, so the short ones fill in around them).
    ``describe`` makes the one log line printed as each task finishes (the bars are
    drawn only at the end when standard error is a file; these lines show how far it
    got).  A task's result is never None (None marks an unfinished task).  Raises
    :class:`SweepError` if a task raised.
    """
    if getattr(run, "__module__", None) == "__main__":
        raise SweepError(f"{run.__name__} lives in __main__: workers could not import it")
    results: list[R | None] = [None] * len(tasks)
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
    )
    with connected(where) as client:
        cluster = check_workers(client, where)
        token = uuid.uuid4().hex[:12]
        topic = f"sweep-progress-{token}"
        with (
            _sigterm_stops(),
            Progress(*columns, console=console, transient=False) as progress,
        ):
            bars = Bars(progress, labels, planned, unit)
            client.subscribe_topic(topic, bars.on_event)  # before any task can report
            futures = [
                client.submit(
                    run,
                    task,
                    EventProgress(topic, index),
                    key=f"sweep-{token}-{index}",
                    priority=len(tasks) - index,
                    pure=False,
                )
                for index, task in enumerate(tasks)
            ]
            try:
                _collect(
                    futures,
                    results,
                    labels=labels,
                    bars=bars,
                    console=progress.console,
                    describe=describe,
                )
            except KeyboardInterrupt:
                left = [
                    future
                    for future, result in zip(futures, results, strict=True)
                    if result is None
                ]
                console.print(
                    f"[yellow]stopped: keeping the {len(tasks) - len(left)} finished tasks; "
                    f"{len(left)} cancelled[/]"
                )
                client.cancel(left)
            finally:
                client.unsubscribe_topic(topic)
            holders: dict[str, list[str]] = client.who_has(
                [
                    future
                    for future, result in zip(futures, results, strict=True)
                    if result is not None
                ]
            )
    # One holder each, the worker that ran it (Dask copies a result only to a task that
    # reads it, and none does).
    ran_on = [min(holders.get(future.key, []), default=None) for future in futures]
    counts: dict[str, int] = {}
    for worker in ran_on:
        if worker is not None:
            counts[worker] = counts.get(worker, 0) + 1
    return Outcome(results, {**cluster, "tasks_per_worker": dict(sorted(counts.items()))}, ran_on)
