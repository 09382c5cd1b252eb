"""Benchmark: what an authenticated, encrypted link costs (overlay/net/secure.py).

Records, in ``benchmarks/results/link_cost.json``:

* ``handshake_cpu_ms``: one Noise XX handshake with the identity proof, both sides in
  this process over trio's in-memory streams (so no socket or kernel time): the CPU a
  pair of peers spends to open one link, the mean over ``--handshakes``, between new
  nodes (``new_remote``) and between nodes that met before (``known``: each side's
  proof was checked once and is remembered, see ``overlay/net/secure.py``);
* ``identity_ms``: making a node's :class:`~overlay.net.secure.LinkIdentity` (an X25519
  key and one Ed25519 signature), once per node and run;
* ``seal_open_us_per_frame``: sealing then opening a typical forwarded ``Query`` frame,
  per frame, for batches of 1, 4, 16 and 64 frames written together (the runtime seals
  everything one write takes as one Noise message); plaintext costs nothing here;
* ``memory``: resident bytes (``/proc/self/status``) that one end of an open link keeps
  (its :class:`~overlay.net.secure.Session`: its keys and the framer, while quiet;
  ``bytes_per_busy_session`` once it is busy and keeps its two ``ChaCha20Poly1305``
  objects built), measured over ``--keep`` links kept open at once; what a node's
  :class:`~overlay.net.secure.LinkIdentity` keeps once its static key is loaded for
  Noise; and what ``--keep`` handshakes between known nodes leave behind once their
  sessions are dropped (the handshake state must not outlive the handshake).

CPU time (``time.process_time``, read once per loop: reading it costs about a
millisecond in this machine's VM), so a busy machine skews it less than wall time; the
load average is in the record.  Run: ``python -m benchmarks.link_cost`` (a few seconds).
"""

from __future__ import annotations

import argparse
import gc
import time
from collections.abc import Sequence
from functools import partial
from pathlib import Path

import trio
import trio.testing
from noise.connection import NoiseConnection  # type: ignore[import-untyped]

from benchmarks.harness import REPO, Run
from overlay.net.memtrace import rss_bytes
from overlay.net.secure import BUSY_USES, NOISE_PROTOCOL, LinkIdentity, Session, handshake
from overlay.protocol.identity import Address, Contact
from overlay.protocol.messages import Query
from overlay.protocol.wire import encode_frame

OUTPUT = REPO / "benchmarks" / "results" / "link_cost.json"
BATCHES = (1, 4, 16, 64)


async def _one_handshake(alice: LinkIdentity, bob: LinkIdentity) -> tuple[Session, Session]:
    left, right = trio.testing.memory_stream_pair()
    sessions: dict[str, Session] = {}

    async def side(name: str, me: LinkIdentity, stream: trio.abc.Stream, first: bool) -> None:
        sessions[name], _ = await handshake(
            me, initiator=first, send=stream.send_all, receive=partial(stream.receive_some, 65536)
        )

    async with trio.open_nursery() as nursery:
        nursery.start_soon(side, "a", alice, left, True)
        nursery.start_soon(side, "b", bob, right, False)
    return sessions["a"], sessions["b"]


async def _handshakes(count: int, *, known: bool) -> tuple[float, tuple[Session, Session]]:
    """Milliseconds of CPU per handshake; ``known``: the same two nodes every time (their
    proofs found already checked), else fresh keys each time (made before the clock)."""
    pairs = [(LinkIdentity.fresh(), LinkIdentity.fresh()) for _ in range(1 if known else count)]
    pair = await _one_handshake(*pairs[0])
    began = time.process_time()
    for index in range(count):
        pair = await _one_handshake(*pairs[0 if known else index])
    return (time.process_time() - began) * 1000 / count, pair


def _frame() -> bytes:
    origin = Contact("ab" * 16, Address("127.0.3.7", 40123))
    return encode_frame(Query("cd" * 16, origin, "0123456789abcdef" * 4, (), 5, 1))


def _seal_open(pair: tuple[Session, Session], batch: int, frames: int) -> float:
    """Microseconds of CPU per frame to seal and open ``frames`` frames, ``batch`` a write."""
    sender, receiver = pair
    data = _frame() * batch
    rounds = max(1, frames // batch)
    began = time.process_time()
    for _ in range(rounds):
        receiver.open(b"".join(sender.seal(data)))  # as the socket carries them
    return (time.process_time() - began) * 1e6 / (rounds * batch)


def _resident() -> int:
    gc.collect()
    rss = rss_bytes()
    if rss is None:
        raise RuntimeError("no VmRSS in /proc/self/status")
    return rss


async def _memory(keep: int) -> dict[str, int]:
    """Resident bytes per session kept, per identity, and left per finished handshake."""
    # Each figure is taken while what the earlier ones made is still held, so that no
    # figure is memory the allocator freed for an earlier one and hands out again.
    alice, bob = LinkIdentity.fresh(), LinkIdentity.fresh()
    await _one_handshake(alice, bob)  # proofs checked and remembered, statics loaded
    before = _resident()
    identities = [LinkIdentity.fresh() for _ in range(keep)]
    for identity in identities:
        identity.noise_static(NoiseConnection.from_name(NOISE_PROTOCOL))
    per_identity = (_resident() - before) // len(identities)
    before = _resident()
    kept = [await _one_handshake(alice, bob) for _ in range(keep)]
    per_session = (_resident() - before) // (2 * len(kept))
    # The same sessions once busy (BUSY_USES frames each way): each keeps its two
    # ChaCha20-Poly1305 objects built until a sweep finds it quiet again.
    before = _resident()
    for pair in kept:
        _seal_open(pair, 1, BUSY_USES)
        _seal_open(pair[::-1], 1, BUSY_USES)
    per_busy_session = per_session + (_resident() - before) // (2 * len(kept))
    before = _resident()
    for _ in range(keep):
        await _one_handshake(alice, bob)  # sessions dropped at once
    left = _resident() - before
    del kept, identities
    return {
        "links_kept": keep,
        "bytes_per_session": per_session,
        "bytes_per_busy_session": per_busy_session,
        "bytes_per_identity": per_identity,
        "bytes_left_per_finished_handshake": left // keep,
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--handshakes", type=int, default=200)
    parser.add_argument("--frames", type=int, default=200_000)
    parser.add_argument("--keep", type=int, default=2000, help="links kept open at once")
    parser.add_argument("--output", type=Path, default=OUTPUT)
    args = parser.parse_args(argv)
    run = Run.begin("-m benchmarks.link_cost", argv)
    began = time.process_time()
    for _ in range(50):
        LinkIdentity.fresh()
    identity_ms = (time.process_time() - began) * 1000 / 50
    fresh_ms, _ = trio.run(partial(_handshakes, args.handshakes, known=False))
    known_ms, pair = trio.run(partial(_handshakes, args.handshakes, known=True))
    per_frame = {str(batch): round(_seal_open(pair, batch, args.frames), 3) for batch in BATCHES}
    memory = trio.run(_memory, args.keep)
    record = run.write(
        args.output,
        {
            "handshakes": args.handshakes,
            "handshake_cpu_ms": {"new_remote": round(fresh_ms, 3), "known": round(known_ms, 3)},
            "identity_ms": round(identity_ms, 3),
            "frame_bytes": len(_frame()),
            "seal_open_us_per_frame": per_frame,
            "memory": memory,
            "note": "CPU time in one process, both ends of the link included; no sockets",
        },
    )
    print(
        f"handshake {record['handshake_cpu_ms']} ms of CPU (both sides), "
        f"identity {record['identity_ms']} ms, seal+open per frame (us) by batch {per_frame}, "
        f"memory {memory}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
