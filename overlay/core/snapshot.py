"""What a peer looks like from outside: a record that stays pure Python.

It lives apart from :mod:`overlay.core.peer` because the peer is compiled by mypyc
(``setup.py``) and an attrs class with ``attrs.field(...)`` defaults cannot be: mypyc
checks class attributes against their annotations at import.
"""

from __future__ import annotations

import attrs

from overlay.protocol.identity import Address, PeerId, Role


@attrs.frozen
class PeerSnapshot:
    """What a peer looks like from outside at one moment (stats reply, view, metrics)."""

    id: PeerId
    address: Address
    role: Role
    joined: bool
    """Has had a neighbor at least once (a peer still joining is not counted in components)."""
    neighbors: tuple[PeerId, ...]
    passive: tuple[PeerId, ...]
    known_hosts: int
    counters: dict[str, int] = attrs.field(factory=dict, eq=False)
    super_peers: tuple[PeerId, ...] = ()
    """A weak peer's super peers (attached, lease granted)."""
    weak_peers: tuple[PeerId, ...] = ()
    """A super peer's weak peers (holding a lease)."""
    super_neighbors: tuple[PeerId, ...] = ()
    """A super peer's neighbors in the super layer."""
    index_size: int = 0
    """Entries in a super peer's index."""
    role_changes: int = 0
    super_target: int = 0
    """k, the super peers a weak peer wants (0: the super-peer layer is off)."""
    items: tuple[str, ...] = ()
    """Keys of the items this peer holds and publishes (only with the super layer on)."""
    index_holdings: dict[PeerId, frozenset[str]] = attrs.field(factory=dict, eq=False)
    """A super peer's index: the keys it holds for each weak peer (for coverage)."""
    index_entries: tuple[int, ...] = ()
    """A super peer's index entries for each of ``weak_peers``, in the same order: what a
    stats reply carries instead of ``index_holdings`` (keys would not fit one frame)."""
    item_count: int = 0
    """Items this peer holds (``items`` names them; a stats reply carries only the count)."""
