"""What a core asks its runtime to do.  A core returns a list of these from every event.

The runtime opens a link on the first :class:`Send` to an address it has no
link to, so there is no separate "connect" effect; :class:`Close` drops a link
the core no longer wants.  :class:`Notify` carries an event for the live view,
the logs and the metrics; it never changes what goes on the network.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Final, Literal, Protocol, get_args

import attrs

from overlay.protocol.identity import Address, Contact, PeerId
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


EventKind = Literal[
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
]
"""What a :class:`Notify` reports."""
EVENT_KINDS: Final[tuple[EventKind, ...]] = get_args(EventKind)


@attrs.frozen
class Notify:
    """Something worth telling a person or a metric about.

    ``peer`` names the other peer involved, if any; ``detail`` is short free text for
    the event feed.
    """

    kind: EventKind
    peer: PeerId | None = None
    detail: str = ""


Effect = Send | Close | Notify
NO_EFFECTS: Final[tuple[()]] = ()


Handler = Callable[[Any, Contact, float, list[Effect]], None]
"""How a part of a core handles one message type: ``(message, sender, now, out)``,
appending its effects to ``out``.  The message parameter is ``Any`` because each
handler takes its own message class; the tables that hold handlers are keyed by that
class (``dict[type[Message], Handler]``), which is what keeps them matched."""


class Core(Protocol):
    """What a runtime needs of a core: the peer and the bootstrap's host cache both fit.

    Both runtimes, the simulator (:mod:`overlay.sim.simulator`) and the trio runtime
    (:mod:`overlay.net.node`), drive a core through exactly these calls, with the time
    handed in; each returns the effects the runtime carries out.
    """

    def start(self, now: float) -> list[Effect]: ...
    def receive(self, message: Message, sender: Contact, now: float) -> list[Effect]: ...
    def link_lost(self, peer: PeerId, now: float) -> list[Effect]: ...
    def handle_timer(self, now: float) -> list[Effect]:
        """Called once ``now`` has reached :meth:`next_deadline`."""
        ...

    def next_deadline(self) -> float: ...
