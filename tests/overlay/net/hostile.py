"""Hostile but well-formed input: messages with every list at its validator's bound and
ids forged to name someone other than the sender.

Shared by the core's stateful fuzz test (tests/overlay/core/test_core_stateful.py) and the
decoder's fuzz harness (benchmarks/fuzz_decoder.py), whose seed corpus they join.
Every message built here passes its validators: the wire would deliver it as is.
"""

from __future__ import annotations

import random
from collections.abc import Sequence

from overlay.protocol.identity import Address, Contact
from overlay.protocol.messages import (
    MAX_FLOOD_TTL_FIELD,
    MAX_INDEX_ITEMS,
    MAX_INDEX_REMOVALS,
    MAX_KEYWORD_LENGTH,
    MAX_KEYWORDS_FIELD,
    MAX_LOAD,
    MAX_NAME,
    MAX_SAMPLE,
    MAX_SEQ,
    MAX_SHUFFLE,
    MAX_SUPER_INFO,
    MAX_VALUE,
    MAX_WALK_TTL_FIELD,
    MAX_WALKER,
    Attach,
    AttachReject,
    FetchReply,
    IndexDelta,
    IndexItem,
    IndexPublish,
    Message,
    PeerSample,
    Query,
    QueryHit,
    Redirect,
    Rehome,
    ShuffleEntry,
    ShuffleReply,
    ShuffleRequest,
    SuperBeat,
    SuperInfo,
    SuperQuery,
    WalkStep,
)


def random_id(rng: random.Random) -> str:
    return f"{rng.getrandbits(128):032x}"


def random_key(rng: random.Random) -> str:
    return f"{rng.getrandbits(256):064x}"


def random_contact(rng: random.Random) -> Contact:
    host = f"10.{rng.randrange(256)}.{rng.randrange(256)}.{rng.randrange(1, 255)}"
    return Contact(random_id(rng), Address(host, rng.randrange(1, 65536)))


def forged_contact(rng: random.Random, known: Sequence[Contact]) -> Contact:
    """A contact naming a known peer (often with another address), or a stranger."""
    if known and rng.random() < 0.7:
        victim = known[rng.randrange(len(known))]
        if rng.random() < 0.5:
            return victim
        return Contact(victim.id, Address("10.66.0.1", rng.randrange(1, 65536)))
    return random_contact(rng)


def long_name(rng: random.Random) -> str:
    """A name of exactly MAX_NAME ASCII characters, in words (so it has keywords)."""
    words: list[str] = []
    while sum(len(w) + 1 for w in words) < MAX_NAME:
        words.append(f"w{rng.randrange(10_000)}")
    return " ".join(words)[:MAX_NAME]


def full_items(rng: random.Random) -> tuple[IndexItem, ...]:
    return tuple(
        IndexItem(
            random_key(rng),
            long_name(rng),
            rng.randrange(MAX_VALUE + 1),
            MAX_SEQ,
            rng.randbytes(64),
        )
        for _ in range(MAX_INDEX_ITEMS)
    )


def messages_at_bounds(rng: random.Random, known: Sequence[Contact] = ()) -> list[Message]:
    """One message of each list-carrying kind, every list as long as its validator allows,
    every contact inside forged from ``known`` (the receiver and its neighbors)."""

    def contacts(count: int) -> tuple[Contact, ...]:
        return tuple(forged_contact(rng, known) for _ in range(count))

    keywords = tuple(f"{n:02d}" + "k" * (MAX_KEYWORD_LENGTH - 2) for n in range(MAX_KEYWORDS_FIELD))
    infos = tuple(SuperInfo(c, MAX_LOAD) for c in contacts(MAX_SUPER_INFO))
    query_id = random_id(rng)
    return [
        PeerSample(contacts(MAX_SAMPLE), contacts(MAX_SAMPLE), 86400.0),
        ShuffleRequest(tuple(ShuffleEntry(c, rng.randrange(65536)) for c in contacts(MAX_SHUFFLE))),
        ShuffleReply(tuple(ShuffleEntry(c, 0) for c in contacts(MAX_SHUFFLE))),
        Redirect(forged_contact(rng, known)),
        Query(
            query_id,
            forged_contact(rng, known),
            None,
            keywords,
            MAX_FLOOD_TTL_FIELD,
            MAX_FLOOD_TTL_FIELD,
            direct=True,
        ),
        Query(
            random_id(rng), forged_contact(rng, known), random_key(rng), (), MAX_FLOOD_TTL_FIELD, 0
        ),
        QueryHit(
            query_id,
            random_key(rng),
            long_name(rng),
            MAX_VALUE,
            forged_contact(rng, known),
            MAX_WALK_TTL_FIELD,
            rng.randbytes(32),
            rng.randbytes(64),
            MAX_SEQ,
        ),
        WalkStep(
            random_id(rng),
            forged_contact(rng, known),
            random_key(rng),
            (),
            MAX_WALK_TTL_FIELD,
            MAX_WALK_TTL_FIELD - 1,
            MAX_WALKER,
            1,
        ),
        FetchReply(random_id(rng), random_key(rng), True, bytes(MAX_VALUE)),
        Attach(1_000_000, True, MAX_SEQ, full_items(rng), rng.randbytes(32)),
        AttachReject("full", infos),
        IndexPublish(random_id(rng), MAX_SEQ, full_items(rng)),
        IndexDelta(
            random_id(rng),
            1,
            full_items(rng),
            tuple(random_key(rng) for _ in range(MAX_INDEX_REMOVALS)),
        ),
        SuperBeat(MAX_LOAD, float(MAX_LOAD), forged_contact(rng, known), infos),
        Rehome(forged_contact(rng, known)),
        SuperQuery(
            random_id(rng),
            forged_contact(rng, known),
            None,
            keywords,
            MAX_WALK_TTL_FIELD,
            MAX_WALK_TTL_FIELD,
            MAX_WALKER,
        ),
    ]
