"""The ``overlay`` command.  Each group of subcommands lives in its own module and
registers itself here, so the simulator, the network runtime and search stay apart."""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Callable, Sequence
from importlib import metadata

from rich.console import Console
from rich.logging import RichHandler

from overlay.compiled import BUILD
from overlay.net.client import set_client_security
from overlay.net.options import announce_plaintext
from overlay.net.secure import PLAINTEXT
from overlay.protocol.identity import Address

COMMAND_MODULES = (
    "overlay.tools.cli_sim",
    "overlay.tools.cli_net",
    "overlay.tools.cli_view",
    "overlay.tools.cli_search",
)
"""Modules with a ``register(subparsers)`` function; a missing one is skipped."""

Command = Callable[[argparse.Namespace], int]


def address_argument(text: str) -> Address:
    """argparse type for ``HOST:PORT``: a bad one is a usage error, not a traceback."""
    try:
        return Address.parse(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def _version() -> str:
    try:
        return metadata.version("overlay")
    except metadata.PackageNotFoundError:  # run from a checkout that was never installed
        return "unknown"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="overlay",
        description="An unstructured peer-to-peer overlay with super peers.",
    )
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more logging")
    parser.add_argument(
        "--version",
        action="version",
        version=f"overlay {_version()}, {BUILD.describe()}",
        help="print the version and which build runs (compiled or pure Python, and why)",
    )
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMAND_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as error:
            if error.name != name:
                raise
            continue
        module.register(subparsers)
    return parser


def argv_command(argv: Sequence[str] | None) -> str:
    words = [word for word in (sys.argv[1:] if argv is None else argv) if not word.startswith("-")]
    return words[0] if words else "overlay"


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    level = logging.WARNING - 10 * args.verbose
    logging.basicConfig(
        level=max(level, logging.DEBUG),
        format="%(message)s",
        # Logs go to stderr: stdout carries --json output that scripts parse.
        handlers=[RichHandler(console=Console(stderr=True), show_path=False)],
    )
    command: Command = args.run
    # Every run decides for this process's clients (stats, listings), so a caller that
    # runs commands in-process (the tests) never inherits an earlier run's --plaintext.
    plaintext = announce_plaintext(args, argv_command(argv))
    set_client_security(PLAINTEXT if plaintext else None)
    try:
        return command(args)
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
