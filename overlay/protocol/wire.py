"""The wire format: length-prefixed msgpack frames, structured strictly through cattrs.

A frame is a 4-byte big-endian unsigned length followed by a msgpack body.  A body
is one message as an array ``[tag, field1, field2, ...]``: the tag is the class
name and the fields follow attrs field order.  Nested attrs classes (``Contact``,
``Address``) are arrays of their fields without a tag (their type is known from
the field's annotation); a nested :class:`~overlay.protocol.messages.Message` keeps its tag.
Tuples and lists are arrays.  Arrays rather than maps keep frames small and make
"missing" and "extra" fields the same check: the arity.

The encoding is not written per message.  One :class:`cattrs.Converter` is taught,
once at import, hook *factories* that read ``attrs.fields`` of any class, so a
message type appended to :func:`overlay.protocol.messages.all_message_types` is on the wire
without touching this module.  A field type the wire cannot carry strictly (``Any``,
``dict``, an enum, an ambiguous union, ...) fails at import, not at runtime.

Structuring is strict, because cattrs' defaults are built for trusted input and
coerce by calling the target type: ``int("7")``, ``int(7.9)``, ``int(True)``,
``bool("false")`` (which is ``True``), ``str(b"x")``, a string turned into a tuple
of characters, and attrs classes from tuples that silently drop extra items and
fill missing ones from defaults.  Here a value must already have the exact type;
the only widening is int to float.  The attrs validators then check ranges and
lengths in the constructor, the single place where they are written down.

Every failure while decoding bytes from the network surfaces as
:class:`~overlay.protocol.errors.MalformedMessage` (or
:class:`~overlay.protocol.errors.FrameTooLarge` for an oversized length prefix), so the
runtime catches :class:`~overlay.protocol.errors.RemoteError` and drops the connection,
and nothing else escapes.
"""

from __future__ import annotations

import struct
import sys
import types
import typing
from collections.abc import Callable
from typing import Any, Final, Literal, NoReturn, TypeGuard

import attrs
import cattrs
import msgpack

from overlay.protocol.errors import (
    FrameTooLarge,
    LocalError,
    MalformedMessage,
    MessageTooLarge,
    ProtocolError,
    VersionMismatch,
)
from overlay.protocol.identity import Contact
from overlay.protocol.messages import Handshake, Message, Query, all_message_types

PROTOCOL_VERSION: Final = 1
"""The version every handshake states; a peer speaking another one is refused."""

__all__ = [
    "DEFAULT_FRAME_CAP",
    "PREFIX",
    "FrameDecoder",
    "check_handshake",
    "decode_message",
    "encode_frame",
    "encode_message",
]

DEFAULT_FRAME_CAP: Final = 64 * 1024
"""Largest body (bytes, prefix excluded) a peer sends or accepts by default."""
PREFIX: Final = 4
"""Bytes in the big-endian unsigned length prefix."""
_MAX_PREFIXED: Final = 2 ** (8 * PREFIX) - 1
"""Largest length the prefix can express; no cap may exceed it."""

_LENGTH: Final = struct.Struct(">I")

StructureHook = Callable[[Any, Any], Any]
UnstructureHook = Callable[[Any], Any]

_NONE_TYPE: Final = type(None)
_SCALARS: Final[frozenset[type]] = frozenset({int, float, str, bytes, bool, _NONE_TYPE})
"""Types msgpack hands us as themselves (with ``raw=False``); everything else is an array."""


# --------------------------------------------------------------------------- refusals


class _Refused(Exception):
    """Internal: a value does not fit its type.  Carries where, so the final error says it.

    Hooks raise this rather than ``MalformedMessage`` so that enclosing hooks can
    prefix the location (``.entries[3].id``) cheaply on the way out.
    """

    __slots__ = ("path", "reason")

    def __init__(self, reason: str, path: str = "") -> None:
        super().__init__(reason)
        self.reason = reason
        self.path = path

    def within(self, prefix: str) -> _Refused:
        return _Refused(self.reason, prefix + self.path)

    def __str__(self) -> str:
        return f"{self.path}: {self.reason}" if self.path else self.reason


def _one_line(text: str, limit: int = 160) -> str:
    """Errors are logged as one line; a remote must not be able to fill the log."""
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 3] + "..."


def _describe(value: object) -> str:
    shown = repr(value)
    if len(shown) > 40:
        shown = shown[:37] + "..."
    return f"{type(value).__name__} {shown}"


def _type_name(kind: Any) -> str:
    return "nil" if kind is _NONE_TYPE else getattr(kind, "__name__", repr(kind))


def _refuse(expected: str, value: object) -> NoReturn:
    raise _Refused(f"expected {expected}, got {_describe(value)}")


# --------------------------------------------------------------------------- what the wire carries


def _is_var_tuple(kind: Any) -> bool:
    args = typing.get_args(kind)
    return typing.get_origin(kind) is tuple and len(args) == 2 and args[1] is Ellipsis


def _is_fixed_tuple(kind: Any) -> bool:
    return typing.get_origin(kind) is tuple and not _is_var_tuple(kind)


def _is_list(kind: Any) -> bool:
    return typing.get_origin(kind) is list


def _is_union(kind: Any) -> bool:
    return typing.get_origin(kind) in (typing.Union, types.UnionType)


def _is_literal(kind: Any) -> bool:
    return typing.get_origin(kind) is Literal


def _is_record(kind: Any) -> TypeGuard[type[Any]]:
    """A plain (non-generic) attrs class: a message or a nested record."""
    return typing.get_origin(kind) is None and isinstance(kind, type) and attrs.has(kind)


def _is_message_class(kind: Any) -> bool:
    return _is_record(kind) and issubclass(kind, Message)


def _check_carriable(kind: Any, where: str) -> None:
    """Refuse, at import, any annotation the wire cannot structure strictly.

    cattrs would otherwise fall back to a lenient default hook (or to identity
    for ``Any``), and a new message type would quietly accept coerced input.
    """
    if kind in _SCALARS or kind is Message or _is_record(kind):
        return
    args = typing.get_args(kind)
    if _is_var_tuple(kind):
        _check_carriable(args[0], where)
    elif _is_fixed_tuple(kind) or _is_list(kind):
        if not args:
            raise TypeError(f"{where}: give the item types of {kind!r}")
        for arg in args:
            _check_carriable(arg, where)
    elif _is_union(kind):
        compound = [arg for arg in args if arg not in _SCALARS]
        if len(compound) > 1:
            # Records, tuples and lists are all untagged arrays on the wire, so
            # two of them in one union could not be told apart.
            raise TypeError(f"{where}: union {kind!r} has more than one array-shaped member")
        for arg in args:
            _check_carriable(arg, where)
    elif _is_literal(kind):
        if not all(type(arg) in _SCALARS for arg in args):
            raise TypeError(f"{where}: literal {kind!r} must hold only scalar values")
    else:
        raise TypeError(f"{where}: the wire cannot carry a field of type {kind!r}")


# --------------------------------------------------------------------------- structure hooks


def _exact(kind: type) -> StructureHook:
    """Accept a value of exactly ``kind``: no ``int("7")``, no ``int(True)``, no subclasses."""
    expected = _type_name(kind)

    def structure(value: Any, _type: Any) -> Any:
        if type(value) is not kind:
            _refuse(expected, value)
        return value

    return structure


INTERNED_LENGTH: Final = 64
"""Decoded strings up to this long (ids, keys, hosts) are interned."""


def _structure_str(value: Any, _type: Any) -> str:
    """A str, interned when short: a swarm worker's peers all remember the same query
    ids (duplicate suppression, reverse paths) and peer ids, and one shared copy per
    process instead of one per peer is over a quarter of what a remembered query costs.
    Interned strings are freed like any other once nothing holds them, so hostile
    input cannot grow the table beyond what the bounded caches keep alive."""
    if type(value) is not str:
        _refuse("str", value)
    return sys.intern(value) if len(value) <= INTERNED_LENGTH else value


def _structure_float(value: Any, _type: Any) -> float:
    """A float, or an int widened to float (msgpack keeps ``60`` and ``60.0`` apart).

    ``True`` is refused.  Finiteness and range are the validators' business.
    """
    kind = type(value)
    if kind is float:
        return typing.cast(float, value)
    if kind is int:
        try:
            return float(value)
        except OverflowError:
            _refuse("float", value)
    _refuse("float", value)


def _items(value: Any) -> list[Any] | tuple[Any, ...]:
    """An array from msgpack; never a str, bytes or map that merely iterates."""
    if type(value) is not list and type(value) is not tuple:
        _refuse("array", value)
    return value


def _structure_var_tuple(kind: Any) -> StructureHook:
    item_type = typing.get_args(kind)[0]
    item_hook = _converter.get_structure_hook(item_type)

    def structure(value: Any, _type: Any) -> tuple[Any, ...]:
        items = _items(value)
        out = []
        for index, item in enumerate(items):
            try:
                out.append(item_hook(item, item_type))
            except _Refused as refused:
                raise refused.within(f"[{index}]") from None
        return tuple(out)

    return structure


def _structure_list(kind: Any) -> StructureHook:
    as_tuple = _structure_var_tuple(tuple[typing.get_args(kind)[0], ...])  # type: ignore[misc]

    def structure(value: Any, _type: Any) -> list[Any]:
        return list(as_tuple(value, _type))

    return structure


def _structure_fixed_tuple(kind: Any) -> StructureHook:
    item_types = typing.get_args(kind)
    hooks = [(_converter.get_structure_hook(t), t) for t in item_types]
    arity = len(hooks)

    def structure(value: Any, _type: Any) -> tuple[Any, ...]:
        items = _items(value)
        if len(items) != arity:
            raise _Refused(f"expected an array of {arity} items, got {len(items)}")
        out = []
        for index, ((hook, item_type), item) in enumerate(zip(hooks, items, strict=True)):
            try:
                out.append(hook(item, item_type))
            except _Refused as refused:
                raise refused.within(f"[{index}]") from None
        return tuple(out)

    return structure


def _structure_union(kind: Any) -> StructureHook:
    """Dispatch on the exact runtime type; at most one member is array-shaped."""
    by_type: dict[type, tuple[StructureHook, Any]] = {}
    compound: tuple[StructureHook, Any] | None = None
    for arg in typing.get_args(kind):
        if arg in _SCALARS:
            by_type[arg] = (_converter.get_structure_hook(arg), arg)
        else:
            compound = (_converter.get_structure_hook(arg), arg)
    if float in by_type and int not in by_type:
        by_type[int] = by_type[float]  # the int-to-float widening, as for plain floats
    expected = " or ".join(sorted(_type_name(t) for t in typing.get_args(kind)))

    def structure(value: Any, _type: Any) -> Any:
        entry = by_type.get(type(value))
        if entry is None:
            if compound is None or type(value) in _SCALARS:
                _refuse(expected, value)
            entry = compound
        hook, member = entry
        return hook(value, member)

    return structure


def _structure_literal(kind: Any) -> StructureHook:
    """Exact type and value: ``Literal[1]`` refuses ``True`` and ``1.0``."""
    allowed = frozenset((type(arg), arg) for arg in typing.get_args(kind))
    expected = f"one of {[arg for _, arg in sorted(allowed, key=repr)]}"

    def structure(value: Any, _type: Any) -> Any:
        if type(value) not in _SCALARS or (type(value), value) not in allowed:
            _refuse(expected, value)
        return value

    return structure


def _structure_record(cls: type[Any]) -> StructureHook:
    """Structure an attrs class from ``[tag?, field1, field2, ...]`` with the exact arity.

    Field hooks are looked up once, here; the returned hook only loops.  Fields with
    ``init=False`` are derived, so they are not on the wire.  Arguments are passed by
    keyword (the attrs alias) so ``kw_only`` fields work; the constructor runs the
    validators, and whatever they raise is the remote's fault.
    """
    attrs.resolve_types(cls)
    tagged = issubclass(cls, Message)
    offset = 1 if tagged else 0
    specs: list[tuple[str, str, StructureHook, Any]] = []
    for field in attrs.fields(cls):
        if not field.init:
            continue
        _check_carriable(field.type, f"{cls.__name__}.{field.name}")
        hook = _converter.get_structure_hook(field.type)
        specs.append((field.name, field.alias, hook, field.type))
    arity = offset + len(specs)
    name = cls.__name__
    plural = "" if len(specs) == 1 else "s"

    def structure(value: Any, _type: Any) -> Any:
        items = _items(value)
        if len(items) != arity:
            if tagged:
                got = f"{len(items) - 1}" if items else "an empty array"
                raise _Refused(f"expected {len(specs)} field{plural} after the tag, got {got}")
            raise _Refused(f"expected {len(specs)} field{plural}, got {len(items)}")
        if tagged and items[0] != name:
            raise _Refused(f"expected tag {name!r}, got {_describe(items[0])}")
        kwargs = {}
        for index, (field_name, alias, hook, field_type) in enumerate(specs, offset):
            try:
                kwargs[alias] = hook(items[index], field_type)
            except _Refused as refused:
                raise refused.within(f".{field_name}") from None
        try:
            return cls(**kwargs)
        except Exception as exc:  # a validator's ValueError/TypeError, or whatever one raises
            raise _Refused(_one_line(str(exc) or type(exc).__name__)) from None

    return structure


def _structure_any_message(value: Any, _type: Any) -> Message:
    """A field (or a whole body) typed ``Message``: dispatch on the tag."""
    items = _items(value)
    if not items:
        raise _Refused("expected an array [tag, fields...], got an empty array")
    tag = items[0]
    if type(tag) is not str:
        _refuse("a message tag (str)", tag)
    entry = _STRUCTURE_BY_TAG.get(tag)
    if entry is None:
        raise _Refused(f"unknown message tag {_one_line(repr(tag), 40)}")
    hook, cls = entry
    try:
        return typing.cast(Message, hook(items, cls))
    except _Refused as refused:
        raise refused.within(tag) from None


# --------------------------------------------------------------------------- unstructure hooks


def _identity(value: Any) -> Any:
    return value


def _unstructure_hook(kind: Any) -> UnstructureHook | None:
    """The hook for ``kind``, or None where the value already is its wire form."""
    if kind in _SCALARS or _is_literal(kind):
        return None
    return _converter.get_unstructure_hook(kind)


def _unstructure_sequence(kind: Any) -> UnstructureHook:
    item_hook = _unstructure_hook(typing.get_args(kind)[0])
    if item_hook is None:
        return list
    return lambda value: [item_hook(item) for item in value]


def _unstructure_fixed_tuple(kind: Any) -> UnstructureHook:
    hooks = [_unstructure_hook(t) or _identity for t in typing.get_args(kind)]
    return lambda value: [hook(item) for hook, item in zip(hooks, value, strict=True)]


def _unstructure_union(kind: Any) -> UnstructureHook:
    compound = [arg for arg in typing.get_args(kind) if arg not in _SCALARS]
    if not compound:
        return _identity
    hook = _converter.get_unstructure_hook(compound[0])
    return lambda value: value if type(value) in _SCALARS else hook(value)


def _unstructure_record(cls: type[Any]) -> UnstructureHook:
    attrs.resolve_types(cls)
    tag = [cls.__name__] if issubclass(cls, Message) else []
    specs: list[tuple[str, UnstructureHook | None]] = []
    for field in attrs.fields(cls):
        if field.init:
            _check_carriable(field.type, f"{cls.__name__}.{field.name}")
            specs.append((field.name, _unstructure_hook(field.type)))

    def unstructure(value: Any) -> list[Any]:
        out = list(tag)
        for name, hook in specs:
            item = getattr(value, name)
            out.append(item if hook is None else hook(item))
        return out

    return unstructure


def _unstructure_any_message(value: Any) -> Any:
    return _UNSTRUCTURE_BY_TYPE[type(value)](value)


# --------------------------------------------------------------------------- the converter


def _build_converter() -> cattrs.Converter:
    """A converter whose every hook is strict.

    Primitive hooks go through ``register_structure_hook`` because cattrs consults
    its singledispatch table (where its own ``int``/``str``/... hooks live) before
    predicate hooks; ``bool`` needs its own entry or it would inherit ``int``'s.
    Predicate factories registered later take precedence over cattrs' built-in ones.
    """
    converter = cattrs.Converter()
    for kind in (int, bytes, bool):
        converter.register_structure_hook(kind, _exact(kind))
    converter.register_structure_hook(str, _structure_str)
    converter.register_structure_hook(float, _structure_float)
    converter.register_structure_hook_func(
        lambda t: t is _NONE_TYPE or t is None, _exact(_NONE_TYPE)
    )
    converter.register_structure_hook_func(lambda t: t is Message, _structure_any_message)
    converter.register_unstructure_hook_func(lambda t: t is Message, _unstructure_any_message)

    for predicate, structure, unstructure in (
        (_is_var_tuple, _structure_var_tuple, _unstructure_sequence),
        (_is_list, _structure_list, _unstructure_sequence),
        (_is_fixed_tuple, _structure_fixed_tuple, _unstructure_fixed_tuple),
        (_is_union, _structure_union, _unstructure_union),
        (_is_literal, _structure_literal, lambda _kind: _identity),
        (_is_record, _structure_record, _unstructure_record),
    ):
        converter.register_structure_hook_factory(predicate, structure)
        converter.register_unstructure_hook_factory(predicate, unstructure)
    return converter


_converter: Final = _build_converter()

CONTACTS_INTERNED: Final = 4096
"""Distinct contacts a process keeps one shared copy of (the table is emptied when full)."""


def _interning_contacts(structure: StructureHook) -> StructureHook:
    """Structure contacts through a bounded table of the ones seen before.

    A peer holds the contacts it has heard of (views, host cache, reverse paths), and a
    swarm worker runs hundreds of peers that mostly know the same ones: a decoded copy
    of each (a Contact, an Address, two strings: about 300 bytes) per peer holding it
    was a tenth of a peer's memory.  The table is keyed by the exact-typed raw fields,
    so a hit is a value the full, strict ``structure`` accepted before and would build
    equal again; anything else takes the full path.  Contacts are frozen: sharing one
    is safe.
    """
    table: dict[tuple[str, str, int], Any] = {}

    def structure_contact(value: Any, _type: Any) -> Any:
        if type(value) is list and len(value) == 2:
            peer_id, address = value
            if type(address) is list and len(address) == 2:
                host, port = address
                if type(peer_id) is str and type(host) is str and type(port) is int:
                    key = (peer_id, host, port)
                    contact = table.get(key)
                    if contact is None:
                        contact = structure(value, _type)
                        if len(table) >= CONTACTS_INTERNED:
                            table.clear()
                        table[key] = contact
                    return contact
        return structure(value, _type)

    return structure_contact


_converter.register_structure_hook(Contact, _interning_contacts(_structure_record(Contact)))

_STRUCTURE_BY_TAG: dict[str, tuple[StructureHook, type[Message]]] = {}
_UNSTRUCTURE_BY_TYPE: dict[type[Message], UnstructureHook] = {}
for _cls in all_message_types():
    if _cls.__name__ in _STRUCTURE_BY_TAG:
        raise TypeError(f"two message types are tagged {_cls.__name__!r} on the wire")
    if not _is_message_class(_cls):
        raise TypeError(f"{_cls!r} is not an attrs Message subclass")
    _STRUCTURE_BY_TAG[_cls.__name__] = (_converter.get_structure_hook(_cls), _cls)
    _UNSTRUCTURE_BY_TYPE[_cls] = _converter.get_unstructure_hook(_cls)
del _cls

_structure_message: Final = _converter.get_structure_hook(Message)


# --------------------------------------------------------------------------- bodies


def encode_message(message: Message) -> bytes:
    """The msgpack body of ``message`` (no length prefix).

    Raises :class:`~overlay.protocol.errors.LocalError` for a type the wire does not know or
    a value msgpack cannot pack (say a lone surrogate in a str): those are our bugs.
    """
    hook = _UNSTRUCTURE_BY_TYPE.get(type(message))
    if hook is None:
        raise LocalError(f"{type(message).__name__} is not a wire message type")
    try:
        packed: bytes = msgpack.packb(hook(message), use_bin_type=True)
        return packed
    except (TypeError, ValueError, OverflowError) as exc:
        raise LocalError(f"cannot encode {type(message).__name__}: {_one_line(str(exc))}") from exc


def decode_message(body: bytes | bytearray | memoryview) -> Message:
    """Decode one body; anything wrong with it raises
    :class:`~overlay.protocol.errors.MalformedMessage`.

    The msgpack limits are the body's own length: nothing in ``n`` bytes can hold a
    string or an array longer than ``n``, so a forged length header is refused
    before any allocation.  ``strict_map_key`` keeps maps to str/bytes keys (no
    hashing of hostile containers).
    """
    size = len(body)
    try:
        obj = msgpack.unpackb(
            body,
            raw=False,
            strict_map_key=True,
            use_list=True,
            max_str_len=size,
            max_bin_len=size,
            max_array_len=size,
            max_map_len=size // 2,
            max_ext_len=size,
        )
    except msgpack.ExtraData:
        raise MalformedMessage("trailing bytes after the message") from None
    except Exception as exc:  # UnpackValueError, FormatError, StackError, UnicodeDecodeError, ...
        raise MalformedMessage(
            f"not a msgpack value: {_one_line(str(exc) or type(exc).__name__)}"
        ) from None
    try:
        return typing.cast(Message, _structure_message(obj, Message))
    except _Refused as refused:
        raise MalformedMessage(_one_line(str(refused))) from None
    except Exception as exc:  # RecursionError, MemoryError, a hook bug: still the remote's bytes
        raise MalformedMessage(
            f"undecodable message: {type(exc).__name__}: {_one_line(str(exc), 80)}"
        ) from exc


# --------------------------------------------------------------------------- repeats

REPEATED_KINDS: Final[frozenset[type[Message]]] = frozenset({Query})
"""Messages that arrive as byte-identical copies: a forwarder encodes a flooded query
once and sends the same frame to each of its neighbors, and forwarders at the same
depth send the same bytes too."""
REPEATED_ENTRIES: Final = 512
"""Bodies a :class:`RepeatedBodies` keeps (the newest)."""
REPEATED_MAX_BODY: Final = 512
"""Longer bodies are decoded every time (a query is about 200 bytes): the table holds
at most ``REPEATED_ENTRIES`` times this many bytes of bodies."""


class RepeatedBodies:
    """The messages decoded lately from bodies that tend to come again, by their bytes.

    A peer receives each flooded query from most of its neighbors, and in a swarm
    worker every copy sent between two of its peers is decoded in that one process:
    about three in four of the query bodies a flooding worker decoded were bodies it
    had decoded moments before.  A body met again is answered from this table, so it costs a dict
    lookup instead of msgpack and the validating structure hooks.  Nothing is
    weakened: an entry is only ever a message that exactly these bytes decoded to and
    that passed every check (messages are frozen), and bytes that fail to decode are
    never kept, so they fail again.  Bounded: ``REPEATED_ENTRIES`` bodies of at most
    ``REPEATED_MAX_BODY`` bytes, oldest out first.
    """

    __slots__ = ("_decoded",)

    def __init__(self) -> None:
        self._decoded: dict[bytes, Message] = {}

    def decode(self, body: bytes | bytearray | memoryview) -> Message:
        """:func:`decode_message` of ``body``, from the table when it was met lately."""
        if len(body) > REPEATED_MAX_BODY:
            return decode_message(body)
        raw = bytes(body)
        decoded = self._decoded
        message = decoded.get(raw)
        if message is None:
            message = decode_message(raw)
            if type(message) in REPEATED_KINDS:
                if len(decoded) >= REPEATED_ENTRIES:
                    del decoded[next(iter(decoded))]
                decoded[raw] = message
        return message

    def __len__(self) -> int:
        return len(self._decoded)


# --------------------------------------------------------------------------- frames


def _check_cap(cap: int) -> None:
    if type(cap) is not int or not 1 <= cap <= _MAX_PREFIXED:
        raise ValueError(f"frame cap must be an int in [1, {_MAX_PREFIXED}], got {cap!r}")


def encode_frame(message: Message, cap: int = DEFAULT_FRAME_CAP) -> bytes:
    """Length prefix + body.  A body over ``cap`` is our bug: :class:`MessageTooLarge`."""
    _check_cap(cap)
    body = encode_message(message)
    if len(body) > cap:
        raise MessageTooLarge(
            f"{type(message).__name__} encodes to {len(body)} bytes, over the cap of {cap}"
        )
    return _LENGTH.pack(len(body)) + body


class FrameDecoder:
    """Incremental decoder for one connection's byte stream, in any chunking.

    Memory is bounded by ``cap + PREFIX`` whatever the peer sends: input is consumed
    straight from the caller's chunk, only a partial prefix or a partial body is
    kept, and a prefix announcing more than ``cap`` raises
    :class:`~overlay.protocol.errors.FrameTooLarge` before a byte of the body is stored.

    After any error the decoder is poisoned and every later :meth:`feed` raises the
    same error: the stream has lost its framing, and the runtime drops the
    connection.  Messages completed earlier in the failing call are discarded with it.
    """

    __slots__ = ("_buffer", "_cap", "_decode", "_error", "_size")

    def __init__(
        self, cap: int = DEFAULT_FRAME_CAP, repeated: RepeatedBodies | None = None
    ) -> None:
        _check_cap(cap)
        self._cap = cap
        self._decode: Callable[[bytes | bytearray | memoryview], Message] = (
            decode_message if repeated is None else repeated.decode
        )
        """How a body becomes a message: through ``repeated`` (shared by the runtime's
        connections) when given."""
        self._buffer = bytearray()
        self._size: int | None = None
        """Body length being read, or None while reading a prefix."""
        self._error: ProtocolError | None = None

    @property
    def cap(self) -> int:
        return self._cap

    @property
    def buffered(self) -> int:
        """Bytes held for an incomplete prefix or body (never more than ``cap + PREFIX``)."""
        return len(self._buffer)

    def feed(self, data: bytes) -> list[Message]:
        """Consume ``data``; return every message completed by it, in order."""
        if self._error is not None:
            raise self._error.with_traceback(None)
        try:
            return self._feed(memoryview(data))
        except ProtocolError as exc:
            self._error = exc
            self._buffer = bytearray()  # release what the bad stream made us hold
            raise

    def _feed(self, view: memoryview) -> list[Message]:
        messages: list[Message] = []
        buffer = self._buffer
        position = 0
        end = len(view)
        while position < end:
            size = self._size
            if size is None:
                taken = min(PREFIX - len(buffer), end - position)
                buffer += view[position : position + taken]
                position += taken
                if len(buffer) < PREFIX:
                    break
                (size,) = _LENGTH.unpack(buffer)
                buffer.clear()
                if size > self._cap:
                    raise FrameTooLarge(size, self._cap)
                if size == 0:
                    raise MalformedMessage("empty frame (a zero length prefix)")
                self._size = size
            elif not buffer and end - position >= size:
                # Whole body in this chunk: decode in place, no copy into the buffer.
                messages.append(self._decode(view[position : position + size]))
                position += size
                self._size = None
            else:
                taken = min(size - len(buffer), end - position)
                buffer += view[position : position + taken]
                position += taken
                if len(buffer) < size:
                    break
                body = bytes(buffer)
                buffer.clear()
                self._size = None
                messages.append(self._decode(body))
        return messages


# --------------------------------------------------------------------------- handshake


def check_handshake(message: Message, expected_version: int) -> Handshake:
    """The first frame on a connection must be a Handshake in our protocol version."""
    if type(message) is not Handshake:
        raise ProtocolError(f"expected a Handshake first, got {type(message).__name__}")
    if message.version != expected_version:
        raise VersionMismatch(
            f"remote speaks protocol version {message.version}, we speak {expected_version}"
        )
    return message
