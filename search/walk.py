"""k parallel random walks with checking (Lv, Cao, Cohen, Li and Shenker, ICS 2002).

The origin sends k walkers to its neighbors.  A peer that receives a walker
looks in its store (a hit goes straight to the origin), then passes the walker
on to a random neighbor, until the walker has taken ``ttl`` steps.  So a walk
sends at most k x ttl steps, whatever happens.

Which neighbor: two refinements of the plain random walk, both cheaper and both
blind (no peer learns anything about where the items are):

* non-backtracking: never straight back to the neighbor the walker came from,
  unless that is the only one (a standard improvement of random-walk search: a
  step back probes a peer that has just been probed);
* state keeping, which Lv et al. propose alongside checking: a peer remembers,
  per query, which neighbors have already had it (from it, or by sending it a
  walker) and sends the next walker of that query to one that has not, drawn at
  random; once all have, it starts another round.  The origin does the same
  with its k launches, so 16 walkers from a peer of degree 4 leave four by each
  link instead of piling onto some at random.  The memory is bounded like the
  seen cache (``seen_size`` queries, forgotten after ``seen_seconds``), and each
  entry holds at most the peer's neighbors.

Every ``check`` hops the peer holding a walker asks the origin whether to go on
(``WalkCheck``) and holds the walker until the answer (``WalkVerdict``).  The
origin says stop once it has the hits it wants.  A walker that has just found a
hit checks at once as well, whatever its hop count: its own hit (sent to the
origin before the check) is likely what satisfies the origin, and walking on to
its next check would be wasted; when the origin wants more hits it says go on.
If no answer comes in time the walker stops there: its origin is gone or
unreachable, and walking on for nobody would only cost messages.

On the flood-vs-walk benchmark's 10,000-peer random graph (every key on 1% of
the peers, 16 walkers checking every 4 hops, 1,000 queries) state keeping and
the check on a hit took the search messages per query (steps, checks and
verdicts) from 250.0 to 228.5 and the share of steps that revisit a peer from
18% to 14%; the walk was already non-backtracking.

Messages get lost, so walkers die.  The origin knows when each walker should
next check in; one that is overdue (and not at the end of its TTL) is presumed
lost and replaced by a fresh walker from the origin, up to a budget of
``relaunch_factor x k`` replacements.  This is what keeps the success rate up
under loss; with no loss no walker is ever replaced.
"""

from __future__ import annotations

import attrs

from overlay.protocol.effects import Effect, Send
from overlay.protocol.identity import Contact, PeerId
from overlay.protocol.messages import MAX_WALKER, QueryHit, WalkCheck, WalkStep, WalkVerdict
from overlay.protocol.randomness import RandomSource
from search.context import OriginSearch, SearchContext, SeenCache
from search.flood import Flooding
from search.store import Criteria


@attrs.define
class WalkerState:
    """What the origin knows of one walker: when and how far it last checked in."""

    last_heard: float
    hops: int
    alive: bool = True
    via: PeerId = ""
    """The neighbor it was handed to first: blamed if it vanishes before its first check
    (see overlay.core.standing), credited when it checks in."""


@attrs.define
class WalkSearch(OriginSearch):
    ttl: int = 0
    check: int = 4
    walkers: dict[int, WalkerState] = attrs.field(factory=dict)
    launched: int = 0
    relaunched: int = 0
    relaunch_budget: int = 0


@attrs.define
class HeldWalker:
    """A walker waiting at this peer for its origin's verdict."""

    step: WalkStep
    came_from: PeerId
    deadline: float


class WalkMemory:
    """State keeping: per query, the neighbors that already had it from or through us.

    Bounded and expiring like :class:`~search.context.SeenCache` (entries are made
    in time order, so the oldest is always first); each entry holds at most the
    peer's neighbors, because only neighbors are ever added.
    """

    def __init__(self, size: int, seconds: float) -> None:
        self.size = size
        self.seconds = seconds
        # Made on first use: most peers of a large simulation never relay a walker.
        self._entries: dict[str, tuple[float, set[PeerId]]] | None = None

    def __len__(self) -> int:
        return len(self._entries) if self._entries is not None else 0

    def _had(self, query_id: str, now: float) -> set[PeerId]:
        entries = self._entries
        if entries is None:
            entries = self._entries = {}
        entry = entries.get(query_id)
        if entry is not None and entry[0] > now:
            return entry[1]
        entries.pop(query_id, None)
        while entries:
            oldest = next(iter(entries))
            if entries[oldest][0] > now and len(entries) < self.size:
                break
            del entries[oldest]
        had: set[PeerId] = set()
        entries[query_id] = (now + self.seconds, had)
        return had

    def note(self, query_id: str, peer: PeerId, now: float) -> None:
        """``peer`` (a neighbor) has had ``query_id``: it sent us a walker of it."""
        self._had(query_id, now).add(peer)

    def pick(
        self, query_id: str, candidates: list[Contact], rng: RandomSource, now: float
    ) -> Contact:
        """A random candidate that has not had ``query_id`` yet (any, if all have)."""
        had = self._had(query_id, now)
        fresh = [contact for contact in candidates if contact.id not in had]
        if not fresh:
            had.clear()  # every candidate has had it: start another round
            fresh = candidates
        choice = rng.choice(fresh)
        had.add(choice.id)
        return choice


class Walking:
    """Walker relay and the origin side of walks."""

    def __init__(self, ctx: SearchContext, flooding: Flooding) -> None:
        self.ctx = ctx
        self.flooding = flooding
        self.seen = SeenCache(ctx.config.seen_size, ctx.config.seen_seconds)
        self.memory = WalkMemory(ctx.config.seen_size, ctx.config.seen_seconds)
        self.held: dict[tuple[str, int], HeldWalker] = {}
        self._sweep_at: float | None = None

    # ------------------------------------------------------------------ origin side

    def start_walk(
        self,
        criteria: Criteria,
        now: float,
        out: list[Effect],
        *,
        walkers: int | None = None,
        ttl: int | None = None,
        check: int | None = None,
        want: int | None = None,
    ) -> str:
        ctx = self.ctx
        ctx.check_capacity()
        config = ctx.config
        count = walkers if walkers is not None else config.walkers
        most = MAX_WALKER // (1 + config.relaunch_factor)  # relaunches need walker numbers too
        if not 1 <= count <= most:
            raise ValueError(f"walkers must be between 1 and {most}, got {count}")
        walk_ttl = ttl if ttl is not None else config.walk_ttl
        if walk_ttl > config.max_walk_ttl:
            ctx.count("search.ttl_clamped")
            walk_ttl = config.max_walk_ttl
        search = WalkSearch(
            search_id=ctx.new_id(),
            mode="walk",
            criteria=criteria,
            started=now,
            want=want if want is not None else config.want_hits,
            ttl=max(1, walk_ttl),
            check=max(1, check if check is not None else config.check_every),
            relaunch_budget=config.relaunch_factor * count,
        )
        ctx.begin(search)
        ctx.add_wire_id(search, search.search_id, now)
        self.seen.add(search.search_id, None, now)
        if ctx.observer is not None:
            ctx.observer(search.search_id, ctx.me.id, False)
        self.flooding._local_hits(search, now, out)
        if search.satisfied or not ctx.view.active:
            self._finish(search, now, out)
            return search.search_id
        for _ in range(count):
            self._launch(search, now, out)
        self._watch(search, now)
        return search.search_id

    def _launch(self, search: WalkSearch, now: float, out: list[Effect]) -> None:
        ctx = self.ctx
        neighbors = ctx.neighbors()
        if not neighbors:
            return
        index = search.launched
        search.launched += 1
        search.walkers[index] = WalkerState(now, 0)
        criteria = search.criteria
        step = WalkStep(
            query_id=search.search_id,
            origin=ctx.me,
            key=criteria.key,
            keywords=criteria.keywords,
            ttl=search.ttl,
            hops=1,
            walker=index,
            check=search.check,
        )
        target = self.memory.pick(search.search_id, neighbors, ctx.rng, now)
        search.walkers[index].via = target.id
        out.append(Send(target.address, step))

    def _check_timeout(self, search: WalkSearch) -> float:
        return (search.check + 2) * self.ctx.config.hop_allowance

    def _watch(self, search: WalkSearch, now: float) -> None:
        timeout = self._check_timeout(search)

        def watchdog(when: float, out: list[Effect]) -> None:
            if search.done:
                return
            self._relaunch_overdue(search, when, timeout, out)
            if any(state.alive for state in search.walkers.values()):
                self.ctx.at(when + timeout / 2, watchdog)
            else:
                self._finish(search, when, out)

        self.ctx.at(now + timeout / 2, watchdog)

    def _relaunch_overdue(
        self, search: WalkSearch, now: float, timeout: float, out: list[Effect]
    ) -> None:
        allowance = self.ctx.config.hop_allowance
        for state in list(search.walkers.values()):
            if not state.alive:
                continue
            checks_again = state.hops + search.check < search.ttl
            if checks_again:
                overdue = now - state.last_heard > timeout
            else:
                # On its last stretch it will not check in again: give it time to
                # walk that stretch (a hit may still come), then count it ended.
                overdue = now - state.last_heard > (search.ttl - state.hops + 2) * allowance
            if not overdue:
                continue
            state.alive = False
            if checks_again and state.hops == 0:
                self.ctx.walker_outcome(state.via, returned=False)
            if checks_again and search.relaunched < search.relaunch_budget:
                search.relaunched += 1
                self.ctx.count("search.walk.relaunched")
                self._launch(search, now, out)

    def _finish(self, search: WalkSearch, now: float, out: list[Effect]) -> None:
        self.ctx.finish(search, now, out, walkers=search.launched, relaunched=search.relaunched)

    def _verdict(self, search: WalkSearch | None, walker: int, hops: int, now: float) -> bool:
        """The origin's answer to a check; also notes that the walker is alive."""
        if search is None or search.done:
            return False
        state = search.walkers.get(walker)
        if state is None or not state.alive:
            self.ctx.count("search.walk.stale")
            return False  # written off and replaced already: keep the walk at k walkers
        if state.hops == 0:
            self.ctx.walker_outcome(state.via, returned=True)
        state.last_heard = now
        state.hops = hops
        return True

    def on_hit(
        self, search: OriginSearch, message: QueryHit, now: float, out: list[Effect]
    ) -> None:
        self.flooding.on_hit_for_me(search, message, now, out)
        if isinstance(search, WalkSearch) and search.satisfied:
            self._finish(search, now, out)

    def on_check(self, message: WalkCheck, sender: Contact, now: float, out: list[Effect]) -> None:
        ctx = self.ctx
        found = ctx.origins.get(message.query_id)
        search = found if isinstance(found, WalkSearch) else None
        if search is None:
            ctx.count(
                "search.check.late"
                if ctx.finished.seen(message.query_id, now)
                else "search.check.unknown"
            )
        proceed = self._verdict(search, message.walker, message.hops, now)
        out.append(Send(sender.address, WalkVerdict(message.query_id, message.walker, proceed)))

    # ------------------------------------------------------------------ relay side

    def on_step(self, message: WalkStep, sender: Contact, now: float, out: list[Effect]) -> None:
        ctx = self.ctx
        config = ctx.config
        if len(message.keywords) > config.max_keywords:
            ctx.refuse(
                sender,
                f"walker with {len(message.keywords)} keywords (max {config.max_keywords})",
                "search.refused.keywords",
                out,
            )
            return
        if not ctx.within_rate(sender, now):
            return
        step = message
        if step.ttl > config.max_walk_ttl:
            ctx.count("search.ttl_clamped")
            step = attrs.evolve(step, ttl=config.max_walk_ttl)
        query_id = step.query_id
        duplicate = self.seen.seen(query_id, now)
        if duplicate:
            ctx.count("search.walk.revisit")
        else:
            self.seen.add(query_id, sender.address, now)
        ctx.count("search.walk.steps_handled")
        if ctx.observer is not None:
            ctx.observer(query_id, ctx.me.id, duplicate)
        if sender.id in ctx.view.active:
            self.memory.note(query_id, sender.id, now)
        mine = step.origin.id == ctx.me.id
        found = False
        if not mine:
            matches = ctx.store.matching(key=step.key, keywords=step.keywords)
            found = bool(matches)
            for item in matches[: config.max_hits_per_query]:
                out.append(Send(step.origin.address, ctx.my_hit(query_id, item, step.hops)))
        if step.hops >= step.ttl:
            ctx.count("search.walk.expired")
            return
        if found or step.hops % step.check == 0:
            if mine:
                origin = ctx.origins.get(query_id)
                search = origin if isinstance(origin, WalkSearch) else None
                if self._verdict(search, step.walker, step.hops, now):
                    self._forward(step, sender.id, now, out)
                return
            if found:
                ctx.count("search.walk.check_on_hit")
            self._hold(step, sender.id, now, out)
            return
        self._forward(step, sender.id, now, out)

    def _forward(self, step: WalkStep, came_from: PeerId, now: float, out: list[Effect]) -> None:
        ctx = self.ctx
        active = ctx.view.active
        if not active:
            ctx.count("search.walk.stranded")
            return
        if len(active) == 1:
            target = next(iter(active.values())).contact
        else:
            choices = [n.contact for peer, n in active.items() if peer != came_from]
            target = self.memory.pick(step.query_id, choices, ctx.rng, now)
        out.append(Send(target.address, attrs.evolve(step, hops=step.hops + 1)))

    def _hold(self, step: WalkStep, came_from: PeerId, now: float, out: list[Effect]) -> None:
        ctx = self.ctx
        slot = (step.query_id, step.walker)
        if slot not in self.held and len(self.held) >= ctx.config.max_held_walkers:
            ctx.count("search.walk.dropped_full")
            return
        deadline = now + 4 * ctx.config.hop_allowance
        self.held[slot] = HeldWalker(step, came_from, deadline)
        out.append(Send(step.origin.address, WalkCheck(step.query_id, step.walker, step.hops)))
        # One timer for all held walkers, not one per hold: a hold can be answered and
        # the same walker held again at once, and a timer per hold would pile up faster
        # than time lets them fire (a hostile neighbor's loop; tests/overlay/
        # test_core_stateful.py bounds the timers).
        if self._sweep_at is None:
            self._sweep_at = deadline
            ctx.at(deadline, self._give_up_overdue)

    def _give_up_overdue(self, now: float, out: list[Effect]) -> None:
        """Drop held walkers whose origin did not answer in time; re-arm for the next."""
        self._sweep_at = None
        held = self.held
        for slot in [slot for slot, walker in held.items() if walker.deadline <= now]:
            del held[slot]
            self.ctx.count("search.walk.check_timeout")
        if held:
            self._sweep_at = min(walker.deadline for walker in held.values())
            self.ctx.at(self._sweep_at, self._give_up_overdue)

    def on_verdict(
        self, message: WalkVerdict, sender: Contact, now: float, out: list[Effect]
    ) -> None:
        ctx = self.ctx
        slot = (message.query_id, message.walker)
        held = self.held.get(slot)
        if held is None:
            ctx.count("search.verdict.unknown")
            return
        if sender.id != held.step.origin.id:
            ctx.refuse(
                sender,
                "walk verdict from a peer that is not the origin",
                "search.verdict.impostor",
                out,
            )
            return
        del self.held[slot]
        if message.proceed:
            self._forward(held.step, held.came_from, now, out)
        else:
            ctx.count("search.walk.stopped")
