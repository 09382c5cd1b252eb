"""The decoder fuzz harness, on a few thousand inputs (the recorded run has a million).

What it must show whatever the machine: every input ends in a counted outcome, only
typed refusals come out of the decoder, and every mutation operator is used.  Speed
is never asserted.
"""

from __future__ import annotations

import json
from pathlib import Path

from benchmarks.fuzz_decoder import MUTATORS, main, seed_corpus
from overlay.protocol.messages import all_message_types
from overlay.protocol.wire import decode_message


def test_the_seed_corpus_is_valid_frames_of_every_type() -> None:
    corpus = seed_corpus(seed=1, per_type=2)
    kinds = {type(decode_message(frame[4:])) for frame in corpus}
    assert kinds == set(all_message_types())


def test_a_small_run_counts_every_input_and_escapes_nothing(tmp_path: Path) -> None:
    assert main(["--inputs", "2000", "--seed", "3", "--out", str(tmp_path), "--json"]) == 0
    record = json.loads((tmp_path / "fuzz_decoder.json").read_text())
    outcomes = record["outcomes"]
    per_input = {k: v for k, v in outcomes.items() if k != "messages_decoded"}
    assert sum(per_input.values()) == 2000
    assert record["escaped"] == 0 and record["failures"] == []
    assert set(record["operators"]) == set(MUTATORS)
    assert outcomes["refused.MalformedMessage"] > 0
    assert outcomes["refused.FrameTooLarge"] > 0
    assert outcomes["messages_decoded"] > 0
    assert record["memory_bounded"]
