"""Which build of the core runs: the one mypyc compiled at install time, or pure Python.

``setup.py`` compiles the hot modules of the core (:data:`COMPILED`) with mypyc when
a C compiler is at hand, and writes a manifest beside them: the SHA-256 of each
module's source as it was compiled.  Python prefers an extension module to the
``.py`` beside it, so without a check an editable install would go on running the
compiled code after its source was edited.  This module decides, once, at the first
import of ``overlay`` or ``search``:

* ``OVERLAY_PURE_PYTHON=1`` in the environment: pure Python, whatever is compiled;
* no manifest (nothing compiled, or the build fell back to pure Python): pure Python;
* a manifest for another interpreter, or any compiled module whose source changed
  since the build: pure Python for the whole set, with one warning line naming the
  changed modules.  The whole set, because compiled modules call each other natively:
  one module loaded from its edited source would still be bypassed by the others;
* otherwise the compiled modules.

When it decides on pure Python, a finder placed first on ``sys.meta_path`` loads
every module of the two packages from its ``.py`` file, past any compiled one.
``overlay --version`` prints the decision, and so do the test suite's header and every
benchmark result (``machine.build``).

It imports nothing from the project (the package roots import it first, before any
layer), and it is never compiled itself.
"""

from __future__ import annotations

import hashlib
import importlib.machinery
import importlib.util
import json
import logging
import os
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import ModuleType
from typing import Final

import attrs

PURE_ENV: Final = "OVERLAY_PURE_PYTHON"
MANIFEST: Final = "compiled.json"
"""The manifest's name, in the ``overlay`` package's folder."""
PACKAGES: Final = ("overlay", "search")

COMPILED: Final[tuple[str, ...]] = (
    "overlay.protocol.effects",
    "overlay.core.admission",
    "overlay.core.membership",
    "overlay.core.peer",
    "overlay.core.standing",
    "overlay.core.supers.context",
    "overlay.core.supers.directory",
    "overlay.core.supers.election",
    "overlay.core.supers.layer",
    "overlay.core.supers.super_side",
    "overlay.core.supers.weak_side",
    "search.component",
    "search.fetch",
    "search.ratelimit",
    "search.superlayer",
)
"""The modules ``setup.py`` compiles: the peer's state machine and what it calls on
every event.  Records with ``attrs.field(...)`` (messages, configs, snapshots) stay
pure Python: mypyc refuses such class bodies at import."""

ROOT: Final = Path(__file__).resolve().parent.parent
"""Where the ``overlay`` and ``search`` folders are: the source tree of an editable
install, or site-packages."""

log = logging.getLogger(__name__)


def source_path(root: Path, module: str) -> Path:
    return root.joinpath(*module.split(".")).with_suffix(".py")


def source_digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def interpreter_tag() -> str:
    """The interpreter a compiled module was built for (``cpython-311``)."""
    return sys.implementation.cache_tag or sys.implementation.name


def manifest_of(root: Path, modules: Sequence[str]) -> dict[str, object]:
    """What ``setup.py`` writes beside a successful build of ``modules`` under ``root``."""
    return {
        "interpreter": interpreter_tag(),
        "modules": {module: source_digest(source_path(root, module)) for module in modules},
    }


@attrs.frozen
class Build:
    """The build this process runs, and why."""

    compiled: bool
    reason: str
    stale: tuple[str, ...] = ()
    """Compiled modules whose source changed since the build (then it runs pure)."""

    def describe(self) -> str:
        return f"{'compiled (mypyc)' if self.compiled else 'pure Python'}: {self.reason}"


def decide(root: Path, environ: Mapping[str, str]) -> Build:
    """Which build to run, from the manifest under ``root`` and the environment."""
    if environ.get(PURE_ENV, "") not in ("", "0"):
        return Build(False, f"{PURE_ENV}={environ[PURE_ENV]} is set")
    manifest = root / "overlay" / MANIFEST
    try:
        recorded = json.loads(manifest.read_text())
        digests = recorded["modules"]
        built_for = recorded["interpreter"]
    except FileNotFoundError:
        return Build(False, "not compiled at install (no C compiler, or the build fell back)")
    except (OSError, ValueError, KeyError, TypeError) as error:
        return Build(False, f"unreadable {manifest}: {error}")
    if built_for != interpreter_tag():
        return Build(False, f"compiled for {built_for}, this is {interpreter_tag()}")
    stale = tuple(
        module
        for module, digest in sorted(digests.items())
        if not source_path(root, module).is_file()
        or source_digest(source_path(root, module)) != digest
    )
    if stale:
        return Build(
            False,
            f"source changed since the build ({', '.join(stale)}); rebuild with `pip install -e .`",
            stale,
        )
    return Build(True, f"{len(digests)} modules compiled at install")


class SourceFinder:
    """Finds the modules of ``overlay`` and ``search`` as ``.py`` source, past any
    compiled extension module beside them.

    A meta path finder needs only ``find_spec``; it does not subclass
    ``importlib.abc.MetaPathFinder``, which would load ``importlib.abc`` and
    ``importlib.resources`` into every swarm worker for nothing (about 0.1 MB)."""

    def find_spec(
        self,
        fullname: str,
        path: Sequence[str] | None,
        target: ModuleType | None = None,
    ) -> importlib.machinery.ModuleSpec | None:
        if path is None or fullname.partition(".")[0] not in PACKAGES:
            return None  # a top-level module, or not ours
        leaf = fullname.rpartition(".")[2]
        for folder in path:
            candidate = Path(folder) / f"{leaf}.py"
            if candidate.is_file():
                return importlib.util.spec_from_file_location(fullname, candidate)
        return None  # a subpackage: the regular finders handle it


def install(root: Path = ROOT, environ: Mapping[str, str] = os.environ) -> Build:
    """Decide, and put :class:`SourceFinder` first unless the compiled build runs."""
    build = decide(root, environ)
    if build.stale:
        log.warning("overlay: running pure Python: %s", build.reason)
    if not build.compiled and not any(type(f) is SourceFinder for f in sys.meta_path):
        sys.meta_path.insert(0, SourceFinder())
    return build


# setup.py loads this file under another name for its lists and manifest; only the
# package's own import installs the finder (and warns).
BUILD: Final = install() if __name__ == "overlay.compiled" else decide(ROOT, os.environ)
"""The build this process runs (decided once, at the first import of the project)."""


def running_compiled(module: ModuleType) -> bool:
    """Whether ``module`` was loaded from a compiled extension."""
    return not (module.__file__ or "").endswith(".py")
