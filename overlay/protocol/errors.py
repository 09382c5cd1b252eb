"""Typed errors.  Each says whose fault it is.

* :class:`RemoteError` and its subclasses: the remote side sent bad input.  The
  receiver logs one line, drops the message or the connection, and goes on.
* :class:`LocalError` and its subclasses: we misused our own API (for example we
  tried to send a message larger than the frame cap).  That is a bug here, not an
  attack, so it is raised to the caller.
"""


class OverlayError(Exception):
    """Base of every error this project raises on purpose."""


class RemoteError(OverlayError):
    """The remote peer is at fault: its bytes or its message are unacceptable."""


class ProtocolError(RemoteError):
    """The remote broke the protocol (bad framing, bad encoding, bad message)."""


class FrameTooLarge(ProtocolError):
    """A length prefix announced a frame over the cap; refused before buffering the body."""

    def __init__(self, size: int, cap: int) -> None:
        super().__init__(f"frame of {size} bytes exceeds the cap of {cap} bytes")
        self.size = size
        self.cap = cap


class MalformedMessage(ProtocolError):
    """The frame decoded, but not into a valid message (wrong type, range, length, tag)."""


class VersionMismatch(ProtocolError):
    """The remote speaks a protocol version we do not."""


class LocalError(OverlayError):
    """We are at fault: our own code misused an API."""


class MessageTooLarge(LocalError):
    """We tried to send a message whose encoding exceeds the frame cap."""


class TransportError(OverlayError):
    """The network failed us (refused, reset, timed out); nobody's bad input."""
