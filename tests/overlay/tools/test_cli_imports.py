"""``overlay`` imports only the module of the command asked for: ``overlay sim`` runs
without loading the TCP runtime, and every command parses and helps as before."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys

import pytest

from overlay.tools.cli import COMMANDS, build_parser

RUNTIME_ROOTS = ("trio", "cryptography", "noise", "overlay.net.client", "overlay.net.node")

PROBE = """
import json, sys
from overlay.tools.cli import main
code = main(sys.argv[1:])
loaded = sorted(name for name in sys.modules if name.startswith({roots!r}))
print(json.dumps({{"code": code, "loaded": loaded}}))
"""


def _subcommands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    for action in parser._actions:  # argparse keeps its subparsers nowhere public
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


def test_the_sim_loads_no_tcp_runtime() -> None:
    args = ["sim", "--peers", "10", "--duration", "1", "--workers", "1", "--json"]
    done = subprocess.run(
        [sys.executable, "-c", PROBE.format(roots=RUNTIME_ROOTS), *args],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    *summary, probe = done.stdout.splitlines()
    assert json.loads(probe) == {"code": 0, "loaded": []}
    assert json.loads(summary[-1])["peers"] == 10


def test_the_table_names_every_command_of_the_full_parser_in_its_order() -> None:
    assert list(_subcommands(build_parser())) == list(COMMANDS)


@pytest.mark.parametrize("command", list(COMMANDS))
def test_a_command_parses_and_helps_as_in_the_full_parser(command: str) -> None:
    alone = _subcommands(build_parser(command))
    assert command in alone
    assert alone[command].format_help() == _subcommands(build_parser())[command].format_help()


def test_no_command_or_an_unknown_one_registers_them_all() -> None:
    assert list(_subcommands(build_parser(None))) == list(COMMANDS)
    assert list(_subcommands(build_parser("simulate"))) == list(COMMANDS)
