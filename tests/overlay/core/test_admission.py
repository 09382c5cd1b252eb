"""overlay.core.admission.prefix_of: the string fast path agrees with ipaddress."""

from __future__ import annotations

import ipaddress

from hypothesis import given
from hypothesis import strategies as st

from overlay.core.admission import _parsed_prefix_of, prefix_of


def parsed(host: str) -> str:
    """The answer of the ipaddress path alone, uncached."""
    return _parsed_prefix_of.__wrapped__(host)


@given(st.integers(0, 2**32 - 1))
def test_every_ipv4_address_gets_the_parsers_prefix(value: int) -> None:
    host = str(ipaddress.IPv4Address(value))
    assert prefix_of(host) == parsed(host)


@given(st.lists(st.text("0123456789", min_size=0, max_size=4), min_size=1, max_size=6))
def test_dotted_digits_of_any_shape_get_the_parsers_answer(parts: list[str]) -> None:
    """Leading zeros, octets over 255, empty or too many parts: the parser's answer."""
    host = ".".join(parts)
    assert prefix_of(host) == parsed(host)


@given(st.text(max_size=20))
def test_any_text_gets_the_parsers_answer(host: str) -> None:
    assert prefix_of(host) == parsed(host)


def test_examples() -> None:
    assert prefix_of("10.1.2.3") == "10.1.2.0/24"
    assert prefix_of("127.1.3.250") == "127.1.3.0/24"
    assert prefix_of("2001:db8::1") == "2001:db8::/64"
    assert prefix_of("010.1.2.3") == "010.1.2.3"  # not an address the parser accepts
    assert prefix_of("example.org") == "example.org"
    wide = "\uff11.2.3.4"  # a full-width digit one
    assert prefix_of(wide) == parsed(wide)
