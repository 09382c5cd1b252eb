"""The pipe between ``overlay swarm`` and its worker processes: control lines down, JSON
records up.

The parent writes control lines to a worker's standard input (``crash HOST:PORT``,
``add``, ``stats <n>``; :class:`overlay.tools.cli_view.WorkerControl` sends them) and the
worker carries them out (:func:`handle_control_line`) and answers with JSON records on
its standard output (:func:`emit`).  Both ends read lines of standard input the same
way (:func:`for_each_stdin_line`: the parent for ``--control``, the worker for its
control lines).  A module of its own, light on imports, because the worker process
(:mod:`overlay.net.swarm.worker`) must not load what only the parent uses (networkx, rich).
"""

from __future__ import annotations

import json
import logging
import os
import sys
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Final

import trio

from overlay.net.node import Node
from overlay.net.swarm.stats import parse_stats_line, stats_records
from overlay.protocol.identity import Address

log = logging.getLogger("overlay.tools.swarm")

CONTROL_CRASH: Final = b"crash "
CONTROL_ADD: Final = b"add"
CONTROL_STOP: Final = b"stop"
MAX_WORKER_LINE: Final = 4096
"""The longest line of standard input either end accepts (a control line is short)."""


def emit(record: dict[str, Any]) -> None:
    """Write one record to standard output as a JSON line, at once (the parent waits)."""
    sys.stdout.write(json.dumps(record) + "\n")
    sys.stdout.flush()


async def for_each_stdin_line(handle: Callable[[bytes], Awaitable[bool]]) -> None:
    """Call ``handle`` with each line of standard input (without its newline) until it
    returns False, the input ends, or a line runs longer than ``MAX_WORKER_LINE``."""
    stdin = trio.lowlevel.FdStream(os.dup(sys.stdin.fileno()))
    buffer = b""
    async with stdin:
        for _ in range(100_000_000):  # bounded: each round reads at least one byte
            try:
                data = await stdin.receive_some(4096)
            except (OSError, trio.BrokenResourceError):
                return
            if not data:
                return
            *lines, buffer = (buffer + data).split(b"\n")
            if len(buffer) > MAX_WORKER_LINE:
                log.error("standard input: overlong line; taken as its end")
                return
            for line in lines:
                if not await handle(line):
                    return


async def handle_control_line(
    line: bytes,
    nodes: Sequence[Node],
    add_peer: Callable[[], Awaitable[object]],
    emit: Callable[[dict[str, Any]], None] | None = None,
) -> bool:
    """A swarm worker's side of :class:`overlay.tools.cli_view.WorkerControl`: carry out one
    line from the parent; False when the worker should stop (``stop`` or an unknown line,
    as before the control lines existed, when any line meant stop).  ``stats <n>`` is
    answered through ``emit`` (the worker's output records) with every live node's stats
    reply (:mod:`overlay.net.swarm.stats`)."""
    line = line.strip()
    request = parse_stats_line(line)
    if request is not None:
        if emit is not None:
            replies = (node.stats_reply() for node in nodes if not node.stopping)
            for record in stats_records(request, (r for r in replies if r is not None)):
                emit(record)
        return True
    if line.startswith(CONTROL_CRASH):
        try:
            address = Address.parse(line[len(CONTROL_CRASH) :].decode("ascii"))
        except (UnicodeDecodeError, ValueError):
            return True
        for node in nodes:
            if node.contact.address == address and not node.stopping:
                node.stop()  # no goodbye: to the others, a crash
        return True
    if line == CONTROL_ADD:
        await add_peer()
        return True
    return False
