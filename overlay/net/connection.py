"""One TCP connection of a node (:mod:`overlay.net.node`): its state, its bounded send
queue, and the socket I/O that needs nothing of the node but a limit or two.

Nothing here decides anything: the node files connections under addresses, enforces
limits and timeouts, and ends connections.  :func:`transport_error` is where trio's and
the OS's failures become the project's :class:`~overlay.protocol.errors.TransportError`.
"""

from __future__ import annotations

import os
from collections.abc import Awaitable, Callable
from typing import Final

import trio

from overlay.net.secure import Session
from overlay.protocol.errors import ProtocolError, TransportError
from overlay.protocol.identity import Address, Contact
from overlay.protocol.messages import Handshake, Message
from overlay.protocol.wire import PROTOCOL_VERSION, FrameDecoder, check_handshake

WRITE_BATCH: Final = 64
"""Most queued frames handed to one ``writev`` (fewer syscalls under load)."""


class Connection:
    """One TCP connection and its bounded send queue.

    The queue is a plain list of frames (``outbox``), written straight to the socket
    without blocking by whoever queues (:meth:`overlay.net.node.Node._flush`); a drain
    task exists only while the kernel's buffer is full.  A task and a memory channel per
    connection, the earlier design, cost a peer with 8 to 10 connections about a fifth
    of its memory and a task switch per message forwarded.
    """

    __slots__ = (
        "aborted",
        "closing",
        "counted",
        "decoder",
        "draining",
        "error",
        "inbound",
        "key",
        "label",
        "last_heard",
        "limit",
        "outbox",
        "pending",
        "remote",
        "scope",
        "sealed",
        "session",
        "shut",
        "socket",
        "writing_since",
    )

    def __init__(self, label: str, *, inbound: bool, key: Address | None, queue: int) -> None:
        self.label = label
        self.inbound = inbound
        self.key = key
        """Listen address this connection is filed under in ``Node.links`` (once known)."""
        self.remote: Contact | None = None
        self.closing = False
        """The core asked for it to close (so its end is not a lost link)."""
        self.counted = True
        """Still counted against the connection limit."""
        self.error: Exception | None = None
        """Why the connection was ended from outside the node's reader (a write, the sweeper)."""
        self.decoder: FrameDecoder | None = None
        self.last_heard = trio.current_time()
        self.writing_since = -1.0
        """When the blocked write began (negative: not writing)."""
        self.outbox: list[bytes | memoryview] = []
        """Frames queued and not yet written (at most ``limit``; the first one may be
        the unwritten rest of a frame)."""
        self.limit = queue
        self.shut = False
        """No more frames are queued: the connection ends once ``outbox`` is written."""
        self.pending = False
        """Listed in ``Node._unflushed`` (written when the current batch of input ends)."""
        self.draining = False
        """A task waits for the socket to take the rest of ``outbox``."""
        self.socket: trio.socket.SocketType | None = None
        """Set once the handshake is done: from then on frames are written to it.  Its
        descriptor is read afresh for every write (-1 once closed), never kept: a closed
        descriptor's number is soon another connection's."""
        self.scope: trio.CancelScope | None = trio.CancelScope()
        """Cancels the dial and the handshake; None once the connection is open.  An open
        connection is ended from outside by :meth:`Node._abort` instead: a cancel scope
        per connection held for its whole life cost a peer about 7 KiB of its memory."""
        self.aborted = False
        """Ended: nothing more is read or queued on it; it is closed soon after."""
        self.session: Session | None = None
        """The Noise session once the handshake is done (None: plaintext)."""
        self.sealed = 0
        """How many of ``outbox``'s first entries are already sealed (encrypted)."""

    def decoder_buffered(self) -> int:
        return self.decoder.buffered if self.decoder is not None else 0

    def __repr__(self) -> str:
        return f"<Connection {self.label}>"


def transport_error(exc: BaseException) -> TransportError:
    """trio's and the OS's failures, as the project's one transport error."""
    if isinstance(exc, TransportError):
        return exc
    if isinstance(exc, trio.TooSlowError):
        return TransportError("timed out")
    if isinstance(exc, OSError):
        return TransportError(exc.strerror or type(exc).__name__)
    return TransportError(type(exc).__name__)


def write_some(connection: Connection, fd: int) -> None:
    """Write queued frames until the queue is empty or the socket would block.

    The descriptor is non-blocking, so this never waits; a frame written in part
    leaves its rest at the head of the queue.  Raises OSError when the connection is
    broken (never BlockingIOError)."""
    outbox = connection.outbox
    session = connection.session
    if session is not None and connection.sealed < len(outbox):
        # Everything queued since the last write goes out as one sealed batch: one
        # AEAD call and one tag for many frames.
        sealed = connection.sealed
        outbox[sealed:] = session.seal(b"".join(outbox[sealed:]))
        connection.sealed = len(outbox)
    while outbox:
        batch = outbox[:WRITE_BATCH]
        try:
            written = os.writev(fd, batch)
        except BlockingIOError:
            return
        done = 0
        for frame in batch:
            if written < len(frame):
                break
            written -= len(frame)
            done += 1
        del outbox[:done]
        if connection.sealed:
            connection.sealed -= done
        if written:
            outbox[0] = memoryview(outbox[0])[written:]
        if done < len(batch):
            return  # the kernel took part of it: it is full for now


def peer_label(stream: trio.SocketStream) -> str:
    try:
        host, port = stream.socket.getpeername()[:2]
    except OSError:
        return "an unknown address"
    return f"{host}:{port}"


async def send_all(stream: trio.SocketStream, data: bytes) -> None:
    try:
        await stream.send_all(data)
    except (OSError, trio.BrokenResourceError, trio.ClosedResourceError) as exc:
        raise transport_error(exc) from None


async def read_handshake(
    receive: Callable[[], Awaitable[bytes]], decoder: FrameDecoder, session: Session | None
) -> tuple[Handshake, list[Message]]:
    """Read until the first frame; it must be a handshake in our version.  With a
    ``session``, what is read is decrypted first (bytes that came behind the Noise
    handshake included)."""
    pending = session.open(b"") if session is not None else b""
    for _ in range(2 * decoder.cap + 8):  # each read brings at least one byte
        data = pending or await receive()
        if not data:
            raise TransportError("closed before the handshake")
        if session is not None and not pending:
            data = session.open(data)
        pending = b""
        messages = decoder.feed(data)
        if messages:
            return check_handshake(messages[0], PROTOCOL_VERSION), messages[1:]
    raise ProtocolError("no complete handshake frame")


async def receive_some(stream: trio.SocketStream, read_size: int) -> bytes:
    try:
        return await stream.receive_some(read_size)
    except (OSError, trio.BrokenResourceError) as exc:
        raise transport_error(exc) from None
