"""Every option of every ``overlay`` command says what it is for, and ``--version`` works."""

from __future__ import annotations

import argparse
from importlib.metadata import version

import pytest

from overlay.compiled import BUILD
from overlay.tools.cli import build_parser, main


def _commands(
    parser: argparse.ArgumentParser, path: str
) -> list[tuple[str, argparse.ArgumentParser]]:
    found = [(path, parser)]
    for action in parser._actions:  # argparse keeps its subparsers nowhere public
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                found += _commands(sub, f"{path} {name}")
    return found


def test_every_option_of_every_command_has_help() -> None:
    missing = [
        f"{path}: {'/'.join(action.option_strings) or action.dest}"
        for path, parser in _commands(build_parser(), "overlay")
        for action in parser._actions
        if not isinstance(action, argparse._SubParsersAction | argparse._HelpAction)
        and not action.help
    ]
    assert missing == []


def test_the_walk_finds_the_commands_and_a_missing_help_would_show() -> None:
    commands = dict(_commands(build_parser(), "overlay"))
    assert {"overlay sim", "overlay sim query", "overlay swarm", "overlay peer"} <= set(commands)
    commands["overlay peer"].add_argument("--undocumented")
    undocumented = [a.dest for a in commands["overlay peer"]._actions if not a.help]
    assert undocumented == ["undocumented"]


def test_version(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    # One line whatever the terminal's width (argparse's version action wrapped it, and
    # the pure-Python build's reason is long enough to be split).
    monkeypatch.setenv("COLUMNS", "30")
    with pytest.raises(SystemExit) as exit:
        main(["--version"])
    assert exit.value.code == 0
    assert capsys.readouterr().out.strip() == f"overlay {version('overlay')}, {BUILD.describe()}"
