"""Tests of the wire format: round trips, framing, strictness and hostile input.

The message strategies are derived from each class's attrs fields, so a message
type appended to ``all_message_types()`` is covered without editing this file;
only a field whose validator has a narrower range than its type needs an entry in
``FIELD_STRATEGIES`` (and a type this file cannot generate fails loudly).
"""

from __future__ import annotations

import itertools
import time
import types
import typing
from collections.abc import Callable
from typing import Any, Literal

import attrs
import msgpack
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from overlay.protocol import wire
from overlay.protocol.errors import (
    FrameTooLarge,
    LocalError,
    MalformedMessage,
    MessageTooLarge,
    ProtocolError,
    RemoteError,
    VersionMismatch,
)
from overlay.protocol.identity import ROLES, Address, Contact
from overlay.protocol.messages import (
    MAX_CAPACITY,
    MAX_COUNTER_NAME,
    MAX_DEGREE_FIELD,
    MAX_REASON,
    MAX_SAMPLE,
    MAX_SHUFFLE,
    MAX_STATS_COUNTERS,
    MAX_STATS_ENTRIES_PER_WEAK,
    MAX_STATS_NEIGHBORS,
    MAX_STATS_PASSIVE,
    MAX_STATS_SUPER_NEIGHBORS,
    MAX_STATS_SUPER_TARGET,
    MAX_STATS_SUPERS,
    MAX_STATS_WEAK,
    Disconnect,
    Handshake,
    Heartbeat,
    Join,
    Message,
    NeighborRequest,
    PeerSample,
    Query,
    Redirect,
    Register,
    ShuffleEntry,
    ShuffleRequest,
    StatCounter,
    StatsReply,
    all_message_types,
)
from overlay.protocol.wire import (
    DEFAULT_FRAME_CAP,
    PREFIX,
    REPEATED_ENTRIES,
    REPEATED_MAX_BODY,
    FrameDecoder,
    RepeatedBodies,
    check_handshake,
    decode_message,
    encode_frame,
    encode_message,
)
from overlay.tools.crawl import snapshot_from

# Generic strategies filter by the validators (a query needs a key or keywords, not
# both), so some filtering is expected; a type that never builds still fails loudly
# with hypothesis' Unsatisfiable.
_QUIET = [HealthCheck.too_slow, HealthCheck.filter_too_much]
FAST = settings(max_examples=200, deadline=None, suppress_health_check=_QUIET)
FEW = settings(max_examples=40, deadline=None, suppress_health_check=_QUIET)

ID = "0123456789abcdef" * 2
ADDRESS = Address("10.0.0.1", 4000)
CONTACT = Contact(ID, ADDRESS)
CONTACT_WIRE = [ID, ["10.0.0.1", 4000]]


# --------------------------------------------------------------------------- strategies

peer_ids = st.integers(0, 2**128 - 1).map(lambda n: f"{n:032x}")
addresses = st.builds(
    Address,
    host=st.text(st.characters(min_codepoint=33, max_codepoint=126), min_size=1, max_size=40),
    port=st.integers(1, 65535),
)
contacts = st.builds(Contact, id=peer_ids, address=addresses)

content_keys = st.binary(min_size=32, max_size=32).map(bytes.hex)

FIELD_STRATEGIES: dict[str, st.SearchStrategy[Any]] = {
    # Full-range values for fields where the generic small values would leave most
    # of the validator's range untried.  Everything else is derived from the type.
    "Handshake.version": st.integers(0, 65535),
    "Handshake.capacity": st.integers(0, MAX_CAPACITY),
    "Register.capacity": st.integers(0, MAX_CAPACITY),
    "Register.want": st.integers(0, MAX_SAMPLE),
    "NeighborAccept.degree": st.integers(0, MAX_DEGREE_FIELD),
    "Heartbeat.degree": st.integers(0, MAX_DEGREE_FIELD),
    "Disconnect.reason": st.text(max_size=MAX_REASON),
    "PeerSample.lease": st.floats(0.0, 86400.0),
    "PeerSample.peers": st.lists(contacts, max_size=MAX_SAMPLE).map(tuple),
    "PeerSample.super_peers": st.lists(contacts, max_size=MAX_SAMPLE).map(tuple),
}

Accepts = Callable[[Any], bool]
SCALAR_CANDIDATES: dict[Any, list[tuple[st.SearchStrategy[Any], Any]]] = {
    # (strategy, a probe value from it).  A field keeps the candidates whose probe its
    # validator accepts, so a field of peer ids draws peer ids, not random text.
    str: [
        (peer_ids, "0" * 32),
        (content_keys, "0" * 64),
        (st.sampled_from(ROLES), ROLES[0]),
        (st.text(min_size=1, max_size=8), "a"),
        (st.just(""), ""),
    ],
    int: [(st.integers(0, 16), 0), (st.integers(1, 16), 1)],
    float: [(st.floats(0.0, 1.0), 0.0), (st.floats(0.5, 2.0), 1.0)],
    bytes: [
        (st.binary(max_size=16), b""),
        # public keys and signatures are exact sizes (32 and 64 bytes)
        (st.binary(min_size=32, max_size=32), bytes(32)),
        (st.binary(min_size=64, max_size=64), bytes(64)),
    ],
    bool: [(st.booleans(), False)],
    type(None): [(st.none(), None)],
}
RECORD_STRATEGIES: dict[Any, st.SearchStrategy[Any]] = {Contact: contacts, Address: addresses}


def anything(_value: Any) -> bool:
    return True


def strategy_for_type(kind: Any, accepts: Accepts = anything) -> st.SearchStrategy[Any]:
    """A generic strategy from an annotation; ``accepts`` probes the field's validator."""
    if kind in SCALAR_CANDIDATES:
        candidates = SCALAR_CANDIDATES[kind]
        fitting = [strategy for strategy, probe in candidates if accepts(probe)]
        return st.one_of(fitting or [strategy for strategy, _ in candidates])
    if kind in RECORD_STRATEGIES:
        return RECORD_STRATEGIES[kind]
    origin, args = typing.get_origin(kind), typing.get_args(kind)
    if kind is Message:
        return st.deferred(lambda: any_message)
    if origin is tuple and len(args) == 2 and args[1] is Ellipsis:
        item = strategy_for_type(args[0], lambda value: accepts((value,)))
        return st.lists(item, max_size=6).map(tuple)
    if origin is tuple:
        return st.tuples(*(strategy_for_type(arg) for arg in args))
    if origin is list:
        return st.lists(strategy_for_type(args[0], lambda value: accepts([value])), max_size=4)
    if origin in (typing.Union, types.UnionType):
        return st.one_of(*(strategy_for_type(arg, accepts) for arg in args))
    if origin is Literal:
        return st.sampled_from(args)
    if isinstance(kind, type) and attrs.has(kind):
        return strategy_for_class(kind)
    raise NotImplementedError(f"no strategy for {kind!r}: add one to FIELD_STRATEGIES")


def field_accepts(field: attrs.Attribute[Any], value: Any) -> bool:
    """Run one field's validator alone, so generic values are filtered field by field."""
    if field.validator is None:
        return True
    try:
        field.validator(None, field, value)
    except (ValueError, TypeError):
        return False
    return True


def strategy_for_field(cls: type[Any], field: attrs.Attribute[Any]) -> st.SearchStrategy[Any]:
    override = FIELD_STRATEGIES.get(f"{cls.__name__}.{field.name}")
    if override is not None:
        return override

    def accepts(value: Any) -> bool:
        return field_accepts(field, value)

    return strategy_for_type(field.type, accepts).filter(accepts)


def strategy_for_class(cls: type[Any]) -> st.SearchStrategy[Any]:
    attrs.resolve_types(cls)
    fields = {
        field.alias: strategy_for_field(cls, field) for field in attrs.fields(cls) if field.init
    }

    @st.composite
    def build(draw: st.DrawFn) -> Any:
        kwargs = {name: draw(strategy) for name, strategy in fields.items()}
        try:
            return cls(**kwargs)
        except (ValueError, TypeError):
            assume(False)  # a generic value outside a validator's range

    return build()


MESSAGE_STRATEGIES = {cls: strategy_for_class(cls) for cls in all_message_types()}
any_message: st.SearchStrategy[Message] = st.one_of(*MESSAGE_STRATEGIES.values())


@st.composite
def chunked(draw: st.DrawFn, stream: bytes) -> list[bytes]:
    """``stream`` cut at random points (empty pieces included)."""
    cuts = sorted(draw(st.lists(st.integers(0, len(stream)), max_size=24)))
    bounds = [0, *cuts, len(stream)]
    return [stream[a:b] for a, b in itertools.pairwise(bounds)]


def frame(body: bytes) -> bytes:
    return len(body).to_bytes(PREFIX, "big") + body


def body_of(*items: Any) -> bytes:
    return bytes(msgpack.packb(list(items), use_bin_type=True))


def reference_decode(stream: bytes, cap: int) -> tuple[list[Message], type[Exception] | None]:
    """What a decoder must produce: frames decoded one by one up to the first bad one."""
    out: list[Message] = []
    position = 0
    while len(stream) - position >= PREFIX:
        size = int.from_bytes(stream[position : position + PREFIX], "big")
        if size > cap:
            return out, FrameTooLarge
        if size == 0:
            return out, MalformedMessage
        if len(stream) - position - PREFIX < size:
            break
        try:
            out.append(decode_message(stream[position + PREFIX : position + PREFIX + size]))
        except MalformedMessage:
            return out, MalformedMessage
        position += PREFIX + size
    return out, None


def feed_all(
    decoder: FrameDecoder, pieces: list[bytes]
) -> tuple[list[Message], RemoteError | None]:
    """Feed every piece; stop at the first error (which must be a RemoteError)."""
    got: list[Message] = []
    cap = decoder.cap
    for piece in pieces:
        try:
            got.extend(decoder.feed(piece))
        except RemoteError as exc:
            return got, exc
        assert decoder.buffered <= cap + PREFIX
    return got, None


# --------------------------------------------------------------------------- round trips


@pytest.mark.parametrize("cls", all_message_types(), ids=lambda cls: cls.__name__)
@FEW
@given(data=st.data())
def test_every_message_type_round_trips(cls: type[Message], data: st.DataObject) -> None:
    message = data.draw(MESSAGE_STRATEGIES[cls])
    body = encode_message(message)
    decoded = decode_message(body)
    assert type(decoded) is cls
    assert decoded == message
    assert encode_message(decoded) == body  # canonical: one encoding per message


@FAST
@given(messages=st.lists(any_message, max_size=12), data=st.data())
def test_frames_round_trip_in_any_chunking(messages: list[Message], data: st.DataObject) -> None:
    stream = b"".join(encode_frame(message) for message in messages)
    decoder = FrameDecoder()
    got, error = feed_all(decoder, data.draw(chunked(stream)))
    assert error is None
    assert got == messages
    assert [type(m) for m in got] == [type(m) for m in messages]
    assert decoder.buffered == 0


def test_wire_layout_is_a_tagged_array_with_nested_arrays() -> None:
    body = msgpack.packb(["Heartbeat", 7], use_bin_type=True)
    assert encode_frame(Heartbeat(7)) == len(body).to_bytes(4, "big") + body
    handshake = Handshake(version=3, contact=CONTACT, role="super", capacity=9)
    assert msgpack.unpackb(encode_message(handshake)) == ["Handshake", 3, CONTACT_WIRE, "super", 9]
    assert msgpack.unpackb(encode_message(Join())) == ["Join"]


def test_int_on_the_wire_widens_to_float_only_for_float_fields() -> None:
    decoded = decode_message(body_of("PeerSample", [], [], 5))
    assert isinstance(decoded, PeerSample)
    assert decoded.lease == 5.0
    assert type(decoded.lease) is float


def test_a_full_sample_of_realistic_contacts_fits_the_default_cap() -> None:
    host = "fd00:1234:5678:9abc:def0:1234:5678:9abc"  # the longest IPv6 literal
    many = tuple(Contact(f"{n:032x}", Address(host, 65535)) for n in range(MAX_SAMPLE))
    frame_bytes = encode_frame(PeerSample(many, many, 86400.0))
    assert len(frame_bytes) <= DEFAULT_FRAME_CAP + PREFIX


def test_a_body_of_exactly_the_cap_is_accepted() -> None:
    message = Heartbeat(1)
    size = len(encode_message(message))
    decoder = FrameDecoder(cap=size)
    assert decoder.feed(encode_frame(message, cap=size)) == [message]


# --------------------------------------------------------------------------- hostile bytes


@FAST
@given(data=st.binary(max_size=300), pieces=st.data())
def test_random_bytes_raise_only_remote_errors(data: bytes, pieces: st.DataObject) -> None:
    decoder = FrameDecoder(cap=256)
    got, error = feed_all(decoder, pieces.draw(chunked(data)))
    expected, expected_error = reference_decode(data, 256)
    assert all(type(m) in all_message_types() for m in got)
    assert got == expected[: len(got)]
    assert (type(error) if error else None) is expected_error


@FAST
@given(bodies=st.lists(st.binary(max_size=64), min_size=1, max_size=6), pieces=st.data())
def test_well_framed_random_bodies_raise_only_malformed(
    bodies: list[bytes], pieces: st.DataObject
) -> None:
    stream = b"".join(frame(body) for body in bodies)
    decoder = FrameDecoder()
    got, error = feed_all(decoder, pieces.draw(chunked(stream)))
    expected, expected_error = reference_decode(stream, DEFAULT_FRAME_CAP)
    assert got == expected[: len(got)]
    assert (type(error) if error else None) is expected_error
    if error is not None:
        assert type(error) is MalformedMessage


mutations = st.lists(
    st.tuples(
        st.sampled_from(["flip", "insert", "delete", "truncate"]),
        st.integers(0, 10_000),
        st.integers(0, 255),
    ),
    min_size=1,
    max_size=6,
)


def mutate(stream: bytes, edits: list[tuple[str, int, int]]) -> bytes:
    data = bytearray(stream)
    for kind, where, value in edits:
        if not data:
            break
        at = where % len(data)
        if kind == "flip":
            data[at] ^= 1 << (value % 8)
        elif kind == "insert":
            data.insert(at, value)
        elif kind == "delete":
            del data[at]
        else:
            del data[at:]
    return bytes(data)


@FAST
@given(
    messages=st.lists(any_message, min_size=1, max_size=6),
    edits=mutations,
    pieces=st.data(),
)
def test_mutated_frames_raise_only_remote_errors(
    messages: list[Message], edits: list[tuple[str, int, int]], pieces: st.DataObject
) -> None:
    stream = mutate(b"".join(encode_frame(m) for m in messages), edits)
    decoder = FrameDecoder()
    started = time.perf_counter()
    got, error = feed_all(decoder, pieces.draw(chunked(stream)))
    assert time.perf_counter() - started < 1.0  # linear work, no pathological slowdown
    expected, expected_error = reference_decode(stream, DEFAULT_FRAME_CAP)
    assert got == expected[: len(got)]
    assert (type(error) if error else None) is expected_error
    if error is not None:
        # Poisoned: even a perfectly good frame is refused with the same kind of error.
        with pytest.raises(type(error)):
            decoder.feed(encode_frame(Heartbeat(1)))
        assert decoder.buffered == 0


msgpack_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**64 - 1)
    | st.floats(allow_nan=True)
    | st.text(max_size=40)
    | st.binary(max_size=40)
    | st.sampled_from([ID, "weak", "super", *(cls.__name__ for cls in all_message_types())]),
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=4), inner),
    max_leaves=20,
)


@FAST
@given(
    tag=st.sampled_from([cls.__name__ for cls in all_message_types()]),
    fields=st.lists(msgpack_values, max_size=5),
)
def test_random_fields_under_a_real_tag_raise_only_malformed(tag: str, fields: list[Any]) -> None:
    try:
        message = decode_message(body_of(tag, *fields))
    except MalformedMessage as exc:
        assert "\n" not in str(exc)
    else:
        assert type(message).__name__ == tag


@FAST
@given(data=st.binary(max_size=200))
def test_decode_message_raises_only_malformed(data: bytes) -> None:
    try:
        message = decode_message(data)
    except MalformedMessage as exc:
        assert "\n" not in str(exc)
    else:  # rare, but then it is a real message that survives a round trip
        assert type(message) in all_message_types()
        assert decode_message(encode_message(message)) == message


# --------------------------------------------------------------------------- framing limits


def test_oversized_prefix_is_refused_before_the_body_is_buffered() -> None:
    cap = 1024
    decoder = FrameDecoder(cap=cap)
    prefix = (cap + 1).to_bytes(PREFIX, "big")
    assert decoder.feed(prefix[:3]) == []
    assert decoder.buffered == 3
    with pytest.raises(FrameTooLarge) as caught:
        decoder.feed(prefix[3:])
    assert (caught.value.size, caught.value.cap) == (cap + 1, cap)
    assert decoder.buffered == 0
    with pytest.raises(FrameTooLarge):
        decoder.feed(b"\x00" * 10)
    assert decoder.buffered == 0


def test_oversized_frame_in_one_chunk_is_not_buffered() -> None:
    decoder = FrameDecoder(cap=1024)
    with pytest.raises(FrameTooLarge):
        decoder.feed((2**32 - 1).to_bytes(PREFIX, "big") + b"\x00" * 5000)
    assert decoder.buffered == 0


def test_buffer_never_exceeds_cap_plus_prefix() -> None:
    cap = 64
    decoder = FrameDecoder(cap=cap)
    pending = cap.to_bytes(PREFIX, "big") + b"\x00" * (cap - 1)  # one byte short of a frame
    assert decoder.feed(pending) == []
    assert decoder.buffered == cap - 1
    assert decoder.buffered <= cap + PREFIX


def test_zero_length_frame_is_malformed_and_poisons() -> None:
    decoder = FrameDecoder()
    with pytest.raises(MalformedMessage):
        decoder.feed(b"\x00\x00\x00\x00")
    with pytest.raises(MalformedMessage):
        decoder.feed(encode_frame(Heartbeat(1)))


def test_messages_arrive_in_order_from_one_chunk() -> None:
    messages = [Heartbeat(n) for n in range(50)]
    decoder = FrameDecoder()
    assert decoder.feed(b"".join(encode_frame(m) for m in messages)) == messages


def _query(number: int, keywords: tuple[str, ...] = ()) -> Query:
    origin = Contact("a" * 32, Address("127.0.0.1", 4000))
    return Query(f"{number:032x}", origin, None if keywords else "0" * 64, keywords, 7, 1)


def test_a_repeated_query_body_is_decoded_once_for_every_decoder_sharing_the_table() -> None:
    repeated = RepeatedBodies()
    frame = encode_frame(_query(1))
    first = FrameDecoder(repeated=repeated).feed(frame)
    # Another connection, the frame in two pieces: the same message, from the table.
    second = FrameDecoder(repeated=repeated)
    assert second.feed(frame[:9]) == []
    assert second.feed(frame[9:]) == first == [_query(1)]
    assert second.feed(frame)[0] is first[0]
    assert len(repeated) == 1
    # Only the kinds that come as copies are kept; long bodies never are.
    FrameDecoder(repeated=repeated).feed(encode_frame(Heartbeat(3)))
    long_query = _query(2, tuple("k" * 60 for _ in range(12)))
    assert len(encode_message(long_query)) > REPEATED_MAX_BODY
    assert FrameDecoder(repeated=repeated).feed(encode_frame(long_query)) == [long_query]
    assert len(repeated) == 1


def test_a_bad_body_fails_every_time_with_the_table() -> None:
    repeated = RepeatedBodies()
    frame = encode_frame(_query(1))
    bad = frame[:-1] + b"\xc1"  # msgpack's one never-used byte, in place of `direct`
    for _ in range(2):
        with pytest.raises(MalformedMessage):
            FrameDecoder(repeated=repeated).feed(bad)
    assert len(repeated) == 0


def test_the_table_keeps_only_the_newest_bodies() -> None:
    repeated = RepeatedBodies()
    decoder = FrameDecoder(repeated=repeated)
    oldest = decoder.feed(encode_frame(_query(0)))[0]
    newest = oldest
    for number in range(1, REPEATED_ENTRIES + 10):
        newest = decoder.feed(encode_frame(_query(number)))[0]
    assert len(repeated) == REPEATED_ENTRIES
    assert decoder.feed(encode_frame(_query(0)))[0] is not oldest  # forgotten: decoded anew
    assert decoder.feed(encode_frame(_query(REPEATED_ENTRIES + 9)))[0] is newest


def test_decoder_refuses_a_bad_cap() -> None:
    with pytest.raises(ValueError, match="cap"):
        FrameDecoder(cap=0)
    with pytest.raises(ValueError, match="cap"):
        FrameDecoder(cap=2**32)


def test_encode_frame_over_the_cap_is_our_error() -> None:
    with pytest.raises(MessageTooLarge) as caught:
        encode_frame(Heartbeat(1), cap=2)
    assert isinstance(caught.value, LocalError)
    assert not isinstance(caught.value, RemoteError)
    big = PeerSample(tuple(CONTACT for _ in range(MAX_SAMPLE)))
    with pytest.raises(MessageTooLarge):
        encode_frame(big, cap=256)


def test_encoding_an_unknown_or_unencodable_message_is_our_error() -> None:
    class Stranger(Message):
        __slots__ = ()

    with pytest.raises(LocalError):
        encode_message(Stranger())
    lone_surrogate = Disconnect("\ud800")
    with pytest.raises(LocalError):
        encode_message(lone_surrogate)


# --------------------------------------------------------------------------- strictness


def refused(body: bytes, *mentions: str) -> MalformedMessage:
    with pytest.raises(MalformedMessage) as caught:
        decode_message(body)
    text = str(caught.value)
    assert "\n" not in text
    assert len(text) < 300
    for word in mentions:
        assert word in text
    return caught.value


@pytest.mark.parametrize("degree", ["7", 7.9, 7.0, True, False, None, -1, 10**9, [7], b"7"])
def test_heartbeat_degree_is_not_coerced(degree: object) -> None:
    refused(body_of("Heartbeat", degree), "Heartbeat", "degree")


def test_heartbeat_degree_in_range_is_accepted() -> None:
    assert decode_message(body_of("Heartbeat", 7)) == Heartbeat(7)


@pytest.mark.parametrize(
    "peer_id",
    ["ABCDEF" + ID[6:], ID[:31], ID + "0", "g" * 32, 12345, b"0" * 32, None],
)
def test_contact_id_must_be_32_lowercase_hex(peer_id: object) -> None:
    refused(body_of("Redirect", [peer_id, ["h", 1]]), "Redirect", "id")


@pytest.mark.parametrize(
    ("address", "field"),
    [
        ([b"h", 1], "host"),
        (["", 1], "host"),
        (["h", 1.0], "port"),
        (["h", "1"], "port"),
        (["h", 0], "port"),
        (["h", 65536], "port"),
        (["h"], "address"),
        (["h", 1, 2], "address"),
        ({"host": "h", "port": 1}, "address"),
        ("h:1", "address"),
    ],
)
def test_nested_address_is_strict(address: object, field: str) -> None:
    refused(body_of("Redirect", [ID, address]), "Redirect", field)


def test_tuple_longer_than_its_max_is_refused() -> None:
    assert decode_message(body_of("PeerSample", [CONTACT_WIRE] * MAX_SAMPLE, [], 1.0))
    refused(body_of("PeerSample", [CONTACT_WIRE] * (MAX_SAMPLE + 1), [], 1.0), "peers")
    full = ShuffleRequest(tuple(ShuffleEntry(CONTACT, age) for age in range(MAX_SHUFFLE)))
    assert decode_message(encode_message(full)) == full
    entries = msgpack.unpackb(encode_message(full))[1]
    refused(body_of("ShuffleRequest", [*entries, entries[0]]), "ShuffleRequest", "entries")


@pytest.mark.parametrize("entries", ["abc", b"abc", {"a": 1}, 3, None, [1], [[ID]]])
def test_tuple_field_accepts_only_an_array_of_records(entries: object) -> None:
    refused(body_of("ShuffleRequest", entries), "ShuffleRequest", "entries")


@pytest.mark.parametrize(
    "items",
    [
        ["Heartbeat"],
        ["Heartbeat", 1, 2],
        ["Register", 4],  # role and capacity have defaults, yet must be sent
        ["Register", 4, "weak", 1, 0],
        ["Join", None],
        ["Handshake", 1, CONTACT_WIRE, "weak"],
    ],
)
def test_missing_and_extra_fields_are_refused(items: list[Any]) -> None:
    refused(body_of(*items), items[0], "field")


@pytest.mark.parametrize(
    ("urgent", "ok"), [(True, True), (False, True), (1, False), ("true", False), (None, False)]
)
def test_booleans_are_exact(urgent: object, ok: bool) -> None:
    body = body_of("NeighborRequest", urgent)
    if ok:
        assert decode_message(body) == NeighborRequest(urgent=bool(urgent))
    else:
        refused(body, "urgent")


@pytest.mark.parametrize("lease", [True, "60", None, float("nan"), float("inf"), -1.0])
def test_float_fields_refuse_non_numbers_and_out_of_range(lease: object) -> None:
    refused(body_of("PeerSample", [], [], lease), "PeerSample", "lease")


@pytest.mark.parametrize("role", ["admin", b"weak", 1, None])
def test_enumerated_strings_are_exact(role: object) -> None:
    refused(body_of("Register", 1, role, 1), "Register", "role")


@pytest.mark.parametrize("tag", ["Nope", "heartbeat", "Message", "Contact", ""])
def test_unknown_tag_is_refused(tag: str) -> None:
    refused(body_of(tag, 1), "tag")


@pytest.mark.parametrize(
    "top", [{"Heartbeat": 7}, "Heartbeat", 7, None, b"Heartbeat", 1.5, [], [7], [None, 7]]
)
def test_top_level_must_be_a_tagged_array(top: object) -> None:
    refused(msgpack.packb(top, use_bin_type=True))


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"\xc1",  # never used in msgpack
        body_of("Heartbeat", 7) + b"\x00",  # trailing bytes
        b"\x92\xa9Heartbeat",  # truncated
        b"\x92\xa9Heartbeat\xdb\x7f\xff\xff\xff",  # str header claiming 2 GiB
        b"\x92\xa9Heartbeat\xdd\x7f\xff\xff\xff",  # array header claiming 2**31 items
        b"\x92\xa9Heartbeat\xa2\xff\xfe",  # invalid UTF-8 in a str
        b"\x91" * 100_000,  # nesting deeper than any stack
        msgpack.packb({1: 2}),  # non-str map key
        msgpack.packb(msgpack.ExtType(5, b"x")),
    ],
    ids=lambda body: body[:12].hex(),
)
def test_bad_msgpack_is_malformed(body: bytes) -> None:
    refused(body)


def test_a_malformed_body_says_which_type_and_field() -> None:
    error = refused(body_of("PeerSample", [CONTACT_WIRE, [ID, ["h", "x"]]], [], 1.0))
    assert str(error).startswith("PeerSample.peers[1].address.port:")


# --------------------------------------------------------------------------- generic machinery


@attrs.frozen
class Future(Message):
    """A message shape this protocol does not use yet, to check the hook factories."""

    blob: bytes
    names: tuple[str, ...]
    maybe: int | None
    inner: Message
    pair: tuple[int, float]
    mode: Literal["a", 1]
    who: Contact | None = None
    flag: bool = attrs.field(default=False, kw_only=True)
    derived: int = attrs.field(init=False, default=3)


def test_hook_factories_handle_other_field_shapes() -> None:
    # Private access on purpose: Future is not in all_message_types(), so only the
    # converter (not the tag table) knows it.
    unstructure = wire._converter.get_unstructure_hook(Future)
    structure = wire._converter.get_structure_hook(Future)
    message = Future(b"x", ("a", "b"), None, Heartbeat(3), (1, 2.5), 1, CONTACT, flag=True)
    raw = msgpack.unpackb(msgpack.packb(unstructure(message), use_bin_type=True), raw=False)
    assert raw == [
        "Future",
        b"x",
        ["a", "b"],
        None,
        ["Heartbeat", 3],
        [1, 2.5],
        1,
        CONTACT_WIRE,
        True,
    ]
    assert structure(raw, Future) == message
    for index, bad in [(3, "1"), (5, [1, 2, 3]), (6, True), (6, 1.0), (4, ["Nope"]), (7, 5)]:
        mangled = list(raw)
        mangled[index] = bad
        with pytest.raises(wire._Refused):
            structure(mangled, Future)


def test_a_field_type_the_wire_cannot_carry_strictly_fails_at_build_time() -> None:
    @attrs.frozen
    class Loose(Message):
        table: dict[str, int]

    with pytest.raises(TypeError, match="cannot carry"):
        wire._converter.get_structure_hook(Loose)


# --------------------------------------------------------------------------- handshake


def test_check_handshake() -> None:
    hello = Handshake(version=1, contact=CONTACT)
    assert check_handshake(hello, 1) is hello
    with pytest.raises(VersionMismatch, match="version 2"):
        check_handshake(Handshake(version=2, contact=CONTACT), 1)
    with pytest.raises(ProtocolError) as caught:
        check_handshake(Register(want=1), 1)
    assert not isinstance(caught.value, VersionMismatch)


# --------------------------------------------------------------------------- stats replies


def _stats_reply(**super_fields: Any) -> StatsReply:
    return StatsReply(ID, ADDRESS, "super", True, (), (), 0, (), **super_fields)


def _stats_body(reply: StatsReply, **replace: Any) -> bytes:
    """``reply`` on the wire, with some fields replaced by raw values."""
    fields = msgpack.unpackb(encode_message(reply))
    names = ["tag", *(field.name for field in attrs.fields(StatsReply))]
    for name, value in replace.items():
        fields[names.index(name)] = value
    return body_of(*fields)


def test_a_stats_reply_carries_the_super_peer_fields() -> None:
    ids = tuple(f"{n:032x}" for n in range(1, 6))
    reply = _stats_reply(
        super_peers=ids[:2],
        weak_peers=ids[2:],
        index_entries=(3, 0, MAX_STATS_ENTRIES_PER_WEAK),
        super_neighbors=ids[:1],
        index_size=131,
        role_changes=2,
        super_target=2,
        item_count=7,
    )
    assert decode_message(encode_message(reply)) == reply
    crawled = snapshot_from(reply)
    assert crawled.weak_peers == ids[2:] and crawled.index_entries == (3, 0, 128)
    assert (crawled.super_target, crawled.item_count, crawled.role_changes) == (2, 7, 2)


def test_the_largest_stats_reply_fits_one_frame() -> None:
    """Every list at its bound, every counter name in 4-byte characters."""
    host = "fd00:1234:5678:9abc:def0:1234:5678:9abc"
    ids = tuple(f"{n:032x}" for n in range(max(MAX_STATS_NEIGHBORS, MAX_STATS_WEAK)))
    counters = tuple(
        StatCounter("\U0001f600" * MAX_COUNTER_NAME, 2**63 - 1) for _ in range(MAX_STATS_COUNTERS)
    )
    reply = StatsReply(
        ids[0],
        Address(host, 65535),
        "super",
        True,
        ids[:MAX_STATS_NEIGHBORS],
        ids[:MAX_STATS_PASSIVE],
        2**63 - 1,
        counters,
        super_peers=ids[:MAX_STATS_SUPERS],
        weak_peers=ids[:MAX_STATS_WEAK],
        index_entries=(MAX_STATS_ENTRIES_PER_WEAK,) * MAX_STATS_WEAK,
        super_neighbors=ids[:MAX_STATS_SUPER_NEIGHBORS],
        index_size=2**63 - 1,
        role_changes=2**63 - 1,
        super_target=MAX_STATS_SUPER_TARGET,
        item_count=2**63 - 1,
    )
    assert len(encode_frame(reply)) <= DEFAULT_FRAME_CAP + PREFIX


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("super_target", MAX_STATS_SUPER_TARGET + 1),
        ("super_target", -1),
        ("index_size", -1),
        ("role_changes", True),
        ("item_count", "7"),
        ("super_peers", [ID] * (MAX_STATS_SUPERS + 1)),
        ("super_peers", ["not an id"]),
        ("super_neighbors", [ID] * (MAX_STATS_SUPER_NEIGHBORS + 1)),
        ("weak_peers", [ID] * (MAX_STATS_WEAK + 1)),
        ("index_entries", [MAX_STATS_ENTRIES_PER_WEAK + 1]),
        ("index_entries", [-1]),
    ],
)
def test_stats_reply_super_fields_out_of_range_are_refused(field: str, value: object) -> None:
    reply = _stats_reply(weak_peers=(ID,), index_entries=(1,))
    assert decode_message(_stats_body(reply)) == reply
    if field == "weak_peers":
        body = _stats_body(reply, weak_peers=value, index_entries=[1] * (MAX_STATS_WEAK + 1))
    elif field == "index_entries":
        body = _stats_body(reply, index_entries=value)
    else:
        body = _stats_body(reply, **{field: value})
    refused(body, "StatsReply", field)


def test_stats_reply_needs_one_index_count_per_weak_peer() -> None:
    reply = _stats_reply(weak_peers=(ID,), index_entries=(1,))
    refused(_stats_body(reply, index_entries=[]), "StatsReply")
    refused(_stats_body(reply, index_entries=[1, 2]), "StatsReply")
    with pytest.raises(ValueError, match="one count per weak peer"):
        _stats_reply(weak_peers=(ID,))


def test_a_contact_decoded_again_is_the_same_object_and_still_checked() -> None:
    """Decoded contacts are shared (a swarm worker's peers know the same ones), and the
    table never lets through what the strict path refuses."""
    contact = Contact("a" * 32, Address("127.0.0.1", 4000))
    body = wire.encode_message(Redirect(contact))
    first = wire.decode_message(body)
    second = wire.decode_message(body)
    assert isinstance(first, Redirect) and isinstance(second, Redirect)
    assert first == Redirect(contact) and first.newcomer is second.newcomer
    for bad in (
        ["Redirect", ["A" * 32, ["127.0.0.1", 4000]]],  # not a lowercase hex id
        ["Redirect", ["a" * 32, ["127.0.0.1", True]]],  # a bool is not a port
        ["Redirect", ["a" * 32, ["127.0.0.1", 0]]],  # out of range
        ["Redirect", ["a" * 32, ["127.0.0.1", 4000.0]]],  # not an int
    ):
        with pytest.raises(MalformedMessage):
            wire.decode_message(msgpack.packb(bad, use_bin_type=True))


def test_short_decoded_strings_are_shared_and_long_ones_are_not() -> None:
    """The peers of one process share one copy of each id they remember."""
    origin = Contact("a" * 32, Address("127.0.0.1", 4001))
    query_id = "".join(["b"] * 32)  # built at run time: not a shared literal
    body = wire.encode_message(Query(query_id, origin, None, ("word",), 3))
    first, second = wire.decode_message(body), wire.decode_message(body)
    assert isinstance(first, Query) and isinstance(second, Query)
    assert first.query_id == query_id and first.query_id is second.query_id
    long_text = "x" * (wire.INTERNED_LENGTH + 1)
    assert wire._structure_str(long_text[:-1] + "x", str) is not wire._structure_str(
        long_text[:-1] + "x", str
    )
    with pytest.raises(wire._Refused):
        wire._structure_str(b"bytes", str)
