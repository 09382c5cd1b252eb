"""The node's selector of open connections (:mod:`overlay.net.readers`), on socket pairs."""

from __future__ import annotations

import socket

from overlay.net.connection import Connection
from overlay.net.readers import Readers


def _connection(label: str) -> Connection:
    return Connection(label, inbound=True, key=None, queue=8)


async def test_only_connections_with_input_are_ready_and_a_stale_owner_cannot_unwatch() -> None:
    readers = Readers()
    quiet_end, quiet_far = socket.socketpair()
    busy_end, busy_far = socket.socketpair()
    try:
        quiet, busy = _connection("quiet"), _connection("busy")
        readers.watch(quiet, quiet_end.fileno())
        readers.watch(busy, busy_end.fileno())
        assert readers.ready() == []
        busy_far.send(b"x")
        assert readers.ready() == [(busy, busy_end.fileno())]
        assert readers.ready() == [(busy, busy_end.fileno())]  # until it is read
        busy_end.recv(1)
        assert readers.ready() == []
        # A descriptor number is another connection's once reused: the old owner's
        # unwatch must not remove the new one.
        assert not readers.unwatch(busy, quiet_end.fileno())
        assert readers.unwatch(quiet, quiet_end.fileno())
        assert not readers.unwatch(quiet, quiet_end.fileno())
        assert readers.watched() == [busy] and len(readers) == 1
        busy_far.close()  # an end is input too: the reader must see it to close
        assert readers.ready() == [(busy, busy_end.fileno())]
    finally:
        readers.close()
        for end in (quiet_end, quiet_far, busy_end, busy_far):
            end.close()
