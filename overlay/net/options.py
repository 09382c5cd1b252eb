"""The runtime options ``overlay peer`` and ``overlay swarm`` share: injected faults
(:mod:`overlay.net.faults`), limits (:class:`overlay.net.node.NodeConfig`,
:class:`search.config.SearchConfig`, :class:`bootstrap.hostcache.HostCacheConfig`) and
timers (failure detection, :class:`overlay.core.config.MembershipConfig`; the super-peer
layer's, :class:`overlay.core.config.SuperConfig`).

Every limit's default lives in its config class; a flag left out keeps it, so the help
text and the code cannot disagree.  ``overlay swarm`` hands the options it was given to
its workers unchanged (:func:`runtime_argv`), so each of its peers runs with them.

``overlay sim`` takes :func:`add_super_peers_argument` from here, so this module loads
the TCP runtime (:mod:`overlay.net.node`, :mod:`overlay.net.faults`: trio, the Noise
handshake) only in the functions that need it, never at import.
"""

from __future__ import annotations

import argparse
import random
import sys
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

import attrs

from overlay.core.config import MembershipConfig, PeerConfig, SuperConfig
from search.config import SearchConfig

if TYPE_CHECKING:
    from bootstrap.hostcache import HostCacheConfig
    from overlay.net.faults import FaultInjector, FaultPlan, PartitionSource
    from overlay.net.node import NodeConfig

NODE_FLAGS: Final[dict[str, tuple[type, str]]] = {
    "max_connections": (int, "accepted connections at once (as many dialled)"),
    "max_per_host": (int, "accepted connections at once from one IP"),
    "max_per_prefix": (int, "accepted connections at once from one /24 (IPv6: /64)"),
    "max_per_peer": (int, "connections at once under one peer's address"),
    "handshake_timeout": (float, "seconds for a connection's handshake"),
    "handshake_slots": (int, "handshakes run at once, accepted and dialled each (per process)"),
    "handshake_waiting": (int, "handshakes waiting for a slot before more are refused"),
    "idle_timeout": (float, "seconds of silence before a connection is closed"),
    "send_timeout": (float, "seconds a blocked write may last (slow readers)"),
    "send_queue": (int, "frames queued per connection before sends are dropped"),
}
SEARCH_FLAGS: Final[dict[str, tuple[type, str]]] = {
    "query_rate": (float, "fresh queries and walker steps per second per neighbor (0: off)"),
    "query_burst": (float, "burst of the per-neighbor query rate"),
    "seen_size": (int, "query ids remembered (duplicate suppression, reverse paths)"),
    "max_held_walkers": (int, "walkers held at once waiting for their origin's verdict"),
    "max_searches": (int, "searches this peer runs at once as their origin"),
}
MEMBERSHIP_FLAGS: Final[dict[str, tuple[type, str]]] = {
    "heartbeat_period": (float, "seconds between heartbeats to each neighbor"),
    "failure_timeout": (float, "seconds of silence before a neighbor is declared dead"),
}
SUPER_PREFIX: Final = "super_"
SUPER_FLAGS: Final[dict[str, tuple[type, str]]] = {
    # Flag names carry the prefix (--super-failure-timeout beside --failure-timeout);
    # the SuperConfig field is the name without it.
    "super_period": (float, "seconds between a super peer's beats"),
    "super_failure_timeout": (float, "seconds of silence before a super peer is declared dead"),
    "super_seed_wait": (float, "seconds a peer waits to hear of a super peer before founding"),
    "super_min_uptime": (float, "seconds a peer must be up before it may be elected"),
}
BOOTSTRAP_FLAGS: Final[dict[str, tuple[type, str]]] = {
    "register_rate": (float, "registrations per second per address at the bootstrap"),
    "register_burst": (float, "burst of the bootstrap's registration rate"),
}


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


ONE_HOST_DEFAULT: Final = "default: --max-connections, as if every peer were on one host"


def _add(
    group: argparse._ArgumentGroup,
    config: type[Any],
    flags: Mapping[str, tuple[type, str]],
    defaults: Mapping[str, str] | None = None,
    prefix: str = "",
) -> None:
    fields = attrs.fields_dict(config)
    for name, (kind, text) in flags.items():
        field = fields[name.removeprefix(prefix)]
        default = (defaults or {}).get(name, f"default {field.default}")
        group.add_argument(
            _flag(name),
            type=kind,
            default=None,
            metavar="N" if kind is int else "X",
            help=f"{text} ({default})",
        )


def add_fault_arguments(parser: argparse.ArgumentParser) -> None:
    faults = parser.add_argument_group("injected faults (see overlay.net.faults)")
    faults.add_argument(
        "--loss", type=float, default=None, metavar="P", help="drop each message sent with prob. P"
    )
    faults.add_argument(
        "--delay",
        default=None,
        metavar="MS[:JITTER]",
        help="hold each message sent MS ms (+ uniform 0..JITTER ms; jitter reorders)",
    )
    faults.add_argument(
        "--partition-file",
        type=Path,
        default=None,
        metavar="PATH",
        help="follow the partition in PATH (one side per line of HOST:PORT, HOST or CIDR)",
    )
    faults.add_argument(
        "--fault-seed", type=int, default=None, help="seed of the fault random source"
    )


def add_limit_arguments(parser: argparse.ArgumentParser, *, swarm: bool = False) -> None:
    """The limits' flags; a swarm's (``swarm``) lifts the caps per host and prefix by
    default (:func:`swarm_node_config_of`) and adds the bootstrap's."""
    from overlay.net.node import NodeConfig  # noqa: PLC0415  (the runtime, on demand)

    limits = parser.add_argument_group("limits")
    one_host = dict.fromkeys(("max_per_host", "max_per_prefix"), ONE_HOST_DEFAULT)
    _add(limits, NodeConfig, NODE_FLAGS, one_host if swarm else None)
    _add(limits, SearchConfig, SEARCH_FLAGS)
    _add(parser.add_argument_group("failure detection"), MembershipConfig, MEMBERSHIP_FLAGS)
    _add(
        parser.add_argument_group("super-peer layer timers"),
        SuperConfig,
        SUPER_FLAGS,
        prefix=SUPER_PREFIX,
    )
    if swarm:
        add_bootstrap_arguments(parser)


def add_bootstrap_arguments(parser: argparse.ArgumentParser) -> None:
    from bootstrap.hostcache import HostCacheConfig  # noqa: PLC0415  (lazy: worker memory)

    _add(parser.add_argument_group("bootstrap limits"), HostCacheConfig, BOOTSTRAP_FLAGS)


def add_super_peers_argument(parser: argparse.ArgumentParser, what: str) -> None:
    """``--super-peers`` / ``--no-super-peers``: the layer is on unless the flat overlay is
    asked for.  ``--super-peers`` is still accepted (it was needed before the layer was on
    by default), so older commands keep working."""
    parser.add_argument(
        "--super-peers",
        action=argparse.BooleanOptionalAction,
        default=True,
        help=f"{what} (on by default; --no-super-peers: the flat overlay)",
    )


PLAINTEXT_HELP: Final = (
    "speak bare frames: no handshake proving ids, no encryption (for teaching and "
    "packet captures; a secure peer refuses such a remote)"
)


def add_plaintext_argument(parser: argparse.ArgumentParser) -> None:
    """``--plaintext``, on every command that speaks the wire."""
    parser.add_argument("--plaintext", action="store_true", help=PLAINTEXT_HELP)


def announce_plaintext(args: argparse.Namespace, command: str) -> bool:
    """True for ``--plaintext``, said loudly on stderr (once per process)."""
    if not getattr(args, "plaintext", False):
        return False
    print(
        f"PLAINTEXT: overlay {command} runs without authentication or encryption: anyone can "
        "read its frames and speak as any peer (--plaintext)",
        file=sys.stderr,
        flush=True,
    )
    return True


def add_runtime_arguments(parser: argparse.ArgumentParser, *, swarm: bool = False) -> None:
    add_plaintext_argument(parser)
    add_fault_arguments(parser)
    add_limit_arguments(parser, swarm=swarm)


def _given(args: argparse.Namespace, flags: Mapping[str, tuple[type, str]]) -> dict[str, Any]:
    return {name: getattr(args, name) for name in flags if getattr(args, name, None) is not None}


def node_config_of(args: argparse.Namespace, base: NodeConfig | None = None) -> NodeConfig:
    """``base`` (default: the defaults) with the node limits given; raises ValueError."""
    from overlay.net.node import NodeConfig  # noqa: PLC0415

    return attrs.evolve(base or NodeConfig(), **_given(args, NODE_FLAGS))


def search_config_of(args: argparse.Namespace, base: SearchConfig | None = None) -> SearchConfig:
    return attrs.evolve(base or SearchConfig(), **_given(args, SEARCH_FLAGS))


def membership_config_of(
    args: argparse.Namespace, base: MembershipConfig | None = None
) -> MembershipConfig:
    return attrs.evolve(base or MembershipConfig(), **_given(args, MEMBERSHIP_FLAGS))


def super_config_of(args: argparse.Namespace, base: SuperConfig | None = None) -> SuperConfig:
    given = _given(args, SUPER_FLAGS)
    fields = {name.removeprefix(SUPER_PREFIX): value for name, value in given.items()}
    return attrs.evolve(base or SuperConfig(), **fields)


def peer_config_of(args: argparse.Namespace, base: PeerConfig) -> PeerConfig:
    """``base`` with the search limits and the timers given (failure detection; the
    super-peer layer's, which matter only where ``base`` enables the layer)."""
    return attrs.evolve(
        base,
        search=search_config_of(args, base.search),
        membership=membership_config_of(args, base.membership),
        supers=super_config_of(args, base.supers),
    )


def host_cache_config_of(args: argparse.Namespace) -> HostCacheConfig:
    from bootstrap.hostcache import HostCacheConfig  # noqa: PLC0415  (lazy: worker memory)

    return HostCacheConfig(**_given(args, BOOTSTRAP_FLAGS))


def fault_plan_of(args: argparse.Namespace) -> FaultPlan | None:
    """The faults asked for; None when none was (no injector at all: zero cost)."""
    if args.loss is None and args.delay is None and args.partition_file is None:
        return None
    from overlay.net.faults import FaultPlan, parse_delay  # noqa: PLC0415

    delay, jitter = parse_delay(args.delay) if args.delay is not None else (0.0, 0.0)
    return FaultPlan(loss=args.loss or 0.0, delay=delay, jitter=jitter)


def check_runtime_arguments(args: argparse.Namespace) -> str | None:
    """A usage error in the runtime options, or None."""
    try:
        node_config_of(args)
        search_config_of(args)
        membership_config_of(args)
        super_config_of(args)
        fault_plan_of(args)
        if hasattr(args, "register_rate"):
            host_cache_config_of(args)
    except ValueError as error:
        return str(error)
    return None


def fault_injectors(
    args: argparse.Namespace, seed: int | None
) -> tuple[Callable[[], FaultInjector | None], PartitionSource]:
    """A factory of one injector per peer (each with its own random source, drawn from
    ``--fault-seed``, else ``seed``, else the OS) and the partition they share; the
    caller runs the partition file's watcher."""
    from overlay.net.faults import FaultInjector, PartitionSource  # noqa: PLC0415

    plan = fault_plan_of(args)
    source = PartitionSource()
    rng = random.Random(args.fault_seed if args.fault_seed is not None else seed)

    def make() -> FaultInjector | None:
        if plan is None:
            return None
        return FaultInjector(plan, random.Random(rng.getrandbits(64)), source)

    return make, source


def runtime_argv(args: argparse.Namespace) -> list[str]:
    """The fault and peer-limit options given, as arguments for a swarm worker."""
    argv: list[str] = []
    names = ("loss", "delay", "partition_file", "fault_seed", *NODE_FLAGS, *SEARCH_FLAGS)
    for name in (*names, *MEMBERSHIP_FLAGS, *SUPER_FLAGS):
        value = getattr(args, name, None)
        if value is not None:
            argv += [_flag(name), str(value)]
    if getattr(args, "plaintext", False):
        argv.append("--plaintext")
    return argv


def swarm_node_config_of(args: argparse.Namespace) -> NodeConfig:
    """A swarm worker's limits: every peer of a swarm listens on 127.0.0.1, so the caps
    per host and per prefix are lifted to the whole budget unless given."""
    config = node_config_of(args)
    lifted = {
        name: config.max_connections
        for name in ("max_per_host", "max_per_prefix")
        if getattr(args, name, None) is None
    }
    # The swarm's clients (searches, stats crawls) all come from 127.0.0.1.
    lifted["handshakes_per_source"] = max(config.handshake_waiting, 1)
    return attrs.evolve(config, **lifted)


FAULT_COUNTERS: Final = (
    "node.faults.dropped",
    "node.faults.delayed",
    "node.faults.partitioned",
    "node.faults.delay_full",
)
LIMIT_COUNTERS: Final = (
    "node.connections.refused",
    "node.connections.refused_host",
    "node.connections.refused_prefix",
    "node.connections.refused_peer",
    "node.connections.evicted",
    "node.connections.bad_input",
    "node.connections.idle_closed",
    "node.connections.slow_reader_closed",
    "node.handshake.waited",
    "node.handshake.refused_busy",
    "node.handshake.slot_timeout",
    "node.client.refused_busy",
    "search.refused_busy",
    "search.rate_limited",
    "search.seen_evicted",
    "search.walk.dropped_full",
)
"""The counters the limits raise, besides ``node.queue_full.<Kind>``."""


def fault_and_limit_totals(counters: Iterable[Mapping[str, int]]) -> dict[str, int]:
    """Totals over peers of the fault counters and the limit counters (absent: 0)."""
    totals = dict.fromkeys((*FAULT_COUNTERS, *LIMIT_COUNTERS), 0)
    for each in counters:
        for name, value in each.items():
            if name.startswith(("node.faults.", "node.queue_full.")) or name in totals:
                totals[name] = totals.get(name, 0) + value
    return dict(sorted(totals.items()))
