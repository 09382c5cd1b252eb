"""benchmarks/libp2p_compare.py: the dial plan and the worker's ready line.  The libp2p
run itself needs its own venv with libp2p 0.8.1 and minutes of CPU: a benchmark's job."""

from __future__ import annotations

import random

from benchmarks.libp2p_compare import listed_hosts, random_dials


def test_every_host_dials_and_no_pair_is_dialled_twice() -> None:
    pairs = random_dials(50, 3, random.Random(1))
    assert len({frozenset(p) for p in pairs}) == len(pairs)
    assert all(a != b for a, b in pairs)
    dialling = {a for a, _ in pairs}
    assert len(dialling) >= 45  # a host whose three picks all dialled it first dials none
    degree = 2 * len(pairs) / 50
    assert 5.0 <= degree <= 6.0


def test_a_worker_is_ready_when_it_lists_its_hosts() -> None:
    assert listed_hosts('{"hosts": ["/ip4/127.0.0.1/tcp/1/p2p/x"], "rss_before_hosts": 1}')
    assert listed_hosts("dial failed: ...") is None
    assert listed_hosts('{"connected": 1}') is None
