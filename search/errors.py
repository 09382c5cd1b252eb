"""Typed errors of search and fetch.

Each names who is at fault, as :mod:`overlay.protocol.errors` does.
"""

from __future__ import annotations

from overlay.protocol.errors import LocalError, OverlayError, RemoteError, TransportError
from overlay.protocol.identity import Contact


class FetchError(OverlayError):
    """A fetch did not produce the value; ``holder`` is the peer it was asked of."""

    def __init__(self, message: str, *, holder: Contact, key: str) -> None:
        super().__init__(message)
        self.holder = holder
        self.key = key


class ContentMismatch(FetchError, RemoteError):
    """The holder served bytes whose SHA-256 is not the key: refused, never handed on."""

    def __init__(self, *, holder: Contact, key: str, actual: str) -> None:
        super().__init__(
            f"holder {holder} served bytes with SHA-256 {actual}, not the requested key {key}",
            holder=holder,
            key=key,
        )
        self.actual = actual


class ItemNotFound(FetchError):
    """The holder says it does not (or no longer) hold the item."""

    def __init__(self, *, holder: Contact, key: str) -> None:
        super().__init__(f"holder {holder} does not hold {key}", holder=holder, key=key)


class FetchTimeout(FetchError, TransportError):
    """No answer from the holder in time."""

    def __init__(self, *, holder: Contact, key: str, seconds: float) -> None:
        super().__init__(
            f"holder {holder} did not answer a fetch of {key} within {seconds:g} s",
            holder=holder,
            key=key,
        )


class TooManySearches(LocalError):
    """This peer already runs its maximum number of searches as their origin."""
