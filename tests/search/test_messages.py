"""The search messages validate strictly and travel over the wire unchanged."""

from __future__ import annotations

import pytest

from overlay.protocol.identity import Address, Contact
from overlay.protocol.messages import (
    Fetch,
    FetchReply,
    Message,
    Query,
    QueryHit,
    WalkCheck,
    WalkStep,
    WalkVerdict,
    all_message_types,
)
from overlay.protocol.wire import decode_message, encode_message
from search.store import content_key

ORIGIN = Contact("a" * 32, Address("10.0.0.1", 7000))
KEY = content_key(b"v")
QID = "b" * 32

SAMPLES: list[Message] = [
    Query(QID, ORIGIN, KEY, (), 7, 0, False),
    Query(QID, ORIGIN, None, ("free", "manual"), 3, 2, True),
    QueryHit(QID, KEY, "v", 1, ORIGIN, 3, bytes(32), bytes(64)),
    QueryHit(QID, KEY, None, 0, ORIGIN, 0, bytes(range(32)), bytes(range(64)), 7),
    WalkStep(QID, ORIGIN, None, ("x",), 256, 1, 5, 4),
    WalkCheck(QID, 5, 8),
    WalkVerdict(QID, 5, False),
    Fetch(QID, KEY),
    FetchReply(QID, KEY, True, b"v"),
]


@pytest.mark.parametrize("message", SAMPLES, ids=lambda m: type(m).__name__)
def test_search_messages_round_trip_on_the_wire(message: Message) -> None:
    assert type(message) in all_message_types()
    assert decode_message(encode_message(message)) == message


@pytest.mark.parametrize(
    "build",
    [
        lambda: Query(QID, ORIGIN, None, (), 7),  # neither key nor keywords
        lambda: Query(QID, ORIGIN, KEY, ("x",), 7),  # both
        lambda: Query(QID, ORIGIN, KEY.upper(), (), 7),  # not a key
        lambda: Query(QID, ORIGIN, KEY, (), True),  # a bool is not a TTL
        lambda: Query(QID, ORIGIN, KEY, (), 256),  # over the wire's bound
        lambda: Query("x" * 32, ORIGIN, KEY, (), 7),  # not an id
        lambda: Query(QID, ORIGIN, None, ("",), 7),  # empty keyword
        lambda: QueryHit(QID, KEY, "v", -1, ORIGIN, 0, bytes(32), bytes(64)),
        lambda: QueryHit(QID, KEY, "v", 1, ORIGIN, 0, bytes(31), bytes(64)),  # short key
        lambda: QueryHit(QID, KEY, "v", 1, ORIGIN, 0, bytes(32), bytes(65)),  # long signature
        lambda: QueryHit(QID, KEY, "v", 1, ORIGIN, 0, "k" * 32, bytes(64)),  # type: ignore[arg-type]
        lambda: QueryHit(QID, KEY, "v", 1, ORIGIN, 0, bytes(32), bytes(64), True),
        lambda: WalkStep(QID, ORIGIN, KEY, (), 0, 1, 0),
        lambda: FetchReply(QID, KEY, True, "text"),  # type: ignore[arg-type]
    ],
)
def test_search_messages_refuse_bad_fields(build: object) -> None:
    with pytest.raises((ValueError, TypeError)):
        build()  # type: ignore[operator]
