"""What a core asks its runtime to do.  A core returns a list of these from every event.

The runtime opens a link on the first :class:`Send` to an address it has no
link to, so there is no separate "connect" effect; :class:`Close` drops a link
the core no longer wants.  :class:`Notify` carries an event for the live view,
the logs and the metrics; it never changes what goes on the network.
"""

from __future__ import annotations

from typing import Final

import attrs

from overlay.protocol.identity import Address, PeerId
from overlay.protocol.messages import Message


@attrs.frozen
class Send:
    """Send ``message`` to the peer listening on ``to``."""

    to: Address
    message: Message


@attrs.frozen
class Close:
    """Drop the link to ``to`` (if any); the core does not want it any more."""

    to: Address


@attrs.frozen
class Notify:
    """Something worth telling a person or a metric about.

    ``kind`` is one of :data:`EVENT_KINDS`; ``peer`` names the other peer
    involved, if any; ``detail`` is short free text for the event feed.
    """

    kind: str
    peer: PeerId | None = None
    detail: str = ""


EVENT_KINDS: Final = (
    "joined",  # first neighbor acquired
    "neighbor_up",
    "neighbor_down",  # a neighbor left, disconnected or was declared dead
    "suspect",  # a neighbor missed its heartbeats and was dropped as dead
    "isolated",  # lost every neighbor
    "bootstrap_fallback",  # had to ask the bootstrap again for contacts
    "bad_input",  # a peer sent something unacceptable (message dropped)
    "search_hit",  # a search we started got a hit
    "search_done",  # a search we started finished (its outcome is ready)
    "fetch_done",  # a fetch we started finished (verified, or refused)
    "role_changed",  # this peer promoted itself to super peer, or stepped down
)

Effect = Send | Close | Notify
NO_EFFECTS: Final[tuple[()]] = ()
