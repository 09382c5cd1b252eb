"""The wire side of benchmarks/attacks.py: one attacker process that speaks the overlay's
own protocol under whatever identity it claims.

Nothing here encodes a frame or runs a cipher by hand: frames go through
:mod:`overlay.protocol.wire` (``encode_frame`` / ``FrameDecoder``), the Noise handshake
and sealing through :mod:`overlay.net.secure`, the handshake frame through
:func:`overlay.net.connection.read_handshake`, exactly as a peer's runtime speaks.  What
is hostile is only what the attacker *claims*:

* :func:`dial` opens a connection and introduces itself with any :class:`Contact` (the
  victim's id, a neighbor's id, a made-up address);
* :class:`Impersonator` listens on an address of the attacker's and answers the
  handshakes of the peers that dial it under an identity of its choosing, then keeps
  every link it holds alive the way a neighbor would (a heartbeat for a heartbeat, an
  accept for a join) while forwarding nothing; an optional :data:`QueryAnswer` answers
  the queries that reach it (with forged hits, say).

On a runtime that proves ids at the handshake, the attacker proves a key of its own
(:func:`new_identity`); a claimed id that is not that key's cannot get past :func:`dial`:
the peer closes the connection, and :class:`Refused` carries the reason, which is the
attack's recorded outcome.
"""

from __future__ import annotations

import contextlib
import random
from collections.abc import Callable, Sequence
from typing import Final

import attrs
import trio

from overlay.net.client import CONNECT_TIMEOUT, nothing_answers
from overlay.net.connection import read_handshake
from overlay.net.keys import KeyPair
from overlay.net.secure import LinkIdentity, Session, handshake
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
REFUSAL_WAIT: Final = 0.5
"""How long a secure dial waits, after the handshakes, for the peer to hang up on a claim
it refuses (it answers first and checks after)."""
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
    session: Session | None
    """The Noise session (None: a plaintext link)."""
    decoder: FrameDecoder = attrs.field(factory=FrameDecoder)
    heard: list[Message] = attrs.field(factory=list)
    """What the peer sent on it (read by :meth:`collect` or :meth:`serve`), bounded."""

    async def send(self, *messages: Message) -> None:
        """The frames in one write; :class:`Refused` when the peer has closed."""
        data = b"".join(encode_frame(m) for m in messages)
        if self.session is not None:
            data = b"".join(self.session.seal(data))
        try:
            await self.stream.send_all(data)
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
                if self.session is not None:
                    data = self.session.open(data)
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
    address: Address,
    claimed: Contact,
    identity: LinkIdentity | None,
    *,
    role: str = "weak",
    capacity: int = 1,
) -> Link:
    """A connection to ``address`` on which the attacker says it is ``claimed``.

    With an ``identity`` the connection opens with the Noise handshake, proving that
    identity's key (which need not be the claimed id's: that is the lie a secure peer
    must catch); without, it speaks plaintext.  The connection leaves from the claimed
    address's host: on loopback any 127.0.0.0/8 source can be bound, which a real
    network would not allow an off-path attacker (see docs/faults.md).

    :class:`Refused` when nothing answers, or the peer closes instead of answering the
    handshake (what a runtime that checks ids does with a claim it cannot prove)."""
    try:
        with trio.fail_after(CONNECT_TIMEOUT):
            stream = await trio.open_tcp_stream(
                address.host, address.port, local_address=claimed.address.host
            )
    except (OSError, trio.TooSlowError) as exc:
        raise Refused(nothing_answers(address, exc)) from None
    try:
        mine = Handshake(PROTOCOL_VERSION, claimed, role, capacity)
        link = await introduce(stream, claimed, identity, mine, initiator=True)
        if link.session is not None:
            # A secure peer answers our handshake before it checks our claim against
            # our proof, then closes at once: wait a moment for that close.
            with trio.move_on_after(REFUSAL_WAIT):
                data = await stream.receive_some(READ_SIZE)
                if not data:
                    raise Refused("closed right after the handshake")
                link.heard += link.decoder.feed(link.session.open(data))
    except (OverlayError, OSError, trio.BrokenResourceError, trio.TooSlowError) as exc:
        with contextlib.suppress(OSError, trio.BrokenResourceError):
            await stream.aclose()
        why = str(exc) or type(exc).__name__
        raise Refused(f"{address} refused the handshake claiming {claimed.id}: {why}") from None
    return link


async def introduce(
    stream: trio.SocketStream,
    claimed: Contact,
    identity: LinkIdentity | None,
    mine: Handshake,
    *,
    initiator: bool,
) -> Link:
    """Both handshakes on a fresh ``stream``, as either end: the Noise one proving
    ``identity``'s key (none on plaintext), then the overlay's, ``mine`` against the
    peer's (the initiator speaks first); the link, with what came with the peer's
    handshake already heard.  Raises what the stream or the peer's frames raise, or
    ``trio.TooSlowError`` after :data:`HANDSHAKE_TIMEOUT`."""
    decoder = FrameDecoder()

    async def receive() -> bytes:
        return await stream.receive_some(READ_SIZE)

    async def send_mine() -> None:
        data = encode_frame(mine)
        if session is not None:
            data = b"".join(session.seal(data))
        await stream.send_all(data)

    with trio.fail_after(HANDSHAKE_TIMEOUT):
        session = None
        if identity is not None:
            session, _ = await handshake(
                identity, initiator=initiator, send=stream.send_all, receive=receive
            )
        if initiator:
            await send_mine()
        remote, early = await read_handshake(receive, decoder, session)
        if not initiator:
            await send_mine()
    return Link(stream, claimed, remote, session, decoder, list(early))


def new_identity(secure: bool, rng: random.Random) -> tuple[LinkIdentity | None, str]:
    """A fresh attacker identity: its key (None on a plaintext runtime) and its id (on a
    plaintext runtime drawn from ``rng``; on a secure one the key's, where no other id
    can be proven)."""
    if not secure:
        return None, f"{rng.getrandbits(128):032x}"
    identity = LinkIdentity(KeyPair.generate())
    return identity, identity.peer_id


class Impersonator:
    """A listener of the attacker's that answers every handshake as ``claimed`` (proving
    ``identity``'s key first, on a secure runtime) and keeps the links it is given alive;
    also keeps the links it dials itself (:meth:`dial`)."""

    def __init__(
        self, claimed: Contact, identity: LinkIdentity | None, answer: QueryAnswer | None = None
    ) -> None:
        self.claimed = claimed
        self.identity = identity
        self.answer = answer
        self.links: list[Link] = []
        self._listeners: list[trio.SocketListener] = []

    @classmethod
    async def open(
        cls,
        host: str,
        claimed_id: str,
        identity: LinkIdentity | None,
        answer: QueryAnswer | None = None,
    ) -> Impersonator:
        """Listen on ``host`` (any port); the contact it claims is ``claimed_id`` there."""
        listeners = await trio.open_tcp_listeners(0, host=host)
        port = int(listeners[0].socket.getsockname()[1])
        impersonator = cls(Contact(claimed_id, Address(host, port)), identity, answer)
        impersonator._listeners = list(listeners)
        return impersonator

    @classmethod
    async def fresh(
        cls, host: str, secure: bool, rng: random.Random, answer: QueryAnswer | None = None
    ) -> Impersonator:
        """A listener on ``host`` under a new attacker identity of its own
        (:func:`new_identity`)."""
        identity, me = new_identity(secure, rng)
        return await cls.open(host, me, identity, answer)

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        async with trio.open_nursery() as nursery:
            await nursery.start(trio.serve_listeners, self._accept, self._listeners)
            task_status.started()

    async def dial(self, address: Address) -> Link:
        """A link to ``address`` under this listener's identity, kept with its others."""
        link = await dial(address, self.claimed, self.identity)
        self.links.append(link)
        return link

    async def _accept(self, stream: trio.SocketStream) -> None:
        try:
            mine = Handshake(PROTOCOL_VERSION, self.claimed)
            link = await introduce(stream, self.claimed, self.identity, mine, initiator=False)
        except (OverlayError, OSError, trio.BrokenResourceError, trio.TooSlowError):
            with contextlib.suppress(OSError, trio.BrokenResourceError):
                await stream.aclose()
            return
        early, link.heard = link.heard, []
        self.links.append(link)
        replies = [r for m in early for r in neighborly_reply(m, self.answer)]
        with contextlib.suppress(Refused):
            if replies:
                await link.send(*replies)
            await link.serve(self.answer)

    def linked_peers(self) -> set[str]:
        """Ids of the peers that still hold a link to this listener."""
        return open_peers(self.links)


def open_peers(links: Sequence[Link]) -> set[str]:
    """Ids of the peers at the other end of those ``links`` that are still open (a link
    is closed here as soon as its peer closes it)."""
    return {link.remote.contact.id for link in links if link.stream.socket.fileno() >= 0}
