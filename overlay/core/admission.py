"""How many accepted connections one remote address, and one address prefix, may hold.

A node accepts at most ``max_connections`` connections (:class:`overlay.net.node.NodeConfig`);
without more, one machine could hold all of them and lock every other peer out.  So
each remote IP may hold ``max_per_host`` of them and each prefix ``max_per_prefix``: an
IPv4 /24 or an IPv6 /64, the block one operator typically holds (the same grouping
Bitcoin Core uses against eclipse attacks).  A host name that is not an IP is its own
prefix.

When a limit is reached the node does what it does at the overall limit: it evicts
the oldest connection from that host (or prefix) still in its handshake, or refuses
the newcomer when there is none, so sockets left idle cannot lock a well-behaved
peer of the same host out for good.
"""

from __future__ import annotations

import functools
import ipaddress
import sys
from collections.abc import Iterable
from typing import Generic, TypeVar

K = TypeVar("K")

IPV4_PREFIX = 24
IPV6_PREFIX = 64


def prefix_of(host: str) -> str:
    """The prefix a host counts against: its /24 (IPv4) or /64 (IPv6).

    A dotted quad in canonical form (what every address the project makes looks like)
    takes a string fast path; anything else goes through :mod:`ipaddress`
    (:func:`_parsed_prefix_of`), which gives the same answer for the dotted quads too
    (``tests/overlay/core/test_admission.py`` checks it on random hosts).  At a million
    simulated peers, with more hosts than the parser's cache holds, parsing was a
    seventh of the simulator's time."""
    parts = host.split(".")
    if len(parts) == 4:
        a, b, c, d = parts
        if _octet(a) and _octet(b) and _octet(c) and _octet(d):
            return sys.intern(f"{a}.{b}.{c}.0/24")
    return _parsed_prefix_of(host)


def _octet(text: str) -> bool:
    """A decimal octet written the one way ``ipaddress`` writes it (no sign, no
    leading zero, at most 255)."""
    return (
        0 < len(text) <= 3
        and text.isdigit()
        and text.isascii()
        and (text == "0" or text[0] != "0")
        and int(text) <= 255
    )


# Cached: parsing an address costs about as much as a simulated message.  Bounded, and
# a pure function of its argument.  Interned: every view that keeps the prefix (the
# passive view's, the per-prefix counts) then holds one string per prefix, not one per
# entry (about 0.8 KB a peer at 100,000 peers).
@functools.lru_cache(maxsize=65_536)
def _parsed_prefix_of(host: str) -> str:
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return host
    bits = IPV4_PREFIX if ip.version == 4 else IPV6_PREFIX
    return sys.intern(str(ipaddress.ip_network(f"{ip}/{bits}", strict=False)))


class AddressBudget(Generic[K]):
    """Counts of accepted connections (keyed by ``K``) per remote host and per prefix."""

    def __init__(self) -> None:
        self._where: dict[K, tuple[str, str]] = {}
        self._hosts: dict[str, int] = {}
        self._prefixes: dict[str, int] = {}

    def full(self, host: str, max_per_host: int, max_per_prefix: int) -> str | None:
        """Which limit a new connection from ``host`` would break: "host", "prefix" or None."""
        if self._hosts.get(host, 0) >= max_per_host:
            return "host"
        if self._prefixes.get(prefix_of(host), 0) >= max_per_prefix:
            return "prefix"
        return None

    def oldest_from(self, host: str, which: str, candidates: Iterable[K]) -> K | None:
        """The first of ``candidates`` (oldest first) from the same host or prefix."""
        group = host if which == "host" else prefix_of(host)
        index = 0 if which == "host" else 1
        for key in candidates:
            where = self._where.get(key)
            if where is not None and where[index] == group:
                return key
        return None

    def add(self, key: K, host: str) -> None:
        prefix = prefix_of(host)
        self._where[key] = (host, prefix)
        self._hosts[host] = self._hosts.get(host, 0) + 1
        self._prefixes[prefix] = self._prefixes.get(prefix, 0) + 1

    def release(self, key: K) -> None:
        """Stop counting ``key`` (idempotent)."""
        where = self._where.pop(key, None)
        if where is None:
            return
        for table, group in ((self._hosts, where[0]), (self._prefixes, where[1])):
            left = table[group] - 1
            if left:
                table[group] = left
            else:
                del table[group]

    def from_host(self, host: str) -> int:
        return self._hosts.get(host, 0)
