"""The trio runtime: one protocol core, any :class:`~overlay.protocol.effects.Core`, on
real TCP.

It is a thin shell, as docs/design.md asks: it accepts and opens connections, frames
and unframes messages, keeps time and carries out the core's effects.  Every
decision about the overlay stays in the core.  What differs from one core to another
is handed in (see :class:`Node`): the handshake, the stats reply, who listens where,
which links are kept, the farewell, and a :class:`RequestHandler` for client requests.
A connection's state and its socket I/O are in :mod:`overlay.net.connection`.

How a link works here:

* **Connections.**  Unless the node is plaintext, a connection starts with the Noise
  XX handshake of :mod:`overlay.net.secure`, which proves the remote's id; its
  frames are then sealed and opened by the connection's :class:`Session`.  The first
  frame each way is a :class:`Handshake`.  The side that dials sends first; the side
  that accepts answers.  All of it runs under ``handshake_timeout``.  The remote's
  handshake must name the id it proved (:class:`Impersonation` otherwise), and that
  :class:`Contact` is the ``sender`` of every message read from the connection, so no
  message can speak for another peer.  (On an outgoing connection the address is the
  one we dialled, which we know is real.)
* **Links are keyed by listen address**, because that is what :class:`Send`
  names, with **one proven id per address**.  An accepted connection is filed under
  the address its remote claims, whose host must be the connection's source IP and
  which no other linked id may hold, so a reply to it goes back on the same
  connection rather than opening a second one.  Two peers dialling each other at
  once end up with two connections; both work, and the one that carries nothing is
  closed by the idle timeout.
* **Sends are queued** per connection in a bounded list, written to the socket
  without blocking at the end of each chunk of input (or at once, for a send from a
  timer); a task waits for the socket only while its buffer is full.  A full queue
  drops the message and counts it
  (``queue_full.<Kind>``): a stuck remote must not block the node, and a
  core copes with lost messages.
* **A link opens lazily** on the first send to an address with no connection.
  A failed dial drops what was queued and reports ``link_lost`` for that peer
  when we know who listens there.
* **Close** (from the core) flushes what is queued, then closes.  Closes in one
  batch of effects run after that batch's sends, because a core may emit
  ``Close`` before its farewell ``Send`` (the peer's ``Membership._remove`` does).
* **link_lost** reaches the core when the last connection to a peer dies for a
  reason the core did not ask for (EOF, reset, bad input, idle timeout).
* **Timers**: one task sleeps until ``core.next_deadline()`` (or the next sweep of
  the connections for idle and stuck ones); its cancel scope's deadline is moved
  after every event, so an earlier deadline wakes it early.
* **Tasks**: a node runs three tasks of its own (accepting; timers with the sweep;
  reading every open connection) and one per connection only while it dials and
  handshakes.  Open connections are read by the node's one reader
  (:mod:`overlay.net.readers`): a task per open connection, parked on
  ``wait_readable``, kept its await chain and trio's wait records alive for the
  connection's whole life, and with seven connections per peer that was about a
  fifth of a swarm peer's memory.  No open connection holds a cancel scope either.

Limits, all from :class:`NodeConfig`: at most ``max_connections`` accepted and
as many dialled connections; a new connection at the limit evicts the oldest one
still in its handshake (so idle sockets cannot lock well-behaved peers out), or is
refused when none is; ``idle_timeout`` closes a connection that sends nothing
(a core keeps a link busy by sending on it, as a peer's heartbeats do);
``send_timeout`` closes one whose remote stops reading.  One remote IP may hold
``max_per_host`` accepted connections and one /24 ``max_per_prefix``
(:mod:`overlay.core.admission`, same evict-or-refuse rule), and one peer's address
``max_per_peer`` connections.

Faults (:mod:`overlay.net.faults`) enter at two points only: every message the core sends
passes :meth:`FaultInjector.outgoing` in :meth:`Node._send` (lost, held back, or sent),
and every message read passes :meth:`FaultInjector.incoming` before the core sees it.

Bad input (garbage, an oversized length prefix, a truncated frame then silence,
a wrong handshake) closes that connection with exactly one log line at WARNING
and nothing else happens: the core never sees it.  trio's and the OS's
exceptions are turned into the project's errors here and in
:mod:`overlay.net.connection`, nowhere else.
"""

from __future__ import annotations

import errno
import logging
import math
import os
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Collection, Sequence
from typing import Final, Protocol, TypeVarTuple

import attrs
import trio

from overlay.core.admission import AddressBudget
from overlay.net.connection import (
    Connection,
    peer_label,
    read_handshake,
    receive_some,
    send_all,
    transport_error,
    write_some,
)
from overlay.net.faults import FaultInjector
from overlay.net.handshake_gate import GateLimits, HandshakeBusy, HandshakeGate, Pool
from overlay.net.readers import Readers
from overlay.net.secure import LinkIdentity, Security, Session, handshake
from overlay.protocol import validate
from overlay.protocol.effects import Close, Core, Effect, Notify, Send
from overlay.protocol.errors import (
    LocalError,
    OverlayError,
    ProtocolError,
    RemoteError,
    TransportError,
)
from overlay.protocol.identity import Address, Contact, PeerId
from overlay.protocol.messages import (
    CLIENT_REQUESTS,
    MAX_COUNTER_NAME,
    MAX_COUNTER_VALUE,
    MAX_STATS_COUNTERS,
    Handshake,
    Message,
    StatCounter,
    StatsReply,
    StatsRequest,
)
from overlay.protocol.wire import (
    DEFAULT_FRAME_CAP,
    PROTOCOL_VERSION,
    FrameDecoder,
    RepeatedBodies,
    encode_frame,
)

log = logging.getLogger("overlay.net.node")

REPEATED: Final = RepeatedBodies()
"""The flooded queries every connection of this process decoded lately (the copies of
one query reach several peers of a swarm worker, and one peer from several links)."""

Args = TypeVarTuple("Args")

_ACCEPT_RETRY_ERRNOS = frozenset({errno.EMFILE, errno.ENFILE, errno.ENOMEM, errno.ENOBUFS})
"""Accept failures that mean "out of resources for now": wait and retry, as trio does."""


class SilentRemote(RemoteError):
    """The remote sent nothing, or only part of a frame, for too long."""


class TooManyConnections(RemoteError):
    """The remote opened more connections under one peer's name than ``max_per_peer``."""


class Impersonation(RemoteError):
    """The remote's handshake claims an id other than the one it proved, an address
    whose host is not where it connects from, or the address of another proven peer."""


class IdleConnection(TransportError):
    """A handshaken connection carried nothing for ``idle_timeout``: an ordinary end."""

    def __init__(self, message: str, *, quiet: bool = False) -> None:
        super().__init__(message)
        self.quiet = quiet


@attrs.frozen
class NodeConfig:
    """Limits and timeouts of the runtime (seconds)."""

    max_connections: int = attrs.field(default=64, validator=validate.integer(1, 100_000))
    """Accepted connections at once; dialled connections have their own equal budget."""
    handshake_timeout: float = attrs.field(default=5.0, validator=validate.real(0.01, 600))
    connect_timeout: float = attrs.field(default=5.0, validator=validate.real(0.01, 600))
    idle_timeout: float = attrs.field(default=30.0, validator=validate.real(0.01, 86400))
    """A connection that delivers no byte for this long is closed."""
    send_timeout: float = attrs.field(default=10.0, validator=validate.real(0.01, 3600))
    """A write blocked this long means the remote stopped reading: close."""
    send_queue: int = attrs.field(default=256, validator=validate.integer(1, 1_000_000))
    """Frames queued per connection before further sends to it are dropped."""
    frame_cap: int = attrs.field(default=DEFAULT_FRAME_CAP, validator=validate.integer(64, 2**24))
    read_size: int = attrs.field(default=65536, validator=validate.integer(1, 2**24))
    transient_idle_timeout: float = attrs.field(default=3.0, validator=validate.real(0.01, 86400))
    """Idle timeout of a connection to a peer the core does not keep (a shuffle partner,
    the bootstrap): such links carry one exchange, and an open socket costs memory.  The
    peer core closes them itself once the answer is in (``Membership._done_with``, and
    the asked side then reads the end); this timeout ends those whose answer never comes."""
    remembered_addresses: int = attrs.field(default=256, validator=validate.integer(0, 10**7))
    """Who listened where, from past handshakes (to report a failed dial as link_lost).
    A client (a search, a stats crawl: a fresh contact each time, listening nowhere) is
    forgotten at its first request; 256 peers cover a peer's views and attachments, where
    4096 entries, clients included, grew a soak's workers by about 1 MB a minute."""
    max_per_host: int = attrs.field(default=32, validator=validate.integer(1, 100_000))
    """Accepted connections at once from one remote IP (see :mod:`overlay.core.admission`)."""
    max_per_prefix: int = attrs.field(default=48, validator=validate.integer(1, 100_000))
    """... and from one prefix (IPv4 /24, IPv6 /64)."""
    max_per_peer: int = attrs.field(default=4, validator=validate.integer(1, 1000))
    """Connections at once filed under one peer's listen address: an accepted one past it
    is closed once its handshake names that peer (two peers dialling each other need 2)."""
    handshake_slots: int = attrs.field(default=32, validator=validate.integer(1, 100_000))
    """Handshakes run at once, accepted and dialled each (:mod:`overlay.net.handshake_gate`;
    a swarm worker's nodes share theirs)."""
    handshake_waiting: int = attrs.field(default=1024, validator=validate.integer(0, 1_000_000))
    """Handshakes waiting for a slot, accepted and dialled each; past it, refused."""
    handshakes_per_source: int = attrs.field(default=16, validator=validate.integer(1, 100_000))
    """While every slot is taken, one remote IP's handshakes running and waiting."""

    def gate_limits(self) -> GateLimits:
        return GateLimits(self.handshake_slots, self.handshake_waiting, self.handshakes_per_source)


def one_host(config: NodeConfig) -> NodeConfig:
    """``config`` without separate caps per host and prefix, for a node whose peers all
    share one address (a swarm on 127.0.0.1, or the bootstrap serving one)."""
    return attrs.evolve(
        config,
        max_per_host=config.max_connections,
        max_per_prefix=config.max_connections,
        handshakes_per_source=max(config.handshake_waiting, 1),
    )


class RequestHandler(Protocol):
    """Serves client requests on the core's behalf (for a peer:
    :class:`overlay.net.client_requests.ClientRequests`).

    The node hands it every message of :data:`CLIENT_REQUESTS` instead of the core, shows
    it every message the core sends, passes it the core's events, and leaves the
    connections in :attr:`serving` to it.
    """

    @property
    def serving(self) -> Collection[Connection]:
        """Connections waiting for an answer: the sweeper does not close them as idle."""

    def handle(self, node: Node, connection: Connection, message: Message) -> None:
        """A request came on ``connection``; the answer goes back with :meth:`Node.reply`,
        at once or from a task (:meth:`Node.start_soon`)."""

    def sent(self, message: Message) -> None:
        """A message the core sent (counted before faults or full queues may drop it,
        as the simulator counts a ``Send``)."""

    def on_event(self, event: Notify) -> None:
        """An event of the core, before the node's own ``on_event`` callback sees it."""


class Node:
    """Drive one core over TCP.

    ``handshake`` builds the handshake we send (the role may change while we
    run); ``stats`` builds the answer to a :class:`StatsRequest` (None: such a
    request goes to the core like any message); ``identify`` names the peer that
    listens on an address, so a failed dial can be reported as ``link_lost``;
    ``farewell`` gives the effects of a graceful leave; ``client`` serves client
    requests (a :class:`RequestHandler`).  ``security`` is the node's
    :class:`~overlay.net.secure.LinkIdentity` (its key must be the one behind
    ``contact.id``), or :data:`~overlay.net.secure.PLAINTEXT`.  ``gate`` bounds the
    handshakes run at once (:mod:`overlay.net.handshake_gate`): pass one to share it
    among a process's nodes; None, the node has its own, from ``config``.  ``urgent``
    says whether the dials the node opens now go before others at the gate (a peer
    with no neighbor yet: see :mod:`overlay.net.handshake_gate`).
    """

    def __init__(
        self,
        core: Core,
        contact: Contact,
        config: NodeConfig | None = None,
        *,
        security: Security,
        handshake: Callable[[], Handshake] | None = None,
        stats: Callable[[Node], StatsReply] | None = None,
        identify: Callable[[Address], PeerId | None] | None = None,
        keeps: Callable[[PeerId], bool] | None = None,
        farewell: Callable[[float], list[Effect]] | None = None,
        on_event: Callable[[Notify], None] | None = None,
        client: RequestHandler | None = None,
        faults: FaultInjector | None = None,
        gate: HandshakeGate | None = None,
        urgent: Callable[[], bool] | None = None,
    ) -> None:
        if isinstance(security, LinkIdentity) and security.peer_id != contact.id:
            raise ValueError(f"the key proves id {security.peer_id}, not {contact.id}")
        self.core = core
        self.contact = contact
        self.identity = security if isinstance(security, LinkIdentity) else None
        """What this node proves on its connections (None: ``--plaintext``)."""
        self.config = config or NodeConfig()
        self.gate = gate or HandshakeGate(self.config.gate_limits())
        self._handshake = handshake or (lambda: Handshake(PROTOCOL_VERSION, contact))
        self._stats = stats
        self._identify = identify
        self._farewell = farewell
        self._keeps = keeps
        self._on_event = on_event
        self._urgent = urgent
        self.client = client
        """Answers client requests (publish, search, fetch) on the core's behalf, if set."""
        self.faults = faults
        """Injected loss, delay and partitions (:mod:`overlay.net.faults`), if set."""
        if faults is not None:
            faults.bind(contact.address, self._transmit, self.count)
        self.links: dict[Address, list[Connection]] = {}
        self.connections: set[Connection] = set()
        self.counters: dict[str, int] = {}
        self.inbound = 0
        self.outbound = 0
        self._handshaking: OrderedDict[Connection, None] = OrderedDict()
        self._addresses: AddressBudget[Connection] = AddressBudget()
        self._who: dict[Address, PeerId] = {}
        """Who listened where, oldest first (a plain dict keeps insertion order at half
        an OrderedDict's size, and there is one per peer)."""
        self._nursery: trio.Nursery | None = None
        self._readers: Readers | None = None
        """The open connections, read by :meth:`_read_all` (while serving)."""
        self._scope: trio.CancelScope | None = None
        self._accepting: trio.CancelScope = trio.CancelScope()
        self._timer_scope: trio.CancelScope | None = None
        self._changed: trio.Event | None = None
        self._all_closed: trio.Event | None = None
        self._holding = False
        """Delivering a chunk of input: frames queued meanwhile are written together
        at its end (one write per connection rather than one per message)."""
        self._unflushed: list[Connection] = []
        self.stopping = False
        self.stopped = trio.Event()

    def stats_reply(self) -> StatsReply | None:
        """What this node answers a :class:`StatsRequest` with, built now (None: it has
        no stats function).  A swarm worker asks all its nodes in one batch with it."""
        return None if self._stats is None else self._stats(self)

    # ------------------------------------------------------------------ lifecycle

    async def serve(
        self,
        listeners: Sequence[trio.SocketListener],
        *,
        task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        """Accept connections and run the core until cancelled, :meth:`stop` or :meth:`leave`."""
        readers = self._readers = Readers()
        try:
            async with trio.open_nursery() as nursery:
                self._nursery = nursery
                self._scope = nursery.cancel_scope
                nursery.start_soon(self._read_all, readers)
                nursery.start_soon(self._accept_all, list(listeners))
                self.apply(self.core.start(trio.current_time()))
                nursery.start_soon(self._timer_loop)
                if self.faults is not None:
                    nursery.start_soon(self.faults.run)
                task_status.started()
        finally:
            self.stopping = True
            for listener in listeners:
                listener.socket.close()  # synchronous: no port is left listening
            readers.close()  # its task has ended, and closed what it read
            self.stopped.set()

    def stop(self) -> None:
        """Stop at once: no goodbyes (what a crash looks like to the others, minus the FINs)."""
        self.stopping = True
        if self._scope is not None:
            self._scope.cancel()

    async def leave(self, flush_timeout: float = 3.0) -> None:
        """Leave gracefully: stop accepting, carry out the core's farewell, flush every
        queue (bounded by ``flush_timeout``), then stop."""
        self._accepting.cancel()
        if self._farewell is not None and not self.stopping:
            self.apply(self._farewell(trio.current_time()))
        self.stopping = True
        for connection in list(self.connections):
            connection.closing = True
            self._shut(connection)  # what is queued is written first, then it closes
        with trio.move_on_after(flush_timeout):
            while self.connections:
                self._all_closed = trio.Event()
                await self._all_closed.wait()
        self.stop()
        await self.stopped.wait()

    def start_soon(self, function: Callable[[*Args], Awaitable[object]], *args: *Args) -> None:
        """Run ``function(*args)`` in a task of this node's, ended when the node stops."""
        assert self._nursery is not None, "the node is not serving"
        self._nursery.start_soon(function, *args)

    async def wait_until(self, predicate: Callable[[], bool]) -> None:
        """Return once ``predicate()`` holds; it is re-checked after every event the
        core handles.  Callers bound it (``trio.fail_after``)."""
        while not predicate():
            if self._changed is None:
                self._changed = trio.Event()
            await self._changed.wait()

    # ------------------------------------------------------------------ effects

    def count(self, key: str, amount: int = 1) -> None:
        """Add ``amount`` to the runtime's counter ``key`` (in stats replies as ``node.<key>``)."""
        self.counters[key] = self.counters.get(key, 0) + amount

    def apply(self, effects: list[Effect]) -> None:
        """Carry out effects of the core (a batch's closes after its sends), then bring
        the timer forward if the core's next deadline moved."""
        if effects and not self.stopping:
            closes: list[Address] = []
            last_message: Message | None = None
            last_frame = b""
            client = self.client
            watch = client.sent if client is not None else None
            for effect in effects:
                kind = type(effect)
                if kind is Send:
                    assert isinstance(effect, Send)
                    message = effect.message
                    if watch is not None:
                        watch(message)
                    if message is not last_message:
                        # The core hands every neighbor the same Heartbeat object: encode once.
                        try:
                            last_frame = encode_frame(message, self.config.frame_cap)
                        except LocalError as error:
                            self.count("send.unencodable")
                            log.error("%s: cannot send %s: %s", self, type(message).__name__, error)
                            continue
                        last_message = message
                    self._send(effect.to, message, last_frame)
                elif kind is Close:
                    assert isinstance(effect, Close)
                    closes.append(effect.to)
                else:
                    assert isinstance(effect, Notify)
                    self._notify(effect)
            for address in closes:
                self._close_link(address)
        timer = self._timer_scope
        if timer is not None:
            # Only ever bring the wake-up forward: moving a deadline costs a heap push in
            # trio, and a timer that wakes early just sleeps again.  Even setting it to
            # the value it has runs trio's context manager for deadline changes (about a
            # twentieth of a busy worker's time when done after every message).
            deadline = self.core.next_deadline()
            if deadline < timer.deadline:  # noqa: PLR1730 (min() would always set it)
                timer.deadline = deadline
        changed = self._changed
        if changed is not None:
            self._changed = None
            changed.set()

    def _notify(self, event: Notify) -> None:
        self.count(f"event.{event.kind}")
        if self.client is not None:
            self.client.on_event(event)
        if self._on_event is not None:
            self._on_event(event)
        elif log.isEnabledFor(logging.DEBUG):
            log.debug("%s: %s %s %s", self, event.kind, event.peer or "", event.detail)

    def _send(self, to: Address, message: Message, frame: bytes) -> None:
        faults = self.faults
        if faults is not None and not faults.outgoing(to, message, frame):
            return  # lost, or held back: the injector transmits it later
        self._transmit(to, message, frame)

    def _transmit(self, to: Address, message: Message, frame: bytes) -> None:
        name = type(message).__name__
        if to == self.contact.address:
            self.count("send.to_self")
            return
        # A link being ended (bad input, idle, a blocked write) stays listed until its
        # task forgets it, and on a busy machine that can take a while: send on a sibling
        # that is still open, or on a fresh one, rather than drop what the core sent
        # (a flood's copy lost that way once hid the only holder of an item).
        links = self.links.get(to)
        if links and not links[0].shut:
            connection: Connection | None = links[0]  # nearly always: one open link
        else:
            connection = next((c for c in links or () if not c.shut), None)
        if connection is None:
            dialled = self._dial(to)
            if dialled is None:
                self.count(f"dropped.no_link.{name}")
                return
            self.count(f"dial.for.{name}")  # which messages open connections
            connection = dialled
        if self._queue(connection, frame, name):
            self.count(f"sent.{name}")

    def _queue(self, connection: Connection, frame: bytes, name: str) -> bool:
        """Queue ``frame`` on ``connection``; False (counted) when it is full or closing."""
        outbox = connection.outbox
        if connection.shut:
            self.count(f"dropped.closing.{name}")
            return False
        if len(outbox) >= connection.limit:
            self.count(f"queue_full.{name}")
            return False
        outbox.append(frame)
        if connection.draining or connection.socket is None:
            return True  # the drain task (or the end of the handshake) writes it
        if self._holding:
            if not connection.pending:
                connection.pending = True
                self._unflushed.append(connection)
        else:
            self._flush(connection)
        return True

    def _flush_held(self) -> None:
        """Write what was queued while a chunk of input was being delivered."""
        unflushed = self._unflushed
        if unflushed:
            self._unflushed = []
            for connection in unflushed:
                connection.pending = False
                self._flush(connection)

    def _flush(self, connection: Connection) -> None:
        """Write as much of the queue as the socket takes now, without blocking; start a
        drain task for the rest.  A connection shut and fully written ends here."""
        socket = connection.socket
        if connection.draining or socket is None:
            return
        fd = socket.fileno()
        if fd < 0:
            return  # closed: the connection is over and forgotten
        if connection.outbox:
            try:
                write_some(connection, fd)
            except OSError as exc:
                connection.outbox.clear()
                self.end_connection(connection, transport_error(exc))
                return
            if connection.outbox:
                connection.draining = True
                connection.writing_since = trio.current_time()
                assert self._nursery is not None
                self._nursery.start_soon(self._drain, connection)
                return
        if connection.shut:
            self._abort(connection)  # closed by the core or leave(), and all written

    async def _drain(self, connection: Connection) -> None:
        """Wait for the socket to take the rest of the queue (the remote reads slowly);
        the sweeper closes the connection if it waits longer than ``send_timeout``."""
        try:
            socket = connection.socket
            assert socket is not None
            while connection.outbox and socket.fileno() >= 0:
                await trio.lowlevel.wait_writable(socket.fileno())
                fd = socket.fileno()
                if fd < 0:
                    return  # closed meanwhile: the connection has ended
                write_some(connection, fd)
        except trio.ClosedResourceError:
            return  # closed (by _close): the connection is over already
        except (OSError, trio.BusyResourceError) as exc:
            connection.outbox.clear()
            self.end_connection(connection, transport_error(exc))
            return
        finally:
            connection.draining = False
            connection.writing_since = -1.0
        if connection.shut:
            self._abort(connection)

    def _shut(self, connection: Connection) -> None:
        """Accept no more frames; end the connection once what is queued is written."""
        connection.shut = True
        self._flush(connection)

    def _close_link(self, address: Address) -> None:
        for connection in self.links.pop(address, []):
            connection.closing = True
            self._shut(connection)  # what is queued is written first, then it closes

    def _dial(self, to: Address) -> Connection | None:
        if self.outbound >= self.config.max_connections or self._nursery is None:
            self.count("dial.refused_limit")
            return None
        if self.gate.outbound.full:
            # The process's dial queue is full (a join storm on a busy worker): the gate
            # would refuse this dial at once.  Refused here it costs no connection, task
            # or exception; and the core is not told the link was lost, which would have
            # it ask another peer at once, and be refused again (30,000 refusals in 10 s
            # per worker of a 1,000-peer secure swarm while it joined).  Its request
            # waits for its own timeout instead.
            self.count("dial.refused_busy")
            return None
        connection = Connection(str(to), inbound=False, key=to, queue=self.config.send_queue)
        self.links.setdefault(to, []).append(connection)
        self.connections.add(connection)
        self.outbound += 1
        self.count("dial.started")
        urgent = self._urgent is not None and self._urgent()
        if urgent:
            self.count("dial.urgent")
        self._nursery.start_soon(self._run, connection, None, urgent)
        return connection

    # ------------------------------------------------------------------ timers

    async def _timer_loop(self) -> None:
        """Wake at the core's next deadline, and a few times per timeout to sweep the
        connections: one sleeping task per node (a second one, with the timeout scope
        of its sleep, cost a peer about 2 KiB)."""
        core = self.core
        period = self._sweep_period()
        next_sweep = trio.current_time() + period
        while True:
            scope = trio.CancelScope(deadline=min(core.next_deadline(), next_sweep))
            self._timer_scope = scope
            with scope:
                await trio.sleep_forever()
            now = trio.current_time()
            if now >= next_sweep:
                self._sweep(now)
                next_sweep = now + period
            if now >= core.next_deadline():
                self.apply(core.handle_timer(now))
                if core.next_deadline() <= now:
                    # A core must move its deadline when handled; never spin if it does not.
                    await trio.sleep(0.001)

    def _sweep_period(self) -> float:
        """A few sweeps per shortest timeout the sweep enforces."""
        config = self.config
        shortest = min(config.idle_timeout, config.send_timeout)
        if self._keeps is not None:
            shortest = min(shortest, config.transient_idle_timeout)
        return max(0.005, shortest / 4)

    def _sweep(self, now: float) -> None:
        """Close connections that went silent or stopped reading, and let the quiet
        ones drop their cipher objects (:meth:`Session.sweep`).

        Scanning every connection a few times per timeout is far cheaper than a cancel
        scope around every read and write.
        """
        config = self.config
        keeps = self._keeps
        serving = self.client.serving if self.client is not None else None
        for connection in list(self.connections):
            session = connection.session
            if session is not None:
                session.sweep()  # a quiet link gives up its cipher objects
            remote = connection.remote
            if remote is None or connection.error is not None or connection.aborted:
                continue  # in its handshake (which has its own timeout), or ending
            if serving and connection in serving:
                continue  # a client waits for our answer (bounded by its own timeout)
            silent = now - connection.last_heard
            if (
                keeps is not None
                and silent >= config.transient_idle_timeout
                and not keeps(remote.id)
                and connection.writing_since < 0
                and not connection.decoder_buffered()
            ):
                self.end_connection(connection, IdleConnection("transient link done", quiet=True))
            elif silent >= config.idle_timeout:
                decoder = connection.decoder
                if decoder is not None and decoder.buffered:
                    self.end_connection(
                        connection,
                        SilentRemote(
                            f"truncated frame ({decoder.buffered} bytes of it), then silence"
                        ),
                    )
                else:
                    self.end_connection(
                        connection, IdleConnection(f"idle for {config.idle_timeout:g} s")
                    )
            elif (
                connection.writing_since >= 0
                and now - connection.writing_since >= config.send_timeout
            ):
                self.count("connections.slow_reader_closed")
                self.end_connection(
                    connection,
                    TransportError(f"remote stopped reading for {config.send_timeout:g} s"),
                )

    # ------------------------------------------------------------------ accepting

    async def _accept_all(self, listeners: list[trio.SocketListener]) -> None:
        with self._accepting:
            if len(listeners) == 1:  # the usual case: no nursery and task of its own
                await self._accept_loop(listeners[0])
                return
            async with trio.open_nursery() as nursery:
                for listener in listeners:
                    nursery.start_soon(self._accept_loop, listener)

    async def _accept_loop(self, listener: trio.SocketListener) -> None:
        while True:
            try:
                stream = await listener.accept()
            except OSError as error:
                if error.errno in _ACCEPT_RETRY_ERRNOS:
                    self.count("accept.out_of_resources")
                    log.warning("%s: cannot accept (%s); retrying shortly", self, error.strerror)
                    await trio.sleep(0.1)
                    continue
                raise
            self._admit(stream)

    def _admit(self, stream: trio.SocketStream) -> None:
        label = peer_label(stream)
        host = label.rpartition(":")[0]
        config = self.config
        which = self._addresses.full(host, config.max_per_host, config.max_per_prefix)
        if which is not None:
            victim = self._addresses.oldest_from(host, which, self._handshaking)
            if victim is not None:
                self._evict(victim, f"too many connections from its {which}")
            else:
                self.count(f"connections.refused_{which}")
                log.warning(
                    "%s: refusing connection from %s: too many from its %s", self, label, which
                )
                stream.socket.close()
                return
        if self.inbound >= self.config.max_connections:
            if self._handshaking:
                self._evict(next(iter(self._handshaking)), "too many connections")
            else:
                self.count("connections.refused")
                log.warning(
                    "%s: refusing connection from %s: %d connections open",
                    self,
                    label,
                    self.inbound,
                )
                stream.socket.close()
                return
        connection = Connection(label, inbound=True, key=None, queue=self.config.send_queue)
        self.inbound += 1
        self.connections.add(connection)
        self._handshaking[connection] = None
        self._addresses.add(connection, host)
        self.count("connections.accepted")
        assert self._nursery is not None
        self._nursery.start_soon(self._run, connection, stream)

    def _evict(self, oldest: Connection, why: str) -> None:
        """Close a connection still in its handshake to make room for a newcomer."""
        self._handshaking.pop(oldest, None)
        self._addresses.release(oldest)
        oldest.counted = False
        oldest.error = TransportError("evicted")
        self.inbound -= 1
        self.count("connections.evicted")
        log.warning(
            "%s: closing connection from %s: evicted, %s still in their handshake",
            self,
            oldest.label,
            why,
        )
        self._abort(oldest)

    # ------------------------------------------------------------------ connections

    async def _run(
        self, connection: Connection, stream: trio.SocketStream | None, urgent: bool = False
    ) -> None:
        """A connection's task until it is open: dial it (``stream`` None; it goes to
        ``connection.key``; ``urgent``: ahead of others at the gate) or take the accepted
        ``stream``, handshake, deliver what came behind the handshake, then hand the
        socket to the node's reader (:meth:`_read_all`) and end.  A connection that
        never opens is closed and forgotten here."""
        socket = None if stream is None else stream.socket
        try:
            early: list[Message] | None = None
            decoder = FrameDecoder(self.config.frame_cap, REPEATED)
            scope = connection.scope
            assert scope is not None
            with scope:
                # A dialled connection waits for its slot before it connects, so that
                # the remote's handshake timer does not run while it waits.
                pool = self.gate.pool(connection.inbound)
                source = connection.label.rpartition(":")[0] if connection.inbound else None
                await self._wait_for_slot(pool, source, urgent)
                try:
                    if stream is None:
                        stream = await self._connect(connection)
                    if stream is not None:
                        socket = stream.socket
                        early = await self._open(connection, stream, decoder)
                finally:
                    pool.leave(source)
            connection.scope = None
            del scope, stream  # an open connection needs neither: they would live as long
            if early is None or socket is None:
                return  # the dial failed or the handshake was cut short: reason recorded
            connection.socket = socket
            connection.decoder = decoder
            self._flush(connection)  # what was queued during the handshake
            self._deliver_batch(connection, early, trio.current_time())
            if self._watch(connection, socket.fileno()):
                socket = None  # the reader's now: it closes and forgets it
        except Exception as exc:
            self._end(connection, exc)  # logged before the socket closes
        finally:
            connection.scope = None
            if socket is not None:
                socket.close()
            if socket is not None or connection.socket is None:
                self._forget(connection)

    def _watch(self, connection: Connection, fd: int) -> bool:
        """Hand an open connection to the reader; False when it cannot take it (the
        connection was ended meanwhile, or the node is stopping)."""
        readers = self._readers
        if connection.aborted or fd < 0 or readers is None or self.stopping:
            return False
        readers.watch(connection, fd)
        return True

    async def _read_all(self, readers: Readers) -> None:
        """Read every open connection: wait until one has input, read each that has.

        Reads go straight to the socket's descriptor (it is non-blocking: trio made it
        so).  A read that fills ``read_size`` may have left more behind: such a
        connection is read again in the next round, after a checkpoint, so a busy
        connection cannot starve the others (the selector is level-triggered and
        reports it again); the reader waits only when every read emptied its socket."""
        wait_readable = trio.lowlevel.wait_readable
        checkpoint = trio.lowlevel.checkpoint
        fd = readers.fileno()
        try:
            while True:
                await wait_readable(fd)
                while True:
                    full = False
                    for connection, connection_fd in readers.ready():
                        if not connection.aborted and self._read(connection, connection_fd):
                            full = True
                    if not full:
                        break
                    await checkpoint()
        finally:
            self._readers = None  # nothing is handed over any more
            for connection in readers.watched():
                self._close(connection)

    def _read(self, connection: Connection, fd: int) -> bool:
        """One read of an open connection, delivered; whether it filled ``read_size``
        (so that more may be waiting).  An end or an error closes the connection."""
        size = self.config.read_size
        try:
            data = os.read(fd, size)
        except BlockingIOError:
            return False  # reported ready with nothing to read (rare)
        except OSError as exc:
            self._end(connection, transport_error(exc))
            self._close(connection)
            return False
        now = connection.last_heard = trio.current_time()
        session = connection.session
        decoder = connection.decoder
        assert decoder is not None
        try:
            if not data:
                if decoder.buffered or (session is not None and session.buffered):
                    raise TransportError("closed in the middle of a frame")
                self._close(connection)
                return False
            full = len(data) == size
            if session is not None:
                data = session.open(data)
            self._deliver_batch(connection, decoder.feed(data), now)
        except Exception as exc:
            self._end(connection, exc)  # logged before the socket closes
            self._close(connection)
            return False
        return full and not connection.aborted

    def _close(self, connection: Connection) -> None:
        """Close an open connection and forget it, once: stop reading it first, and wake
        a task waiting to write to it."""
        socket = connection.socket
        if socket is None:
            return
        fd = socket.fileno()
        if fd < 0:
            return  # closed and forgotten already
        readers = self._readers
        if readers is not None:
            readers.unwatch(connection, fd)
        trio.lowlevel.notify_closing(fd)
        socket.close()
        self._forget(connection)

    async def _close_soon(self, connection: Connection) -> None:
        self._close(connection)

    def _dial_from(self) -> str | None:
        """The source address of my outgoing connections: the host I listen on.

        Without it the kernel picks the source, and every peer on a loopback address
        (127.x.y.z, as the Sybil benchmark lays honest peers out one per /24) dials
        from 127.0.0.1: the other side's per-host and per-prefix admission caps would
        then count all of them as one host and refuse honest peers.  A wildcard
        listener (0.0.0.0, ::) leaves the choice to the kernel."""
        host = self.contact.address.host
        return None if host in ("0.0.0.0", "::", "") else host

    async def _connect(self, connection: Connection) -> trio.SocketStream | None:
        """Dial ``connection.key`` from our own host; None (counted, reason recorded)
        when it fails."""
        to = connection.key
        assert to is not None
        try:
            with trio.fail_after(self.config.connect_timeout):
                return await trio.open_tcp_stream(to.host, to.port, local_address=self._dial_from())
        except (OSError, trio.TooSlowError) as exc:
            self.count("dial.failed")
            self._end(connection, transport_error(exc))
            return None

    async def _open(
        self, connection: Connection, stream: trio.SocketStream, decoder: FrameDecoder
    ) -> list[Message]:
        """Run the Noise handshake (unless plaintext), exchange handshakes (the side that
        dialled speaks first), check that the remote's claims match what it proved, and
        file the connection under its listen address; return the messages that came
        right behind the remote's handshake."""
        size = self.config.read_size

        async def receive() -> bytes:
            return await receive_some(stream, size)

        async def send(data: bytes) -> None:
            await send_all(stream, data)

        identity = self.identity
        session: Session | None = None
        proven: PeerId | None = None
        try:
            with trio.fail_after(self.config.handshake_timeout):
                if identity is not None:
                    session, proven = await handshake(
                        identity, initiator=not connection.inbound, send=send, receive=receive
                    )
                mine = encode_frame(self._handshake())
                if session is not None:
                    mine = b"".join(session.seal(mine))
                if connection.inbound:
                    remote, early = await read_handshake(receive, decoder, session)
                    await send(mine)
                else:
                    await send(mine)
                    remote, early = await read_handshake(receive, decoder, session)
        except trio.TooSlowError:
            raise self._silence(decoder, "no handshake") from None
        connection.session = session
        claimed = remote.contact
        if proven is not None and claimed.id != proven:
            self.count("connections.impersonation")
            raise Impersonation(f"claims id {claimed.id} but proved {proven}")
        if not connection.inbound:
            if claimed.id == self.contact.id:
                raise ProtocolError("dialled myself")
            to = connection.key
            assert to is not None
            self._check_owner(to, claimed.id, connection)
            # The address we dialled is where it listens, whatever it claims.
            connection.remote = Contact(claimed.id, to)
            self._remember(connection.remote)
            return early
        self._handshaking.pop(connection, None)
        if claimed.id == self.contact.id:
            raise ProtocolError("the remote claims to be this very peer")
        source = connection.label.rpartition(":")[0]
        if claimed.address.host != source:
            self.count("connections.wrong_host")
            raise Impersonation(f"claims to listen on {claimed.address} but connects from {source}")
        self._check_owner(claimed.address, claimed.id, connection)
        siblings = self.links.get(claimed.address, ())
        if len(siblings) >= self.config.max_per_peer:
            self.count("connections.refused_peer")
            limit = self.config.max_per_peer
            raise TooManyConnections(f"already {len(siblings)} connections (max {limit})")
        connection.remote = claimed
        connection.key = claimed.address
        self.links.setdefault(connection.key, []).append(connection)
        self._remember(claimed)
        return early

    async def _wait_for_slot(self, pool: Pool, source: str | None, urgent: bool = False) -> None:
        """Take a handshake slot of ``pool`` (counted when it had to wait); refused
        (:class:`HandshakeBusy`, counted) when the queue is full or ``handshake_timeout``
        passes first."""
        try:
            with trio.fail_after(self.config.handshake_timeout):
                if await pool.enter(source, urgent=urgent):
                    self.count("handshake.waited")
        except HandshakeBusy:
            self.count("handshake.refused_busy")
            raise
        except trio.TooSlowError:
            self.count("handshake.slot_timeout")
            limit = self.config.handshake_timeout
            raise HandshakeBusy(f"no handshake slot within {limit:g} s") from None

    def _check_owner(self, address: Address, peer: PeerId, connection: Connection) -> None:
        """Every connection filed under one address carries one id: a second id claiming
        a linked peer's address is refused (so links are, in effect, keyed by the
        proven id, and nobody takes over another's link)."""
        for sibling in self.links.get(address, ()):
            other = sibling.remote
            if sibling is not connection and other is not None and other.id != peer:
                self.count("connections.address_taken")
                raise Impersonation(f"claims {address}, the address of linked peer {other.id}")

    def _silence(self, decoder: FrameDecoder, what: str) -> SilentRemote:
        if decoder.buffered:
            return SilentRemote(f"truncated frame ({decoder.buffered} bytes of it), then silence")
        return SilentRemote(f"{what} within {self.config.handshake_timeout:g} s")

    def _deliver_batch(self, connection: Connection, messages: list[Message], now: float) -> None:
        """Deliver a chunk's messages, holding the writes they cause until all are in.

        ``now`` is when the chunk was read: every message of one chunk arrived then (a
        clock read per message was a few percent of a flooding worker)."""
        if not messages:
            return
        self._holding = True
        try:
            self._deliver(connection, messages, now)
        finally:
            self._holding = False
            self._flush_held()

    def _deliver(self, connection: Connection, messages: list[Message], now: float) -> None:
        if not messages:
            return
        remote = connection.remote
        assert remote is not None
        core = self.core
        for message in messages:
            if connection.aborted:
                return  # ended meanwhile (bad input, a limit): not even the rest of its chunk
            kind = type(message)
            if kind is StatsRequest and self._stats is not None:
                self._who.pop(remote.address, None)  # a client: it listens nowhere
                self.reply(connection, self._stats(self))
                continue
            if kind is Handshake:
                raise ProtocolError("a second handshake on one connection")
            if self.stopping:
                return
            client = self.client
            if client is not None and kind in CLIENT_REQUESTS:
                self._who.pop(remote.address, None)  # as above
                client.handle(self, connection, message)
                continue
            faults = self.faults
            if faults is not None and not faults.incoming(remote.address, message):
                continue
            self.apply(core.receive(message, remote, now))

    def reply(self, connection: Connection, message: Message) -> None:
        """Answer on ``connection``, the one a request came on (a client listens nowhere)."""
        name = type(message).__name__
        try:
            frame = encode_frame(message, self.config.frame_cap)
        except LocalError as error:
            self.count("send.unencodable")
            log.error("%s: cannot reply %s: %s", self, name, error)
            return
        if self._queue(connection, frame, name):
            self.count(f"sent.{name}")

    # ------------------------------------------------------------------ endings

    def _end(self, connection: Connection, exc: Exception) -> None:
        """Record why a connection ends and log it, once, before its socket is closed
        (whoever detects the problem calls this, then cancels the connection)."""
        if connection.error is not None:
            return
        connection.error = exc if isinstance(exc, OverlayError) else TransportError(str(exc))
        self._log_end(connection, exc)
        _drop_tracebacks(exc)

    def end_connection(self, connection: Connection, exc: Exception) -> None:
        """End ``connection`` from outside its task, for the reason ``exc`` (logged once)."""
        self._end(connection, exc)
        self._abort(connection)

    def _abort(self, connection: Connection) -> None:
        """End the connection soon (its reason, if any, is recorded): nothing is queued
        or read on it any more.

        While it dials or handshakes, its cancel scope is cancelled, and its task closes
        it.  Once open, it is no longer read, a drain task waiting to write to it is
        woken (``notify_closing``), and it is closed and forgotten in a task of its
        own: it may be ending in the middle of a batch of effects, or of its own
        input, and forgetting it tells the core the link was lost, which is not for
        the middle of either.  Until that task runs, the descriptor stays open, so its
        number cannot become another socket's meanwhile."""
        if connection.aborted:
            return
        connection.aborted = True
        connection.shut = True
        scope = connection.scope
        if scope is not None:
            scope.cancel()
            return
        socket = connection.socket
        if socket is None:
            return
        fd = socket.fileno()
        if fd < 0:
            return
        trio.lowlevel.notify_closing(fd)
        readers = self._readers
        if readers is not None and readers.unwatch(connection, fd):
            assert self._nursery is not None
            self._nursery.start_soon(self._close_soon, connection)
        # Otherwise its own task has not handed it over yet, and closes it.

    def _log_end(self, connection: Connection, exc: BaseException) -> None:
        """Exactly one line per connection that ends badly; quiet for ordinary ends."""
        who = connection.label if connection.remote is None else str(connection.remote)
        direction = "from" if connection.inbound else "to"
        if isinstance(exc, RemoteError):
            self.count("connections.bad_input")
            log.warning("%s: closing connection %s %s: %s", self, direction, who, exc)
        elif isinstance(exc, HandshakeBusy):
            log.warning("%s: refusing connection %s %s: %s", self, direction, who, exc)
        elif isinstance(exc, IdleConnection):
            self.count("connections.idle_closed")
            if exc.quiet:
                log.debug("%s: closing connection %s %s: %s", self, direction, who, exc)
                return
            log.info("%s: closing connection %s %s: %s", self, direction, who, exc)
        elif isinstance(exc, TransportError):
            log.debug("%s: connection %s %s ended: %s", self, direction, who, exc)
        elif isinstance(exc, OverlayError):
            log.error("%s: connection %s %s failed: %s", self, direction, who, exc)
        elif isinstance(exc, OSError | trio.BrokenResourceError | trio.ClosedResourceError):
            log.debug("%s: connection %s %s ended: %s", self, direction, who, exc)
        elif isinstance(exc, Exception):
            log.exception("%s: connection %s %s crashed", self, direction, who)

    def _forget(self, connection: Connection) -> None:
        self.connections.discard(connection)
        self._handshaking.pop(connection, None)
        self._addresses.release(connection)
        if connection.counted:
            connection.counted = False
            if connection.inbound:
                self.inbound -= 1
            else:
                self.outbound -= 1
        connection.shut = True
        connection.outbox.clear()
        key = connection.key
        if key is not None:
            siblings = self.links.get(key)
            if siblings is not None and connection in siblings:
                siblings.remove(connection)
                if not siblings:
                    del self.links[key]
        if self._all_closed is not None and not self.connections:
            self._all_closed.set()
        if self.stopping or connection.closing or trio.current_effective_deadline() == -math.inf:
            return  # we are shutting down (or being cancelled): nothing was lost
        if key is not None and self.links.get(key):
            return  # another connection to the same peer is still up
        peer = connection.remote.id if connection.remote is not None else None
        if peer is None and key is not None:
            peer = self._who.get(key)
            if peer is None and self._identify is not None:
                peer = self._identify(key)
        if peer is not None:
            self.apply(self.core.link_lost(peer, trio.current_time()))

    def _remember(self, contact: Contact) -> None:
        limit = self.config.remembered_addresses
        if limit == 0:
            return
        who = self._who
        who.pop(contact.address, None)
        who[contact.address] = contact.id
        if len(who) > limit:
            del who[next(iter(who))]

    def __str__(self) -> str:
        return f"{self.contact.id[:8]}@{self.contact.address}"


def stat_counters(core_counters: dict[str, int], node: Node) -> tuple[StatCounter, ...]:
    """A core's counters and the runtime's (under ``node.``), cut to the wire's bounds."""
    merged = dict(core_counters)
    for key, value in node.counters.items():
        merged[f"node.{key}"] = value
    merged["node.connections.open"] = len(node.connections)
    return tuple(
        StatCounter(name[:MAX_COUNTER_NAME], min(max(value, 0), MAX_COUNTER_VALUE))
        for name, value in sorted(merged.items())[:MAX_STATS_COUNTERS]
    )


def _drop_tracebacks(exc: BaseException) -> None:
    """Let go of the tracebacks of a connection's error and of the errors behind it, once
    it is logged.  A traceback holds the connection's task frame, which holds the
    connection, which holds the error: a reference cycle per failed connection, left for
    the cyclic collector, which a network process runs seldom (:mod:`overlay.collector`).
    While a 1,000-peer swarm joined, that was 450,000 objects of garbage per worker every
    10 s (mostly refused dials), freed only at the next collection round."""
    seen = 0
    error: BaseException | None = exc
    while error is not None and seen < 8:  # a chain is short; bounded all the same
        error.__traceback__ = None
        error = error.__cause__ or error.__context__
        seen += 1


async def open_listeners(host: str, port: int) -> tuple[list[trio.SocketListener], Address]:
    """Listen on ``host:port`` (0: any free port) and return the address others dial."""
    try:
        listeners = await trio.open_tcp_listeners(port, host=host)
    except OSError as exc:
        raise transport_error(exc) from exc
    bound = listeners[0].socket.getsockname()[1]
    return listeners, Address(host, int(bound))
