"""Where a simulation's memory peaks: resident memory after each simulated second and
through the final summary, in one process.

    python benchmarks/sim_peak.py [--peers 20000] [--duration 30] [--seed 1]

Runs the scenario of ``benchmarks/sim_scale.py --workers 1`` (flat overlay) and prints,
for each phase (building the scenario, each simulated second, the final summary), the
resident memory at its end and the highest seen during it: a thread reads
``/proc/self/statm`` every 10 ms, so a peak inside a phase is caught too.  Linux only.
The figures in docs/results/simulator-scale.md ("Where the peak is") come from it.
This is a diagnostic, not a test: it asserts nothing.
"""

from __future__ import annotations

import argparse
import resource
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from overlay.collector import few_collections
from overlay.compiled import BUILD
from overlay.sim.scenario import Scenario, build

PAGE = resource.getpagesize()
MIB = 1024 * 1024


def resident() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * PAGE


class Peaks:
    """The highest resident memory seen in each phase, sampled by a daemon thread."""

    def __init__(self) -> None:
        self.phase = "start"
        self.peaks: dict[str, int] = {}
        threading.Thread(target=self._sample, daemon=True).start()

    def _note(self) -> int:
        now, phase = resident(), self.phase
        if now > self.peaks.get(phase, 0):
            self.peaks[phase] = now
        return now

    def _sample(self) -> None:
        while True:
            self._note()
            time.sleep(0.01)

    def next(self, phase: str) -> None:
        """End the current phase (print it) and start ``phase``."""
        now = self._note()
        done = self.phase
        print(f"{done:24s} end {now / MIB:8.1f} MiB  peak {self.peaks[done] / MIB:8.1f} MiB")
        self.phase = phase


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--peers", type=int, default=20_000)
    parser.add_argument("--duration", type=float, default=30.0)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)
    print(BUILD.describe(), f"{args.peers} peers, {args.duration:g} s, seed {args.seed}")
    peaks = Peaks()
    peaks.next("build")
    scenario = Scenario(peers=args.peers, seed=args.seed, duration=args.duration)
    sim = build(scenario)
    second = 0.0
    peaks.next("run to 1")
    with few_collections():
        while second < args.duration:
            second = min(second + 1, args.duration)
            sim.run_until(second)
            peaks.next(f"run to {second + 1:g}")
    print("delivered", sim.delivered)
    peaks.phase = "summary(final=True)"
    summary = sim.summary(final=True)
    peaks.next("end")
    print("ru_maxrss", resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / MIB, "MiB")
    print({key: value for key, value in summary.items() if key != "messages"})
    return 0


if __name__ == "__main__":
    sys.exit(main())
