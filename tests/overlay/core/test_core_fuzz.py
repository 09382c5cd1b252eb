"""A hostile neighbor drives the peer core: any sequence of well-formed messages, from
any sender, at any time, never raises and never grows a structure past its bound.

(The decoder's side, random and mutated bytes, is in test_wire.py; what those bytes
can become is exactly what this test feeds the core.)
"""

from __future__ import annotations

import contextlib
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from overlay.core.config import MembershipConfig, PeerConfig
from overlay.core.peer import Peer
from overlay.protocol.errors import RemoteError
from overlay.protocol.identity import Address, Contact
from overlay.protocol.messages import Message, all_message_types
from overlay.protocol.wire import FrameDecoder
from tests.keys import model_peer
from tests.overlay.protocol.test_wire import strategy_for_class

CONFIG = PeerConfig(membership=MembershipConfig(target_degree=3, max_degree=5, passive_size=8))
BOOTSTRAP = Address("127.0.0.1", 7000)
SENDERS = [Contact(f"{n:032x}", Address("127.0.0.9", 9000 + n)) for n in range(12)]
SENDERS.append(Contact("f" * 32, BOOTSTRAP))  # the bootstrap itself may be hostile too

any_message = st.sampled_from(all_message_types()).flatmap(strategy_for_class)
events = st.lists(
    st.tuples(any_message, st.integers(0, len(SENDERS) - 1), st.floats(0.0, 3.0)),
    max_size=60,
)


def check_bounds(peer: Peer) -> None:
    m = peer.membership
    config = CONFIG.membership
    assert len(m.active) <= config.max_degree
    assert len(m.passive) <= config.passive_size
    assert len(m.known_hosts) <= config.known_hosts_size
    assert len(m.tombstones) <= config.tombstones_size
    assert len(m.pending) <= config.max_degree + config.target_degree
    assert len(m.super_peers) <= 64
    assert peer.id not in m.active
    # Peer.next_deadline reads its components' fields directly, for speed: it must
    # agree with what the components themselves say.
    parts = [m.next_deadline(), peer.search.next_deadline()]
    if peer.supers is not None:
        parts.append(peer.supers.next_deadline())
    assert peer.next_deadline() == min(parts)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(events=events, seed=st.integers(0, 2**32))
def test_any_message_sequence_leaves_the_core_bounded(
    events: list[tuple[Message, int, float]], seed: int
) -> None:
    peer = model_peer(Address("127.0.0.1", 8000), CONFIG, seed, bootstrap=BOOTSTRAP)
    now = 0.0
    peer.start(now)
    for message, sender, step in events:
        now += step
        peer.receive(message, SENDERS[sender], now)
        if peer.next_deadline() <= now:
            peer.handle_timer(now)
        check_bounds(peer)


@settings(max_examples=150, deadline=None)
@given(data=st.binary(max_size=512), seed=st.integers(0, 2**32))
def test_whatever_random_bytes_decode_to_the_core_survives(data: bytes, seed: int) -> None:
    peer = model_peer(Address("127.0.0.1", 8000), CONFIG, seed, bootstrap=BOOTSTRAP)
    peer.start(0.0)
    decoded: list[Any] = []
    with contextlib.suppress(RemoteError):
        decoded = FrameDecoder().feed(data)
    for message in decoded:
        peer.receive(message, SENDERS[0], 1.0)
    check_bounds(peer)
