"""The encoding of the messages one worker of a parallel run hands another.

A window's messages for one other worker travel as one pickled list of plain tuples,
not as the simulator's records: pickling an attrs record runs Python code for every
object in it (``__getstate__``, then ``__new__`` and ``__setstate__`` on the other side),
which cost more than simulating the message did. So, for each message:

* its sender is not sent: it is the core whose number is the top of the order key
  (:data:`~overlay.sim.simulator.SEQUENCE_BITS`), and a core's contact is sent once to
  each worker, the first time that core writes to it;
* its target is the peer's index (:func:`~overlay.sim.simulator.sim_address`), or the
  address itself when it was not made by that function;
* a message whose fields are all declared numbers or strings (heartbeats, most of a
  run's messages, and most answers) is sent as its class and those fields, and the receiving
  worker builds each distinct one once (messages are immutable: one object can stand
  for every copy, as when a core sends one object to several neighbors);
* any other message is pickled as it is, each contact in it as a reference to the
  receiving worker's one copy of that contact.
"""

from __future__ import annotations

import io
import operator
import pickle
from collections.abc import Callable
from typing import Any, Final

import attrs

from overlay.protocol.identity import Address, Contact, PeerId
from overlay.protocol.messages import Message
from overlay.sim.simulator import SEQUENCE_BITS, Outgoing, sim_address, sim_index

INTERNED_MESSAGES: Final = 4096
"""Most distinct plain messages a worker keeps built; past it, new ones are built each
time (the distinct heartbeats and answers of a run number a few dozen)."""

Frame = tuple[int, list[tuple[int, PeerId, str, int]], list[tuple[int, int, Any, Any]]]
"""What one worker sends another after a window: the earliest tick at which it has
anything to do (its next event, or the landing of a message it sends), the contacts
of cores it announces, and the messages as (landing tick, order key, target, payload)."""

_contacts: dict[PeerId, Contact] = {}
"""In a worker: its one copy of each contact that came from another worker. Unpickled
as they are, every message would bring fresh copies of the contacts it names, and the
views that keep them would hold thousands of copies of each. One entry per peer of the
run that was ever named to this worker."""


def _contact(peer_id: PeerId, host: str, port: int) -> Contact:
    known = _contacts.get(peer_id)
    if known is None or known.address.host != host or known.address.port != port:
        known = _contacts[peer_id] = Contact(peer_id, Address(host, port))
    return known


class _Pickler(pickle.Pickler):
    """Pickles a contact as a call to :func:`_contact`."""

    def reducer_override(self, obj: Any) -> Any:
        if type(obj) is Contact:
            return _contact, (obj.id, obj.address.host, obj.address.port)
        return NotImplemented


def dumps(value: object) -> bytes:
    buffer = io.BytesIO()
    _Pickler(buffer, pickle.HIGHEST_PROTOCOL).dump(value)
    return buffer.getvalue()


PLAIN_TYPES: Final[frozenset[object]] = frozenset(
    ("int", "str", "bool", "float", int, str, bool, float)
)
"""Field types (as annotated, or as resolved by ``attrs.resolve_types``, as the wire's
codec does) that a message can travel as: strict validators make each value exactly of
its type."""

_flatteners: dict[type, Callable[[Any], tuple[Any, ...]] | None] = {}
"""Per message class (a few dozen): the tuple (class, *fields) it travels as, in the
order its constructor takes them; None for a class pickled whole."""


def _flattener(kind: type) -> Callable[[Any], tuple[Any, ...]] | None:
    fields = attrs.fields(kind)
    flatten: Callable[[Any], tuple[Any, ...]] | None = None
    if all(
        field.init and not field.kw_only and field.alias == field.name and field.type in PLAIN_TYPES
        for field in fields
    ):
        if not fields:
            alone = (kind,)
            flatten = lambda message: alone  # noqa: E731
        elif len(fields) == 1:
            one = operator.attrgetter(fields[0].name)
            flatten = lambda message: (kind, one(message))  # noqa: E731
        else:
            many = operator.attrgetter(*(field.name for field in fields))
            flatten = lambda message: (kind, *many(message))  # noqa: E731
    _flatteners[kind] = flatten
    return flatten


class Encoder:
    """Encodes the messages for one other worker, window after window."""

    def __init__(self, codes: dict[Address, int | Address]) -> None:
        self._announced: set[int] = set()
        """Cores whose contact that worker has (one per peer that wrote to it)."""
        self._codes = codes
        """Shared by a worker's encoders: each address sent to, and how it travels."""

    def encode(self, next_tick: int, messages: list[Outgoing]) -> bytes:
        announced = self._announced
        codes = self._codes
        flatteners = _flatteners
        contacts: list[tuple[int, PeerId, str, int]] = []
        items: list[tuple[int, int, Any, Any]] = []
        append = items.append
        for arrive, key, to, sender, message in messages:
            code = codes.get(to)
            if code is None:
                index = sim_index(to)
                code = codes[to] = to if index is None or sim_address(index) != to else index
            number = key >> SEQUENCE_BITS
            if number not in announced:
                announced.add(number)
                address = sender.address
                contacts.append((number, sender.id, address.host, address.port))
            kind = type(message)
            flatten = flatteners[kind] if kind in flatteners else _flattener(kind)
            append((arrive, key, code, message if flatten is None else flatten(message)))
        frame: Frame = (next_tick, contacts, items)
        return dumps(frame)


class Decoder:
    """Decodes what every other worker sends this one."""

    def __init__(self) -> None:
        self._senders: dict[int, Contact] = {}
        """Each announced core's contact, by number: one per peer that wrote to us."""
        self._addresses: dict[int, Address] = {}
        """This worker's peers' addresses by index: one per peer written to."""
        self._interned: dict[tuple[Any, ...], Message] = {}

    def decode(self, blob: bytes) -> tuple[int, list[Outgoing]]:
        """The sender's next tick, and its messages as the simulator takes them."""
        frame: Frame = pickle.loads(blob)
        next_tick, contacts, items = frame
        senders = self._senders
        for number, peer_id, host, port in contacts:
            senders[number] = _contact(peer_id, host, port)
        addresses = self._addresses
        interned = self._interned
        messages: list[Outgoing] = []
        append = messages.append
        for arrive, key, code, payload in items:
            if type(code) is int:
                to = addresses.get(code)
                if to is None:
                    to = addresses[code] = sim_address(code)
            else:
                to = code
            if type(payload) is tuple:
                message = interned.get(payload)
                if message is None:
                    message = payload[0](*payload[1:])
                    if len(interned) < INTERNED_MESSAGES:
                        interned[payload] = message
            else:
                message = payload
            append((arrive, key, to, senders[key >> SEQUENCE_BITS], message))
        return next_tick, messages
