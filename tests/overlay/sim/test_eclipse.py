"""Eclipse attacks in the simulator, by adversarial cores that follow the protocol only
where it suits them (docs/design.md, "Trust").

Eight attacker identities on eight /24s become neighbors of one victim and spend 60 s
trying to hold its view: redirects toward one another, shuffles full of their own
contacts, joins, urgent requests and unasked accepts, heartbeats claiming a modest
degree (so nobody sheds them), and every query they get dropped.  The victim keeps
the links it chose itself; at the end at most 2 of its neighbors are attackers and
its floods find what they found without the attack.
"""

from __future__ import annotations

import math
import random

import pytest

from overlay.core.config import MembershipConfig, PeerConfig
from overlay.core.peer import Peer
from overlay.protocol.effects import Effect, Send
from overlay.protocol.identity import Address, Contact
from overlay.protocol.messages import (
    Heartbeat,
    Join,
    Message,
    NeighborAccept,
    NeighborRequest,
    Query,
    Redirect,
    ShuffleEntry,
    ShuffleReply,
    ShuffleRequest,
)
from overlay.sim.simulator import Simulator, sim_address
from search.store import Criteria

HONEST = 300
ATTACKERS = 8
SETTLE = 30.0
ATTACK = 60.0
ITEMS = 20


GREEDY = PeerConfig(
    membership=MembershipConfig(max_degree=64, request_headroom=58, own_slots=0, blacklist_size=0)
)
"""An attacker's own view takes every link it is offered and distrusts nobody."""


class Attacker(Peer):
    """A peer that wants one victim's view, and drops every query it gets."""

    victim: Contact | None = None
    crew: tuple[Contact, ...] = ()
    attack_at = math.inf
    rounds = 0

    def next_deadline(self) -> float:
        return min(super().next_deadline(), self.attack_at)

    def handle_timer(self, now: float) -> list[Effect]:
        out = super().handle_timer(now)
        if now >= self.attack_at:
            self.attack_at = now + 0.5
            out.extend(self._attack())
        return out

    def receive(self, message: Message, sender: Contact, now: float) -> list[Effect]:
        if type(message) is Query:
            return []  # a black hole for queries
        if type(message) is ShuffleRequest:
            return [Send(sender.address, ShuffleReply(self._crew_entries()))]
        out = super().receive(message, sender, now)
        # Claim a modest degree, so that no neighbor sheds us for being crowded.
        return [
            Send(e.to, Heartbeat(6)) if type(e) is Send and type(e.message) is Heartbeat else e
            for e in out
        ]

    def victim_view(self) -> set[str]:
        """What the crew knows of the victim's view (attackers share what they see)."""
        return self.seen_view

    seen_view: set[str] = set()

    def _crew_entries(self) -> tuple[ShuffleEntry, ...]:
        return tuple(ShuffleEntry(c, 0) for c in self.crew)

    def _attack(self) -> list[Effect]:
        victim = self.victim
        assert victim is not None
        self.rounds += 1
        to = victim.address
        others = [c for c in self.crew if c.id != self.id]
        out: list[Effect] = [Send(to, ShuffleRequest(self._crew_entries()))]
        if victim.id in self.membership.active:
            # Hold the link; now and then give it up, naming a fellow not in yet: the
            # victim should take the fellow (and the split a join causes should be an
            # honest link, so the crew grows).
            outside = [c for c in others if c.id not in self.victim_view()]
            if outside and self.rounds % 5 == 0:
                out.append(Send(to, Redirect(outside[self.rounds % len(outside)])))
                del self.membership.active[victim.id]
        else:
            out.append(Send(to, Join()))
            out.append(Send(to, NeighborRequest(urgent=True)))
            out.append(Send(to, NeighborAccept(6)))
        return out


class Holder(Attacker):
    """An attacker that only asks, as any peer may, and holds on: a plain
    ``NeighborRequest`` every second while it is not the victim's neighbor, and heartbeats
    claiming a modest degree while it is (what the TCP attack in benchmarks/attacks.py
    does).  It joined the overlay elsewhere, so the victim also meets it in shuffles."""

    def _attack(self) -> list[Effect]:
        victim = self.victim
        assert victim is not None
        self.rounds += 1
        if victim.id in self.membership.active or self.rounds % 2:
            return []
        return [Send(victim.address, NeighborRequest(urgent=False))]


def run(
    attack: bool, seed: int = 3, kind: type[Attacker] = Attacker, churn: float = 0.0
) -> dict[str, float]:
    """One run; ``churn``: every so many seconds of the attack, one of the victim's honest
    neighbors (chosen at random) leaves the overlay (0: none do)."""
    config = PeerConfig(membership=MembershipConfig())
    sim = Simulator(seed=seed, peer_config=config)
    peers = [sim.add_peer() for _ in range(HONEST)]
    rng = random.Random(seed)
    holders = {f"item {n}": rng.choice(peers[1:]) for n in range(ITEMS)}
    for name, holder in holders.items():
        holder.search.publish(name.encode(), name)
    sim.run_until(SETTLE)
    victim = peers[0]
    attackers: list[Attacker] = []
    if attack:
        for n in range(ATTACKERS):
            core = sim.add_peer(
                address=sim_address(10_000 + 257 * n),
                config=GREEDY,
                # The full attack joins through the victim; holders ask only, so they
                # join through an honest peer, as any newcomer would.
                join_via=victim.address if kind is Attacker else peers[-1].address,
                kind=kind,
            )
            assert isinstance(core, Attacker)
            attackers.append(core)
        crew = tuple(a.contact for a in attackers)
        for core in attackers:
            core.victim, core.crew, core.attack_at = victim.contact, crew, SETTLE + 1.0
    crew_ids = {a.id for a in attackers}
    lowest = [math.inf]

    own_readings: list[int] = []

    def watch() -> None:
        lowest[0] = min(lowest[0], len(victim.membership.active))
        own_readings.append(victim.membership.own_count())
        Attacker.seen_view = set(victim.membership.active)
        if sim.now < SETTLE + ATTACK:
            sim.at(sim.now + 0.1, watch)

    sim.at(SETTLE + 1.0, watch)
    left: list[str] = []

    def depart() -> None:
        honest = sorted(p for p in victim.membership.active if p not in crew_ids)
        if honest:
            gone = rng.choice(honest)
            left.append(gone)
            sim.leave(victim.membership.active[gone].contact.address)
        if sim.now + churn < SETTLE + ATTACK:
            sim.at(sim.now + churn, depart)

    if churn:
        sim.at(SETTLE + churn, depart)
    sim.run_until(SETTLE + ATTACK)
    neighbors = list(victim.membership.active)
    found = 0
    for n, name in enumerate(holders):
        search_id, effects = victim.search.start_flood(Criteria.for_words(name), sim.now, ttl=5)
        sim.apply(victim.address, effects)
        sim.run_until(SETTLE + ATTACK + 2.0 * (n + 1))
        found += victim.search.results[search_id].success
    return {
        "degree": len(neighbors),
        "attackers": sum(1 for p in neighbors if p in crew_ids),
        "lowest_degree": lowest[0],
        "success": found / ITEMS,
        "own": victim.membership.own_count(),
        "rounds": sum(a.rounds for a in attackers),
        "left": len(left),
        "own_full": sum(1 for n in own_readings if n >= MembershipConfig().own_slots)
        / max(1, len(own_readings)),
    }


def test_eight_attackers_on_eight_prefixes_hold_at_most_two_of_the_victims_links() -> None:
    baseline = run(attack=False)
    attacked = run(attack=True)
    assert attacked["rounds"] >= ATTACKERS * 100, "the attack ran the whole 60 s"
    assert attacked["attackers"] <= 2, attacked
    # At least one own slot at the end (both, on this seed, before pushing peers were
    # refused; but even with no attack a peer's own slots are both full only a few
    # percent of the time: far ends take an own request into their headroom and shed
    # it at their open limit, so the reading at one instant is the run's luck).
    assert attacked["own"] >= 1, attacked
    assert attacked["lowest_degree"] >= 3, attacked
    assert attacked["success"] >= 0.9 * baseline["success"], (baseline, attacked)


def test_a_redirect_counts_only_from_a_neighbor_once_per_period() -> None:
    sim = Simulator(seed=4)
    peers = [sim.add_peer() for _ in range(40)]
    sim.run_until(20.0)
    victim = peers[0]
    stranger = next(p for p in peers if p.id not in victim.membership.active and p is not victim)
    newcomer = Contact(stranger.id, Address("10.99.99.1", 7000))
    before = dict(victim.membership.active)
    victim.receive(Redirect(newcomer), stranger.contact, sim.now)
    assert dict(victim.membership.active) == before, "a stranger's redirect changes nothing"
    neighbor = next(iter(victim.membership.active.values())).contact
    fresh = [p for p in peers if p.id not in victim.membership.active and p is not victim]
    victim.receive(Redirect(fresh[0].contact), neighbor, sim.now)
    assert neighbor.id not in victim.membership.active  # it gave up its own link
    assert fresh[0].id in victim.membership.active
    # The same neighbor, back at once and redirecting again: the link ends, no more.
    victim.membership._link(neighbor, sim.now, own=before[neighbor.id].own)
    victim.receive(Redirect(fresh[1].contact), neighbor, sim.now + 1.0)
    assert neighbor.id not in victim.membership.active
    assert fresh[1].id not in victim.membership.active
    assert victim.membership.counters["refused.redirect_rate"] == 1


@pytest.mark.parametrize("seed", [3, 4, 5])
def test_attackers_that_ask_and_hold_on_get_at_most_two_of_the_victims_links(seed: int) -> None:
    # Before headroom links were kept out of the reported degree (and shed first), 5, 7
    # and 3 of the victim's neighbors were attackers at the end on these seeds: the
    # victim, full of them, looked crowded to its honest neighbors, which shed it.
    attacked = run(attack=True, seed=seed, kind=Holder)
    assert attacked["rounds"] >= ATTACKERS * 100, "the attack ran the whole 60 s"
    assert attacked["attackers"] <= 2, attacked
    assert attacked["lowest_degree"] >= 3, attacked
    assert attacked["success"] >= 0.9, attacked


@pytest.mark.parametrize("seed", [3, 4, 5])
def test_holders_gain_nothing_when_the_victims_honest_neighbors_keep_leaving(seed: int) -> None:
    # An honest neighbor of the victim leaves every 5 s while eight holders ask every
    # second.  A peer that counted its headroom links when deciding whether to repair
    # never repaired (it stayed above its target), the holders took each vacancy, and
    # within its target it made them regular links: 8, 7 and 7 attackers at the end on
    # these seeds.
    attacked = run(attack=True, seed=seed, kind=Holder, churn=5.0)
    assert attacked["rounds"] >= ATTACKERS * 100, "the attack ran the whole 60 s"
    assert attacked["left"] >= 11, attacked
    assert attacked["attackers"] <= 2, attacked
    assert attacked["lowest_degree"] >= 3, attacked
    assert attacked["success"] >= 0.9, attacked
