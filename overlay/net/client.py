"""A one-shot client of the overlay's own protocol: connect, handshake, ask, read the answer.

The commands (``overlay search``, ``publish``, ``fetch``), the swarm's observer and
the tests all talk to peers this way; the peer answers in the runtime.
"""

from __future__ import annotations

import os
import random
from typing import TypeVar

import trio

from overlay.protocol.errors import ProtocolError, TransportError
from overlay.protocol.identity import Address, Contact, new_peer_id
from overlay.protocol.messages import Handshake, Message
from overlay.protocol.wire import PROTOCOL_VERSION, FrameDecoder, check_handshake, encode_frame

M = TypeVar("M", bound=Message)
CLIENT_TIMEOUT = 30.0
"""How long a client waits for a peer's answer (the peer gives up on a search after
20 s, see :data:`overlay.net.client_requests.CLIENT_TIMEOUT`, and answers with an error)."""
CONNECT_TIMEOUT = 5.0
"""How long a client tries to connect before it says that nothing answers there (a
refused connection says so at once; an address that swallows packets takes this long)."""


def nothing_answers(address: Address, why: object) -> str:
    """The one line every client command prints when it cannot reach ``address``."""
    return f"nothing answers at {address} ({why})"


def _reason(exc: BaseException) -> str:
    """The OS's words for a failed connect (trio wraps them: "all attempts ... failed",
    caused by a group of one error per address tried)."""
    cause: BaseException = exc
    while isinstance(cause.__cause__, BaseException):
        cause = cause.__cause__
    if isinstance(cause, BaseExceptionGroup) and cause.exceptions:
        cause = cause.exceptions[0]
    if isinstance(cause, OSError) and cause.errno is not None:
        return os.strerror(cause.errno).lower()
    return str(cause) or type(cause).__name__


async def connect(address: Address, timeout: float = CONNECT_TIMEOUT) -> trio.SocketStream:
    """A TCP connection to ``address``; :class:`TransportError` saying that nothing answers
    there (and why) when there is none within ``timeout``."""
    try:
        with trio.fail_after(timeout):
            return await trio.open_tcp_stream(address.host, address.port)
    except trio.TooSlowError:
        raise TransportError(nothing_answers(address, f"no connection in {timeout:g} s")) from None
    except OSError as exc:
        raise TransportError(nothing_answers(address, _reason(exc))) from None


async def ask(
    via: Address, request: Message, reply_type: type[M], timeout: float = CLIENT_TIMEOUT
) -> M:
    """Send one request to the peer at ``via`` over a fresh connection; its reply.

    Raises :class:`TransportError` (no connection, no answer in time) or
    :class:`ProtocolError` (the peer closed without answering).
    """
    decoder = FrameDecoder()
    stream = await connect(via, min(timeout, CONNECT_TIMEOUT))
    try:
        with trio.fail_after(timeout):
            async with stream:
                port = int(stream.socket.getsockname()[1])
                # We listen nowhere; our own ephemeral address is a unique, honest claim.
                me = Contact(new_peer_id(random.Random()), Address(via.host, port))
                await stream.send_all(
                    encode_frame(Handshake(PROTOCOL_VERSION, me)) + encode_frame(request)
                )
                handshaken = False
                for _ in range(100_000):  # bounded: each round reads at least one byte
                    data = await stream.receive_some(65536)
                    if not data:
                        break
                    for message in decoder.feed(data):
                        if not handshaken:
                            check_handshake(message, PROTOCOL_VERSION)
                            handshaken = True
                        elif type(message) is reply_type:
                            return message
                raise ProtocolError(f"{via} closed without a {reply_type.__name__}")
    except trio.TooSlowError:
        raise TransportError(f"no answer from {via} within {timeout:g} s") from None
    except (OSError, trio.BrokenResourceError) as exc:
        raise TransportError(f"{via}: {exc}") from None
