"""Stats of every peer a swarm worker hosts, in one batch over the worker's pipe.

``overlay swarm`` owns its worker processes and already talks to each over a pipe
(control lines on the worker's standard input, JSON records on its standard output;
see :mod:`overlay.net.swarm.control`).  Asking 1,000 peers for their stats over TCP costs each
worker 500 connections' worth of accepts, handshakes and frames a second, which is
more than two busy processes answer in a second; asking each worker once costs one
line and one record.  So ``overlay swarm --view`` asks ``stats <n>`` and the worker
answers with one record holding a :class:`~overlay.protocol.messages.StatsReply` for every
peer it hosts, each built by :meth:`overlay.net.node.Node.stats_reply`, the very function
the peer answers a TCP :class:`~overlay.protocol.messages.StatsRequest` with.

A record is ``{"stats": n, "part": i, "parts": k, "frames": BASE64}``: the replies as
wire frames (length-prefixed msgpack, the TCP encoding, so the parent decodes them with
the same strict validation as anything off the network), base64 in the JSON line.
A record holds at most :data:`MAX_PART_BYTES` of frames (a worker of 500 peers fits in
one); a bigger worker splits its answer into parts.  Answers to a request nobody waits
for any more (it timed out) are dropped.
"""

from __future__ import annotations

import base64
import binascii
import itertools
import logging
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import Any, Final

import trio

from overlay.protocol.errors import ProtocolError, RemoteError, TransportError
from overlay.protocol.messages import StatsReply
from overlay.protocol.wire import DEFAULT_FRAME_CAP, FrameDecoder, encode_frame

log = logging.getLogger("overlay.net.swarm.stats")

CONTROL_STATS: Final = b"stats "
"""Control line ``stats <n>``: answer request ``n`` with the stats of every hosted peer."""
MAX_PART_BYTES: Final = 1 << 20
"""Frames per record (before base64): about 700 replies of a plain peer."""
MAX_STATS_RECORD: Final = 4 * (MAX_PART_BYTES + DEFAULT_FRAME_CAP) // 3 + 256
"""The longest JSON line a stats record can be (a part may overrun by one frame)."""
MAX_PARTS: Final = 1024
"""Parts of one answer the parent accepts (bounds what it buffers per request)."""
MAX_REQUEST_ID: Final = 2**53
DEFAULT_BATCH_TIMEOUT: Final = 2.0


# ---------------------------------------------------------------------- the worker's side


def stats_records(request: int, replies: Iterable[StatsReply]) -> list[dict[str, Any]]:
    """The records that answer request ``request``: ``replies`` as frames, in parts of at
    most :data:`MAX_PART_BYTES` (plus one frame), at least one part even with no replies."""
    parts: list[list[bytes]] = [[]]
    size = 0
    for reply in replies:
        frame = encode_frame(reply)
        if parts[-1] and size + len(frame) > MAX_PART_BYTES:
            parts.append([])
            size = 0
        parts[-1].append(frame)
        size += len(frame)
    return [
        {
            "stats": request,
            "part": index,
            "parts": len(parts),
            "frames": base64.b64encode(b"".join(frames)).decode("ascii"),
        }
        for index, frames in enumerate(parts)
    ]


def parse_stats_line(line: bytes) -> int | None:
    """The request number of a ``stats <n>`` line (None: not one, or a bad number)."""
    if not line.startswith(CONTROL_STATS):
        return None
    try:
        request = int(line[len(CONTROL_STATS) :].decode("ascii"))
    except (UnicodeDecodeError, ValueError):
        return None
    return request if 0 <= request < MAX_REQUEST_ID else None


# ---------------------------------------------------------------------- the parent's side


class _Pending:
    def __init__(self) -> None:
        self.parts: dict[int, str] = {}
        self.expected: int | None = None
        self.done = trio.Event()


class StatsBatches:
    """One worker's batched stats, as the parent sees them: it numbers its requests,
    collects the parts of each answer (:meth:`deliver`, called by whoever reads the
    worker's output) and decodes them (:meth:`ask`)."""

    def __init__(self) -> None:
        self._numbers = itertools.count(1)
        self._waiting: dict[int, _Pending] = {}
        self.dropped = 0
        """Records that were malformed or answered nobody (late, unknown)."""

    def deliver(self, record: Mapping[str, Any]) -> None:
        """Take one ``{"stats": ...}`` record from the worker's output."""
        request, part, parts, frames = (record.get(k) for k in ("stats", "part", "parts", "frames"))
        if not (
            type(request) is int
            and type(part) is int
            and type(parts) is int
            and isinstance(frames, str)
            and 0 <= part < parts <= MAX_PARTS
        ):
            self.dropped += 1
            log.error("worker stats: malformed record; dropped")
            return
        pending = self._waiting.get(request)
        if pending is None or (pending.expected not in (None, parts)):
            self.dropped += 1  # an answer to a request that timed out
            return
        pending.expected = parts
        pending.parts[part] = frames
        if len(pending.parts) == parts:
            pending.done.set()

    async def ask(
        self, send: Callable[[bytes], Awaitable[None]], timeout: float = DEFAULT_BATCH_TIMEOUT
    ) -> list[StatsReply]:
        """Send ``stats <n>`` through ``send`` and return the worker's replies, decoded
        and validated.  Raises :class:`TransportError` after ``timeout`` and
        :class:`ProtocolError` for an answer that does not decode."""
        request = next(self._numbers)
        pending = _Pending()
        self._waiting[request] = pending
        try:
            with trio.fail_after(timeout):
                await send(CONTROL_STATS + str(request).encode("ascii"))
                await pending.done.wait()
        except trio.TooSlowError:
            raise TransportError(f"no stats from the worker within {timeout:g} s") from None
        finally:
            del self._waiting[request]
        replies: list[StatsReply] = []
        for index in range(len(pending.parts)):
            try:
                data = base64.b64decode(pending.parts[index], validate=True)
                decoder = FrameDecoder()
                messages = decoder.feed(data)
            except (binascii.Error, ValueError, RemoteError) as error:
                raise ProtocolError(f"worker stats part {index}: {error}") from None
            if decoder.buffered:
                raise ProtocolError(f"worker stats part {index}: a frame cut short")
            replies.extend(m for m in messages if type(m) is StatsReply)
        return replies
