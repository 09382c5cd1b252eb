"""Protocol parameters, with the defaults a user gets when they say nothing."""

from __future__ import annotations

import attrs

from overlay import validate


@attrs.frozen
class MembershipConfig:
    """Parameters of the partial view (see :mod:`overlay.membership`).

    The defaults follow the issue (target degree 6, hard maximum 12) and the
    Cyclon paper's proportions (a cache a few times the degree, shuffles of a
    few entries).  Periods are in seconds of whatever clock the runtime keeps.
    """

    target_degree: int = attrs.field(default=6, validator=validate.integer(1, 256))
    max_degree: int = attrs.field(default=12, validator=validate.integer(1, 512))
    passive_size: int = attrs.field(default=30, validator=validate.integer(1, 4096))
    shuffle_length: int = attrs.field(default=8, validator=validate.integer(1, 32))
    shuffle_period: float = attrs.field(default=5.0, validator=validate.real(0.01, 3600))
    shuffle_timeout: float = attrs.field(default=2.0, validator=validate.real(0.01, 600))
    heartbeat_period: float = attrs.field(default=2.0, validator=validate.real(0.01, 600))
    failure_timeout: float = attrs.field(default=5.0, validator=validate.real(0.01, 3600))
    """A neighbor silent this long is declared dead: two heartbeats missed, and half a
    period of slack for latency.  Heartbeats are most of an idle overlay's traffic, so
    their period is the main knob between detection speed and cost."""
    request_timeout: float = attrs.field(default=2.0, validator=validate.real(0.01, 600))
    known_hosts_size: int = attrs.field(default=64, validator=validate.integer(0, 4096))
    explore_probability: float = attrs.field(default=0.2, validator=validate.real(0.0, 1.0))
    """Chance per shuffle of opening one extra link to a random cached peer.

    Links above the target degree are shed again toward neighbors that also have
    too many, so the degree stays near the target while the links keep moving:
    this keeps the graph random and is what merges two halves after a partition.
    """
    tombstone_seconds: float = attrs.field(default=30.0, validator=validate.real(0.0, 86400))
    tombstones_size: int = attrs.field(default=256, validator=validate.integer(0, 65536))
    bootstrap_want: int = attrs.field(default=16, validator=validate.integer(0, 64))
    bootstrap_retry: float = attrs.field(default=5.0, validator=validate.real(0.01, 3600))

    def __attrs_post_init__(self) -> None:
        if self.max_degree < self.target_degree:
            raise ValueError("max_degree must be at least target_degree")


@attrs.frozen
class PeerConfig:
    """Everything a peer core needs to know besides its identity and its random source."""

    membership: MembershipConfig = attrs.field(factory=MembershipConfig)
    capacity: int = attrs.field(default=1, validator=validate.integer(0, 1_000_000))
