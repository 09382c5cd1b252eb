"""The compiled build and the pure one: which runs, when, and that they run the same.

``overlay/compiled.py`` decides at the first import; these tests check each way to the
decision on trees of their own (the real one is left alone), that pure Python is then
really what gets imported, even with a compiled module beside its source, and, when
this install is compiled, that a seeded run is the same compiled and pure.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

from overlay import compiled
from overlay.compiled import BUILD, COMPILED, MANIFEST, PURE_ENV, decide, manifest_of
from overlay.sim.scenario import WALL_CLOCK_FIELDS

SOURCE_ROOT = compiled.ROOT
EXTENSION = sysconfig.get_config_var("EXT_SUFFIX")


def copy_tree(to: Path, *, with_extensions: bool) -> Path:
    """The two packages (their ``.py`` files, and the compiled ones if asked) under ``to``."""
    skip = ("__pycache__",) if with_extensions else ("__pycache__", "*.so", MANIFEST)
    for package in ("overlay", "search"):
        shutil.copytree(SOURCE_ROOT / package, to / package, ignore=shutil.ignore_patterns(*skip))
    return to


def write_manifest(root: Path) -> None:
    (root / "overlay" / MANIFEST).write_text(json.dumps(manifest_of(root, COMPILED)))


def run_python(root: Path, code: str, **env: str) -> subprocess.CompletedProcess[str]:
    environ = {k: v for k, v in os.environ.items() if k != PURE_ENV}
    environ.update(env, PYTHONPATH=str(root))
    return subprocess.run(
        [sys.executable, "-c", code],
        cwd=root,  # ``-c`` puts the working folder first on the path
        check=False,
        capture_output=True,
        text=True,
        env=environ,
        timeout=120,
    )


# ------------------------------------------------------------------ the decision


def test_a_tree_without_a_manifest_runs_pure(tmp_path: Path) -> None:
    root = copy_tree(tmp_path, with_extensions=False)
    build = decide(root, {})
    assert not build.compiled
    assert "not compiled" in build.reason


def test_a_manifest_matching_the_sources_runs_compiled(tmp_path: Path) -> None:
    root = copy_tree(tmp_path, with_extensions=False)
    write_manifest(root)
    assert decide(root, {}).compiled
    assert decide(root, {PURE_ENV: "0"}).compiled


def test_the_environment_variable_forces_pure_python(tmp_path: Path) -> None:
    root = copy_tree(tmp_path, with_extensions=False)
    write_manifest(root)
    build = decide(root, {PURE_ENV: "1"})
    assert not build.compiled
    assert PURE_ENV in build.reason


def test_an_edited_source_refuses_the_whole_compiled_set(tmp_path: Path) -> None:
    root = copy_tree(tmp_path, with_extensions=False)
    write_manifest(root)
    with (root / "overlay/core/membership.py").open("a") as source:
        source.write("# edited after the build\n")
    build = decide(root, {})
    assert not build.compiled
    assert build.stale == ("overlay.core.membership",)
    assert "overlay.core.membership" in build.reason


def test_a_build_for_another_interpreter_is_refused(tmp_path: Path) -> None:
    root = copy_tree(tmp_path, with_extensions=False)
    manifest = manifest_of(root, COMPILED)
    manifest["interpreter"] = "cpython-27"
    (root / "overlay" / MANIFEST).write_text(json.dumps(manifest))
    build = decide(root, {})
    assert not build.compiled
    assert "cpython-27" in build.reason


# ------------------------------------------------------------------ what gets imported


def test_pure_python_is_imported_past_a_compiled_module_beside_it(tmp_path: Path) -> None:
    """A broken extension module beside a source would fail any import that chose it."""
    root = copy_tree(tmp_path, with_extensions=False)
    for module in COMPILED:
        source = compiled.source_path(root, module)
        source.with_name(source.stem + EXTENSION).write_bytes(b"not a shared object")
    done = run_python(root, "import overlay.core.peer as m; print(m.__file__)")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == str(root / "overlay/core/peer.py")
    assert done.stderr == ""  # an install without a compiled build is not worth a warning


def test_a_stale_build_loads_the_edited_source_with_one_warning_line(tmp_path: Path) -> None:
    root = copy_tree(tmp_path, with_extensions=False)
    write_manifest(root)
    (root / "search" / f"component{EXTENSION}").write_bytes(b"not a shared object")
    with (root / "search/component.py").open("a") as source:
        source.write("EDITED = True\n")
    done = run_python(root, "import search.component as m; print(m.__file__, m.EDITED)")
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == [str(root / "search/component.py"), "True"]
    lines = done.stderr.splitlines()
    assert len(lines) == 1, lines
    assert "running pure Python" in lines[0] and "search.component" in lines[0]


# ------------------------------------------------------------------ the compiled build

needs_compiled = pytest.mark.skipif(
    not BUILD.compiled, reason=f"this install runs {BUILD.describe()}"
)
PROBE = (
    "import overlay.core.peer as p, overlay.core.membership as m\n"
    "from overlay.compiled import BUILD, running_compiled\n"
    "print(BUILD.compiled, running_compiled(p), running_compiled(m), m.__file__)"
)


@needs_compiled
def test_the_compiled_modules_are_the_ones_imported() -> None:
    import overlay.core.membership
    import search.component

    for module in (overlay.core.membership, search.component):
        assert compiled.running_compiled(module), module.__file__


@needs_compiled
def test_an_edit_to_a_copy_of_the_compiled_install_loads_its_source(tmp_path: Path) -> None:
    root = copy_tree(tmp_path, with_extensions=True)
    fresh = run_python(root, PROBE)
    assert fresh.stdout.split()[:3] == ["True", "True", "True"], fresh.stderr
    with (root / "overlay/core/membership.py").open("a") as source:
        source.write("# edited after the build\n")
    edited = run_python(root, PROBE)
    assert edited.stdout.split() == [
        "False",
        "False",
        "False",
        str(root / "overlay/core/membership.py"),
    ], edited.stderr
    assert len(edited.stderr.splitlines()) == 1


def sim_summary(**env: str) -> dict[str, object]:
    code = (
        "from overlay.tools.cli import main; "
        "main(['sim', '--peers', '300', '--seed', '9', '--duration', '15', '--json'])"
    )
    done = run_python(SOURCE_ROOT, code, **env)
    assert done.returncode == 0, done.stderr
    summary: dict[str, object] = json.loads(done.stdout)
    for field in WALL_CLOCK_FIELDS:
        summary.pop(field, None)
    return summary


@needs_compiled
@pytest.mark.slow
def test_a_seeded_run_is_the_same_compiled_and_pure() -> None:
    assert sim_summary() == sim_summary(**{PURE_ENV: "1"})
