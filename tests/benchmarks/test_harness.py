"""benchmarks/harness.py: the record every result file begins with, and the processes the
scripts start (ready when they say so, always stopped, within bounds)."""

from __future__ import annotations

import datetime
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import trio

from benchmarks.harness import (
    REPO,
    RUN_KEYS,
    Child,
    NotReady,
    Run,
    WorkerStarted,
    as_typed,
    commit_of,
    listening,
    overlay_command,
    recorded_load,
    started,
    worker_command,
)
from overlay.protocol.identity import Address

RESULTS = REPO / "benchmarks" / "results"


def git(*args: str, cwd: Path = REPO) -> str:
    done = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, check=True)
    return done.stdout.strip()


# ---------------------------------------------------------------------- the record


def test_a_record_has_every_key_of_the_schema_first_then_the_figures(tmp_path: Path) -> None:
    run = Run.begin("benchmarks/x.py", ["--peers", "3", "--name", "two words"])
    path = tmp_path / "deeper" / "x.json"  # the folder is made
    written = run.write(path, {"peers": 3, "rows": [1, 2]})
    record = json.loads(path.read_text())
    assert record == written
    assert list(record) == [*RUN_KEYS, "peers", "rows"]
    assert record["command"] == "python benchmarks/x.py --peers 3 --name 'two words'"
    date = datetime.datetime.fromisoformat(record["date"])
    assert date.utcoffset() == datetime.timedelta(0)
    assert abs(datetime.datetime.now(datetime.UTC) - date) < datetime.timedelta(minutes=5)
    commit = record["commit"]
    assert isinstance(commit, str)
    assert commit.removesuffix("-dirty") == git("rev-parse", "HEAD")
    machine = record["machine"]
    assert set(machine) == {"cores", "memory_bytes", "platform", "python", "build"}
    assert isinstance(machine["cores"], int) and machine["cores"] >= 1
    assert isinstance(machine["memory_bytes"], int) and machine["memory_bytes"] > 2**20
    assert isinstance(machine["platform"], str) and isinstance(machine["python"], str)
    assert machine["build"].startswith(("compiled", "pure Python"))
    for key in ("load_before", "load_after"):
        assert len(record[key]) == 3 and all(isinstance(x, float) for x in record[key])
    for key in ("wall_seconds", "cpu_seconds"):
        assert isinstance(record[key], float) and record[key] >= 0


def test_without_argv_the_command_is_this_process_arguments(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(sys, "argv", ["/abs/path/x.py", "--quick"])
    assert Run.begin("-m benchmarks.x", None).command == "python -m benchmarks.x --quick"
    assert Run.begin("benchmarks/x.py", []).command == "python benchmarks/x.py"


def test_load_is_read_when_the_run_begins_and_again_when_it_is_written(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    readings = iter([(1.0, 2.0, 3.0), (4.0, 5.0, 6.0)])
    monkeypatch.setattr(os, "getloadavg", lambda: next(readings))
    run = Run.begin("benchmarks/x.py", [])
    record = run.record({})
    assert record["load_before"] == [1.0, 2.0, 3.0]
    assert record["load_after"] == [4.0, 5.0, 6.0]


def test_wall_and_cpu_seconds_count_the_children_waited_for() -> None:
    run = Run.begin("benchmarks/x.py", [])
    burn = "import time\nt = time.process_time()\nwhile time.process_time() - t < 0.5: pass"
    subprocess.run([sys.executable, "-c", burn], check=True)
    record = run.record({})
    assert record["cpu_seconds"] >= 0.5  # the child's CPU time, not only this process's
    assert record["wall_seconds"] >= 0.5


def test_figures_named_like_the_run_keys_are_refused() -> None:
    run = Run.begin("benchmarks/x.py", [])
    with pytest.raises(ValueError, match="command, wall_seconds"):
        run.record({"command": "overlay swarm", "wall_seconds": 1.0})
    with pytest.raises(ValueError, match="before"):
        run.record({"before": {}}, before={"older": True})


def test_an_earlier_result_goes_last_under_before() -> None:
    record = Run.begin("benchmarks/x.py", []).record({"a": 1}, before={"a": 0})
    assert list(record)[-2:] == ["a", "before"] and record["before"] == {"a": 0}
    assert "before" not in Run.begin("benchmarks/x.py", []).record({"a": 1})


@pytest.fixture
def checkout(tmp_path: Path) -> Iterator[Path]:
    repo = tmp_path / "repo"
    (repo / "benchmarks" / "results").mkdir(parents=True)
    (repo / "code.py").write_text("x = 1\n")
    (repo / "benchmarks" / "results" / "r.json").write_text("{}\n")
    git("init", "-q", cwd=repo)
    git("add", ".", cwd=repo)
    git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "one", cwd=repo)
    yield repo


def test_the_commit_is_dirty_when_code_changed_not_when_results_did(checkout: Path) -> None:
    head = git("rev-parse", "HEAD", cwd=checkout)
    assert commit_of(checkout) == head
    (checkout / "benchmarks" / "results" / "r.json").write_text('{"again": 1}\n')
    (checkout / "scratch.txt").write_text("untracked\n")
    assert commit_of(checkout) == head  # a run's own output, and an untracked file
    (checkout / "code.py").write_text("x = 2\n")
    assert commit_of(checkout) == f"{head}-dirty"


def test_outside_a_checkout_there_is_no_commit(tmp_path: Path) -> None:
    assert commit_of(tmp_path) is None


def test_the_load_of_every_result_file_reads_whatever_its_age() -> None:
    """Every result file in the repository that recorded a load (under whichever of the
    names scripts used before the harness) reads as three numbers before and/or after."""
    found = 0
    for path in sorted(RESULTS.glob("*.json")):
        record = json.loads(path.read_text())
        for load in recorded_load(record):
            if load is not None:
                assert len(load) == 3 and all(isinstance(x, float) for x in load), path.name
                found += 1
    assert found >= 10  # most files recorded one


@pytest.mark.parametrize(
    ("record", "expected"),
    [
        ({"load_before": [1.0] * 3, "load_after": [2.0] * 3}, ([1.0] * 3, [2.0] * 3)),
        (
            {"machine": {"load_average_before": [1.0] * 3, "load_average_after": [2.0] * 3}},
            ([1.0] * 3, [2.0] * 3),
        ),
        (
            {"meta": {"load_average_before": [1.0] * 3, "load_average_after": [2.0] * 3}},
            ([1.0] * 3, [2.0] * 3),
        ),
        ({"load_average_before_after": [[1.0] * 3, [2.0] * 3]}, ([1.0] * 3, [2.0] * 3)),
        (
            {"machine": {"load_average_at_start": [1.0] * 3, "load_average_at_end": [2.0] * 3}},
            ([1.0] * 3, [2.0] * 3),
        ),
        ({"machine": {"load_average_at_end": [2.0] * 3}}, (None, [2.0] * 3)),
        ({"load_average": [2.0] * 3}, (None, [2.0] * 3)),
        ({"peers": 3}, (None, None)),
    ],
)
def test_the_load_reads_under_each_name_it_had(
    record: dict[str, Any], expected: tuple[Any, Any]
) -> None:
    assert recorded_load(record) == expected


# ---------------------------------------------------------------------- commands


def test_commands_run_this_interpreter_and_are_recorded_as_typed() -> None:
    swarm = overlay_command("swarm", "--peers", "3")
    assert swarm[:3] == [sys.executable, "-m", "overlay.tools.cli"]
    assert as_typed(swarm) == "overlay swarm --peers 3"
    assert as_typed(worker_command("--count", "0")) == (
        "python -m overlay.net.swarm.worker --count 0"
    )
    assert as_typed(["sh", "-c", "a b"]) == "sh -c 'a b'"


def test_ready_lines_are_recognized() -> None:
    peer = listening("peer")("peer 0f3a listening on 127.0.0.1:4000\n")
    assert peer is not None and peer.id == "0f3a" and peer.address == Address("127.0.0.1", 4000)
    swarm = listening("bootstrap")("bootstrap listening on 127.0.0.1:9")
    assert swarm is not None and swarm.id is None and swarm.address.port == 9
    assert listening("bootstrap")("peer 0f3a listening on 127.0.0.1:4000") is None
    assert listening("peer")("INFO dialled peer 0f3a listening on 127.0.0.1:4000") is None
    worker = WorkerStarted()
    assert worker('{"peer": "127.0.0.1:5000", "id": "ab"}') is None
    assert worker("not json: a stray print") is None
    assert worker('{"ready": 1}') == [Address("127.0.0.1", 5000)]


# ---------------------------------------------------------------------- processes


IGNORES_SIGTERM = (
    "import signal, time\nsignal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
    "print('ready')\ntime.sleep(60)"
)


def python(code: str) -> list[str]:
    return [sys.executable, "-c", code]


def ready_line(line: str) -> str | None:
    return line if line.startswith("ready") else None


def gone(pid: int) -> bool:
    """Ended (a zombie waiting for its reaper counts: it runs nothing and holds nothing)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return True
    return state in ("Z", "X")


async def test_the_block_begins_at_the_ready_line_and_ends_with_the_child_stopped() -> None:
    code = "import sys, time\nprint('starting')\ntime.sleep(0.3)\nprint('ready 42')\ntime.sleep(60)"
    async with started(python(code), ready_line) as child:
        assert child.ready == "ready 42"
        assert child.process.returncode is None
    assert child.process.returncode == -signal.SIGTERM
    assert child.stdout == b"starting\nready 42\n"


async def test_a_child_that_ignores_sigterm_is_killed_after_the_grace() -> None:
    async with started(python(IGNORES_SIGTERM), ready_line, grace=1.0) as child:
        began = time.monotonic()
    assert child.process.returncode == -signal.SIGKILL
    assert 1.0 <= time.monotonic() - began < 10.0


async def test_a_stopped_child_is_continued_so_that_it_acts_on_its_stop_signal() -> None:
    async with started(python("import time\nprint('ready')\ntime.sleep(60)"), ready_line) as child:
        child.process.send_signal(signal.SIGSTOP)  # as failure_detection stalls its victims
        began = time.monotonic()
    assert child.process.returncode == -signal.SIGTERM  # not left for SIGKILL after the grace
    assert time.monotonic() - began < 10.0


async def test_stop_by_eof_closes_its_input_and_keeps_its_last_words() -> None:
    code = (
        "import sys\nprint('ready')\nfor line in sys.stdin: print('got', line.strip())\n"
        "print('bye')"
    )
    async with started(python(code), ready_line, stop="eof") as child:
        await child.send("one", "two")
    assert child.process.returncode == 0
    assert child.stdout == b"ready\ngot one\ngot two\nbye\n"


async def test_the_ready_line_may_come_on_stderr() -> None:
    code = "import sys, time\nprint('ready on stderr', file=sys.stderr)\ntime.sleep(60)"
    async with started(python(code), ready_line, ready_on="stderr") as child:
        assert child.ready == "ready on stderr"
        assert "ready on stderr" in child.stderr_tail


async def test_a_child_that_exits_before_ready_is_not_ready_with_its_stderr() -> None:
    code = "import sys\nprint('no such option', file=sys.stderr)\nsys.exit(2)"
    with pytest.raises(NotReady, match=r"exited with 2.*no such option"):
        async with started(python(code), ready_line):
            raise AssertionError("never entered")


async def test_a_child_that_never_gets_ready_times_out_and_is_stopped() -> None:
    pids: list[int] = []

    def note_pid(line: str) -> None:
        pids.append(int(line))

    code = "import os, time\nprint(os.getpid())\ntime.sleep(60)"
    began = time.monotonic()
    with pytest.raises(NotReady, match=r"not ready after 0\.5 s"):
        async with started(python(code), note_pid, timeout=0.5):
            raise AssertionError("never entered")
    assert time.monotonic() - began < 10.0
    assert pids and gone(pids[0])


async def test_an_error_in_the_block_stops_the_child_and_comes_out_as_itself() -> None:
    child: Child[str] | None = None
    with pytest.raises(KeyError):  # not wrapped in the nursery's exception group
        async with started(
            python("import time\nprint('ready')\ntime.sleep(60)"), ready_line
        ) as child:
            raise KeyError("boom")
    assert child is not None and child.process.returncode == -signal.SIGTERM


async def test_a_cancelled_block_still_stops_the_child() -> None:
    # Cancelled once the child is up (not after a fixed 0.2 s, which a busy machine's
    # interpreter start-up outlasted: the block was cancelled before it had a child).
    child: Child[str] | None = None
    with trio.CancelScope() as scope:
        async with started(python(IGNORES_SIGTERM), ready_line, grace=0.5) as child:
            scope.cancel()
            await trio.sleep_forever()
    assert child is not None and child.process.returncode == -signal.SIGKILL


async def test_what_the_child_left_in_its_group_is_killed_too() -> None:
    """A grandchild holding the child's pipes would keep the block waiting for the end of
    its output, and live on; it is killed with the child's process group."""
    code = (
        "import subprocess, sys, time\n"
        "g = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)'])\n"
        "print('ready', g.pid)\ntime.sleep(60)"
    )
    began = time.monotonic()
    async with started(python(code), ready_line) as child:
        grandchild = int(child.ready.split()[1])
    assert time.monotonic() - began < 10.0
    for _ in range(100):  # killed at once; its reaper may take a moment
        if gone(grandchild):
            break
        await trio.sleep(0.05)
    assert gone(grandchild)


async def test_the_overlay_commands_start_and_say_they_are_ready() -> None:
    """The real entry points: a bootstrap (its address on stdout) and a swarm worker with
    no peer (its ``{"ready": 0}``), each stopped the way the scripts stop them."""
    bootstrap = overlay_command("bootstrap", "--port", "0")
    async with started(bootstrap, listening("bootstrap"), stop=signal.SIGINT) as boot:
        assert boot.ready.id and boot.ready.address.port > 0
        worker = worker_command("--bootstrap", str(boot.ready.address), "--count", "0")
        async with started(worker, WorkerStarted(), stop="eof") as idle:
            assert idle.ready == []
        assert idle.process.returncode == 0
    assert boot.process.returncode == 0
