"""Fuzz the frame decoder and message validation with random and mutated inputs.

    python benchmarks/fuzz_decoder.py [--inputs 1000000] [--seed 1] [--out DIR] [--json]

The seed corpus is one valid frame after another of every message type (drawn from the
wire tests' generic strategies, plus each list-carrying message with its lists at their
validators' bounds).  Each input is one byte stream, fed through a fresh
:class:`~overlay.protocol.wire.FrameDecoder` cut into random chunks, and made by one operator:

* ``random``: random bytes, or a valid length prefix followed by random bytes;
* ``flip``: bit flips; ``bytes``: bytes overwritten, inserted or deleted;
* ``truncate``: a stream cut short; ``splice``: the head of one stream and the tail of
  another; ``prefix``: a length prefix replaced (0, one off, the cap, over the cap, huge);
* ``structure``: a body unpacked, one value inside replaced by a value of another shape
  (a wrong scalar, a deep or long array, a map, a missing or extra field), packed again;
* ``stream``: several valid and mutated frames in a row.

Every outcome is counted: messages decoded (each re-encoded and decoded again, which
must give it back), a stream that ended inside a frame, and refusals by error type.
Any exception other than a :class:`~overlay.protocol.errors.RemoteError` is a failure, as is a
decoder that buffers more than ``cap + PREFIX`` bytes or a resident memory that keeps
growing after the warm-up.  The run records ``benchmarks/results/fuzz_decoder.json``
and exits non-zero on a failure.  It is not part of CI (a million inputs take minutes);
``tests/benchmarks/test_fuzz_decoder.py`` runs it on a few thousand.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import random
import resource
import sys
import time
import traceback
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import msgpack

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from hypothesis import HealthCheck, given, settings
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

from benchmarks.harness import Run
from overlay.protocol.errors import RemoteError
from overlay.protocol.messages import Message, all_message_types
from overlay.protocol.wire import (
    DEFAULT_FRAME_CAP,
    PREFIX,
    FrameDecoder,
    decode_message,
    encode_frame,
)
from overlay.protocol.wire import encode_message as encode_body
from tests.overlay.net.hostile import messages_at_bounds
from tests.overlay.protocol.test_wire import MESSAGE_STRATEGIES

RESULTS = Path(__file__).resolve().parent / "results"
CAP = DEFAULT_FRAME_CAP
EXAMPLES_PER_TYPE = 24
RSS_WARMUP_FRACTION = 0.1
RSS_GROWTH_LIMIT_KIB = 64 * 1024
"""Resident memory may not grow by more than this after the warm-up: a decoder that
kept anything per input would grow by far more over a million inputs."""


# --------------------------------------------------------------------------- the corpus


def _examples(cls: type[Message], count: int) -> list[Message]:
    """``count`` messages of ``cls`` from the wire tests' strategy, the same every run."""
    drawn: list[Message] = []

    @settings(
        max_examples=count,
        database=None,
        derandomize=True,
        deadline=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(message=MESSAGE_STRATEGIES[cls])
    def collect(message: Message) -> None:
        drawn.append(message)

    collect()
    return drawn


def seed_corpus(seed: int, per_type: int = EXAMPLES_PER_TYPE) -> list[bytes]:
    """Valid frames: ``per_type`` examples of every message type, and the bound cases."""
    frames: list[bytes] = []
    for cls in all_message_types():
        frames.extend(encode_frame(message) for message in _examples(cls, per_type))
    frames.extend(encode_frame(m) for m in messages_at_bounds(random.Random(seed)))
    return frames


# --------------------------------------------------------------------------- mutations

Mutator = Callable[[random.Random, list[bytes]], bytes]


def _pick(rng: random.Random, corpus: list[bytes]) -> bytearray:
    return bytearray(corpus[rng.randrange(len(corpus))])


def random_bytes(rng: random.Random, _corpus: list[bytes]) -> bytes:
    body = rng.randbytes(rng.randrange(600))
    if rng.random() < 0.5:
        return len(body).to_bytes(PREFIX, "big") + body
    return body


def flip_bits(rng: random.Random, corpus: list[bytes]) -> bytes:
    data = _pick(rng, corpus)
    for _ in range(rng.randint(1, 8)):
        data[rng.randrange(len(data))] ^= 1 << rng.randrange(8)
    return bytes(data)


def edit_bytes(rng: random.Random, corpus: list[bytes]) -> bytes:
    data = _pick(rng, corpus)
    for _ in range(rng.randint(1, 6)):
        if not data:
            break
        at = rng.randrange(len(data))
        choice = rng.randrange(3)
        if choice == 0:
            data[at] = rng.randrange(256)
        elif choice == 1:
            data[at:at] = rng.randbytes(rng.randint(1, 8))
        else:
            del data[at : at + rng.randint(1, 8)]
    return bytes(data)


def truncate(rng: random.Random, corpus: list[bytes]) -> bytes:
    data = _pick(rng, corpus)
    return bytes(data[: rng.randrange(len(data))])


def splice(rng: random.Random, corpus: list[bytes]) -> bytes:
    head, tail = _pick(rng, corpus), _pick(rng, corpus)
    return bytes(head[: rng.randrange(len(head) + 1)] + tail[rng.randrange(len(tail)) :])


def tamper_prefix(rng: random.Random, corpus: list[bytes]) -> bytes:
    data = _pick(rng, corpus)
    size = len(data) - PREFIX
    length = rng.choice(
        [
            0,
            1,
            size - 1,
            size + 1,
            size + rng.randint(2, 64),
            max(1, size // 2),
            CAP,
            CAP + 1,
            2 ** (8 * PREFIX) - 1,
            rng.randrange(2 ** (8 * PREFIX)),
        ]
    )
    data[:PREFIX] = max(0, length).to_bytes(PREFIX, "big")
    return bytes(data)


def _odd_value(rng: random.Random, like: Any) -> Any:
    choice = rng.randrange(12)
    if choice == 0:
        return None
    if choice == 1:
        return rng.choice([True, False])
    if choice == 2:
        return rng.choice([-1, 0, 2**31, 2**63 - 1, 2**64 - 1, -(2**63), 65536, 256])
    if choice == 3:
        return rng.choice([float("nan"), float("inf"), -0.0, 1e308, 7.9])
    if choice == 4:
        return "x" * rng.choice([0, 1, 33, 65, 256, 70_000 // 4])
    if choice == 5:
        return rng.randbytes(rng.choice([0, 16, 70]))
    if choice == 6:
        # One past every list bound, but never a body far over the cap: that is refused
        # at its prefix, and building it would only grow the harness's own heap.
        size = len(msgpack.packb(like, use_bin_type=True))
        return [like] * min(rng.choice([2, 33, 65, 129, 300]), max(2, 2 * CAP // size))
    if choice == 7:
        deep: Any = like
        for _ in range(rng.choice([10, 100, 2000])):
            deep = [deep]
        return deep
    if choice == 8:
        return {"a": like}
    if choice == 9:
        return str(like) if not isinstance(like, str) else like.upper()
    if choice == 10:
        return rng.choice([cls.__name__ for cls in all_message_types()])
    return []


def _mutate_tree(rng: random.Random, value: Any, depth: int = 0) -> Any:
    if isinstance(value, list) and value and depth < 6 and rng.random() < 0.75:
        out = list(value)
        at = rng.randrange(len(out))
        action = rng.randrange(6)
        if action == 0:
            del out[at]  # a missing field
        elif action == 1:
            out.insert(at, out[at])  # an extra field
        else:
            out[at] = _mutate_tree(rng, out[at], depth + 1)
        return out
    return _odd_value(rng, value)


def structure(rng: random.Random, corpus: list[bytes]) -> bytes:
    data = _pick(rng, corpus)
    tree = msgpack.unpackb(bytes(data[PREFIX:]), raw=False, strict_map_key=False)
    try:
        body = bytes(msgpack.packb(_mutate_tree(rng, tree), use_bin_type=True))
    except (ValueError, OverflowError, TypeError):  # too deep or too large to pack
        body = bytes(data[PREFIX:])
    # A body over the cap is refused at its prefix: its tail would only cost the
    # harness memory (300 copies of a 60 KB value is 18 MB), so it is cut.
    return len(body).to_bytes(PREFIX, "big") + body[: 2 * CAP]


SINGLE: dict[str, Mutator] = {
    "random": random_bytes,
    "flip": flip_bits,
    "bytes": edit_bytes,
    "truncate": truncate,
    "splice": splice,
    "prefix": tamper_prefix,
    "structure": structure,
}


def stream(rng: random.Random, corpus: list[bytes]) -> bytes:
    parts = []
    for _ in range(rng.randint(2, 6)):
        if rng.random() < 0.7:
            parts.append(corpus[rng.randrange(len(corpus))])
        else:
            parts.append(rng.choice(list(SINGLE.values()))(rng, corpus))
    return b"".join(parts)


MUTATORS: dict[str, Mutator] = {**SINGLE, "stream": stream}


def chunks(rng: random.Random, data: bytes) -> list[bytes]:
    """``data`` cut at random points: whole, byte by byte (short inputs), or in pieces."""
    style = rng.randrange(4)
    if style == 0 or not data:
        return [data]
    if style == 1 and len(data) <= 256:
        return [data[i : i + 1] for i in range(len(data))]
    cuts = sorted(rng.randrange(len(data) + 1) for _ in range(rng.randint(1, 12)))
    bounds = [0, *cuts, len(data)]
    return [data[a:b] for a, b in itertools.pairwise(bounds)]


# --------------------------------------------------------------------------- one input


class Escaped(Exception):
    """Something other than a RemoteError came out of the decoder: a failure."""


def run_one(data: bytes, pieces: Sequence[bytes], outcomes: Counter[str]) -> None:
    decoder = FrameDecoder(CAP)
    try:
        for piece in pieces:
            for message in decoder.feed(piece):
                outcomes["messages_decoded"] += 1
                if decode_message(encode_body(message)) != message:
                    raise Escaped(f"{type(message).__name__} does not survive a round trip")
            if decoder.buffered > CAP + PREFIX:
                raise Escaped(f"decoder holds {decoder.buffered} bytes, over cap + prefix")
    except RemoteError as error:
        outcomes[f"refused.{type(error).__name__}"] += 1
        return
    except Escaped:
        raise
    except BaseException as error:
        raise Escaped(f"{type(error).__name__}: {error}") from error
    outcomes["ended_inside_a_frame" if decoder.buffered else "ended_clean"] += 1


def rss_kib() -> int:
    """Current resident set size (Linux), falling back to the peak where /proc is absent."""
    try:
        with open("/proc/self/statm") as statm:
            pages = int(statm.read().split()[1])
        return pages * os.sysconf("SC_PAGE_SIZE") // 1024
    except OSError:
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def fuzz(inputs: int, seed: int, *, progress: bool = True) -> dict[str, Any]:
    rng = random.Random(seed)
    corpus_started = time.perf_counter()
    corpus = seed_corpus(seed)
    corpus_seconds = time.perf_counter() - corpus_started
    names = list(MUTATORS)
    operators: Counter[str] = Counter()
    outcomes: Counter[str] = Counter()
    failures: list[dict[str, str]] = []
    rss_after_warmup = 0
    warmup = max(1, int(inputs * RSS_WARMUP_FRACTION))
    checkpoint = max(1, inputs // 10)
    rss_series: list[int] = []
    started = time.perf_counter()
    cpu_started = time.process_time()
    console = Console(stderr=True, quiet=not progress)
    with Progress(
        TextColumn("fuzzing the decoder"),
        BarColumn(),
        TextColumn("{task.completed:,.0f}/{task.total:,.0f} inputs"),
        TimeElapsedColumn(),
        console=console,
    ) as bar:
        task = bar.add_task("fuzz", total=inputs)
        for number in range(inputs):
            name = names[rng.randrange(len(names))]
            operators[name] += 1
            data = MUTATORS[name](rng, corpus)
            try:
                run_one(data, chunks(rng, data), outcomes)
            except Escaped as escaped:
                outcomes["escaped"] += 1
                if len(failures) < 20:
                    failures.append(
                        {
                            "operator": name,
                            "input": data[:200].hex(),
                            "error": str(escaped),
                            "traceback": traceback.format_exc(limit=4)[-1500:],
                        }
                    )
            if number + 1 == warmup:
                rss_after_warmup = rss_kib()
            if (number + 1) % checkpoint == 0:
                rss_series.append(rss_kib())
            if number % 5000 == 0:
                bar.update(task, completed=number)
        bar.update(task, completed=inputs)
    seconds = time.perf_counter() - started
    rss_end = rss_kib()
    growth = rss_end - rss_after_warmup
    return {
        "inputs": inputs,
        "seed": seed,
        "corpus_frames": len(corpus),
        "corpus_types": len(all_message_types()),
        "corpus_seconds": round(corpus_seconds, 2),
        "seconds": round(seconds, 2),
        "fuzz_cpu_seconds": round(time.process_time() - cpu_started, 2),
        "inputs_per_second": round(inputs / seconds) if seconds > 0 else None,
        "operators": dict(sorted(operators.items())),
        "outcomes": dict(sorted(outcomes.items())),
        "escaped": outcomes["escaped"],
        "failures": failures,
        "frame_cap": CAP,
        "rss_kib_after_warmup": rss_after_warmup,
        "rss_kib_end": rss_end,
        "rss_growth_kib": growth,
        "rss_kib_every_tenth": rss_series,
        "rss_growth_limit_kib": RSS_GROWTH_LIMIT_KIB,
        "peak_rss_kib": max(rss_end, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss),
        "memory_bounded": growth <= RSS_GROWTH_LIMIT_KIB,
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--inputs", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--json", action="store_true", help="print the record on stdout")
    args = parser.parse_args(argv)
    if args.inputs < 1:
        parser.error("--inputs must be at least 1")
    recording = Run.begin("benchmarks/fuzz_decoder.py", argv)
    figures = fuzz(args.inputs, args.seed, progress=not args.json)
    record = recording.write(args.out / "fuzz_decoder.json", figures)
    if args.json:
        print(json.dumps(record, indent=2))
    else:
        Console().print(
            f"{record['inputs']:,} inputs in {record['seconds']} s: {record['outcomes']}; "
            f"peak RSS {record['peak_rss_kib']:,} KiB, growth {record['rss_growth_kib']:,} KiB"
        )
    return 0 if record["escaped"] == 0 and record["memory_bounded"] else 1


if __name__ == "__main__":
    sys.exit(main())
