"""What every benchmark script shares: how it starts the project's processes, and how it
records a run.

**Processes.**  :func:`overlay_command` is the ``overlay`` command (``overlay swarm ...``),
:func:`worker_command` a worker process of ``overlay swarm`` for the scripts that stand in
for the swarm's parent, :func:`module_command` any other module of this repository.
:func:`started` runs one of them: it waits until the process prints the line that says it
is ready (:func:`listening` for "... listening on HOST:PORT", :class:`WorkerStarted` for a
worker's ``{"ready": n}``), keeps what it prints, and at the end of the block always stops
it: the process's own graceful stop (a signal, or the end of its input), then SIGKILL
after a bounded wait.  :func:`as_typed` is how a command is written into a result.

**Results.**  :meth:`Run.begin` at the start of a run and :meth:`Run.write` at its end
give every result file the same first keys (:data:`RUN_KEYS`):

* ``command``: the command line that reproduces the run;
* ``date``: when it began (UTC, ISO 8601);
* ``commit``: ``git rev-parse HEAD`` of this checkout, with ``-dirty`` when tracked files
  outside ``benchmarks/results`` have changes (see :func:`commit_of`);
* ``machine``: ``cores``, ``memory_bytes``, ``platform`` and ``python``;
* ``load_before`` / ``load_after``: ``os.getloadavg()`` when the run began and ended;
* ``wall_seconds``; ``cpu_seconds``: this process's CPU time and that of its children
  (those it has waited for: every process :func:`started` ran);

then the script's own figures, and the earlier run under ``before`` where a script keeps
one.  Files written before this module recorded the load under other names;
:func:`recorded_load` reads both.
"""

from __future__ import annotations

import contextlib
import datetime
import json
import os
import platform
import re
import shlex
import signal
import statistics
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, Final, Generic, Literal, TypeVar

import attrs
import trio

from overlay.compiled import BUILD
from overlay.protocol.identity import Address

REPO: Final = Path(__file__).resolve().parents[1]
T = TypeVar("T")

# ---------------------------------------------------------------------- commands


def module_command(module: str, *args: str) -> list[str]:
    """``python -m MODULE ARGS``, with this very interpreter: a ``python`` found on PATH may
    be one without the project installed."""
    return [sys.executable, "-m", module, *args]


def overlay_command(*args: str) -> list[str]:
    """The ``overlay`` command, through its module: the console script is on PATH only in
    an activated environment."""
    return module_command("overlay.tools.cli", *args)


def swarm_command(peers: int, seed: int, *extra: str) -> list[str]:
    """``overlay swarm`` as the attack and fault benchmarks run it: ``peers`` peers seeded
    with ``seed``, any free port, an hour's duration (the script stops it), its JSON
    summary, no searches of its own; then ``extra``."""
    return overlay_command(
        "swarm", "--peers", str(peers), "--port", "0", "--seed", str(seed),
        "--duration", "3600", "--json", "--no-searches", *extra,
    )  # fmt: skip


def worker_command(*args: str) -> list[str]:
    """A worker process of ``overlay swarm`` (:mod:`overlay.net.swarm.worker`), for the
    scripts that take the swarm parent's place."""
    return module_command("overlay.net.swarm.worker", *args)


def delivery_figures(seconds: Sequence[float], digits: int) -> dict[str, float | None]:
    """The median and the longest of delivery times, rounded to ``digits`` (None when
    nothing was delivered): the same two figures for the overlay's floods and for
    libp2p's messages, so that they sit side by side."""
    if not seconds:
        return {"delivery_median_seconds": None, "delivery_max_seconds": None}
    return {
        "delivery_median_seconds": round(statistics.median(seconds), digits),
        "delivery_max_seconds": round(max(seconds), digits),
    }


def as_typed(command: Sequence[str]) -> str:
    """A command as a person types it (``overlay swarm ...``, ``python -m ...``): the
    interpreter's path says nothing about the run and differs between machines."""
    words = list(command)
    if words[:3] == overlay_command():
        return shlex.join(["overlay", *words[3:]])
    if words[:1] == [sys.executable]:
        return shlex.join(["python", *words[1:]])
    return shlex.join(words)


# ---------------------------------------------------------------------- readiness


@attrs.frozen
class Listening:
    """What an ``overlay`` process's "WHO [ID] listening on HOST:PORT" line says."""

    id: str | None
    address: Address


def listening(who: str) -> Callable[[str], Listening | None]:
    """Readiness of a process that prints "WHO [ID] listening on HOST:PORT" once it
    accepts connections: ``overlay peer`` and ``overlay bootstrap`` on standard output
    (``peer`` / ``bootstrap`` with their id), ``overlay swarm`` on standard error
    (``bootstrap``, no id).  Anchored at the start of the line, so that a log line that
    merely mentions an address is not taken for it."""
    pattern = re.compile(rf"{re.escape(who)}(?: (\S+))? listening on (\S+)")

    def match(line: str) -> Listening | None:
        found = pattern.fullmatch(line.strip())
        if found is None:
            return None
        return Listening(found.group(1), Address.parse(found.group(2)))

    return match


class WorkerStarted:
    """Readiness of a swarm worker: a ``{"peer": "HOST:PORT"}`` line for each peer it
    started, then ``{"ready": n}``; ready with the peers' addresses."""

    def __init__(self) -> None:
        self.peers: list[Address] = []

    def __call__(self, line: str) -> list[Address] | None:
        try:
            record = json.loads(line)
        except ValueError:
            return None  # not one of its records (a stray print): not for us
        if not isinstance(record, dict):
            return None
        if "peer" in record:
            self.peers.append(Address.parse(record["peer"]))
        return list(self.peers) if "ready" in record else None


# ---------------------------------------------------------------------- processes

StopBy = signal.Signals | Literal["eof"]
"""How a process is asked to stop: a signal, or ``"eof"``, the end of its standard input
(how swarm workers, and ``overlay swarm --control``, are told to leave)."""

READY_TIMEOUT: Final = 60.0
KILL_WAIT: Final = 10.0
"""After SIGKILL: only a process stuck in the kernel outlives this, and then we give up
on it rather than hang the benchmark."""
DRAIN_WAIT: Final = 5.0
"""After the process ended: time for its last output to be read."""
STDERR_TAIL: Final = 64 * 1024
"""Standard error is kept to this many last bytes (what an error message needs); a long
run's warnings would otherwise grow without bound.  Standard output is kept whole: it
carries the summaries scripts parse."""
MAX_LINE: Final = 1 << 20
"""The longest line read for readiness; a longer one is dropped, not buffered for ever."""


class NotReady(RuntimeError):
    """A started process ended, or timed out, before printing its ready line."""


class Child(Generic[T]):
    """A process run by :func:`started`: its ready value, its output, and its stop."""

    def __init__(
        self,
        process: trio.Process,
        command: Sequence[str],
        ready: Callable[[str], T | None],
        stop_by: StopBy,
        grace: float,
    ) -> None:
        self.process = process
        self.command = list(command)
        self.stop_by: StopBy = stop_by
        self.grace = grace
        self._test = ready
        self._ready: tuple[T] | None = None  # a tuple: a ready value may itself be falsy
        self._ready_or_ended = trio.Event()
        self._out = bytearray()
        self._err = bytearray()
        self._ended = {"stdout": trio.Event(), "stderr": trio.Event()}

    @property
    def ready(self) -> T:
        """What the ready line said (the value the readiness test returned)."""
        if self._ready is None:
            raise NotReady(f"{as_typed(self.command)} is not ready")
        return self._ready[0]

    @property
    def stdout(self) -> bytes:
        """Everything it wrote to standard output so far."""
        return bytes(self._out)

    @property
    def stderr_tail(self) -> str:
        """The last :data:`STDERR_TAIL` bytes of its standard error."""
        return bytes(self._err).decode(errors="replace")

    async def send(self, *lines: str) -> None:
        """Lines to its standard input (``overlay swarm --control``'s control lines), in
        one write: lines meant to act at once arrive together."""
        assert self.process.stdin is not None
        await self.process.stdin.send_all("".join(f"{line}\n" for line in lines).encode())

    async def stop(self) -> int | None:
        """Stop it, within bounds, whatever it does: ask (:attr:`stop_by`), wait up to
        :attr:`grace` seconds, then SIGKILL; also kill what it left in its process group,
        and let its last output be read.  Shielded from cancellation, so that it runs
        even when the block is left by a timeout or Ctrl-C.  Its exit code (None only if
        even SIGKILL did not end it)."""
        process = self.process
        with trio.CancelScope(shield=True):
            if process.returncode is None:
                await self._ask_to_stop()
                with trio.move_on_after(self.grace):
                    await process.wait()
            if process.returncode is None:
                self._kill_group()
                with trio.move_on_after(KILL_WAIT):
                    await process.wait()
            # Whatever it started in its own group and left behind (it was started in a
            # new session, so the group is its own) would keep our pipes open and live on.
            # The group's id is not handed out again while a member lives, nor (pids being
            # allocated in turn) in the moment since we reaped it: this reaches the strays.
            self._kill_group()
            with trio.move_on_after(DRAIN_WAIT):
                for ended in self._ended.values():
                    await ended.wait()
        return process.returncode

    async def _ask_to_stop(self) -> None:
        if self.stop_by == "eof":
            await self._close_stdin()
            return
        with contextlib.suppress(ProcessLookupError):
            self.process.send_signal(self.stop_by)
            # A stopped process (SIGSTOP, as failure_detection does to its victims) acts
            # on no signal but SIGKILL until it is continued.
            self.process.send_signal(signal.SIGCONT)

    async def _close_stdin(self) -> None:
        if self.process.stdin is not None:
            with contextlib.suppress(trio.BrokenResourceError, trio.ClosedResourceError, OSError):
                await self.process.stdin.aclose()

    def _kill_group(self) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.process.pid, signal.SIGKILL)

    async def _follow(self, name: Literal["stdout", "stderr"], watch: bool) -> None:
        """Read one of its streams to the end; on the ``watch`` one, test each line for
        readiness until one passes."""
        stream = self.process.stdout if name == "stdout" else self.process.stderr
        assert stream is not None
        keep = self._out if name == "stdout" else self._err
        pending = b""
        try:
            while chunk := await stream.receive_some(65536):
                keep += chunk
                if name == "stderr" and len(keep) > STDERR_TAIL:
                    del keep[: len(keep) - STDERR_TAIL]
                if not watch or self._ready is not None:
                    continue
                pending += chunk
                *lines, pending = pending.split(b"\n")
                for line in lines:
                    value = self._test(line.decode(errors="replace"))
                    if value is not None:
                        self._ready = (value,)
                        self._ready_or_ended.set()
                        break
                if len(pending) > MAX_LINE:
                    pending = b""
        finally:
            self._ended[name].set()
            if watch:
                self._ready_or_ended.set()  # no ready line will come now: stop waiting

    async def _until_ready(self, timeout: float) -> None:
        with trio.move_on_after(timeout):
            await self._ready_or_ended.wait()
        if self._ready is not None:
            return
        with trio.move_on_after(1.0):  # it ended its output: let it exit, for the message
            await self.process.wait()
        how = (
            f"exited with {self.process.returncode}"
            if self.process.returncode is not None
            else f"was not ready after {timeout:g} s"
        )
        raise NotReady(
            f"{as_typed(self.command)} {how}; its stderr ends: {self.stderr_tail[-2000:]}"
        )


@contextlib.asynccontextmanager
async def started(
    command: Sequence[str],
    ready: Callable[[str], T | None],
    *,
    ready_on: Literal["stdout", "stderr"] = "stdout",
    timeout: float = READY_TIMEOUT,
    stop: StopBy = signal.SIGTERM,
    grace: float = 30.0,
    env: Mapping[str, str] | None = None,
) -> AsyncIterator[Child[T]]:
    """Run ``command`` for the block: entered once a line it prints on ``ready_on`` passes
    ``ready`` (within ``timeout`` seconds, else :class:`NotReady`), left once it has
    stopped (:meth:`Child.stop`: ``stop``, then SIGKILL after ``grace`` seconds).

    The process runs in the repository (so ``-m benchmarks...`` resolves), in a session
    of its own (a Ctrl-C at the terminal reaches the benchmark only, which then stops its
    processes in order, letting them print their summaries), with unbuffered Python
    output (a ready line must not wait in a buffer) and ``env`` added to the environment.
    Both output streams are read all along, so the process never blocks on a full pipe.
    """
    process = await trio.lowlevel.open_process(
        list(command),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        cwd=str(REPO),
        env={**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})},
        start_new_session=True,
    )
    child = Child(process, command, ready, stop, grace)
    try:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(child._follow, "stdout", ready_on == "stdout")
            nursery.start_soon(child._follow, "stderr", ready_on == "stderr")
            try:
                await child._until_ready(timeout)
                yield child
            finally:
                await child.stop()
                nursery.cancel_scope.cancel()  # readers still waiting on a pipe kept open
    except BaseExceptionGroup as group:
        # The nursery wraps what the block raised in a group; whoever used the block
        # expects the exception itself (a NotReady, a TooSlowError, a KeyboardInterrupt).
        if len(group.exceptions) == 1:
            raise group.exceptions[0] from None
        raise
    finally:
        with trio.CancelScope(shield=True):
            await child._close_stdin()
            for stream in (process.stdout, process.stderr):
                if stream is not None:
                    await stream.aclose()


# ---------------------------------------------------------------------- results

RUN_KEYS: Final = (
    "command",
    "date",
    "commit",
    "machine",
    "load_before",
    "load_after",
    "wall_seconds",
    "cpu_seconds",
)
"""The keys every result file begins with, in this order (see the module docstring)."""
RESULTS_DIR: Final = "benchmarks/results"


def commit_of(repo: Path = REPO) -> str | None:
    """``git rev-parse HEAD``, with ``-dirty`` when tracked files have uncommitted changes
    (as ``git describe --dirty`` marks it); None outside a git checkout.  Changes under
    ``benchmarks/results`` do not count: they are what runs write, and a run after a run
    would otherwise always look dirty.  Untracked files do not count either (as for
    ``git describe``): scratch files change no code that ran."""
    git = ["git", "-C", str(repo)]
    try:
        head = subprocess.run(
            [*git, "rev-parse", "HEAD"], capture_output=True, text=True, check=True, timeout=30
        ).stdout.strip()
        changes = subprocess.run(
            [*git, "status", "--porcelain", "--untracked-files=no", "--", ".",
             f":(exclude){RESULTS_DIR}"],
            capture_output=True, text=True, check=True, timeout=30,
        ).stdout  # fmt: skip
    except (OSError, subprocess.SubprocessError):
        return None
    return f"{head}-dirty" if changes.strip() else head


def machine() -> dict[str, Any]:
    """The machine a run ran on."""
    try:
        memory: int | None = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError):
        memory = None
    return {
        "cores": os.cpu_count(),
        "memory_bytes": memory,
        "platform": platform.platform(),
        "python": platform.python_version(),
        # compiled by mypyc or pure Python, and why: the one changes the speed a lot
        "build": BUILD.describe(),
    }


def load_average() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def cpu_seconds() -> float:
    """CPU time of this process and of the children it has waited for (and theirs)."""
    times = os.times()
    return times.user + times.system + times.children_user + times.children_system


@attrs.frozen
class Run:
    """One run of a benchmark script, from :meth:`begin` to :meth:`write`."""

    command: str
    date: str
    commit: str | None
    machine: dict[str, Any]
    load_before: list[float]
    began: float
    cpu_began: float

    @classmethod
    def begin(cls, script: str, argv: Sequence[str] | None) -> Run:
        """Begin a run of ``script`` (how it is run after ``python``: ``benchmarks/x.py``
        or ``-m benchmarks.x``) with ``argv`` (None: this process's own arguments)."""
        words = list(sys.argv[1:] if argv is None else argv)
        return cls(
            command=" ".join(["python", script, shlex.join(words)]).rstrip(),
            date=datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
            commit=commit_of(),
            machine=machine(),
            load_before=load_average(),
            began=time.monotonic(),
            cpu_began=cpu_seconds(),
        )

    def record(self, figures: Mapping[str, Any], *, before: Any = None) -> dict[str, Any]:
        """The run's keys, then ``figures``, then ``before`` (an earlier result) if given.
        A figure named like a run key is refused: it would be lost, or pass for the run's."""
        taken = set(RUN_KEYS) | ({"before"} if before is not None else set())
        clash = sorted(taken & set(figures))
        if clash:
            raise ValueError(f"figures named like the run's own keys: {', '.join(clash)}")
        record: dict[str, Any] = {
            "command": self.command,
            "date": self.date,
            "commit": self.commit,
            "machine": self.machine,
            "load_before": self.load_before,
            "load_after": load_average(),
            "wall_seconds": round(time.monotonic() - self.began, 2),
            "cpu_seconds": round(cpu_seconds() - self.cpu_began, 2),
            **figures,
        }
        if before is not None:
            record["before"] = before
        return record

    def write(
        self, path: Path, figures: Mapping[str, Any], *, before: Any = None
    ) -> dict[str, Any]:
        """Write :meth:`record` to ``path`` (:func:`write_json`); return it."""
        record = self.record(figures, before=before)
        write_json(path, record)
        return record


def write_json(path: Path, record: Mapping[str, Any]) -> None:
    """A result file as every script writes it: JSON, indented, keys in the order given
    (the run's first), its folder made if need be."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")


def read_result(path: Path) -> Any:
    """An earlier result file's content (to keep under ``before``), or None if absent."""
    return json.loads(path.read_text(encoding="utf-8")) if path.exists() else None


_OLD_LOAD_KEYS: Final = {
    "load_average_before": "before",
    "load_average_at_start": "before",
    "load_average_after": "after",
    "load_average_at_end": "after",
    "load_average": "after",  # soak.py: read once, at the end
}


def recorded_load(record: Mapping[str, Any]) -> tuple[list[float] | None, list[float] | None]:
    """The load average before and after a run, from a result of any age: ``load_before``
    / ``load_after`` now; before this module, ``load_average_before`` / ``_after`` (at the
    top, in ``machine`` or in ``meta``), ``load_average_before_after`` (a pair),
    ``machine.load_average_at_start`` / ``_at_end``, ``load_average_at_end`` or
    ``load_average`` (end only).  None where the run did not record it."""
    if "load_before" in record or "load_after" in record:
        return record.get("load_before"), record.get("load_after")
    found: dict[str, list[float] | None] = {"before": None, "after": None}
    places = [record, *(record[k] for k in ("machine", "meta") if isinstance(record.get(k), dict))]
    for place in places:
        pair = place.get("load_average_before_after")
        if isinstance(pair, list) and len(pair) == 2:
            found["before"], found["after"] = list(pair[0]), list(pair[1])
        for key, when in _OLD_LOAD_KEYS.items():
            if isinstance(place.get(key), list):
                found[when] = list(place[key])
    return found["before"], found["after"]
