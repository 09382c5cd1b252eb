"""The soak's verdict on memory (benchmarks/soak.py): slopes and "stopped growing"."""

from __future__ import annotations

import os
import socket
import types
from typing import Any, cast

import attrs
import networkx as nx
import pytest

from benchmarks.soak import Soak, growth, lost_by_reason, slope, socket_breakdown, why_lost
from overlay.protocol.identity import Address

MB = 2**20


def samples(rss: list[float], fds: list[int] | None = None) -> list[dict[str, Any]]:
    """One process, one sample every 10 s, with these RSS values (MB) and fd counts."""
    counts = fds or [10] * len(rss)
    return [
        {"t": 10.0 * i, "processes": {"worker0": {"rss_bytes": int(v * MB), "fds": n}}}
        for i, (v, n) in enumerate(zip(rss, counts, strict=True))
    ]


def test_slope_is_in_megabytes_per_minute() -> None:
    assert slope([(0.0, 0.0), (60.0, 2 * MB)]) == pytest.approx(2.0)
    assert slope([(0.0, 5 * MB)]) is None


def test_memory_that_levels_off_has_stopped_growing() -> None:
    report = growth(samples([100, 110, 120, 130, 131, 131, 131, 131, 131]))
    worker = report["worker0"]
    assert worker["slope_mb_per_min_first_half"] > 30
    assert abs(worker["slope_mb_per_min_second_half"]) < 0.5
    assert worker["stopped_growing"] and report["total"]["stopped_growing"]


def test_memory_that_keeps_climbing_has_not() -> None:
    report = growth(samples([100 + 5 * i for i in range(10)], fds=list(range(10, 20))))
    worker = report["worker0"]
    assert worker["slope_mb_per_min_second_half"] == pytest.approx(30.0)
    assert not worker["stopped_growing"] and not report["total"]["stopped_growing"]
    assert (worker["fds_first_half_max"], worker["fds_last"]) == (14, 19)


def test_a_slowing_but_still_climbing_process_has_not_stopped() -> None:
    # Growth that slows to a quarter is still growth (the old rule passed this).
    report = growth(samples([100, 120, 140, 160, 180, 185, 190, 195, 200]))
    assert report["worker0"]["slope_mb_per_min_second_half"] == pytest.approx(30.0)
    assert not report["worker0"]["stopped_growing"]


def test_lost_items_are_tallied_by_reason() -> None:
    lost = {"a": {"reason": "flood_missed"}, "b": {"reason": "partitioned"}}
    lost["c"] = {"reason": "flood_missed"}
    assert lost_by_reason(lost) == {"flood_missed": 2, "partitioned": 1}


def test_sockets_are_told_apart_by_kind_and_state() -> None:
    listener = socket.create_server(("127.0.0.1", 0))
    dialled = socket.create_connection(listener.getsockname())
    accepted, _ = listener.accept()
    try:
        kinds = socket_breakdown([os.getpid()])[os.getpid()]
        assert kinds.get("listen", 0) >= 1
        assert kinds.get("in.established", 0) >= 1  # accepted: its local port listens
        assert kinds.get("out_live.established", 0) >= 1  # dialled to a live listener
        listener.close()  # the listener goes (a crashed peer's): the dialled end is dead
        accepted.close()
        kinds = socket_breakdown([os.getpid()])[os.getpid()]
        assert not any(k.startswith("out_live") for k in kinds)
        assert any(k.startswith(("out_dead.", "orphan.")) for k in kinds)
    finally:
        for sock in (listener, dialled, accepted):
            sock.close()


@attrs.frozen
class _Member:
    id: str
    address: Address


@attrs.frozen
class _Crawl:
    members: tuple[_Member, ...]
    edges: tuple[tuple[str, str], ...]

    def graph(self) -> nx.Graph:
        graph = nx.Graph()
        graph.add_nodes_from(m.id for m in self.members)
        graph.add_edges_from(self.edges)
        return graph


def _soak_seeing(crawl: _Crawl) -> Soak:
    return cast(Soak, types.SimpleNamespace(latest=crawl))


def test_a_confirmed_miss_is_explained_by_the_crawled_graph() -> None:
    addresses = [Address("127.0.0.1", 7000 + n) for n in range(14)]
    members = tuple(_Member(f"p{n}", a) for n, a in enumerate(addresses))
    path = tuple((f"p{n}", f"p{n + 1}") for n in range(12))  # p0 - p1 - ... - p12; p13 alone
    soak = _soak_seeing(_Crawl(members, path))
    origin = addresses[0]
    assert why_lost(soak, origin, [addresses[3]]) == "flood_missed"  # 3 hops: in reach
    assert why_lost(soak, origin, [addresses[12]]) == "beyond_ttl"  # 12 hops > TTL 10
    assert why_lost(soak, origin, [addresses[13]]) == "holder_isolated"
    cut = _soak_seeing(_Crawl(members, (*path[:5], *path[6:], ("p12", "p13"))))
    assert why_lost(cut, origin, [addresses[13]]) == "partitioned"  # linked, elsewhere
