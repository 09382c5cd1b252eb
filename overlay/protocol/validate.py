"""attrs validators that refuse what Python would happily coerce.

``isinstance(True, int)`` holds and ``attrs.validators.instance_of(int)`` accepts
``True``; a TTL of ``True`` is not a TTL, so every check here compares exact types.
Every collection and string has a length bound, because every one of them can
arrive from the network.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import attrs

Validator = Callable[[Any, "attrs.Attribute[Any]", Any], None]


def invalid(attribute: attrs.Attribute[Any], value: object, expected: str) -> ValueError:
    shown = repr(value)
    if len(shown) > 60:
        shown = shown[:57] + "..."
    return ValueError(f"{attribute.name}: expected {expected}, got {shown}")


def integer(low: int, high: int) -> Validator:
    """An int (not a bool) in ``[low, high]``."""

    def check(_instance: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
        if type(value) is not int or not low <= value <= high:
            raise invalid(attribute, value, f"an integer in [{low}, {high}]")

    return check


def real(low: float, high: float) -> Validator:
    """A finite float (or int, not bool) in ``[low, high]``."""

    def check(_instance: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
        if type(value) not in (float, int) or not math.isfinite(value) or not low <= value <= high:
            raise invalid(attribute, value, f"a finite number in [{low}, {high}]")

    return check


def boolean(_instance: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
    if type(value) is not bool:
        raise invalid(attribute, value, "a boolean")


def text(min_length: int, max_length: int) -> Validator:
    """A str whose length lies in ``[min_length, max_length]``."""

    def check(_instance: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
        if type(value) is not str or not min_length <= len(value) <= max_length:
            raise invalid(attribute, value, f"a string of {min_length} to {max_length} chars")

    return check


def ascii_text(min_length: int, max_length: int) -> Validator:
    """An ASCII str (host names, IPs): one char is one byte, so the bound is in bytes."""

    def check(_instance: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
        if (
            type(value) is not str
            or not min_length <= len(value) <= max_length
            or not value.isascii()
        ):
            raise invalid(attribute, value, f"ASCII text of {min_length} to {max_length} chars")

    return check


def blob(max_length: int) -> Validator:
    def check(_instance: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
        if type(value) is not bytes or len(value) > max_length:
            raise invalid(attribute, value, f"bytes of at most {max_length}")

    return check


def exact_bytes(length: int) -> Validator:
    """Bytes of exactly ``length`` (a key or a signature: one byte more or less is a lie)."""

    def check(_instance: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
        if type(value) is not bytes or len(value) != length:
            raise invalid(attribute, value, f"exactly {length} bytes")

    return check


def one_of(*choices: str) -> Validator:
    allowed = frozenset(choices)

    def check(_instance: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
        if type(value) is not str or value not in allowed:
            raise invalid(attribute, value, f"one of {sorted(allowed)}")

    return check


def tuple_of(element: type[Any], max_length: int, item: Validator | None = None) -> Validator:
    """A tuple of at most ``max_length`` elements of exactly type ``element``."""

    def check(instance: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
        if type(value) is not tuple or len(value) > max_length:
            raise invalid(attribute, value, f"a tuple of at most {max_length} items")
        for entry in value:
            if type(entry) is not element:
                raise invalid(attribute, entry, f"items of type {element.__name__}")
            if item is not None:
                item(instance, attribute, entry)

    return check


def optional(inner: Validator) -> Validator:
    def check(instance: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
        if value is not None:
            inner(instance, attribute, value)

    return check


def instance(kind: type[Any]) -> Validator:
    def check(_instance: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
        if type(value) is not kind:
            raise invalid(attribute, value, f"a {kind.__name__}")

    return check
