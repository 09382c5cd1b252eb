"""Protocol parameters, with the defaults a user gets when they say nothing."""

from __future__ import annotations

import attrs

from overlay.protocol import validate
from search.config import SearchConfig


@attrs.frozen
class MembershipConfig:
    """Parameters of the partial view (see :mod:`overlay.core.membership`).

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
    """An unanswered Join or NeighborRequest is given up (and its peer dropped from the
    cache) after this long: dozens of round trips on a LAN, several on the Internet."""
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
    max_per_prefix: int = attrs.field(default=2, validator=validate.integer(0, 512))
    """Most neighbors from one foreign address prefix, a /24 or an IPv6 /64 (0: no cap),
    so that attackers holding one prefix cannot surround a peer (Bitcoin Core's
    netgroups, for the same reason; the runtime groups its connection limits the same
    way, :mod:`overlay.core.admission`).  Peers in my own prefix are not capped: a LAN or a
    swarm on one loopback address is one prefix by construction."""
    blacklist_seconds: float = attrs.field(default=600.0, validator=validate.real(0.0, 1e7))
    """A neighbor distrusted for its conduct (:mod:`overlay.core.standing`) is dropped and
    refused as a neighbor for this long."""
    blacklist_size: int = attrs.field(default=256, validator=validate.integer(0, 65536))
    own_slots: int = attrs.field(default=2, validator=validate.integer(0, 256))
    """Links the peer chooses itself, from its own sources (bootstrap samples and its
    anchors, spread across prefixes), never on anyone's suggestion: no join, redirect
    or urgent request displaces them, and the peer never sheds them (Bitcoin Core's
    outbound slots, against eclipse attacks: Heilman et al., USENIX Security 2015).
    A third of the target degree: every link is chosen by at most one end, and links
    made by splits and explorations by neither, so a larger share would keep honest
    peers asking for more links than the target (2 keeps the simulator's 2,000-peer
    degrees within 0.11 of the old mean; 3 raised it by 0.23)."""
    request_headroom: int = attrs.field(default=2, validator=validate.integer(0, 512))
    """A request (or a join) that would take the degree past ``target_degree`` plus this
    displaces the youngest link the peer did not choose, or is refused: strangers can
    churn one slot, never pile up."""
    redirect_period: float = attrs.field(default=10.0, validator=validate.real(0.0, 86400))
    """A neighbor's ``Redirect`` is honoured at most once per this period (it gives up its
    own link each time; a second one inside the period only ends that link)."""
    passive_per_prefix: int = attrs.field(default=2, validator=validate.integer(0, 4096))
    """Most passive-view entries from one address prefix (0: no cap): a shuffle full of
    one operator's contacts fills a few places, not the view."""
    push_window: float = attrs.field(default=10.0, validator=validate.real(0.0, 86400))
    """A peer I turned away at my open limit (its request refused, or its headroom link
    shed) that asks again within this is *pushing*: refused, and I am *pressed* (see
    ``pressure_seconds``).  An honest peer refused goes on to other candidates; attackers
    that want my view ask again at once (0: nobody is ever taken for pushing)."""
    pressure_seconds: float = attrs.field(default=60.0, validator=validate.real(0.0, 86400))
    """How long after the last push I stay pressed: every link I did not ask for is then a
    headroom link (at most ``request_headroom`` of them, never made regular), and only
    the links I asked for count toward my target, so a regular link lost is refilled
    from my own choice, never by whoever is pushing."""
    anchors_size: int = attrs.field(default=4, validator=validate.integer(0, 64))
    """Known good neighbors kept as anchors (the runtime keeps them in ``--state``) and
    asked first after a restart."""
    anchor_age: float = attrs.field(default=30.0, validator=validate.real(0.0, 1e7))
    """A link the peer chose that has lasted this long makes its neighbor an anchor."""

    def __attrs_post_init__(self) -> None:
        if self.max_degree < self.target_degree:
            raise ValueError("max_degree must be at least target_degree")


@attrs.frozen
class SuperConfig:
    """Parameters of the super-peer layer (see :mod:`overlay.core.supers.layer` and
    :mod:`overlay.core.supers.election`).

    Off by default, so a flat overlay (the benchmarks' baseline) pays nothing for it.
    The defaults follow the issue: 20 weak peers per super peer, each weak peer
    attached to k = 2 super peers (Yang and Garcia-Molina, "Designing a super-peer
    network", ICDE 2003, recommend 2-redundancy: it halves the damage of a super
    peer's failure for little extra load), index leases of 30 s.
    """

    enabled: bool = attrs.field(default=False, validator=validate.boolean)
    ratio: int = attrs.field(default=20, validator=validate.integer(1, 10_000))
    """Target number of weak peers per super peer."""
    k: int = attrs.field(default=2, validator=validate.integer(1, 8))
    """Super peers each weak peer attaches to."""
    period: float = attrs.field(default=2.0, validator=validate.real(0.01, 600))
    """Beat period of super peers (to their weak peers and super-layer neighbors)."""
    failure_timeout: float = attrs.field(default=4.5, validator=validate.real(0.01, 3600))
    """A super peer (or super-layer neighbor) silent this long is declared dead."""
    lease: float = attrs.field(default=30.0, validator=validate.real(0.1, 86400))
    """Index lease: a weak peer refreshes it every third of this."""
    request_timeout: float = attrs.field(default=0.5, validator=validate.real(0.01, 600))
    """How long to wait for an answer to Attach or SuperLink (many round trips)."""
    super_degree: int = attrs.field(default=5, validator=validate.integer(1, 64))
    """Target degree of the random graph among super peers."""
    max_super_degree: int = attrs.field(default=10, validator=validate.integer(1, 128))
    max_load_factor: float = attrs.field(default=2.0, validator=validate.real(1.0, 100.0))
    """A super peer serves at most ``max_load_factor * k * ratio`` weak peers."""
    max_items_per_weak: int = attrs.field(default=128, validator=validate.integer(0, 128))
    max_index_entries: int = attrs.field(default=65_536, validator=validate.integer(0, 1 << 24))
    tolerance: float = attrs.field(default=0.15, validator=validate.real(0.0, 1.0))
    """Hysteresis: the layer's mean load must be this far off target before anyone acts."""
    settle_periods: int = attrs.field(default=10, validator=validate.integer(1, 100_000))
    """Periods a super peer waits after acting (or being born) before it acts again."""
    min_uptime: float = attrs.field(default=5.0, validator=validate.real(0.0, 1e7))
    min_capacity: int = attrs.field(default=1, validator=validate.integer(0, 1_000_000))
    seed_wait: float = attrs.field(default=6.0, validator=validate.real(0.0, 3600))
    """A peer that has heard of no super peer this long after starting may found one."""
    demotion_backoff: float = attrs.field(default=3600.0, validator=validate.real(0.0, 1e7))
    """A peer that stepped down may not be promoted again for this long (doubling)."""

    def __attrs_post_init__(self) -> None:
        if self.max_super_degree < self.super_degree:
            raise ValueError("max_super_degree must be at least super_degree")

    @property
    def target_load(self) -> int:
        """Attachments a super peer serves when the layer is exactly on target."""
        return self.k * self.ratio

    @property
    def max_load(self) -> int:
        return max(1, int(self.max_load_factor * self.k * self.ratio))


@attrs.frozen
class StandingConfig:
    """Parameters of a peer's standing ledger (see :mod:`overlay.core.standing`)."""

    enabled: bool = attrs.field(default=True, validator=validate.boolean)
    fault_limit: float = attrs.field(default=8.0, validator=validate.real(1.0, 1e6))
    """Weighted faults (decaying) at which a peer is distrusted.  A value that fails
    its hash check weighs the whole limit: it is proof, not suspicion."""
    fault_half_life: float = attrs.field(default=300.0, validator=validate.real(0.001, 1e7))
    walker_evidence: int = attrs.field(default=8, validator=validate.integer(1, 1 << 20))
    """Walkers lost through one neighbor before its losses count against it."""
    walker_loss_limit: float = attrs.field(default=0.9, validator=validate.real(0.0, 1.0))
    """Share of its recent walkers lost (never checking in) that distrusts a neighbor."""
    walker_window: int = attrs.field(default=32, validator=validate.integer(2, 1 << 20))
    """Walker outcomes remembered per neighbor (older ones fade: counts are halved)."""
    size: int = attrs.field(default=256, validator=validate.integer(1, 1 << 20))
    """Peers whose standing is tracked at once (the least recently judged goes first)."""


@attrs.frozen
class PeerConfig:
    """Everything a peer core needs to know besides its identity and its random source."""

    membership: MembershipConfig = attrs.field(factory=MembershipConfig)
    search: SearchConfig = attrs.field(factory=SearchConfig)
    capacity: int = attrs.field(default=1, validator=validate.integer(0, 1_000_000))
    supers: SuperConfig = attrs.field(factory=SuperConfig)
    standing: StandingConfig = attrs.field(factory=StandingConfig)
