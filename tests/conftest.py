"""Shared helpers for the runtime tests: real sockets on 127.0.0.1, port 0.

Peers run in-process on fast timers (a tenth of a second per heartbeat) so that
joins, shuffles and failures happen within a test's few seconds; a peer that
must talk to an ``overlay peer`` subprocess (default timers: a heartbeat every
2 s) uses :data:`COMPATIBLE` so that it does not declare the subprocess dead.
Waiting is always on a condition, bounded by ``trio.fail_after``.
"""

from __future__ import annotations

import collections
import contextlib
import gc
import os
import random
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import attrs
import pytest
import trio

from bootstrap.server import BootstrapServer, serve_bootstrap
from overlay.core.config import MembershipConfig, PeerConfig
from overlay.core.peer import Peer
from overlay.net.client import set_client_security
from overlay.net.faults import FaultInjector
from overlay.net.keys import derived_key
from overlay.net.node import Node, NodeConfig, one_host, open_listeners
from overlay.net.peer_node import keyed_peer, link_security, peer_node
from overlay.net.secure import PLAINTEXT, LinkIdentity, Session, handshake
from overlay.protocol.identity import Address, Contact, PeerId, new_peer_id
from overlay.protocol.messages import Handshake, Message
from overlay.protocol.wire import PROTOCOL_VERSION, FrameDecoder, check_handshake, encode_frame
from search.config import SearchConfig

FAST = MembershipConfig(
    target_degree=3,
    max_degree=6,
    shuffle_period=0.3,
    shuffle_timeout=0.3,
    heartbeat_period=0.1,
    failure_timeout=1.0,
    request_timeout=0.3,
    bootstrap_retry=0.3,
)
COMPATIBLE = attrs.evolve(FAST, heartbeat_period=0.2, failure_timeout=6.0)
"""Fast, yet patient enough for a subprocess peer on the default timers (a heartbeat
every 2 s): three periods of silence, so a heartbeat late on a loaded machine is not
taken for a death (with 3 s, one late by a second dropped the link and a test waited
in vain)."""
HANDSHAKE_PATIENCE = 5.0
"""The runtime tests' handshake timeout: a handshake between two peers in one busy
process (soon a Noise handshake, more CPU per link) can wait on a stalled event loop
for longer than the 0.5 s these tests once allowed, and a refused link is retried
from scratch.  No test here needs a short one, except where it says so."""
FAST_NODE = NodeConfig(
    handshake_timeout=HANDSHAKE_PATIENCE, idle_timeout=2.0, transient_idle_timeout=1.0
)

REPO = Path(__file__).resolve().parent.parent
OVERLAY = [sys.executable, "-m", "overlay.tools.cli"]


async def start_bootstrap(
    nursery: trio.Nursery,
    *,
    state: Path | None = None,
    node_config: NodeConfig | None = None,
    plaintext: bool = False,
) -> BootstrapServer:
    server: BootstrapServer = await nursery.start(
        lambda task_status: serve_bootstrap(
            "127.0.0.1",
            0,
            state=state,
            node_config=node_config or one_host(NodeConfig(handshake_timeout=HANDSHAKE_PATIENCE)),
            seed=0,
            security=PLAINTEXT if plaintext else None,
            task_status=task_status,
        )
    )
    return server


async def start_peer(
    nursery: trio.Nursery,
    *,
    bootstrap: Address | None,
    membership: MembershipConfig = FAST,
    node_config: NodeConfig = FAST_NODE,
    join_via: Address | None = None,
    seed: int = 0,
    search: SearchConfig | None = None,
    faults: FaultInjector | None = None,
    plaintext: bool = False,
    host: str = "127.0.0.1",
) -> tuple[Peer, Node]:
    listeners, address = await open_listeners(host, 0)
    key = derived_key(1000, seed)  # the id follows the seed, as the random source does
    config = PeerConfig(membership=membership, search=search or SearchConfig())
    rng = random.Random(1000 + seed)
    peer = keyed_peer(address, config, rng, key, bootstrap=bootstrap, join_via=join_via)
    node = peer_node(peer, node_config, security=link_security(key, plaintext), faults=faults)
    await nursery.start(node.serve, listeners)
    return peer, node


HANG_GUARD = 120.0
"""The default bound on a wait for a condition: long enough for a machine busy with
other jobs (and the suite's own other worker), so that reaching it means a hang, never
a slow machine.  A test that claims "at once" shows it by what was counted (told,
not suspected), not by a short bound."""


async def wait_for(node: Node, predicate: Callable[[], bool], seconds: float = HANG_GUARD) -> None:
    """Wait until ``predicate`` holds (re-checked after each event at ``node``)."""
    with trio.fail_after(seconds):
        await node.wait_until(predicate)


def neighbors(peer: Peer) -> set[PeerId]:
    return set(peer.membership.active)


# ---------------------------------------------------------------------- raw clients


@attrs.define
class RawClient:
    """A hand-driven connection: send any bytes (sealed into the Noise session unless
    plaintext), read whole messages."""

    stream: trio.SocketStream
    session: Session | None = None
    identity: LinkIdentity | None = None
    proven: PeerId | None = None
    """The id the remote proved in the Noise handshake (None: plaintext)."""
    decoder: FrameDecoder = attrs.field(factory=FrameDecoder)
    inbox: list[Message] = attrs.field(factory=list)

    @property
    def local_port(self) -> int:
        return int(self.stream.socket.getsockname()[1])

    @property
    def local_host(self) -> str:
        return str(self.stream.socket.getsockname()[0])

    async def secure(self, identity: LinkIdentity) -> None:
        """Run the Noise handshake as the dialling side, proving ``identity``."""
        self.identity = identity
        self.session, self.proven = await handshake(
            identity,
            initiator=True,
            send=self.stream.send_all,
            receive=lambda: self.stream.receive_some(65536),
        )

    async def send(self, data: bytes) -> None:
        if self.session is not None:
            data = b"".join(self.session.seal(data))
        await self.stream.send_all(data)

    async def send_raw(self, data: bytes) -> None:
        """Bytes as they are, past the Noise session (a wire-level attacker's)."""
        await self.stream.send_all(data)

    async def send_message(self, message: Message) -> None:
        await self.send(encode_frame(message))

    async def receive(self) -> Message:
        """The next message; raises EOFError when the remote closes."""
        while not self.inbox:
            data = await self.stream.receive_some(65536)
            if not data:
                raise EOFError
            if self.session is not None:
                data = self.session.open(data)
            self.inbox.extend(self.decoder.feed(data))
        return self.inbox.pop(0)

    async def closed_by_remote(self) -> bool:
        """Read (and drop) until EOF; True once the remote has closed."""
        try:
            while await self.stream.receive_some(65536):
                pass
        except (trio.BrokenResourceError, OSError):
            pass
        return True


def keyed_contact(seed: int, port: int, host: str = "127.0.0.1") -> tuple[LinkIdentity, Contact]:
    """A reproducible key, and the contact it can prove (listening at ``host:port``)."""
    identity = LinkIdentity(derived_key(77, seed))
    return identity, Contact(identity.peer_id, Address(host, port))


async def connect(
    address: Address,
    *,
    plaintext: bool = False,
    identity: LinkIdentity | None = None,
    source: str | None = None,
) -> RawClient:
    """A raw client, past the Noise handshake (with ``identity``, else a fresh key)
    unless ``plaintext``; from the local address ``source`` if given."""
    stream = await trio.open_tcp_stream(address.host, address.port, local_address=source)
    client = RawClient(stream)
    if not plaintext:
        await client.secure(identity or LinkIdentity.fresh())
    return client


async def handshaken(
    address: Address,
    claim: Contact | None = None,
    *,
    plaintext: bool = False,
    identity: LinkIdentity | None = None,
) -> tuple[RawClient, Contact]:
    """Connect and do the handshake as a well-behaved (listening nowhere) client: its own
    id and address, unless ``claim`` says otherwise."""
    client = await connect(address, plaintext=plaintext, identity=identity)
    if claim is None:
        peer_id = (
            client.identity.peer_id if client.identity is not None else new_peer_id(random.Random())
        )
        claim = Contact(peer_id, Address(client.local_host, client.local_port))
    await client.send_message(Handshake(PROTOCOL_VERSION, claim))
    check_handshake(await client.receive(), PROTOCOL_VERSION)
    return client, claim


# ---------------------------------------------------------------------- subprocesses


@attrs.define
class Child:
    """An ``overlay`` subprocess whose first output line we have read."""

    process: trio.Process
    first_line: str

    @property
    def address(self) -> Address:
        return Address.parse(self.first_line.split()[-1])

    @property
    def id(self) -> PeerId:
        return self.first_line.split()[1]


async def spawn_overlay(
    args: Sequence[str], seconds: float = HANG_GUARD, *, prefix: Sequence[str] = ()
) -> Child:
    """Start ``overlay ARGS`` and wait for its first line ("... listening on HOST:PORT").

    ``prefix`` runs it through another command (``ip netns exec NS``: in a namespace)."""
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    process = await trio.lowlevel.open_process(
        [*prefix, *OVERLAY, *args], stdout=subprocess.PIPE, stderr=None, cwd=str(REPO), env=env
    )
    assert process.stdout is not None
    data = b""
    try:
        with trio.fail_after(seconds):
            while b"\n" not in data:
                chunk = await process.stdout.receive_some(4096)
                if not chunk:
                    raise AssertionError(f"overlay {' '.join(args)} exited: {data!r}")
                data += chunk
    except BaseException:
        process.kill()
        await process.wait()
        raise
    return Child(process, data.split(b"\n", 1)[0].decode())


async def interrupt(process: trio.Process, seconds: float = 60.0) -> None:
    """Stop a child the way a user would (SIGINT), killing it if it overstays."""
    if process.returncode is None:
        process.send_signal(signal.SIGINT)
    with trio.move_on_after(seconds):
        await process.wait()
    if process.returncode is None:
        process.kill()
        await process.wait()


async def finish(child: Child, seconds: float = 15.0) -> int:
    """Wait for a child to exit (kill it if it overstays); its exit code."""
    with trio.move_on_after(seconds):
        return await child.process.wait()
    child.process.kill()
    await child.process.wait()
    raise AssertionError("the subprocess did not exit in time")


def pytest_sessionstart(session: pytest.Session) -> None:
    """Say first which build of the core the suite runs: compiled by mypyc, or pure
    Python, and why (written directly: ``-q`` leaves out the report header)."""
    from overlay.compiled import BUILD

    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    if reporter is not None:
        reporter.write_line(f"overlay build: {BUILD.describe()}")


@pytest.fixture(autouse=True)
def _secure_clients_by_default() -> None:
    """Each test starts with this process's clients secure: a test (or a command run
    in-process) that chose ``--plaintext`` must not leave later tests speaking it."""
    set_client_security(None)


@contextlib.contextmanager
def cyclic_garbage() -> Iterator[collections.Counter[str]]:
    """Count, by type name, the objects that became cyclic garbage inside the block
    (found by the collector, which is run at both ends; filled in at exit).  A network
    process runs the collector seldom (overlay.collector), so what a link leaves in
    reference cycles stays in memory until then."""
    found: collections.Counter[str] = collections.Counter()
    gc.collect()
    debug = gc.get_debug()
    gc.set_debug(gc.DEBUG_SAVEALL)
    try:
        yield found
        gc.collect()
        found.update(type(thing).__qualname__ for thing in gc.garbage)
    finally:
        gc.set_debug(debug)
        gc.garbage.clear()
