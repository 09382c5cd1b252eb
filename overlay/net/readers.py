"""The open connections a node reads, watched by one selector instead of one task each.

A trio task parked on ``wait_readable`` keeps its coroutine, its frame and trio's
wait records alive for as long as the connection is open: with seven connections per
peer and 500 peers per swarm worker, those were about a fifth of what a peer costs in
memory.  A node instead registers each open connection's descriptor in one OS
selector (epoll on Linux, kqueue on the BSDs and macOS) and runs one task that waits
for the selector's own descriptor to become readable, then reads every connection
that is ready (:meth:`overlay.net.node.Node._read_all`).

Only reads go through here.  Writes are made without blocking by whoever queues a
frame, and a task waits for a full socket only while it is full
(:mod:`overlay.net.connection`).
"""

from __future__ import annotations

import selectors

from overlay.net.connection import Connection


class Readers:
    """A selector of open connections, keyed by descriptor.

    A descriptor is watched from the end of a connection's handshake until it is
    closed; :meth:`unwatch` comes before the close, so a number the OS reuses for a new
    socket is never mistaken for the old connection's."""

    __slots__ = ("_selector",)

    def __init__(self) -> None:
        selector = selectors.DefaultSelector()
        if not hasattr(selector, "fileno"):
            selector.close()
            raise RuntimeError("this platform has no epoll or kqueue for the connection reader")
        self._selector = selector

    def fileno(self) -> int:
        """The selector's own descriptor: readable while some connection is."""
        return self._selector.fileno()

    def watch(self, connection: Connection, fd: int) -> None:
        self._selector.register(fd, selectors.EVENT_READ, connection)

    def unwatch(self, connection: Connection, fd: int) -> bool:
        """Stop watching ``fd`` if ``connection`` is what it is watched for; whether it was."""
        key = self._selector.get_map().get(fd)
        if key is None or key.data is not connection:
            return False
        self._selector.unregister(fd)
        return True

    def ready(self) -> list[tuple[Connection, int]]:
        """The connections with input (or an end) to read now, and their descriptors;
        never waits."""
        return [(key.data, key.fd) for key, _ in self._selector.select(0)]

    def watched(self) -> list[Connection]:
        return [key.data for key in self._selector.get_map().values()]

    def __len__(self) -> int:
        return len(self._selector.get_map())

    def close(self) -> None:
        self._selector.close()
