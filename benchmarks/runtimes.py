"""The two runtimes a benchmark may compare, and waiting for a swarm to settle.

Issue 15 makes authenticated, encrypted links the default and keeps today's frames
behind ``--plaintext``.  A benchmark that compares the two asks :func:`runtime_flags`
for the swarm's flags: ``plaintext`` is ``overlay swarm --plaintext`` where the swarm
has that flag and today's runtime (which is plaintext) where it does not; ``secure``
is the default runtime once there is a plaintext one beside it, and unavailable before.
"""

from __future__ import annotations

import argparse
import subprocess
from collections.abc import Iterator, Sequence
from functools import cache
from typing import Any, Final

import networkx as nx
import trio

from benchmarks.harness import REPO, overlay_command
from overlay.net.client import set_client_security
from overlay.net.secure import PLAINTEXT, LinkIdentity
from overlay.protocol.identity import Address
from overlay.sim.topology import graph_of
from overlay.tools.crawl import Crawl, crawl

RUNTIMES: Final = ("plaintext", "secure")
PLAINTEXT_FLAG: Final = "--plaintext"
CRAWL_TIMEOUT: Final = 10.0
"""Per stats request while waiting for a swarm to settle: a secure crawl of 200 peers on
a machine at load average 17 did not get every answer within 2 s."""


@cache
def swarm_has_flag(flag: str) -> bool:
    """Whether ``overlay swarm`` knows ``flag`` (the runtimes differ by branch)."""
    shown = subprocess.run(
        overlay_command("swarm", "--help"), capture_output=True, text=True, cwd=REPO, check=False
    ).stdout
    return flag in shown.replace(",", " ").split()


def runtime_flags(runtime: str) -> list[str] | str:
    """The swarm's flags for ``runtime``, or why it cannot be run here."""
    plaintext_flag = swarm_has_flag(PLAINTEXT_FLAG)
    if runtime == "plaintext":
        return [PLAINTEXT_FLAG] if plaintext_flag else []
    if runtime != "secure":
        raise ValueError(f"unknown runtime {runtime!r} (one of {', '.join(RUNTIMES)})")
    if not plaintext_flag:
        return "the secure runtime is not on this branch yet (overlay swarm has no --plaintext)"
    return []


def runtimes_argument(text: str) -> list[str]:
    """``--runtimes``: a comma-separated subset of :data:`RUNTIMES`, in the order given."""
    names = [name for name in text.split(",") if name]
    if not names or not set(names) <= set(RUNTIMES):
        raise argparse.ArgumentTypeError(f"a comma-separated subset of {','.join(RUNTIMES)}")
    return names


def use_runtime(name: str) -> None:
    """This process's clients (stats, searches, crawls) speak as ``name``'s peers do."""
    set_client_security(PLAINTEXT if name == "plaintext" else LinkIdentity.fresh())


def runnable(names: Sequence[str], sections: dict[str, Any]) -> Iterator[tuple[str, list[str]]]:
    """Each runtime of ``names`` that can run here, with its flags, this process's
    clients set to speak as it (:func:`use_runtime`); for the others, ``sections[name]``
    says why not."""
    for name in names:
        flags = runtime_flags(name)
        if isinstance(flags, str):
            sections[name] = {"not_run": flags}
        else:
            use_runtime(name)
            yield name, flags


async def settled(bootstrap: Address, peers: int, timeout: float) -> Crawl:
    """Crawl from ``bootstrap`` until ``peers`` joined peers answer and form one component."""
    with trio.fail_after(timeout):
        while True:
            found = await crawl(bootstrap, timeout=CRAWL_TIMEOUT)
            graph = graph_of(found.snapshots)
            if graph.number_of_nodes() >= peers and nx.is_connected(graph):
                return found
            await trio.sleep(1.0)
