"""Peers that push to be a neighbor (ask again at once after being turned away) make the
peer they push *pressed*: it then counts only the links it chose (docs/protocol.md,
"Own slots, anchors and redirects")."""

from __future__ import annotations

from collections.abc import Sequence

from overlay.core.membership import _NO_REFUSALS, address_group
from overlay.core.peer import Peer
from overlay.protocol.messages import (
    Heartbeat,
    Leave,
    NeighborAccept,
    NeighborReject,
    NeighborRequest,
)
from tests.overlay.core.test_membership import contact, link, lone_peer, sends

# SMALL: target degree 2, open limit 4 (request_headroom 2), push_window 10 s.


def asked(effects: Sequence[object]) -> list[int]:
    """The ports (one per contact here) a list of effects sends a NeighborRequest to."""
    return [s.to.port for s in sends(effects) if isinstance(s.message, NeighborRequest)]


def full_peer() -> Peer:
    """A peer with two regular links (1, 2) and two headroom links (3, 4): at its open limit."""
    peer = lone_peer()
    peer.start(0.0)
    link(peer, *(contact(n) for n in range(1, 5)))
    m = peer.membership
    assert [n.extra for n in m.active.values()] == [False, False, True, True]
    return peer


def offer(peer: Peer, *numbers: int) -> None:
    """Put these contacts in the passive view (candidates for repair)."""
    for n in numbers:
        c = contact(n)
        peer.membership.passive.put(c, 0, False, address_group(c.address.host))


def test_a_stranger_that_asks_again_right_after_a_refusal_is_pushing() -> None:
    peer = full_peer()
    m = peer.membership
    refusal = [NeighborReject()]
    assert [s.message for s in sends(peer.receive(NeighborRequest(), contact(5), 1.0))] == refusal
    assert "refused.pushing" not in m.counters and not m.pressed(1.0)
    # Again at once: pushing; the peer is pressed for pressure_seconds.
    assert [s.message for s in sends(peer.receive(NeighborRequest(), contact(5), 2.0))] == refusal
    assert m.counters["refused.pushing"] == 1
    assert m.pressed(2.0) and m.pressed(61.9) and not m.pressed(62.0)
    # Another stranger's first request is only refused (the peer is full), not pushing.
    peer.receive(NeighborRequest(), contact(6), 3.0)
    assert m.counters["refused.pushing"] == 1
    # Past the window (from its last refusal), asking again is not pushing either.
    peer.receive(NeighborRequest(), contact(5), 12.5)
    assert m.counters["refused.pushing"] == 1


def test_an_urgent_request_is_never_taken_for_pushing() -> None:
    peer = full_peer()
    peer.receive(NeighborRequest(), contact(5), 1.0)
    effects = peer.receive(NeighborRequest(urgent=True), contact(5), 1.5)
    assert "refused.pushing" not in peer.membership.counters
    assert NeighborAccept(2) in [s.message for s in sends(effects)]


def test_pressed_a_lost_regular_link_is_repaired_and_strangers_stay_in_the_headroom() -> None:
    peer = full_peer()
    m = peer.membership
    peer.receive(NeighborRequest(), contact(5), 1.0)
    peer.receive(NeighborRequest(), contact(5), 2.0)
    assert m.pressed(2.0)
    offer(peer, 20)
    # A regular neighbor leaves: three links remain, above the target of two, but only
    # one of them is regular, so the peer asks a candidate of its own choosing (before,
    # it counted its headroom and waited, and the next stranger took the place).
    effects = peer.receive(Leave(), contact(1), 3.0)
    assert asked(effects) == [contact(20).address.port]
    # Its headroom is full: a new stranger is refused though the open limit is not reached.
    assert [s.message for s in sends(peer.receive(NeighborRequest(), contact(7), 3.1))] == [
        NeighborReject()
    ]
    # Within its target again, the headroom links stay headroom links (not made regular),
    # and the degree it reports leaves them out.
    peer.receive(Leave(), contact(3), 3.2)
    peer.receive(NeighborReject(), contact(20), 3.3)
    m._tick(4.0, [])
    assert [(p, n.extra) for p, n in m.active.items()] == [
        (contact(2).id, False),
        (contact(4).id, True),
    ]
    assert m.reported_degree(4.0) == 1
    # Unpressed, the same peer would have made its headroom link a regular one.
    m._tick(70.0, [])
    assert not any(n.extra for n in m.active.values())


def test_a_peer_that_refused_me_is_not_asked_again_within_the_push_window() -> None:
    peer = lone_peer()
    peer.start(0.0)
    link(peer, contact(1))
    offer(peer, 20)
    assert asked(peer.receive(Heartbeat(1), contact(1), 1.0)) == [contact(20).address.port]
    # Refused: the only candidate is not asked again at once (that would be pushing).
    assert asked(peer.receive(NeighborReject(), contact(20), 1.1)) == []
    assert asked(peer.receive(Heartbeat(1), contact(1), 5.0)) == []
    # After the window it is a candidate again.
    assert asked(peer.receive(Heartbeat(1), contact(1), 11.2)) == [contact(20).address.port]


def test_the_shared_empty_refusal_table_is_never_written_and_tables_empty_again() -> None:
    peer = full_peer()
    m = peer.membership
    assert m.turned_away is _NO_REFUSALS and m.turned_me_away is _NO_REFUSALS
    peer.receive(NeighborRequest(), contact(5), 1.0)
    peer.receive(NeighborReject(), contact(6), 1.0)
    assert m.turned_away == {contact(5).id: 1.0}
    assert m.turned_me_away == {contact(6).id: 1.0}
    assert not _NO_REFUSALS
    # Past the window, a tick forgets them, and the peer points at the shared table again.
    m._tick(11.5, [])
    assert m.turned_away is _NO_REFUSALS and m.turned_me_away is _NO_REFUSALS
    assert not _NO_REFUSALS
