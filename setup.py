"""The build hook: compile the core's hot modules with mypyc when a C compiler is at hand.

``pip install .`` and ``pip install -e .`` run this.  The modules named in
``overlay/compiled.py`` (``COMPILED``) are translated to C by mypyc (it ships with
mypy) and compiled into extension modules beside their ``.py`` files, with a
manifest of their sources' SHA-256 (``overlay/compiled.json``) that the package checks
at import.  Anything that stops the compiled build (no C compiler, ``CC=/bin/false``,
mypyc refusing the code, ``OVERLAY_PURE_PYTHON=1`` at install) installs pure Python
instead, with one line saying why: a failed compile never fails the install.
"""

from __future__ import annotations

import importlib.util
import json
import os
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

from setuptools import Distribution, setup
from setuptools.command.build_ext import build_ext

HERE = Path(__file__).resolve().parent
GROUP = "overlay.native"
"""The compiled modules' shared library (``overlay/native__mypyc.*.so``): inside the
package, so an editable install finds it where it finds the package."""


def _loader() -> ModuleType:
    """``overlay/compiled.py`` itself, without importing the package (its dependencies
    need not be in the build environment)."""
    spec = importlib.util.spec_from_file_location("_overlay_compiled", HERE / "overlay/compiled.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def say(line: str) -> None:
    print(f"overlay: {line}", file=sys.stderr, flush=True)


class CompiledCore(Distribution):
    """A distribution with extension modules, decided late: ``build_ext`` always runs
    (and the wheel is tagged for this interpreter), and only there does mypyc run."""

    def has_ext_modules(self) -> bool:
        return True


class BuildCompiledOrPure(build_ext):
    """``build_ext`` for the modules mypyc translates, or for none when it cannot."""

    def finalize_options(self) -> None:
        # The extensions exist only once mypyc has translated the modules, and
        # setuptools prepares each one here: translate first.
        self.distribution.ext_modules = self._translate()
        super().finalize_options()

    def _translate(self) -> list[Any]:
        loader = _loader()
        pure = os.environ.get(loader.PURE_ENV, "")
        if pure not in ("", "0"):
            say(f"{loader.PURE_ENV}={pure}: installing pure Python")
            return []
        paths = [
            str(loader.source_path(HERE, module).relative_to(HERE)) for module in loader.COMPILED
        ]
        try:
            from mypyc.build import mypycify  # noqa: PLC0415  (only the build needs mypy)

            return list(mypycify(paths, opt_level="3", group_name=GROUP))
        except (Exception, SystemExit) as error:  # any failure falls back
            self._fall_back("mypyc could not translate the core", error)
            return []

    def run(self) -> None:
        if not self.extensions:
            return
        try:
            super().run()
        except (Exception, SystemExit) as error:  # any failure falls back
            self._remove_outputs()
            self.extensions = []
            self._fall_back("could not compile the core", error)
            return
        loader = _loader()
        manifest = json.dumps(loader.manifest_of(HERE, loader.COMPILED), indent=1, sort_keys=True)
        for folder in self._package_folders():
            (folder / loader.MANIFEST).write_text(manifest + "\n")
        say(f"compiled {len(loader.COMPILED)} modules with mypyc")

    @staticmethod
    def _fall_back(what: str, error: BaseException) -> None:
        # A failed compiler command's message is the whole command line: keep its start.
        last = (str(error).strip().splitlines() or [""])[-1]
        last = last if len(last) <= 100 else last[:97] + "..."
        say(f"{what} ({type(error).__name__}: {last}): installing pure Python")

    def _package_folders(self) -> list[Path]:
        """Where the ``overlay`` package's files go: the build folder (for a wheel),
        and the source tree too for an editable install."""
        folders = [Path(self.build_lib) / "overlay"]
        if self.inplace:
            folders.append(HERE / "overlay")
        for folder in folders:
            folder.mkdir(parents=True, exist_ok=True)
        return folders

    def _remove_outputs(self) -> None:
        """A shim without its shared library would fail at import: keep none."""
        for folder in self._package_folders():
            (folder / "compiled.json").unlink(missing_ok=True)
        for ext in self.extensions or []:
            for inplace in (False, True):
                saved, self.inplace = self.inplace, inplace
                try:
                    Path(self.get_ext_fullpath(ext.name)).unlink(missing_ok=True)
                finally:
                    self.inplace = saved

    def get_source_files(self) -> list[str]:
        return []  # the C files are generated at build time; an sdist carries the .py

    def get_outputs(self) -> list[str]:
        return [path for path in super().get_outputs() if Path(path).exists()]


def options() -> dict[str, Any]:
    return {
        "distclass": CompiledCore,
        "cmdclass": {"build_ext": BuildCompiledOrPure},
        "ext_modules": [],
    }


setup(**options())
