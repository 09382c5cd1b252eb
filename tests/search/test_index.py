"""The super peer's index: leases, numbered deltas, bounds, and refusals that harm nothing."""

from __future__ import annotations

import attrs
import pytest

from overlay.protocol.identity import Address, Contact
from overlay.protocol.messages import IndexItem
from search.index import (
    ForeignKey,
    ForeignLease,
    ForgedEntry,
    IndexFull,
    IndexOverBound,
    SequenceGap,
    SuperIndex,
    UnknownLease,
)
from search.store import content_key
from tests.keys import KEYRING, keyed_contact, signed_entry

ALICE_KEY, ALICE = keyed_contact("alice", Address("10.0.0.1", 7000))
BOB_KEY, BOB = keyed_contact("bob", Address("10.0.0.2", 7000))
KEYS = {ALICE.id: ALICE_KEY, BOB.id: BOB_KEY}
LEASE_A = "1" * 32
LEASE_B = "2" * 32


def item(n: int, name: str | None = None, owner: Contact = ALICE) -> IndexItem:
    """Entry ``n`` as ``owner`` signs it."""
    value = f"value {n}".encode()
    name = name if name is not None else f"song {n}"
    return signed_entry(KEYS[owner.id], owner.id, content_key(value), name, len(value))


def index(max_items: int = 4, max_entries: int = 100) -> SuperIndex:
    return SuperIndex(max_items, max_entries, lease_seconds=30.0, verifier=KEYRING)


def grant(
    ix: SuperIndex,
    lease_id: str,
    owner: Contact,
    items: list[IndexItem],
    *,
    now: float,
    seq: int = 0,
    capacity: int = 1,
    eligible: bool = False,
) -> None:
    """Attach ``owner`` with its own key and ``items``."""
    ix.grant(
        lease_id,
        owner,
        public_key=KEYS[owner.id].public_key,
        capacity=capacity,
        eligible=eligible,
        seq=seq,
        items=items,
        now=now,
    )


def matching(
    ix: SuperIndex, key: str | None, keywords: tuple[str, ...], limit: int
) -> list[tuple[Contact, IndexItem]]:
    return [(lease.owner, entry) for lease, entry in ix.matching(key, keywords, limit)]


def state(ix: SuperIndex) -> tuple[object, ...]:
    return (ix.entries, ix.holdings(), {k: (v.seq, v.expires) for k, v in ix.leases.items()})


def test_grant_delta_and_lookup_by_key_and_keywords() -> None:
    ix = index()
    grant(ix, LEASE_A, ALICE, [item(1), item(2)], now=0.0, seq=0, capacity=5, eligible=True)
    assert ix.entries == 2
    assert matching(ix, item(1).key, (), 8) == [(ALICE, item(1))]
    ix.apply_delta(LEASE_A, ALICE.id, 1, add=[item(3, "blue moon")], remove=[item(1).key], now=1.0)
    assert matching(ix, item(1).key, (), 8) == []
    assert matching(ix, None, ("moon", "blue"), 8) == [(ALICE, item(3, "blue moon"))]
    assert matching(ix, None, ("moon", "red"), 8) == []
    assert ix.by_owner[ALICE.id].seq == 1
    # A repeated (or overtaken) change is harmless.
    ix.apply_delta(LEASE_A, ALICE.id, 1, add=[item(1)], remove=[], now=2.0)
    assert item(1).key not in ix.holdings()[ALICE.id]


def test_a_lost_delta_is_noticed_and_a_full_resend_repairs_it() -> None:
    ix = index()
    grant(ix, LEASE_A, ALICE, [item(1)], now=0.0, seq=0, capacity=5, eligible=True)
    before = state(ix)
    with pytest.raises(SequenceGap) as gap:
        ix.apply_delta(LEASE_A, ALICE.id, 2, add=[item(2)], remove=[], now=1.0)
    assert gap.value.have == 0
    assert state(ix) == before
    with pytest.raises(SequenceGap):
        ix.refresh(LEASE_A, ALICE.id, 2, True, now=1.0)  # the refresh says we missed one
    ix.replace(LEASE_A, ALICE.id, 2, [item(2), item(3)], now=2.0)
    assert ix.holdings()[ALICE.id] == {item(2).key, item(3).key}
    assert ix.by_owner[ALICE.id].seq == 2
    ix.refresh(LEASE_A, ALICE.id, 2, True, now=3.0)


def test_nobody_publishes_under_another_peers_lease() -> None:
    ix = index()
    grant(ix, LEASE_A, ALICE, [item(1)], now=0.0, seq=0, capacity=5, eligible=True)
    before = state(ix)
    with pytest.raises(ForeignLease, match="belongs to"):
        ix.apply_delta(LEASE_A, BOB.id, 1, add=[item(9)], remove=[item(1).key], now=1.0)
    with pytest.raises(ForeignLease):
        ix.replace(LEASE_A, BOB.id, 5, [], now=1.0)
    with pytest.raises(ForeignLease):
        ix.refresh(LEASE_A, BOB.id, 0, False, now=1.0)
    assert state(ix) == before


def test_unknown_leases_are_refused() -> None:
    ix = index()
    with pytest.raises(UnknownLease, match="no lease"):
        ix.apply_delta(LEASE_B, BOB.id, 1, add=[item(1)], remove=[], now=0.0)
    with pytest.raises(UnknownLease):
        ix.refresh(LEASE_B, BOB.id, 0, False, now=0.0)
    assert ix.entries == 0 and not ix.leases


def test_publishes_over_the_bounds_are_refused_whole() -> None:
    ix = index(max_items=2, max_entries=3)
    with pytest.raises(IndexOverBound, match="max 2"):
        grant(ix, LEASE_A, ALICE, [item(1), item(2), item(3)], now=0.0)
    assert ix.entries == 0 and not ix.leases
    grant(ix, LEASE_A, ALICE, [item(1), item(2)], now=0.0)
    before = state(ix)
    with pytest.raises(IndexOverBound):
        ix.apply_delta(LEASE_A, ALICE.id, 1, add=[item(3)], remove=[], now=1.0)
    with pytest.raises(IndexOverBound):
        ix.replace(LEASE_A, ALICE.id, 1, [item(4), item(5), item(6)], now=1.0)
    assert state(ix) == before
    with pytest.raises(IndexFull, match="bound of 3"):
        grant(ix, LEASE_B, BOB, [item(7, owner=BOB), item(8, owner=BOB)], now=0.0)
    assert state(ix) == before


def test_leases_expire_and_detach_drops_entries() -> None:
    ix = index()
    grant(ix, LEASE_A, ALICE, [item(1)], now=0.0)
    grant(ix, LEASE_B, BOB, [item(1, owner=BOB)], now=20.0)
    assert {c.id for c, _ in matching(ix, item(1).key, (), 8)} == {ALICE.id, BOB.id}
    gone = ix.expire(31.0)
    assert [lease.owner for lease in gone] == [ALICE]
    assert matching(ix, item(1).key, (), 8) == [(BOB, item(1, owner=BOB))]
    ix.refresh(LEASE_B, BOB.id, 0, False, now=45.0)
    assert ix.expire(60.0) == []  # refreshed in time
    ix.drop(BOB.id)
    assert ix.entries == 0 and not ix.leases and matching(ix, item(1).key, (), 8) == []


def test_re_attaching_replaces_the_old_lease() -> None:
    ix = index()
    grant(ix, LEASE_A, ALICE, [item(1)], now=0.0, seq=3, capacity=1, eligible=False)
    grant(ix, LEASE_B, ALICE, [item(2)], now=1.0)
    assert set(ix.leases) == {LEASE_B}
    assert ix.holdings() == {ALICE.id: frozenset({item(2).key})}
    with pytest.raises(UnknownLease):
        ix.refresh(LEASE_A, ALICE.id, 3, False, now=2.0)


def test_nobody_indexes_an_entry_for_another_peer() -> None:
    """Bob tries to get Alice named as a holder: with her key, with her signed entries
    under his lease, or with his own signature over an entry naming her."""
    ix = index()
    with pytest.raises(ForeignKey):  # Alice's key offered by Bob: it does not certify him
        ix.grant(
            LEASE_B,
            BOB,
            public_key=ALICE_KEY.public_key,
            capacity=1,
            eligible=False,
            seq=0,
            items=[],
            now=0.0,
        )
    with pytest.raises(ForgedEntry):  # Alice's own entry, under Bob's lease
        grant(ix, LEASE_B, BOB, [item(1, owner=ALICE)], now=0.0)
    forged = signed_entry(BOB_KEY, ALICE.id, item(2).key, "song 2", 7)
    with pytest.raises(ForgedEntry):  # Bob's signature over an entry naming Alice
        grant(ix, LEASE_B, BOB, [forged], now=0.0)
    assert ix.entries == 0 and not ix.leases
    grant(ix, LEASE_B, BOB, [item(3, owner=BOB)], now=0.0)
    before = state(ix)
    with pytest.raises(ForgedEntry):
        ix.apply_delta(LEASE_B, BOB.id, 1, add=[item(4, owner=ALICE)], remove=[], now=1.0)
    with pytest.raises(ForgedEntry):
        ix.replace(LEASE_B, BOB.id, 1, [item(4, owner=ALICE)], now=1.0)
    assert state(ix) == before
    assert [owner for owner, _ in matching(ix, item(3).key, (), 8)] == [BOB]


def test_an_altered_entry_is_refused() -> None:
    ix = index()
    genuine = item(1)
    for altered in (
        attrs.evolve(genuine, name="something else"),
        attrs.evolve(genuine, size=genuine.size + 1),
        attrs.evolve(genuine, epoch=genuine.epoch + 1),
    ):
        with pytest.raises(ForgedEntry, match="signature"):
            grant(ix, LEASE_A, ALICE, [altered], now=0.0)
    grant(ix, LEASE_A, ALICE, [genuine], now=0.0)
    assert ix.entries == 1
