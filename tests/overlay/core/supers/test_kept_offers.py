"""What the super layer keeps between messages instead of rebuilding it: a weak peer's
signed entries (until its store changes) and a super peer's offers of other super
peers (until a neighbor comes, goes or tells another load)."""

from __future__ import annotations

from overlay.protocol.effects import Effect, Send
from overlay.protocol.identity import Address, Contact
from overlay.protocol.messages import IndexDelta, SuperBeat, SuperInfo, SuperLink, SuperUnlink
from tests.keys import model_key
from tests.overlay.core.supers.test_election import cluster


def test_a_weak_peer_signs_its_entries_again_only_when_its_store_changes() -> None:
    router, _chief, weak = cluster(3)
    peer = weak[0]
    assert peer.supers is not None
    side = peer.supers.weak_side
    first = side._my_items()
    assert side._my_items() is first  # nothing changed: nothing rebuilt
    item = peer.search.publish(b"fresh", "fresh item")
    out: list[Effect] = []
    side.content_changed(router.now, out)
    entries = side._my_items()
    assert set(entries) == {*first, item.key}
    assert all(entries[key] is first[key] for key in first)  # each signed once
    deltas = [e.message for e in out if type(e) is Send and type(e.message) is IndexDelta]
    assert deltas and all([entry.key for entry in d.add] == [item.key] for d in deltas)
    peer.search.store.remove(item.key)
    assert item.key not in side._my_items()


def test_the_offers_of_a_full_super_peer_follow_its_neighbors() -> None:
    router, chief, _weak = cluster(4)
    assert chief.supers is not None
    side = chief.supers.super_side
    assert side._alternatives() == ()
    other_key = model_key("kept-offers-other")
    other = Contact(other_key.peer_id, Address("10.7.0.1", 7000))
    out: list[Effect] = []
    side.on_link(SuperLink(5), other, router.now, out)
    assert side._alternatives() == (SuperInfo(other, 5),)
    assert side._alternatives() is side._alternatives()  # kept while nothing changes
    side.heard_beat(SuperBeat(9, 1.0, None, ()), other, router.now)
    assert side._alternatives() == (SuperInfo(other, 9),)
    side.on_unlink(SuperUnlink("bye"), other, router.now, out)
    assert side._alternatives() == ()
