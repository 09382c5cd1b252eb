"""The runtime options shared by ``overlay peer`` and ``overlay swarm``: each flag
reaches its config field, a swarm hands them to its workers unchanged, and a bad value
is a usage error."""

from __future__ import annotations

import argparse

from overlay.net.options import (
    add_runtime_arguments,
    check_runtime_arguments,
    peer_config_of,
    runtime_argv,
)
from overlay.net.swarm.setup import super_peer_config


def _parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_runtime_arguments(parser)
    return parser.parse_args(argv)


QUICK = [
    "--heartbeat-period", "0.5", "--failure-timeout", "2.0",
    "--super-period", "0.5", "--super-failure-timeout", "2.5",
    "--super-seed-wait", "1.5", "--super-min-uptime", "1.0",
]  # fmt: skip


def test_super_layer_timers_reach_the_super_config_apart_from_the_membership_ones() -> None:
    config = peer_config_of(_parse(QUICK), super_peer_config(5))
    supers = config.supers
    assert (supers.period, supers.failure_timeout) == (0.5, 2.5)
    assert (supers.seed_wait, supers.min_uptime) == (1.5, 1.0)
    assert supers.enabled and config.capacity == 5  # the rest of the base stays
    assert (config.membership.heartbeat_period, config.membership.failure_timeout) == (0.5, 2.0)


def test_flags_left_out_keep_the_defaults() -> None:
    base = super_peer_config(5)
    assert peer_config_of(_parse([]), base) == base


def test_a_swarm_hands_its_workers_the_same_options() -> None:
    given = _parse(QUICK)
    again = _parse(runtime_argv(given))
    base = super_peer_config(3)
    assert peer_config_of(again, base) == peer_config_of(given, base)


def test_a_timer_out_of_range_is_a_usage_error() -> None:
    error = check_runtime_arguments(_parse(["--super-period", "0"]))
    assert error is not None and "period" in error
    assert check_runtime_arguments(_parse(QUICK)) is None
