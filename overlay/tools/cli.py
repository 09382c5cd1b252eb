"""The ``overlay`` command.  Each group of subcommands lives in its own module and
registers itself here, so the simulator, the network runtime and search stay apart.

Only the module of the command asked for is imported (:data:`COMMANDS`): ``overlay sim``
never loads the TCP runtime (trio, the Noise handshake, cryptography), whose import
would otherwise be a fixed share of every simulation's cost.  A run that names no known
command (``overlay --help``, a typo) registers every module, so help and errors list
them all as before."""

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
from overlay.net.options import announce_plaintext
from overlay.protocol.identity import Address

COMMANDS: dict[str, str] = {
    "sim": "overlay.tools.cli_sim",
    "bootstrap": "overlay.tools.cli_net",
    "peer": "overlay.tools.cli_net",
    "swarm": "overlay.tools.cli_net",
    "view": "overlay.tools.cli_view",
    "members": "overlay.tools.cli_view",
    "publish": "overlay.tools.cli_search",
    "search": "overlay.tools.cli_search",
    "fetch": "overlay.tools.cli_search",
}
"""Each command and the module whose ``register(subparsers)`` adds it (a module may add
several); a missing module is skipped.  Help lists the commands in this order."""
COMMAND_MODULES = tuple(dict.fromkeys(COMMANDS.values()))
CLIENT_MODULE = "overlay.net.client"

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


class _PrintVersion(argparse.Action):
    """``--version``: one line, as it is (argparse's own version action wraps its text
    to the terminal's width, which split the pure-Python build's longer reason)."""

    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: argparse.Namespace,
        values: object,
        option_string: str | None = None,
    ) -> None:
        print(f"overlay {_version()}, {BUILD.describe()}")
        parser.exit()


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The parser, with only ``command``'s module registered when it is a known command
    (see :data:`COMMANDS`), with every module's otherwise."""
    parser = argparse.ArgumentParser(
        prog="overlay",
        description="An unstructured peer-to-peer overlay with super peers.",
    )
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more logging")
    parser.add_argument(
        "--version",
        action=_PrintVersion,
        nargs=0,
        help="print the version and which build runs (compiled or pure Python, and why)",
    )
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    chosen = COMMANDS.get(command or "")
    for name in COMMAND_MODULES if chosen is None else (chosen,):
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
    parser = build_parser(argv_command(argv))
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
    # A process that never loaded the client module has nothing to reset: its default
    # is the secure client's, and importing it would load the TCP runtime for nothing.
    plaintext = announce_plaintext(args, argv_command(argv))
    if plaintext or CLIENT_MODULE in sys.modules:
        from overlay.net.client import set_client_security  # noqa: PLC0415
        from overlay.net.secure import PLAINTEXT  # noqa: PLC0415

        set_client_security(PLAINTEXT if plaintext else None)
    try:
        return command(args)
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
