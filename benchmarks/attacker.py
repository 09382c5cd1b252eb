"""The wire side of benchmarks/attacks.py: one attacker process that speaks the overlay's
own protocol under whatever identity it claims.

Nothing here encodes a frame by hand: frames go through :mod:`overlay.protocol.wire`
(``encode_frame`` / ``FrameDecoder``), connections through :func:`overlay.net.client.connect`
and :func:`overlay.net.connection.read_handshake`, exactly as a peer's runtime and the
``overlay`` client commands speak.  What is hostile is only what the attacker *claims*:

* :func:`dial` opens a connection and introduces itself with any :class:`Contact` (the
  victim's id, a neighbor's id, a made-up address);
* :class:`Impersonator` listens on an address of the attacker's and answers the
  handshakes of the peers that dial it under an identity of its choosing, then keeps
  every link it holds alive the way a neighbor would (a heartbeat for a heartbeat, an
  accept for a join) while forwarding nothing; an optional :data:`QueryAnswer` answers
  the queries that reach it (with forged hits, say).

On a runtime that proves ids at the handshake, a claimed id the attacker holds no key
for cannot get past :func:`dial`: the peer closes the connection, and :class:`Refused`
carries the reason, which is the attack's recorded outcome.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Sequence
from typing import Final

import attrs
import trio

from overlay.net.client import connect
from overlay.net.connection import read_handshake
from overlay.protocol.errors import OverlayError
from overlay.protocol.identity import Address, Contact
from overlay.protocol.messages import (
    Handshake,
    Heartbeat,
    Join,
    Message,
    NeighborAccept,
    NeighborRequest,
    Query,
    ShuffleReply,
    ShuffleRequest,
)
from overlay.protocol.wire import PROTOCOL_VERSION, FrameDecoder, encode_frame

READ_SIZE: Final = 65536
HANDSHAKE_TIMEOUT: Final = 5.0
CLAIMED_DEGREE: Final = 6
"""The degree an impersonator reports: an ordinary one, so nobody sheds it as overloaded."""

QueryAnswer = Callable[[Query], Sequence[Message]]
"""What an impersonator sends back on the link a query came by."""


class Refused(OverlayError):
    """The peer would not take the attacker's handshake (or closed right after it)."""


@attrs.define
class Link:
    """One connection the attacker holds, under the identity it claimed on it."""

    stream: trio.SocketStream
    claimed: Contact
    remote: Handshake
    decoder: FrameDecoder = attrs.field(factory=FrameDecoder)
    heard: list[Message] = attrs.field(factory=list)
    """What the peer sent on it (read by :meth:`collect` or :meth:`serve`), bounded."""

    async def send(self, *messages: Message) -> None:
        """The frames in one write; :class:`Refused` when the peer has closed."""
        try:
            await self.stream.send_all(b"".join(encode_frame(m) for m in messages))
        except (OSError, trio.BrokenResourceError, trio.ClosedResourceError) as exc:
            raise Refused(f"{self.remote.contact.address}: closed ({exc})") from None

    async def collect(self, seconds: float) -> list[Message]:
        """What arrives within ``seconds`` (less if the peer closes)."""
        with trio.move_on_after(seconds):
            await self._read(None)
        return self.heard

    async def serve(self, answer: QueryAnswer | None = None) -> None:
        """Keep the link alive as a neighbor would, until the peer closes it."""
        await self._read(answer)
        await self.aclose()

    async def _read(self, answer: QueryAnswer | None) -> None:
        try:
            while data := await self.stream.receive_some(READ_SIZE):
                for message in self.decoder.feed(data):
                    if len(self.heard) < 1000:
                        self.heard.append(message)
                    replies = neighborly_reply(message, answer)
                    if replies:
                        await self.send(*replies)
        except (OverlayError, OSError, trio.BrokenResourceError, trio.ClosedResourceError):
            return  # the peer closed, reset or refused the link: it is over either way

    async def aclose(self) -> None:
        with contextlib.suppress(OSError, trio.BrokenResourceError, trio.ClosedResourceError):
            await self.stream.aclose()


def neighborly_reply(message: Message, answer: QueryAnswer | None) -> list[Message]:
    """What keeps a peer believing the link is a live neighbor: nothing more."""
    kind = type(message)
    if kind is Heartbeat:
        return [Heartbeat(CLAIMED_DEGREE)]
    if kind in (Join, NeighborRequest):
        return [NeighborAccept(CLAIMED_DEGREE)]
    if kind is ShuffleRequest:
        return [ShuffleReply(())]
    if kind is Query and answer is not None:
        assert isinstance(message, Query)
        return list(answer(message))
    return []


async def dial(
    address: Address, claimed: Contact, *, role: str = "weak", capacity: int = 1
) -> Link:
    """A connection to ``address`` on which the attacker says it is ``claimed``.

    :class:`Refused` when nothing answers, or the peer closes instead of answering the
    handshake (what a runtime that checks ids does with a claim it cannot prove)."""
    try:
        stream = await connect(address)
    except OverlayError as exc:
        raise Refused(str(exc)) from None
    decoder = FrameDecoder()
    try:
        with trio.fail_after(HANDSHAKE_TIMEOUT):
            await stream.send_all(
                encode_frame(Handshake(PROTOCOL_VERSION, claimed, role, capacity))
            )
            remote, early = await read_handshake(stream, decoder, READ_SIZE)
    except (OverlayError, OSError, trio.BrokenResourceError, trio.TooSlowError) as exc:
        with contextlib.suppress(OSError, trio.BrokenResourceError):
            await stream.aclose()
        raise Refused(f"{address} refused the handshake claiming {claimed.id}: {exc}") from None
    return Link(stream, claimed, remote, decoder, list(early))


class Impersonator:
    """A listener of the attacker's that answers every handshake as ``claimed`` and keeps
    the links it is given alive; counts the peers that keep a link to it."""

    def __init__(self, claimed: Contact, answer: QueryAnswer | None = None) -> None:
        self.claimed = claimed
        self.answer = answer
        self.links: list[Link] = []
        self._listeners: list[trio.SocketListener] = []

    @classmethod
    async def open(
        cls, host: str, claimed_id: str, answer: QueryAnswer | None = None
    ) -> Impersonator:
        """Listen on ``host`` (any port); the contact it claims is ``claimed_id`` there."""
        listeners = await trio.open_tcp_listeners(0, host=host)
        port = int(listeners[0].socket.getsockname()[1])
        impersonator = cls(Contact(claimed_id, Address(host, port)), answer)
        impersonator._listeners = list(listeners)
        return impersonator

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        async with trio.open_nursery() as nursery:
            await nursery.start(trio.serve_listeners, self._accept, self._listeners)
            task_status.started()

    async def _accept(self, stream: trio.SocketStream) -> None:
        decoder = FrameDecoder()
        try:
            with trio.fail_after(HANDSHAKE_TIMEOUT):
                remote, early = await read_handshake(stream, decoder, READ_SIZE)
                await stream.send_all(encode_frame(Handshake(PROTOCOL_VERSION, self.claimed)))
        except (OverlayError, OSError, trio.BrokenResourceError, trio.TooSlowError):
            with contextlib.suppress(OSError, trio.BrokenResourceError):
                await stream.aclose()
            return
        link = Link(stream, self.claimed, remote, decoder)
        self.links.append(link)
        replies = [r for m in early for r in neighborly_reply(m, self.answer)]
        with contextlib.suppress(Refused):
            if replies:
                await link.send(*replies)
            await link.serve(self.answer)
        await link.aclose()

    def linked_peers(self) -> set[str]:
        """Ids of the peers that still hold a link to this listener."""
        return open_peers(self.links)


def open_peers(links: Sequence[Link]) -> set[str]:
    """Ids of the peers at the other end of those ``links`` that are still open (a link
    is closed here as soon as its peer closes it)."""
    return {link.remote.contact.id for link in links if link.stream.socket.fileno() >= 0}
