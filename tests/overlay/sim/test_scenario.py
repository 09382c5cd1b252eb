"""overlay.sim.scenario: the simulated bootstrap has room for the whole population."""

from __future__ import annotations

from bootstrap.hostcache import HostCacheConfig
from overlay.sim.scenario import bootstrap_config_for


def test_the_bootstrap_is_sized_for_the_population() -> None:
    default = HostCacheConfig()
    assert bootstrap_config_for(1_000) == default  # small runs: the real default
    big = bootstrap_config_for(1_000_000)
    assert big.max_entries == big.rate_table_size == 2_000_000
    # Everything else, the Sybil defences included, is the default.
    assert big.newcomer_rate == default.newcomer_rate
    assert big.newcomer_burst == default.newcomer_burst
