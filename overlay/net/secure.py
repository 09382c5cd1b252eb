"""Authenticated, encrypted links: the Noise XX handshake that binds a peer id to a
connection, and the transport that carries frames after it.

Every connection starts with ``Noise_XX_25519_ChaChaPoly_SHA256`` (the ``noiseprotocol``
package runs the pattern, ``cryptography`` the maths; nothing here is a primitive).
Each Noise message on the wire is a 2-byte big-endian length and the message (at most
65,535 bytes), as libp2p-noise frames them.

The identity is bound the way libp2p-noise binds it: each side's handshake payload
(responder in message 2, initiator in message 3, both encrypted) is
``msgpack([identity_public_key, signature])``, the signature being the Ed25519 identity
key's over :data:`STATIC_KEY_CONTEXT` and the side's X25519 static key.  Noise proves
that the remote holds that static key; the signature proves that the identity key
chose it; so the remote's **proven id** is ``peer_id_of(identity_public_key)``.

After the handshake, the frame stream (4-byte length + msgpack body, as in plaintext)
is cut into Noise transport messages of at most :data:`MAX_CHUNK` bytes of plaintext
each: frames written together are sealed together (one tag, one AEAD call per
batch rather than per frame), and a frame may span messages.  The wire's frame cap and
validation apply to the decrypted stream unchanged.

``--plaintext`` (:data:`PLAINTEXT`) skips all of this and keeps the bare frames.  A
secure side recognises a plaintext remote by its first bytes (a frame's length prefix
starts with two zero bytes, which no Noise message length can be) and refuses it with
one line.
"""

from __future__ import annotations

import struct
from collections.abc import Awaitable, Callable
from typing import Any, Final

import attrs
import msgpack
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
    PublicFormat,
)
from noise.connection import Keypair, NoiseConnection  # type: ignore[import-untyped]
from noise.exceptions import (  # type: ignore[import-untyped]
    NoiseHandshakeError,
    NoiseInvalidMessage,
    NoiseValueError,
)

from overlay.net.keys import Ed25519Verifier, KeyPair
from overlay.protocol.errors import LocalError, OverlayError, ProtocolError, RemoteError
from overlay.protocol.identity import PUBLIC_KEY_BYTES, PeerId, peer_id_of
from overlay.protocol.signing import SIGNATURE_BYTES
from overlay.protocol.wire import PROTOCOL_VERSION

NOISE_PROTOCOL: Final = b"Noise_XX_25519_ChaChaPoly_SHA256"
PROLOGUE: Final = b"overlay/%d" % PROTOCOL_VERSION
"""Mixed into the handshake hash: a remote of another protocol version fails the handshake."""
STATIC_KEY_CONTEXT: Final = b"overlay-noise-static-key:"
"""What an identity key signs, before the X25519 static key (never a bare key)."""
LENGTH: Final = struct.Struct(">H")
MAX_NOISE_MESSAGE: Final = 65535
TAG_BYTES: Final = 16
MAX_CHUNK: Final = MAX_NOISE_MESSAGE - TAG_BYTES
"""Most plaintext bytes in one transport message."""
NONCE: Final = struct.Struct("<4xQ")
"""Noise's ChaChaPoly nonce: 32 zero bits, then the 64-bit counter little-endian."""
MAX_NONCE: Final = 2**64 - 1
"""Noise reserves the last counter value (rekeying): a link never seals with it."""
MAX_HANDSHAKE_MESSAGE: Final = 1024
"""A handshake message is 32 to about 250 bytes; anything longer is not ours."""
_VERIFIER: Final = Ed25519Verifier()


class HandshakeFailed(RemoteError):
    """The remote's Noise handshake or its identity proof did not check."""


class PlaintextRemote(HandshakeFailed):
    """The remote speaks plaintext frames (``--plaintext``) to a secure side."""


class CorruptMessage(ProtocolError):
    """A transport message failed its authentication tag (altered, replayed, reordered)."""


@attrs.frozen
class Plaintext:
    """Links without the handshake or encryption (``--plaintext``): for teaching and
    packet captures only."""


PLAINTEXT: Final = Plaintext()


class LinkIdentity:
    """What one node proves on every connection: its identity key, a fresh X25519 static
    key for Noise (one per process run, as libp2p does), and the signed binding."""

    __slots__ = ("_noise_static", "key", "payload", "static")

    def __init__(self, key: KeyPair) -> None:
        self.key = key
        static = X25519PrivateKey.generate()
        self.static = static.private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption())
        public = static.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
        signature = key.sign(STATIC_KEY_CONTEXT + public)
        self.payload: bytes = msgpack.packb([key.public_key, signature], use_bin_type=True)
        self._noise_static: Any = None

    def noise_static(self, noise: Any) -> Any:
        """The static key pair as ``noise`` holds it, loaded once per node rather than
        once per handshake (loading it was a tenth of a handshake's time)."""
        if self._noise_static is None:
            noise.set_keypair_from_private_bytes(Keypair.STATIC, self.static)
            self._noise_static = noise.noise_protocol.keypairs["s"]
        return self._noise_static

    @classmethod
    def fresh(cls) -> LinkIdentity:
        """A one-shot client's identity: a new key every run."""
        return cls(KeyPair.generate())

    @property
    def peer_id(self) -> PeerId:
        return self.key.peer_id


Security = LinkIdentity | Plaintext
"""How a node or a client speaks on its connections."""


class NoiseFramer:
    """Cuts a byte stream into length-prefixed Noise messages; holds at most one
    incomplete message (bounded by ``limit`` + 2 bytes)."""

    __slots__ = ("_buffer", "limit")

    def __init__(self, limit: int) -> None:
        self._buffer = bytearray()
        self.limit = limit

    @property
    def buffered(self) -> int:
        return len(self._buffer)

    def unread(self, messages: list[bytes | memoryview]) -> None:
        """Put whole messages back in front of what is buffered (read again next feed)."""
        if messages:
            self._buffer[:0] = b"".join(_framed(message) for message in messages)

    def feed(self, data: bytes | bytearray) -> list[bytes | memoryview]:
        """Every message ``data`` completes, in order (views of ``data`` where a message
        lies whole in it: no copy on the usual path, where reads end on messages)."""
        buffer = self._buffer
        view = None
        if buffer:
            buffer += data
            source: bytearray | memoryview = buffer
        else:
            source = view = memoryview(data)
        messages: list[bytes | memoryview] = []
        position = 0
        end = len(source)
        while end - position >= 2:
            (size,) = LENGTH.unpack_from(source, position)
            if size < TAG_BYTES:
                if size == 0 and position == 0 and not messages:
                    raise PlaintextRemote(
                        "it sent a plaintext frame: the remote runs with --plaintext "
                        "and this side does not"
                    )
                raise CorruptMessage(f"a Noise message of {size} bytes (at least {TAG_BYTES})")
            if size > self.limit:
                raise CorruptMessage(f"a Noise message of {size} bytes (at most {self.limit})")
            if end - position - 2 < size:
                break
            if view is None:
                messages.append(bytes(buffer[position + 2 : position + 2 + size]))
            else:
                messages.append(view[position + 2 : position + 2 + size])
            position += 2 + size
        if view is None:
            del buffer[:position]
        elif position < end:
            buffer += source[position:]  # the start of a message: kept for the next read
        return messages


BUSY_USES: Final = 16
"""Seals and opens between two of the node's sweeps from which a link keeps its two
AEAD objects built; below it, each use builds its own (see :class:`Session`)."""


class Session:
    """An established link's two directions: :meth:`seal` what we send, :meth:`open`
    what we read.  Nonces count messages, so sealing order is writing order.

    Each direction is a ``cryptography`` ``ChaCha20Poly1305`` under the key that
    noiseprotocol's cipher state holds after the handshake, with the Noise nonce
    format (:data:`NONCE`: 4 zero bytes, then the 64-bit counter little-endian) and
    empty associated data: the very same AEAD call that
    ``CipherState.encrypt_with_ad`` makes, without its three layers of Python calls
    per message (``tests/overlay/net/test_secure.py`` checks the bytes against
    noiseprotocol's own).  The handshake's Noise objects are dropped with it.

    An AEAD object holds about 1.4 KiB of OpenSSL state, and a settled link carries a
    heartbeat each way every two seconds: keeping both objects on every link was most
    of what a secure peer holds beyond a plaintext one.  So a session keeps its keys
    (32 bytes each) and builds the objects when it uses them (about 2 µs, against 4 µs
    to seal a heartbeat); it keeps them built only while it is busy, that is once it
    has been used :data:`BUSY_USES` times since the node's last sweep, and
    :meth:`sweep` drops them when a sweep period passes with fewer uses.  A flooding
    link pays the build once per period; a quiet one holds 64 bytes of keys."""

    __slots__ = (
        "_framer",
        "_opener",
        "_opener_key",
        "_received",
        "_sealer",
        "_sealer_key",
        "_sent",
        "_uses",
    )

    def __init__(self, send: Any, receive: Any, framer: NoiseFramer) -> None:
        self._sealer_key = _key_of(send)
        self._sent: int = send.n
        self._opener_key = _key_of(receive)
        self._received: int = receive.n
        self._sealer: ChaCha20Poly1305 | None = None
        self._opener: ChaCha20Poly1305 | None = None
        self._uses = 0
        """Seals and opens since the last :meth:`sweep`."""
        self._framer = framer
        framer.limit = MAX_NOISE_MESSAGE

    @property
    def buffered(self) -> int:
        return self._framer.buffered

    @property
    def ciphers_kept(self) -> int:
        """How many of the two AEAD objects are built and kept now (for measurements)."""
        return (self._sealer is not None) + (self._opener is not None)

    def sweep(self) -> None:
        """Start a new period of use: a session used less than :data:`BUSY_USES` times
        in the one that ends drops its AEAD objects (they are rebuilt from the keys)."""
        if self._uses < BUSY_USES:
            self._sealer = self._opener = None
        self._uses = 0

    def _busy(self) -> bool:
        self._uses = uses = self._uses + 1
        return uses >= BUSY_USES

    def seal(self, data: bytes | bytearray | memoryview) -> list[bytes]:
        """``data`` as transport messages, in order: each a 2-byte length, then the
        message (separate entries, for ``writev``: no copy to join them)."""
        sealer = self._sealer
        if sealer is None:
            sealer = ChaCha20Poly1305(self._sealer_key)
            if self._busy():
                self._sealer = sealer
        else:
            self._uses += 1
        if len(data) <= MAX_CHUNK:  # the usual case: no slice to copy
            sealed = self._seal_one(sealer, data)
            return [LENGTH.pack(len(sealed)), sealed]
        out: list[bytes] = []
        view = memoryview(data)
        for start in range(0, len(data), MAX_CHUNK):
            sealed = self._seal_one(sealer, view[start : start + MAX_CHUNK])
            out += (LENGTH.pack(len(sealed)), sealed)
        return out

    def _seal_one(self, sealer: ChaCha20Poly1305, data: bytes | bytearray | memoryview) -> bytes:
        nonce = self._sent
        if nonce >= MAX_NONCE:
            raise LocalError("this link's Noise nonces ran out (2**64 - 1 messages)")
        self._sent = nonce + 1
        sealed: bytes = sealer.encrypt(NONCE.pack(nonce), data, None)
        return sealed

    def open(self, data: bytes) -> bytes:
        """The plaintext of every transport message completed by ``data``."""
        messages = self._framer.feed(data)
        if not messages:
            return b""
        opener = self._opener
        if opener is None:
            opener = ChaCha20Poly1305(self._opener_key)
            if self._busy():
                self._opener = opener
        else:
            self._uses += 1
        decrypt = opener.decrypt
        pack = NONCE.pack
        nonce = self._received
        plain = []
        for message in messages:
            if nonce >= MAX_NONCE:
                raise CorruptMessage("this link's Noise nonces ran out (2**64 - 1 messages)")
            try:
                plain.append(decrypt(pack(nonce), message, None))
            except InvalidTag:
                self._received = nonce
                raise CorruptMessage(
                    "a transport message failed authentication (altered in transit?)"
                ) from None
            nonce += 1
        self._received = nonce
        return plain[0] if len(plain) == 1 else b"".join(plain)


def _key_of(cipher_state: Any) -> bytes:
    """The key of one of noiseprotocol's cipher states after the handshake, checked to
    be a ChaCha20-Poly1305 one (see :class:`Session`)."""
    aead = cipher_state.cipher.cipher
    if type(aead) is not ChaCha20Poly1305:  # pragma: no cover - NOISE_PROTOCOL fixes it
        raise TypeError(f"expected ChaCha20Poly1305 in the cipher state, found {type(aead)}")
    key = cipher_state.k
    if type(key) is not bytes or len(key) != 32:  # pragma: no cover - the library's
        raise TypeError("expected a 32-byte key in the cipher state")
    return key


Receive = Callable[[], Awaitable[bytes | bytearray]]
Send = Callable[[bytes], Awaitable[None]]


async def _next_message(
    framer: NoiseFramer, pending: list[bytes | memoryview], receive: Receive
) -> bytes:
    while not pending:
        data = await receive()
        if not data:
            raise HandshakeFailed(
                "closed during the Noise handshake "
                "(as a --plaintext remote does, or one refusing us)"
            )
        pending.extend(framer.feed(data))
    message = bytes(pending.pop(0))
    if len(message) > MAX_HANDSHAKE_MESSAGE:
        raise HandshakeFailed(
            f"a Noise handshake message of {len(message)} bytes (at most {MAX_HANDSHAKE_MESSAGE})"
        )
    return message


def _framed(message: bytes | bytearray | memoryview) -> bytes:
    return LENGTH.pack(len(message)) + bytes(message)


async def handshake(
    identity: LinkIdentity, *, initiator: bool, send: Send, receive: Receive
) -> tuple[Session, PeerId]:
    """Run Noise XX over a fresh connection; the session and the remote's proven id.

    Raises :class:`HandshakeFailed` when the remote's messages or proof do not check
    (callers bound the time).  Bytes that came behind the last handshake message stay
    in the session, read by its first :meth:`Session.open`.
    """
    noise = NoiseConnection.from_name(NOISE_PROTOCOL)
    if initiator:
        noise.set_as_initiator()
    else:
        noise.set_as_responder()
    noise.set_prologue(PROLOGUE)
    noise.noise_protocol.keypairs["s"] = identity.noise_static(noise)
    noise.start_handshake()
    state = noise.noise_protocol.handshake_state  # kept: Noise drops it when done
    # The framer admits transport-message sizes: the remote's first transport message
    # may come in the same read as its last handshake message (a client sends its
    # request at once).  Handshake messages themselves are held to their own bound.
    framer = NoiseFramer(MAX_NOISE_MESSAGE)
    pending: list[bytes | memoryview] = []
    try:
        if initiator:
            await send(_framed(noise.write_message(b"")))
            payload = noise.read_message(await _next_message(framer, pending, receive))
            await send(_framed(noise.write_message(identity.payload)))
        else:
            noise.read_message(await _next_message(framer, pending, receive))
            await send(_framed(noise.write_message(identity.payload)))
            payload = noise.read_message(await _next_message(framer, pending, receive))
    except (NoiseHandshakeError, NoiseInvalidMessage, NoiseValueError, InvalidTag) as error:
        raise HandshakeFailed(f"Noise handshake failed: {type(error).__name__}") from None
    except OverlayError:
        raise  # the transport's own (closed, reset), or ours above
    except Exception as error:  # the library refusing the remote's bytes some other way
        raise HandshakeFailed(f"Noise handshake failed: {type(error).__name__}") from None
    finally:
        _break_cycle(noise)
    if not noise.handshake_finished:
        raise HandshakeFailed("the Noise handshake did not finish")
    proven = _proven_id(bytes(payload), bytes(state.rs.public_bytes))
    protocol = noise.noise_protocol
    session = Session(protocol.cipher_state_encrypt, protocol.cipher_state_decrypt, framer)
    framer.unread(pending)  # transport messages that came behind the last handshake message
    return session, proven


def _break_cycle(noise: Any) -> None:
    """Let reference counting free a handshake's Noise objects as soon as it ends.

    noiseprotocol's ``NoiseConnection`` keeps its next step as a bound method of itself
    (``_next_fn``): a reference cycle, so every handshake, finished or failed, left its
    connection, protocol state and two ChaCha20-Poly1305 objects (about 1.4 KiB of
    OpenSSL state each) for the cyclic collector, which a network process runs rarely
    (:mod:`overlay.collector`).  A secure peer shuffles over a new link every few
    seconds, so that garbage was about a sixth of a settled swarm worker's memory."""
    noise._next_fn = None


PROOFS_REMEMBERED: Final = 4096
"""Identity proofs checked before (a process's peers meet the same remotes again and
again: shuffles, crawls, re-dials), kept so that each is verified once."""
_proofs: dict[tuple[bytes, bytes], PeerId] = {}


def _proven_id(payload: bytes, remote_static: bytes) -> PeerId:
    """The id the remote's payload proves for its static key, or :class:`HandshakeFailed`.

    A proof is the same bytes for every link a remote process opens (its static key
    lives as long as the process), and Noise has proved the remote holds that static
    key on this very link: the signature, the costliest step, is checked once per
    (payload, static key) in a bounded table."""
    known = _proofs.get((payload, remote_static))
    if known is not None:
        return known
    proven = _check_proof(payload, remote_static)
    if len(_proofs) >= PROOFS_REMEMBERED:
        _proofs.clear()
    _proofs[(payload, remote_static)] = proven
    return proven


def _check_proof(payload: bytes, remote_static: bytes) -> PeerId:
    try:
        fields = msgpack.unpackb(payload, raw=False, max_bin_len=128, max_array_len=2)
    except Exception:  # any msgpack error: the remote's bytes
        raise HandshakeFailed("the identity proof is not msgpack") from None
    if (
        type(fields) is not list
        or len(fields) != 2
        or type(fields[0]) is not bytes
        or type(fields[1]) is not bytes
        or len(fields[0]) != PUBLIC_KEY_BYTES
        or len(fields[1]) != SIGNATURE_BYTES
    ):
        raise HandshakeFailed("the identity proof is not [32-byte key, 64-byte signature]")
    public_key, signature = fields
    if not _VERIFIER.verify(public_key, STATIC_KEY_CONTEXT + remote_static, signature):
        raise HandshakeFailed("the identity key's signature over the Noise static key is wrong")
    return peer_id_of(public_key)
