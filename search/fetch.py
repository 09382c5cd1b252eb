"""Fetching an item's value from its holder, and serving our own.

The requester checks the bytes against the key itself: a holder is a stranger, and
the key is the SHA-256 of the value, so a wrong or tampered value is caught here
and refused with :class:`~search.errors.ContentMismatch`, which names the holder.
"""

from __future__ import annotations

import attrs

from overlay.protocol.effects import Effect, Notify, Send
from overlay.protocol.identity import Contact
from overlay.protocol.messages import Fetch, FetchReply
from search.context import SearchContext
from search.errors import (
    ContentMismatch,
    FetchError,
    FetchTimeout,
    ItemNotFound,
    TooManySearches,
)
from search.outcome import FetchResult
from search.store import content_key


@attrs.define
class PendingFetch:
    key: str
    holder: Contact
    started: float


class Fetching:
    """Both sides of a fetch."""

    def __init__(self, ctx: SearchContext) -> None:
        self.ctx = ctx
        self.pending: dict[str, PendingFetch] = {}

    def start_fetch(self, key: str, holder: Contact, now: float, out: list[Effect]) -> str:
        ctx = self.ctx
        if len(self.pending) >= ctx.config.max_searches:
            raise TooManySearches(f"already running {len(self.pending)} fetches")
        request_id = ctx.new_id()
        Fetch(request_id, key)  # validate the key before keeping any state
        self.pending[request_id] = PendingFetch(key, holder, now)
        out.append(Send(holder.address, Fetch(request_id, key)))
        timeout = ctx.config.fetch_timeout

        def expire(when: float, out: list[Effect]) -> None:
            waiting = self.pending.pop(request_id, None)
            if waiting is not None:
                ctx.count("search.fetch.timeout")
                error = FetchTimeout(holder=holder, key=key, seconds=timeout)
                self._done(request_id, waiting, None, error, out)

        ctx.at(now + timeout, expire)
        return request_id

    def on_fetch(self, message: Fetch, sender: Contact, now: float, out: list[Effect]) -> None:
        item = self.ctx.store.get(message.key)
        self.ctx.count("search.fetch.served" if item is not None else "search.fetch.missing")
        reply = FetchReply(
            request_id=message.request_id,
            key=message.key,
            found=item is not None,
            value=item.value if item is not None else b"",
        )
        out.append(Send(sender.address, reply))

    def on_reply(self, message: FetchReply, sender: Contact, now: float, out: list[Effect]) -> None:
        ctx = self.ctx
        waiting = self.pending.get(message.request_id)
        if waiting is None:
            ctx.refuse(
                sender,
                f"fetch reply for unknown request {message.request_id}",
                "search.fetch.unknown_reply",
                out,
            )
            return
        if sender.id != waiting.holder.id or message.key != waiting.key:
            ctx.refuse(
                sender,
                "fetch reply from the wrong peer or for the wrong key",
                "search.fetch.wrong_reply",
                out,
            )
            return
        del self.pending[message.request_id]
        if not message.found:
            ctx.count("search.fetch.not_found")
            self._done(
                message.request_id,
                waiting,
                None,
                ItemNotFound(holder=waiting.holder, key=waiting.key),
                out,
            )
            return
        actual = content_key(message.value)
        if actual != waiting.key:
            error = ContentMismatch(holder=waiting.holder, key=waiting.key, actual=actual)
            ctx.refuse(sender, str(error), "search.fetch.mismatch", out)
            self._done(message.request_id, waiting, None, error, out)
            return
        ctx.count("search.fetch.ok")
        self._done(message.request_id, waiting, message.value, None, out)

    def _done(
        self,
        request_id: str,
        waiting: PendingFetch,
        value: bytes | None,
        error: FetchError | None,
        out: list[Effect],
    ) -> None:
        result = FetchResult(request_id, waiting.key, waiting.holder, value, error)
        self.ctx.keep(self.ctx.fetches, request_id, result)
        out.append(
            Notify(
                "fetch_done", waiting.holder.id, f"{waiting.key} {'ok' if error is None else error}"
            )
        )
