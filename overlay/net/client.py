"""A one-shot client of the overlay's own protocol: connect, handshake, ask, read the answer.

The commands (``overlay search``, ``publish``, ``fetch``), the swarm's observer and
the tests all talk to peers this way; the peer answers in the runtime.
"""

from __future__ import annotations

import os
import random
from collections.abc import Sequence
from typing import Final, TypeVar

import trio

from overlay.net.secure import LinkIdentity, Security, Session, handshake
from overlay.protocol.errors import ProtocolError, TransportError
from overlay.protocol.identity import Address, Contact, new_peer_id
from overlay.protocol.messages import Handshake, Message
from overlay.protocol.wire import PROTOCOL_VERSION, FrameDecoder, check_handshake, encode_frame

M = TypeVar("M", bound=Message)
CLIENT_TIMEOUT = 30.0
"""How long a client waits for a peer's answer (the peer gives up on a search after
20 s, see :data:`overlay.net.client_requests.CLIENT_TIMEOUT`, and answers with an error)."""
READ_SIZE: Final = 65536
MAX_READS: Final = 100_000
"""Reads a client makes on one connection at most (each brings at least a byte)."""
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


_client_security: Security | None = None


def set_client_security(security: Security | None) -> None:
    """How this process's clients speak (the CLI's ``--plaintext``); None (the default):
    a fresh key, made at the first connection and kept for the rest of the run."""
    global _client_security  # noqa: PLW0603  (one setting per process, made by its CLI)
    _client_security = security


def client_security() -> Security:
    global _client_security  # noqa: PLW0603
    if _client_security is None:
        _client_security = LinkIdentity.fresh()
    return _client_security


class ClientLink:
    """One client connection: Noise handshake (unless plaintext), our handshake sent,
    then messages both ways.  The remote's handshake is checked and not returned."""

    __slots__ = ("_handshaken", "decoder", "me", "session", "stream")

    def __init__(self, stream: trio.SocketStream, session: Session | None, me: Contact) -> None:
        self.stream = stream
        self.session = session
        self.me = me
        self.decoder = FrameDecoder()
        self._handshaken = False

    @classmethod
    async def open(
        cls,
        address: Address,
        first: Sequence[Message] = (),
        *,
        connect_timeout: float = CONNECT_TIMEOUT,
        security: Security | None = None,
    ) -> ClientLink:
        """Connect to ``address``, prove our key, send our handshake and ``first``.
        The caller bounds the time of all but the connect, and closes the stream."""
        security = security if security is not None else client_security()
        stream = await connect(address, connect_timeout)
        try:
            session = None
            if isinstance(security, LinkIdentity):
                session, _proven = await handshake(
                    security,
                    initiator=True,
                    send=stream.send_all,
                    receive=lambda: stream.receive_some(READ_SIZE),
                )
            host, port = stream.socket.getsockname()[:2]
            me_id = security.peer_id if isinstance(security, LinkIdentity) else None
            # We listen nowhere; our own address is a unique, honest claim.
            me = Contact(me_id or new_peer_id(random.Random()), Address(str(host), int(port)))
            link = cls(stream, session, me)
            await link.send(Handshake(PROTOCOL_VERSION, me), *first)
        except BaseException:
            with trio.CancelScope(shield=True):
                await stream.aclose()
            raise
        return link

    async def send(self, *messages: Message) -> None:
        data = b"".join(encode_frame(message) for message in messages)
        if self.session is not None:
            data = b"".join(self.session.seal(data))
        await self.stream.send_all(data)

    async def read(self) -> list[Message] | None:
        """The messages completed by one read (maybe none); None once the remote closed."""
        data = await self.stream.receive_some(READ_SIZE)
        if not data:
            return None
        if self.session is not None:
            data = self.session.open(data)
        messages = self.decoder.feed(data)
        if messages and not self._handshaken:
            check_handshake(messages[0], PROTOCOL_VERSION)
            self._handshaken = True
            del messages[0]
        return messages

    async def aclose(self) -> None:
        with trio.CancelScope(shield=True):
            await self.stream.aclose()


async def ask(
    via: Address, request: Message, reply_type: type[M], timeout: float = CLIENT_TIMEOUT
) -> M:
    """Send one request to the peer at ``via`` over a fresh connection; its reply.

    Raises :class:`TransportError` (no connection, no answer in time) or
    :class:`ProtocolError` (the peer closed without answering, or failed its proof).
    """
    try:
        with trio.fail_after(timeout):
            link = await ClientLink.open(
                via, [request], connect_timeout=min(timeout, CONNECT_TIMEOUT)
            )
            try:
                for _ in range(MAX_READS):  # bounded: each round reads at least one byte
                    messages = await link.read()
                    if messages is None:
                        break
                    for message in messages:
                        if type(message) is reply_type:
                            return message
                raise ProtocolError(f"{via} closed without a {reply_type.__name__}")
            finally:
                await link.aclose()
    except trio.TooSlowError:
        raise TransportError(f"no answer from {via} within {timeout:g} s") from None
    except (OSError, trio.BrokenResourceError) as exc:
        raise TransportError(f"{via}: {exc}") from None
