"""A bound on the handshakes that run at once, shared by every node of a process.

A Noise XX handshake costs each end one to three milliseconds of CPU.  A process that
runs hundreds of peers (a swarm worker) opens hundreds of links at once as its swarm
forms or churns; with no bound, every handshake gets a sliver of a busy machine's CPU,
they outlast ``handshake_timeout`` together, and the peers dial again: a secure
200-peer worker at load 15 counted 14,114 handshake timeouts in one run.  With a bound,
a handshake waits for its turn and then runs at full speed, so handshakes finish one
after another instead of failing together.

:class:`HandshakeGate` holds two :class:`Pool` objects, one for connections we accept
and one for those we dial.  They are separate because a dialled handshake waits on the
remote's accepted one: with one pool for both, a process whose slots were all held by
its own dialers, each waiting for an accepted handshake of the same process that waits
for a slot, would stall until the timeouts.

A pool runs at most ``slots`` handshakes; the others wait, at most ``waiting`` of them
(a connection past that is refused, counted, with one log line).  A freed slot goes to
the oldest waiter, unless that one has waited longer than ``lifo_after`` seconds: then
the pool is overloaded and the slot goes to the **newest**.  Under overload a
first-come queue serves only handshakes that have waited nearly their whole timeout
(and whose remote, timing the handshake from its own side, is about to give up), so
all of them fail; serving the newest keeps the ones served useful, and the oldest time
out having cost no CPU (adaptive LIFO, as in Maurer's "Fail at Scale", 2015).  In a
200-peer swarm worker at load 9, first-come order alone left 10,338 waits timed out in
75 s, newest-first alone 1,565; newest-first alone also let a burst of clients (the
benchmark's 64 floods in flight) starve its oldest members into their own timeouts.
While it is full, one remote host may hold at most ``per_source`` of its running and
waiting places, so one source cannot fill the queue and lock others out; a free slot
is never refused.  The wait has its own timeout (the node's ``handshake_timeout``),
and the handshake's timeout starts when its slot is granted.

A waiter may be **urgent**: a freed slot goes to an urgent waiter before any other
(by the same oldest-then-newest rule among the urgent ones).  A swarm worker's nodes
mark every dial of a peer that has no neighbor yet urgent (what it opens then: its
``Register``, its ``Join`` messages, its urgent ``NeighborRequest`` messages).  While
a forming swarm keeps the dialled pool full with the joined peers' shuffles and link
changes, a newcomer's dials otherwise waited behind them and timed out, again and
again: in a 1,000-peer swarm on a loaded machine the last peers to join had lost 7
of their 8 ``Register`` dials that way, 40 s after the others had joined.  Only the
node's own state decides it, so no remote can buy a place ahead of others; the
bounds (``waiting``, ``per_source``) count urgent waiters like any.
"""

from __future__ import annotations

import attrs
import trio

from overlay.protocol import validate
from overlay.protocol.errors import TransportError


class HandshakeBusy(TransportError):
    """The gate refused a connection: too many handshakes waiting, or too many from
    its source, while every slot is taken."""


@attrs.frozen
class GateLimits:
    """One pool's bounds (see the module's documentation)."""

    slots: int = attrs.field(default=32, validator=validate.integer(1, 100_000))
    waiting: int = attrs.field(default=1024, validator=validate.integer(0, 1_000_000))
    per_source: int = attrs.field(default=16, validator=validate.integer(1, 1_000_000))
    lifo_after: float = attrs.field(default=1.0, validator=validate.real(0.0, 3600.0))


class Pool:
    """At most ``limits.slots`` holders at once, waiters served oldest first (newest first
    once the oldest has waited ``lifo_after``), bounded per source."""

    __slots__ = ("_sources", "_urgent", "_waiters", "limits", "running")

    def __init__(self, limits: GateLimits) -> None:
        self.limits = limits
        self.running = 0
        """Slots held (a slot handed to a waiter stays counted)."""
        self._waiters: dict[trio.Event, float] = {}
        """Waiting, with when each began, in arrival order (a dict: an ordered set that
        drops a cancelled one in O(1), and whose last entry is the newest)."""
        self._urgent: dict[trio.Event, float] = {}
        """Urgent waiters, the same way: served before any in ``_waiters``."""
        self._sources: dict[str, int] = {}
        """Running and waiting places per remote host (only while the pool is contended)."""

    @property
    def waiting(self) -> int:
        return len(self._waiters) + len(self._urgent)

    @property
    def full(self) -> bool:
        """Whether :meth:`enter` would refuse a newcomer without a source now (no free
        slot, and the queue at ``waiting``): a dial can then be refused before it costs
        a connection, a task and an exception."""
        waiting = self.waiting
        if self.running < self.limits.slots and not waiting:
            return False
        return waiting >= self.limits.waiting

    def held_by(self, source: str) -> int:
        return self._sources.get(source, 0)

    async def enter(self, source: str | None, *, urgent: bool = False) -> bool:
        """Take a slot, waiting for one if none is free; whether it had to wait.
        ``urgent``: served before every waiter that is not.

        Raises :class:`HandshakeBusy` when the wait would pass ``waiting`` or the
        source's share.  Cancelled while waiting, it leaves the queue (and passes on a
        slot that was handed to it meanwhile)."""
        limits = self.limits
        waiting = self.waiting
        if self.running < limits.slots and not waiting:
            self.running += 1
            self._add(source, 1)
            return False
        if self.full:
            raise HandshakeBusy(f"{waiting} handshakes waiting already")
        if source is not None and self.held_by(source) >= limits.per_source:
            raise HandshakeBusy(
                f"{self.held_by(source)} handshakes from {source} under way or waiting"
            )
        turn = trio.Event()
        queue = self._urgent if urgent else self._waiters
        queue[turn] = trio.current_time()
        self._add(source, 1)
        try:
            await turn.wait()
        except BaseException:
            if turn.is_set():
                self._hand_on()  # granted as we were cancelled: the next one gets it
            else:
                del queue[turn]
            self._add(source, -1)
            raise
        return True

    def leave(self, source: str | None) -> None:
        """Give back the slot :meth:`enter` took (to a waiter, if any)."""
        self._add(source, -1)
        self._hand_on()

    def _hand_on(self) -> None:
        """Pass a freed slot on (``running`` stays as it is), or free it."""
        waiters = self._urgent or self._waiters
        if not waiters:
            self.running -= 1
            return
        oldest = next(iter(waiters))
        if trio.current_time() - waiters[oldest] <= self.limits.lifo_after:
            del waiters[oldest]
            oldest.set()
        else:
            waiters.popitem()[0].set()  # overloaded: the newest (see the module's doc)

    def _add(self, source: str | None, amount: int) -> None:
        if source is None:
            return
        count = self._sources.get(source, 0) + amount
        if count > 0:
            self._sources[source] = count
        else:
            self._sources.pop(source, None)


class HandshakeGate:
    """The two pools of one process or node: accepted (``inbound``) and dialled."""

    __slots__ = ("inbound", "outbound")

    def __init__(self, limits: GateLimits | None = None) -> None:
        limits = limits or GateLimits()
        self.inbound = Pool(limits)
        self.outbound = Pool(limits)

    def pool(self, inbound: bool) -> Pool:
        return self.inbound if inbound else self.outbound
