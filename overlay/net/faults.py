"""Fault injection for the trio runtime: message loss, delay with jitter, partitions.

The simulator injects these faults into its network model
(:class:`overlay.sim.simulator.NetworkModel`, :meth:`overlay.sim.simulator.Simulator.partition`);
tc netem is not available on these machines, so a real swarm gets the same faults from
this layer, which sits between the core and the sockets.  :class:`overlay.net.node.Node`
calls it at exactly two places:

* **send path** (:meth:`FaultInjector.outgoing`, for every message the core sends): the
  message is lost with probability ``loss`` (a seeded ``random.Random`` per node), lost
  if a partition separates the two ends, or held for ``delay + U(0, jitter)`` seconds
  before it is queued on its connection.  The semantics are the simulator's: a message
  waits at least ``delay``; with jitter two messages on one link may swap places (as in
  the simulator), without jitter every link stays FIFO.  At most ``max_delayed``
  messages wait at once; beyond that a message is dropped (``faults.delay_full``)
  rather than letting memory grow.  Messages still held when the node stops are lost:
  under ``--delay`` a leaving peer's goodbyes may never go out (its neighbors then see
  its connections end instead).
* **receive path** (:meth:`FaultInjector.incoming`, for every message read before the
  core sees it): a message from the other side of a partition is dropped, so a
  partition cuts both directions even when the remote injects nothing.

Only the protocol's messages are touched: stats requests and client requests (publish,
search, fetch) are the experimenter's instruments and pass unharmed, so a partitioned
swarm can still be observed.  Counters (in the node's stats, under ``node.``):
``faults.dropped`` (loss), ``faults.delayed``, ``faults.partitioned`` (both directions),
``faults.delay_full``.

**Partitions** mirror :meth:`overlay.sim.simulator.Simulator.partition`: the partition is a list of
*sides*, each a set of address patterns; an address on no side is on side 0, and a
message between two addresses on different sides is lost.  A pattern is ``HOST:PORT``
(one peer), ``HOST`` (every port of a host) or a CIDR prefix ``A.B.C.D/N`` (every host in
it).  So ``127.0.0.1:7001 127.0.0.1:7002`` on one line cuts those two peers off from
everyone else (and keeps them together), and a single line ``127.66.0.0/24`` blocks a
whole prefix.

A partition changes at run time through a **partition file** (``--partition-file PATH``
on ``overlay peer`` and ``overlay swarm``): one side per line, patterns separated by
blanks, ``#`` starts a comment; an empty or missing file means no partition.  Every node
that shares a :class:`PartitionSource` (all peers of a swarm worker) sees the change
within ``PARTITION_POLL`` seconds of the file's modification (:func:`watch_partition_file`
polls its size and mtime; a file that does not parse is logged once and the previous
partition stays).  Writing the file is how a test or a benchmark partitions a swarm of
processes and heals it; in-process tests call :meth:`PartitionSource.set` directly.
"""

from __future__ import annotations

import heapq
import ipaddress
import logging
import math
import random
from collections.abc import Callable, Iterable
from pathlib import Path

import attrs
import trio

from overlay.protocol import validate
from overlay.protocol.identity import Address
from overlay.protocol.messages import Message

log = logging.getLogger("overlay.net.faults")

PARTITION_POLL = 0.25
"""Seconds between two looks at a partition file."""
MAX_PARTITION_FILE = 1 << 20
"""A partition file larger than this is refused (it is read whole)."""
MAX_SIDE_CACHE = 65_536
"""Addresses whose side of the current partition an injector remembers."""

Transmit = Callable[[Address, Message, bytes], None]
Count = Callable[[str], None]


# ---------------------------------------------------------------------- the plan


def parse_delay(text: str) -> tuple[float, float]:
    """``MS`` or ``MS:JITTER`` (milliseconds) as seconds ``(delay, jitter)``."""
    delay, _, jitter = text.partition(":")
    try:
        values = (float(delay), float(jitter) if jitter else 0.0)
    except ValueError:
        raise ValueError(f"expected MS or MS:JITTER, got {text!r}") from None
    if not all(0.0 <= v <= 60_000.0 for v in values):
        raise ValueError(f"delay and jitter must be in [0, 60000] ms, got {text!r}")
    return values[0] / 1000.0, values[1] / 1000.0


@attrs.frozen
class FaultPlan:
    """Which faults a node injects into what it sends (seconds, probabilities)."""

    loss: float = attrs.field(default=0.0, validator=validate.real(0.0, 1.0))
    delay: float = attrs.field(default=0.0, validator=validate.real(0.0, 60.0))
    jitter: float = attrs.field(default=0.0, validator=validate.real(0.0, 60.0))
    """Extra delay drawn uniformly from ``[0, jitter]`` per message (the simulator's rule)."""
    max_delayed: int = attrs.field(default=4096, validator=validate.integer(1, 1_000_000))
    """Messages held back at once; more are dropped (``faults.delay_full``)."""


# ---------------------------------------------------------------------- partitions


_Network = ipaddress.IPv4Network | ipaddress.IPv6Network


@attrs.frozen
class AddressPattern:
    """``HOST:PORT``, ``HOST`` or a CIDR prefix (see the module docstring)."""

    host: str | None = None
    port: int | None = None
    network: _Network | None = None

    @classmethod
    def parse(cls, text: str) -> AddressPattern:
        if "/" in text:
            try:
                return cls(network=ipaddress.ip_network(text, strict=False))
            except ValueError:
                raise ValueError(f"not a CIDR prefix: {text!r}") from None
        host, sep, port = text.rpartition(":")
        if sep and port.isdigit() and host and ":" not in host:
            return cls(host=host, port=int(port))
        if not text or any(c.isspace() for c in text):
            raise ValueError(f"not an address pattern: {text!r}")
        return cls(host=text)

    def matches(self, address: Address) -> bool:
        if self.network is not None:
            try:
                return ipaddress.ip_address(address.host) in self.network
            except ValueError:
                return False  # a name, not an IP: no prefix holds it
        return address.host == self.host and (self.port is None or address.port == self.port)


@attrs.frozen
class Partition:
    """Sides 1..n of a partition; every address on none of them is on side 0."""

    sides: tuple[tuple[AddressPattern, ...], ...] = ()

    def side_of(self, address: Address) -> int:
        for index, side in enumerate(self.sides, start=1):
            if any(pattern.matches(address) for pattern in side):
                return index
        return 0

    def separates(self, a: Address, b: Address) -> bool:
        return bool(self.sides) and self.side_of(a) != self.side_of(b)

    @classmethod
    def of(cls, *sides: Iterable[Address | str]) -> Partition:
        """A partition from sides of addresses (or pattern strings)."""
        return cls(
            tuple(
                tuple(
                    AddressPattern(host=p.host, port=p.port)
                    if isinstance(p, Address)
                    else AddressPattern.parse(p)
                    for p in side
                )
                for side in sides
            )
        )

    @classmethod
    def parse(cls, text: str) -> Partition:
        """The partition file's format: one side per line (raises ValueError)."""
        sides = []
        for line in text.splitlines():
            words = line.split("#", 1)[0].split()
            if words:
                sides.append(tuple(AddressPattern.parse(word) for word in words))
        return cls(tuple(sides))


class PartitionSource:
    """The current partition, shared by every node of a process that follows one file."""

    def __init__(self, partition: Partition | None = None) -> None:
        self.current = partition or Partition()
        self.changes = 0
        self._changed = trio.Event()

    def set(self, partition: Partition) -> None:
        self.current = partition
        self.changes += 1
        self._changed.set()
        self._changed = trio.Event()

    async def wait_for_change(self, seen: int) -> None:
        """Return once more than ``seen`` changes have happened (callers bound it)."""
        while self.changes <= seen:
            await self._changed.wait()

    def heal(self) -> None:
        self.set(Partition())


def read_partition_file(path: Path) -> Partition:
    """The partition a file describes (a missing file: none); raises ValueError, OSError."""
    try:
        with path.open("rb") as file:
            data = file.read(MAX_PARTITION_FILE + 1)
    except FileNotFoundError:
        return Partition()
    if len(data) > MAX_PARTITION_FILE:
        raise ValueError(f"larger than {MAX_PARTITION_FILE} bytes")
    return Partition.parse(data.decode("utf-8", errors="strict"))


def write_partition_file(path: Path, *sides: Iterable[Address | str]) -> None:
    """Write a partition file atomically (no side: heal), for tests and benchmarks."""
    text = "".join(" ".join(str(a) for a in side) + "\n" for side in sides)
    temporary = path.with_name(path.name + ".tmp")
    temporary.write_text(text, encoding="utf-8")
    temporary.replace(path)


async def watch_partition_file(
    path: Path, source: PartitionSource, period: float = PARTITION_POLL
) -> None:
    """Keep ``source`` equal to the partition in ``path`` until cancelled."""
    seen: tuple[int, int] | None = None
    while True:
        try:
            stat = await trio.Path(path).stat()
            stamp = (stat.st_mtime_ns, stat.st_size)
        except FileNotFoundError:
            stamp = (0, -1)
        except OSError as error:
            log.error("partition file %s: %s", path, error)
            stamp = seen or (0, -1)
        if stamp != seen:
            seen = stamp
            try:
                partition = read_partition_file(path)
            except (OSError, ValueError) as error:
                log.error("partition file %s: %s (keeping the previous partition)", path, error)
            else:
                if partition != source.current:
                    source.set(partition)
                    log.info("partition now %d side(s)", len(partition.sides))
        await trio.sleep(period)


# ---------------------------------------------------------------------- the injector


class FaultInjector:
    """One node's faults.  Built with its plan and random source, then bound to the node
    (:meth:`bind`), whose :meth:`run` task releases delayed messages."""

    def __init__(
        self,
        plan: FaultPlan,
        rng: random.Random,
        partition: PartitionSource | None = None,
    ) -> None:
        self.plan = plan
        self.rng = rng
        self.partition = partition or PartitionSource()
        self.me: Address | None = None
        self._transmit: Transmit | None = None
        self._count: Count = lambda _key: None
        self._held: list[tuple[float, int, Address, Message, bytes]] = []
        self._sequence = 0
        self._wake: trio.Event | None = None
        self._sides_of: Partition | None = None
        self._sides: dict[Address, int] = {}

    def bind(self, me: Address, transmit: Transmit, count: Count) -> None:
        """Attach to a node: where it listens, how it queues a frame, how it counts."""
        self.me = me
        self._transmit = transmit
        self._count = count

    @property
    def held(self) -> int:
        """Messages waiting out their delay now."""
        return len(self._held)

    def _cut(self, remote: Address) -> bool:
        partition = self.partition.current
        if not partition.sides or self.me is None:
            return False
        if partition is not self._sides_of:
            # Sides are looked up once per partition and address, not per message.
            self._sides_of = partition
            self._sides.clear()
        sides = self._sides
        mine = sides.get(self.me)
        if mine is None:
            mine = sides[self.me] = partition.side_of(self.me)
        theirs = sides.get(remote)
        if theirs is None:
            if len(sides) >= MAX_SIDE_CACHE:
                sides.clear()
            theirs = sides[remote] = partition.side_of(remote)
        return mine != theirs

    def outgoing(self, to: Address, message: Message, frame: bytes) -> bool:
        """True: send it now.  False: it was lost, or is held and sent later."""
        plan = self.plan
        if plan.loss > 0.0 and self.rng.random() < plan.loss:
            self._count("faults.dropped")
            return False
        if self._cut(to):
            self._count("faults.partitioned")
            return False
        if plan.delay <= 0.0 and plan.jitter <= 0.0:
            return True
        if len(self._held) >= plan.max_delayed:
            self._count("faults.delay_full")
            return False
        wait = plan.delay + (self.rng.uniform(0.0, plan.jitter) if plan.jitter > 0.0 else 0.0)
        self._sequence += 1  # equal release times keep their order: FIFO without jitter
        heapq.heappush(self._held, (trio.current_time() + wait, self._sequence, to, message, frame))
        self._count("faults.delayed")
        if self._wake is not None and self._held[0][1] == self._sequence:
            self._wake.set()
        return False

    def incoming(self, sender: Address, message: Message) -> bool:
        """True: hand ``message`` to the core.  False: a partition ate it."""
        if self._cut(sender):
            self._count("faults.partitioned")
            return False
        return True

    async def run(self) -> None:
        """Release held messages when their time comes (runs in the node's nursery)."""
        held = self._held
        while True:
            self._wake = trio.Event()
            with trio.move_on_at(held[0][0] if held else math.inf):
                await self._wake.wait()  # set when a message becomes the first one due
            now = trio.current_time()
            while held and held[0][0] <= now:
                _due, _seq, to, message, frame = heapq.heappop(held)
                # The partition may have changed while it waited: check again.
                if self._cut(to):
                    self._count("faults.partitioned")
                elif self._transmit is not None:
                    self._transmit(to, message, frame)
