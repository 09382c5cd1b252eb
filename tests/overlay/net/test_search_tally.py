"""A peer's search tally (overlay.net.search_tally) stays small under a steady query load.

Every peer that forwards a flood tallies its id, so the tally's size is what a swarm
worker's peers hold between them: kept 600 s, it grew each worker of the secure soak
by about 9 MB a minute (benchmarks/results/soak_10min_secure.json).  Fake time drives
it here: a soak's rate of fresh ids for ten minutes, then a burst.
"""

from __future__ import annotations

import tracemalloc

from overlay.net.search_tally import TALLY_SECONDS, TALLY_SIZE, SearchTally
from overlay.protocol.identity import Address, Contact
from overlay.protocol.messages import Query

CONTACT = Contact("e" * 32, Address("127.0.0.1", 1))
SOAK_IDS_PER_SECOND = 3  # what a soak's peers see (search.config's seen_seconds)


def query(number: int) -> Query:
    return Query(f"{number:032x}", CONTACT, "0" * 64, (), 3)


def test_a_steady_load_levels_off_at_a_minute_of_ids() -> None:
    tally = SearchTally()
    sizes = []
    for second in range(600):
        for n in range(SOAK_IDS_PER_SECOND):
            number = second * SOAK_IDS_PER_SECOND + n
            tally.sent(query(number), float(second))
            tally.sent(query(number), second + 0.5)  # a second message: no new entry
        sizes.append(len(tally))
    assert TALLY_SECONDS <= 60.0
    most = SOAK_IDS_PER_SECOND * (int(TALLY_SECONDS) + 1)
    assert max(sizes) <= most  # kept 600 s, it would reach 1,800 ids
    assert sizes[-1] == sizes[300]  # level: no growth in the second half
    newest = f"{600 * SOAK_IDS_PER_SECOND - 1:032x}"
    assert tally.counts(newest) == {"query": 2}
    assert tally.counts(f"{0:032x}") == {}  # long forgotten


def test_a_burst_is_held_to_the_size_bound() -> None:
    tally = SearchTally()
    for number in range(3 * TALLY_SIZE):
        tally.sent(query(number), 0.0)
    assert len(tally) == TALLY_SIZE
    assert tally.counts(f"{0:032x}") == {}  # the oldest went first
    assert tally.counts(f"{3 * TALLY_SIZE - 1:032x}") == {"query": 1}


def test_an_id_costs_little_beside_the_id_itself() -> None:
    """The entry per id: 330 bytes as an OrderedDict of (time, dict), about 100 now."""
    messages = [query(number) for number in range(2000)]
    tally = SearchTally()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for message in messages:
            tally.sent(message, 0.0)
        grown = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert grown / len(messages) <= 160
