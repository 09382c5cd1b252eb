"""How fast survivors detect a failed neighbor, and whether a stalled one fools them.

    python benchmarks/failure_detection.py [--observers 40] [--kills 5] [--silent 5]
        [--stalls 4] [--stall-seconds 2.5,4.0] [--heartbeat-period 2]
        [--failure-timeout 5] [--json] [--out benchmarks/results]

A real swarm on loopback with the default timers (a heartbeat to each neighbor every
2 s, a neighbor silent for 5 s is declared dead): a bootstrap and ``--observers`` peers
run in this process (so each detection is timed exactly, on the event that drops the
neighbor), and every victim is an ``overlay peer`` process of its own, so that it can be
signalled.  Each victim first joins and gets several observers as neighbors; then:

* **kill** (``SIGKILL``): the process dies; its OS closes its sockets, so neighbors see
  the connection end and drop it at once (the TCP runtime's fast path).
* **silent crash** (``SIGSTOP`` and never resumed): the process freezes with its
  sockets open, as a machine that hangs or a cut cable: only missed heartbeats tell.
  This is the figure to set against SWIM (Das, Gupta and Motivala, DSN 2002), whose
  randomized probing detects a crash after about e/(e-1) ~ 1.58 protocol periods at
  the first member; here the protocol period is the heartbeat period.
* **stall** (``SIGSTOP`` for each of ``--stall-seconds``, less than the failure timeout,
  then ``SIGCONT``): the peer is alive; a neighbor that drops it is a false positive.
  A neighbor last heard from up to one period before the stall sees a silence of up to
  stall + period, so stalls shorter than timeout - period (3 s by default) can never
  fool it, and longer ones (still under the timeout) may: both are measured.  The other
  direction is counted too: neighbors the victim itself declared dead on waking (their
  heartbeats waited unread in its sockets; the late-tick rule of
  :meth:`overlay.core.membership.Membership.handle_timer` allows for that).

For each failure and each neighbor the victim had at that moment: seconds until the
neighbor dropped it and why, in the core's own words (``declared dead``: missed
heartbeats; ``link lost``: the connection ended; anything else, such as shedding a link
or splitting it for a newcomer, is letting it go on purpose and is counted apart).
Results go to ``failure_detection.json`` under ``--out``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import random
import signal
import statistics
import sys
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import attrs
import trio

from benchmarks.harness import Run, listening, overlay_command, started
from bootstrap.server import serve_bootstrap
from overlay.core.config import MembershipConfig, PeerConfig
from overlay.core.peer import Peer
from overlay.net.keys import KeyPair
from overlay.net.node import Node, NodeConfig, open_listeners
from overlay.net.peer_node import keyed_peer, link_security, peer_node
from overlay.protocol.effects import Effect, Notify
from overlay.protocol.identity import Address, Contact, PeerId
from overlay.protocol.messages import Message
from overlay.tools.swarm import fetch_stats

REPO = Path(__file__).resolve().parents[1]
JOIN_TIMEOUT = 60.0
DETECT_TIMEOUT = 30.0
MIN_WATCHED = 3
"""A victim is used once at least this many observers list it as a neighbor."""


DETECTIONS = {"declared dead": "missed heartbeats", "link lost": "link ended"}
"""The core's reasons for dropping a neighbor that are detections of its failure; any
other (shed, link split, disconnected) is letting it go on purpose."""


class DropRecorder:
    """The peer core, for the node, noting when and why it drops each neighbor."""

    def __init__(self, peer: Peer) -> None:
        self.peer = peer
        self.dropped: dict[PeerId, tuple[float, str]] = {}

    def _note(self, effects: list[Effect]) -> list[Effect]:
        for effect in effects:
            if type(effect) is Notify and effect.kind == "neighbor_down" and effect.peer:
                self.dropped.setdefault(effect.peer, (trio.current_time(), effect.detail))
        return effects

    def start(self, now: float) -> list[Effect]:
        return self._note(self.peer.start(now))

    def receive(self, message: Message, sender: Contact, now: float) -> list[Effect]:
        return self._note(self.peer.receive(message, sender, now))

    def link_lost(self, peer: PeerId, now: float) -> list[Effect]:
        return self._note(self.peer.link_lost(peer, now))

    def handle_timer(self, now: float) -> list[Effect]:
        return self._note(self.peer.handle_timer(now))

    def next_deadline(self) -> float:
        return self.peer.next_deadline()


@attrs.define
class Observer:
    peer: Peer
    node: Node
    drops: DropRecorder


@attrs.define
class Victim:
    process: trio.Process
    id: PeerId
    address: Address


def _log(message: str) -> None:
    print(f"[failure_detection] {message}", file=sys.stderr, flush=True)


async def start_observers(
    nursery: trio.Nursery, bootstrap: Address, count: int, config: PeerConfig, seed: int
) -> list[Observer]:
    rng = random.Random(seed)
    observers = []
    for _ in range(count):
        listeners, address = await open_listeners("127.0.0.1", 0)
        key = KeyPair.generate()
        peer = keyed_peer(
            address, config, random.Random(rng.getrandbits(64)), key, bootstrap=bootstrap
        )
        node = peer_node(peer, NodeConfig(), security=link_security(key))
        recorder = node.core = DropRecorder(peer)
        await nursery.start(node.serve, listeners)
        observers.append(Observer(peer, node, recorder))
        await trio.sleep(0.05)  # a gentle arrival, as a swarm's workers stagger theirs
    return observers


@contextlib.asynccontextmanager
async def running_victim(
    bootstrap: Address, seed: int, membership: MembershipConfig
) -> AsyncIterator[Victim]:
    """An ``overlay peer`` process with the run's timers, once it listens; SIGKILLed at
    the end of the block (whatever was done to it: killed, stopped, stalled)."""
    timers = [
        "--heartbeat-period",
        repr(membership.heartbeat_period),
        "--failure-timeout",
        repr(membership.failure_timeout),
    ]
    # The flat overlay: what is measured is the membership's failure detector.
    command = overlay_command(
        "peer", "--bootstrap", str(bootstrap), "--seed", str(seed), "--no-super-peers", *timers
    )
    async with started(command, listening("peer"), timeout=30, stop=signal.SIGKILL) as peer:
        assert peer.ready.id is not None  # "peer ID listening on HOST:PORT"
        yield Victim(peer.process, peer.ready.id, peer.ready.address)


def watchers(observers: Sequence[Observer], victim: PeerId) -> list[Observer]:
    return [o for o in observers if victim in o.peer.membership.active]


async def wait_watched(observers: Sequence[Observer], victim: PeerId) -> list[Observer]:
    with trio.fail_after(JOIN_TIMEOUT):
        while len(watchers(observers, victim)) < MIN_WATCHED:
            await observers[0].node.wait_until(
                lambda: len(watchers(observers, victim)) >= MIN_WATCHED
            )
    # Let the links settle (heartbeats flowing both ways) before failing it.
    await trio.sleep(3.0)
    return watchers(observers, victim)


def forget_drops(watched: Sequence[Observer], victim: PeerId) -> None:
    """Forget earlier drops of ``victim`` (and re-links): called right before the signal,
    not once the watch begins, because a neighbor may see a killed peer's sockets close
    before the watching tasks first run, and that drop is this failure's."""
    for observer in watched:
        observer.drops.dropped.pop(victim, None)


async def time_drops(
    watched: Sequence[Observer], victim: PeerId, start: float, window: float
) -> list[dict[str, Any]]:
    """For each observer: seconds from ``start`` until it dropped ``victim`` (None: it did
    not within ``window``) and how (drops before ``start`` are forgotten by
    :func:`forget_drops`)."""
    results: list[dict[str, Any]] = []

    async def watch(observer: Observer) -> None:
        dropped = observer.drops.dropped
        with trio.move_on_at(start + window):
            await observer.node.wait_until(lambda: victim in dropped)
        if victim not in dropped:
            results.append({"seconds": None, "how": None})
            return
        when, why = dropped[victim]
        how = DETECTIONS.get(why, "shed or split")
        results.append({"seconds": when - start, "how": how, "why": why})

    async with trio.open_nursery() as nursery:
        for observer in watched:
            nursery.start_soon(watch, observer)
    return results


def summarize_detections(rows: list[dict[str, Any]], period: float) -> dict[str, Any]:
    firsts = [r["first_seconds"] for r in rows if r["first_seconds"] is not None]
    lasts = [r["last_seconds"] for r in rows if r["last_seconds"] is not None]
    every = [s for r in rows for s in r["per_neighbor_seconds"] if s is not None]
    missed = sum(1 for r in rows for s in r["per_neighbor_seconds"] if s is None)

    def stats(values: list[float]) -> dict[str, float] | None:
        if not values:
            return None
        return {
            "mean_seconds": statistics.fmean(values),
            "median_seconds": statistics.median(values),
            "min_seconds": min(values),
            "max_seconds": max(values),
            "mean_periods": statistics.fmean(values) / period,
        }

    return {
        "failures": len(rows),
        "first_detection": stats(firsts),
        "last_detection": stats(lasts),
        "every_detection": stats(every),
        "neighbors_that_never_detected": missed,
    }


async def detect(
    observers: Sequence[Observer], victim: Victim, kind: str, period: float
) -> dict[str, Any]:
    watched = await wait_watched(observers, victim.id)
    stop = signal.SIGKILL if kind == "kill" else signal.SIGSTOP
    forget_drops(watched, victim.id)
    victim.process.send_signal(stop)
    start = trio.current_time()
    drops = await time_drops(watched, victim.id, start, DETECT_TIMEOUT)
    # A neighbor that shed the victim (or split its link for a newcomer) before noticing
    # anything did not detect it: left out of the figures, counted apart.
    detections = [d for d in drops if d["how"] != "shed or split"]
    seconds = [d["seconds"] for d in detections]
    found = [s for s in seconds if s is not None]
    row = {
        "kind": kind,
        "neighbors": len(watched),
        "let_go_before_detecting": len(drops) - len(detections),
        "per_neighbor_seconds": seconds,
        "how": sorted({d["how"] for d in drops if d["how"] is not None}),
        "first_seconds": min(found) if found else None,
        "last_seconds": max(found) if found else None,
        "first_periods": min(found) / period if found else None,
    }
    _log(f"{kind}: {row['neighbors']} neighbors, first {row['first_seconds']}, "
         f"last {row['last_seconds']}")  # fmt: skip
    return row


async def stall(
    observers: Sequence[Observer], victim: Victim, seconds: float, timeout: float, period: float
) -> dict[str, Any]:
    watched = await wait_watched(observers, victim.id)
    forget_drops(watched, victim.id)
    victim.process.send_signal(signal.SIGSTOP)
    start = trio.current_time()
    # Watch through the stall and two periods after it: a false suspicion shows by then.
    window = seconds + 2 * period + 1.0
    with trio.move_on_after(seconds):
        await trio.sleep_forever()
    victim.process.send_signal(signal.SIGCONT)
    resumed = trio.current_time() - start
    drops = await time_drops(watched, victim.id, start, window)
    reply = None
    try:
        reply = await fetch_stats(victim.address, 5.0)
    except Exception as error:  # the victim's own view is optional context
        _log(f"stall: no stats from the victim: {error}")
    counters = {c.name: c.value for c in reply.counters} if reply is not None else {}
    row = {
        "stall_seconds": resumed,
        "failure_timeout": timeout,
        "neighbors": len(watched),
        "declared_dead_by_neighbors": sum(1 for d in drops if d["how"] == "missed heartbeats"),
        "links_ended": sum(1 for d in drops if d["how"] == "link ended"),
        "let_go_on_purpose": sum(1 for d in drops if d["how"] == "shed or split"),
        "victim_declared_dead": counters.get("neighbors_declared_dead", 0),
        "victim_neighbors_after": len(reply.neighbors) if reply is not None else None,
    }
    _log(f"stall: {row}")
    return row


async def run(args: argparse.Namespace) -> dict[str, Any]:
    membership = MembershipConfig(
        heartbeat_period=args.heartbeat_period, failure_timeout=args.failure_timeout
    )
    config = PeerConfig(membership=membership)
    period = membership.heartbeat_period
    result: dict[str, Any] = {}
    async with trio.open_nursery() as nursery:
        server = await nursery.start(
            lambda task_status: serve_bootstrap("127.0.0.1", 0, seed=args.seed,
                                                task_status=task_status)
        )  # fmt: skip
        _log(f"starting {args.observers} observers")
        observers = await start_observers(
            nursery, server.address, args.observers, config, args.seed
        )
        seeds = iter(range(10_000, 20_000))
        rows: dict[str, list[dict[str, Any]]] = {"kill": [], "silent": []}
        stalls: dict[float, list[dict[str, Any]]] = {s: [] for s in args.stall_seconds}
        plan: list[tuple[str, float]] = [("kill", 0.0)] * args.kills + [
            ("silent", 0.0)
        ] * args.silent
        plan += [("stall", seconds) for seconds in args.stall_seconds for _ in range(args.stalls)]
        for kind, seconds in plan:
            async with running_victim(server.address, next(seeds), membership) as victim:
                if kind == "stall":
                    stalls[seconds].append(
                        await stall(observers, victim, seconds, membership.failure_timeout, period)
                    )
                else:
                    rows[kind].append(await detect(observers, victim, kind, period))
        result = {
            "heartbeat_period": period,
            "failure_timeout": membership.failure_timeout,
            "observers": args.observers,
            "kill": {"summary": summarize_detections(rows["kill"], period), "runs": rows["kill"]},
            "silent_crash": {
                "summary": summarize_detections(rows["silent"], period),
                "runs": rows["silent"],
            },
            "stall": [
                {
                    "stall_seconds": seconds,
                    "below_timeout_minus_period": seconds < membership.failure_timeout - period,
                    "stalls": len(runs),
                    "neighbors_watched": sum(s["neighbors"] for s in runs),
                    "false_positives_by_neighbors": sum(
                        s["declared_dead_by_neighbors"] for s in runs
                    ),
                    "links_ended": sum(s["links_ended"] for s in runs),
                    "victim_declared_dead": sum(s["victim_declared_dead"] for s in runs),
                    "runs": runs,
                }
                for seconds, runs in stalls.items()
            ],
            "swim_first_detection_periods": 1.58,
        }
        nursery.cancel_scope.cancel()
    return result


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--observers", type=int, default=40)
    parser.add_argument("--kills", type=int, default=5, help="SIGKILLed victims")
    parser.add_argument("--silent", type=int, default=5, help="victims SIGSTOPped for good")
    parser.add_argument("--stalls", type=int, default=4, help="stalled victims per length")
    parser.add_argument(
        "--stall-seconds",
        type=lambda text: [float(x) for x in text.split(",")],
        default=[2.5, 4.0],
        help="stall lengths, comma-separated (default 2.5,4.0: under and over timeout - period)",
    )
    parser.add_argument("--seed", type=int, default=1)
    defaults = MembershipConfig()
    parser.add_argument(
        "--heartbeat-period", type=float, default=defaults.heartbeat_period, help="(default 2)"
    )
    parser.add_argument(
        "--failure-timeout", type=float, default=defaults.failure_timeout, help="(default 5)"
    )
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results")
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    args = parser.parse_args(argv)
    recording = Run.begin("benchmarks/failure_detection.py", argv)
    result = recording.write(args.out / "failure_detection.json", trio.run(run, args))
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        for name in ("kill", "silent_crash"):
            print(name, json.dumps(result[name]["summary"]))
        for figures in result["stall"]:
            print("stall", json.dumps({k: v for k, v in figures.items() if k != "runs"}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
