"""The bootstrap node on TCP: the pure :class:`~bootstrap.hostcache.HostCache` driven by
the trio runtime of :mod:`overlay.net.node`, plus an optional state file.

State file: with ``state`` set, the cache is saved every ``save_period`` seconds
(when it changed) and on shutdown, and reloaded on start, so a restart loses no
registered peer.  Saving writes a temporary file in the same directory, fsyncs it
and renames it over the old one (``os.replace`` is atomic on POSIX), so a crash
mid-save leaves the previous state intact.

A lease is stored as the time it has *left* (the runtime's clock starts anew in
each process), together with the wall-clock time of the save; on reload, the
time the bootstrap was down is taken off every lease, because a peer that did not
refresh its lease during the downtime may well be gone.  The bootstrap keeps its
id across restarts too.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import random
import time
from pathlib import Path
from typing import Any

import attrs
import cattrs
import trio

from bootstrap.hostcache import HostCache, HostCacheConfig, HostRecord
from overlay.net.atomic_file import write_atomically
from overlay.net.keys import KeyPair, load_or_create_key_file
from overlay.net.node import Node, NodeConfig, one_host, open_listeners, stat_counters
from overlay.net.secure import LinkIdentity, Security
from overlay.protocol import validate
from overlay.protocol.effects import Effect, Send
from overlay.protocol.identity import Address, Contact, PeerId, new_peer_id
from overlay.protocol.messages import (
    MAX_COUNTER_VALUE,
    MAX_MEMBERS_PAGE,
    Handshake,
    MemberEntry,
    MembersReply,
    MembersRequest,
    Message,
    StatsReply,
)
from overlay.protocol.wire import PROTOCOL_VERSION

log = logging.getLogger("bootstrap.server")

STATE_FORMAT = 1
MAX_STATE_BYTES = 256 * 1024 * 1024
"""A state file larger than this is refused rather than read into memory."""

BOOTSTRAP_NODE_CONFIG = one_host(NodeConfig(max_connections=4096, idle_timeout=15.0))
"""A bootstrap talks to every peer briefly: many connections, short idle timeout; its
guard against one address is the registration rate limit, not a connection cap."""


@attrs.frozen
class SavedHost:
    """One host cache entry as saved: its lease as seconds left, not as a clock reading."""

    contact: Contact
    role: str
    capacity: int
    remaining: float = attrs.field(validator=validate.real(0.0, 86400.0 * 365))
    served: float = attrs.field(default=0.0, validator=validate.real(0.0, 86400.0 * 365 * 100))
    """Seconds it had held the super role (0 for a weak peer; files from before this
    field read as 0: their super peers start afresh)."""


@attrs.frozen
class SavedState:
    format: int
    saved_at: float
    """Wall-clock time (``time.time()``) of the save."""
    id: PeerId
    hosts: list[SavedHost]


_converter = cattrs.Converter(forbid_extra_keys=True)


def save_state(path: Path, cache: HostCache, now: float) -> None:
    """Write the cache to ``path`` atomically (temporary file, fsync, rename)."""
    hosts = [
        SavedHost(r.contact, r.role, r.capacity, max(0.0, r.expires - now), served_for(r, now))
        for r in cache.records()
        if r.expires > now
    ]
    state = SavedState(STATE_FORMAT, time.time(), cache.me.id, hosts)
    data = json.dumps(_converter.unstructure(state), separators=(",", ":")).encode()
    write_atomically(path, data)


def served_for(record: HostRecord, now: float) -> float:
    """How long ``record``'s peer has held the super role (0: weak)."""
    if record.role != "super" or record.super_since == math.inf:
        return 0.0
    return max(0.0, now - record.super_since)


def load_state(path: Path) -> SavedState | None:
    """Read a saved state; None if there is none.  A damaged file is moved aside
    (``FILE.damaged``) with one error line, so it is neither trusted nor overwritten."""
    try:
        if path.stat().st_size > MAX_STATE_BYTES:
            raise ValueError(f"larger than {MAX_STATE_BYTES} bytes")
        raw: Any = json.loads(path.read_bytes())
        state = _converter.structure(raw, SavedState)
        if state.format != STATE_FORMAT:
            raise ValueError(f"unknown format {state.format}")
        Contact(state.id, Address("127.0.0.1", 1))  # runs the id validator
        return state
    except FileNotFoundError:
        return None
    except (OSError, ValueError, TypeError, cattrs.BaseValidationError) as error:
        aside = path.with_name(path.name + ".damaged")
        log.error("cannot read bootstrap state %s (%s); moved it to %s", path, error, aside)
        with contextlib.suppress(OSError):
            os.replace(path, aside)
        return None


def key_path(state: Path) -> Path:
    """Where a bootstrap with state file ``state`` keeps its key (mode 0600)."""
    return state.with_name(state.name + ".key")


def restore_cache(cache: HostCache, state: SavedState, now: float) -> int:
    """Put saved hosts back with their remaining lease, less the time we were down."""
    downtime = max(0.0, time.time() - state.saved_at)
    # The time down counts as no service: a super peer keeps what it had served.
    records = [
        HostRecord(h.contact, h.role, h.capacity, now + h.remaining - downtime, now - h.served)
        for h in state.hosts
        if h.remaining > downtime
    ]
    cache.restore(records)
    return len(records)


class ListingHostCache:
    """The host cache as the runtime drives it, plus answers to :class:`MembersRequest`.

    The listing is for observers (``overlay view``, ``overlay members``), not part of
    the protocol, so it is answered here rather than in the pure cache; everything
    else goes to the cache unchanged.
    """

    def __init__(self, cache: HostCache) -> None:
        self.cache = cache

    def start(self, now: float) -> list[Effect]:
        return self.cache.start(now)

    def receive(
        self, message: Message, sender: Contact, now: float, *, source: str | None = None
    ) -> list[Effect]:
        """``source``: the connection's remote host, for the cache's per-prefix limits."""
        if type(message) is MembersRequest:
            records = self.cache.records()
            page = records[message.start : message.start + MAX_MEMBERS_PAGE]
            # Expired entries stay until the cache's next sweep, as they do in samples.
            members = tuple(MemberEntry(r.contact, r.role) for r in page)
            return [Send(sender.address, MembersReply(members, message.start, len(records)))]
        return self.cache.receive(message, sender, now, source=source)

    def link_lost(self, peer: PeerId, now: float) -> list[Effect]:
        return self.cache.link_lost(peer, now)

    def handle_timer(self, now: float) -> list[Effect]:
        return self.cache.handle_timer(now)

    def next_deadline(self) -> float:
        return self.cache.next_deadline()


@attrs.define
class BootstrapServer:
    """A running bootstrap node: its address, cache and runtime (for tests and the CLI)."""

    address: Address
    cache: HostCache
    node: Node


async def serve_bootstrap(
    host: str = "127.0.0.1",
    port: int = 7000,
    *,
    state: Path | None = None,
    config: HostCacheConfig | None = None,
    node_config: NodeConfig | None = None,
    save_period: float = 5.0,
    seed: int | None = None,
    security: Security | None = None,
    task_status: trio.TaskStatus[BootstrapServer] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve a host cache on ``host:port`` until cancelled; save it on the way out.

    ``security`` None: the bootstrap proves a key kept beside ``state``
    (``STATE.key``, so its id survives restarts), or a fresh one without a state;
    :data:`~overlay.net.secure.PLAINTEXT` for ``--plaintext``.  A registration is
    accepted only over a connection whose handshake proved the registering peer's id
    (the node refuses the rest), and the host cache keys it by that id and by the
    connection's source address (the claimed listen host must be the source IP)."""
    rng = random.Random(seed)
    saved = load_state(state) if state is not None else None
    if security is None:
        key = load_or_create_key_file(key_path(state)) if state is not None else KeyPair.generate()
        security = LinkIdentity(key)
    listeners, address = await open_listeners(host, port)
    if isinstance(security, LinkIdentity):
        peer_id = security.peer_id
    else:
        peer_id = saved.id if saved is not None else new_peer_id(rng)
    contact = Contact(peer_id, address)
    cache = HostCache(contact, config or HostCacheConfig(), rng)
    if saved is not None:
        restored = restore_cache(cache, saved, trio.current_time())
        log.info("bootstrap: reloaded %d hosts from %s", restored, state)
    node = Node(
        ListingHostCache(cache),
        contact,
        node_config or BOOTSTRAP_NODE_CONFIG,
        handshake=lambda: Handshake(PROTOCOL_VERSION, contact, "weak", 0),
        security=security,
        stats=lambda node: bootstrap_stats(cache, node),
    )
    try:
        async with trio.open_nursery() as nursery:
            await nursery.start(node.serve, listeners)
            if state is not None:
                nursery.start_soon(_save_periodically, state, cache, save_period)
            task_status.started(BootstrapServer(address, cache, node))
    finally:
        if state is not None:
            try:
                save_state(state, cache, trio.current_time())
                log.info("bootstrap: saved %d hosts to %s", len(cache), state)
            except OSError as error:
                log.error("bootstrap: cannot save state to %s: %s", state, error)


def bootstrap_stats(cache: HostCache, node: Node) -> StatsReply:
    """The bootstrap's answer to a stats request: no neighbors, its cache's size and
    counters (registrations, refusals by the rate limit, ...) under ``bootstrap.``."""
    counters = {f"bootstrap.{name}": value for name, value in cache.counters.items()}
    return StatsReply(
        id=cache.me.id,
        address=cache.me.address,
        role="weak",
        joined=False,
        neighbors=(),
        passive=(),
        known_hosts=min(len(cache), MAX_COUNTER_VALUE),
        counters=stat_counters(counters, node),
    )


async def _save_periodically(path: Path, cache: HostCache, period: float) -> None:
    last: list[HostRecord] | None = None
    while True:
        await trio.sleep(period)
        records = cache.records()
        if records == last:
            continue
        try:
            save_state(path, cache, trio.current_time())
        except OSError as error:
            log.error("bootstrap: cannot save state to %s: %s", path, error)
        last = records
