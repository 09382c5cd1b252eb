"""Frames drawn from fixed snapshots into rich's recording console, read back as text."""

from __future__ import annotations

import io
from pathlib import Path

import attrs
import networkx as nx
import pytest
from rich.console import Console

from overlay.core.config import PeerConfig, SuperConfig
from overlay.core.peer import PeerSnapshot
from overlay.protocol.effects import Notify
from overlay.protocol.identity import Address, PeerId, Role
from overlay.sim.scenario import Scenario, build
from overlay.sim.static import read_topology
from overlay.tools.cli_view import replay_sim
from overlay.tools.view import (
    BRAILLE_BASE,
    SUPER_GLYPH,
    WEAK_GLYPH,
    FeedEvent,
    Frame,
    TopologyDrawing,
    ViewModel,
    diff_events,
    drawn_graph,
    events_from_notifies,
    export_graph,
    render,
    sim_frames,
    write_edge_list,
)


@attrs.frozen
class Shot(PeerSnapshot):
    """A snapshot with the super-peer fields, whether or not PeerSnapshot has them yet."""

    super_peers: tuple[PeerId, ...] = ()
    weak_peers: tuple[PeerId, ...] = ()
    index_size: int = 0


def pid(letter: str) -> PeerId:
    return letter * 32


def shot(
    letter: str,
    neighbors: str,
    *,
    role: Role = "weak",
    port: int = 0,
    counters: dict[str, int] | None = None,
    supers: str = "",
    weaks: str = "",
    index: int = 0,
) -> Shot:
    return Shot(
        id=pid(letter),
        address=Address("127.0.0.1", 9000 + (port or ord(letter))),
        role=role,
        joined=bool(neighbors),
        neighbors=tuple(pid(n) for n in neighbors),
        passive=(),
        known_hosts=0,
        counters=counters or {},
        super_peers=tuple(pid(s) for s in supers),
        weak_peers=tuple(pid(w) for w in weaks),
        index_size=index,
    )


# a super, b c d weak in one component (a-b, a-c, b-c, a-d); e-f apart.
FIXED = (
    shot("a", "bcd", role="super", weaks="bcd", index=42),
    shot("b", "ac", supers="a"),
    shot("c", "ab", supers="a"),
    shot("d", "a", supers="a"),
    shot("e", "f"),
    shot("f", "e"),
)


def text_of(renderable: object, width: int = 140) -> str:
    console = Console(record=True, width=width, file=io.StringIO())
    console.print(renderable)
    return console.export_text()


def test_header_counts_roles_and_components() -> None:
    frame = ViewModel().update(FIXED, 0.0)
    shown = text_of(render(frame, height=12))
    assert "peers 6" in shown
    assert "super 1" in shown
    assert "weak 5" in shown
    assert "components 2" in shown
    assert "largest 4 (67%)" in shown


def test_super_peer_table_shows_its_weak_peers_and_index() -> None:
    frame = ViewModel().update(FIXED, 0.0)
    shown = text_of(render(frame, height=12))
    row = next(line for line in shown.splitlines() if "aaaaaa" in line and "42" in line)
    cells = [c.strip() for c in row.split("│") if c.strip()]
    assert cells[-5:] == ["aaaaaa", "3", "42", "3", "-"]


def test_roles_are_told_apart_in_the_drawing() -> None:
    frame = ViewModel().update(FIXED, 0.0)
    lines = text_of(render(frame, height=12)).splitlines()
    assert any(f"{SUPER_GLYPH}aaaaaa" in line for line in lines)
    assert any(f"{WEAK_GLYPH}bbbbbb" in line for line in lines)
    assert not any(f"{WEAK_GLYPH}aaaaaa" in line for line in lines)


def drawing_lines(edges: list[tuple[str, str]]) -> list[str]:
    graph = nx.Graph()
    for letter in "abc":
        graph.add_node(pid(letter), role="weak", size=1)
    graph.add_edges_from((pid(x), pid(y)) for x, y in edges)
    # a top left, b top right, c bottom left
    positions = {pid("a"): (0.0, 1.0), pid("b"): (1.0, 1.0), pid("c"): (0.0, 0.0)}
    drawing = TopologyDrawing(graph, positions, height=8)
    return [line.plain for line in drawing.lines(40)]


def is_dot(char: str) -> bool:
    return BRAILLE_BASE < ord(char) <= BRAILLE_BASE + 0xFF


def test_an_edge_between_two_named_peers_is_drawn() -> None:
    lines = drawing_lines([("a", "b")])
    top = lines[0]
    a_at, b_at = top.index("aaaaaa") - 1, top.index("bbbbbb") - 1
    assert top[a_at] == top[b_at] == WEAK_GLYPH
    between = top[a_at + 1 + 6 : b_at]  # past a's label, up to b's glyph
    assert between and all(is_dot(ch) for ch in between)
    # No a-c link: the column from a down to c is empty.
    assert lines[-1][0] == WEAK_GLYPH and "cccccc" in lines[-1]
    assert all(line[0] == " " for line in lines[1:-1])


def test_the_missing_edge_would_show() -> None:
    lines = drawing_lines([("a", "b"), ("a", "c")])
    assert all(is_dot(line[0]) for line in lines[1:-1])


def test_feed_shows_joins_crashes_leaves_and_promotions() -> None:
    model = ViewModel()
    model.update(FIXED, 0.0)
    later = (
        shot("a", "bd", role="super", weaks="bd"),
        shot("b", "ad", supers="a"),
        shot("d", "abg", role="super"),  # promoted
        shot("f", "g"),
        shot("g", "df"),  # new
    )
    # c crashed (still registered, unreachable); e left (gone from the listing)
    frame = model.update(later, 2.0, unreachable=[pid("c")])
    kinds = {(e.kind, e.peer) for e in frame.events}
    assert ("crashed", pid("c")) in kinds
    assert ("left", pid("e")) in kinds
    assert ("promoted", pid("d")) in kinds
    assert ("joined", pid("g")) in kinds
    shown = text_of(render(frame, height=12))
    feed = shown[shown.index("events") :]
    assert any("crashed" in line and "cccccc" in line for line in feed.splitlines())
    assert any("promoted" in line and "dddddd" in line for line in feed.splitlines())


def test_messages_per_second_and_load_from_counter_growth() -> None:
    model = ViewModel()
    before = [shot(x, "ab".replace(x, ""), counters={"received.Heartbeat": 10}) for x in "ab"]
    after = [shot(x, "ab".replace(x, ""), counters={"received.Heartbeat": 30}) for x in "ab"]
    model.update(before, 10.0)
    frame = model.update(after, 12.0)
    assert frame.figures.messages_per_second == pytest.approx(20.0)  # 2 peers x 20 / 2 s
    assert frame.loads[pid("a")] == pytest.approx(10.0)
    assert "msgs/s 20" in text_of(render(frame, height=8))


def test_search_counters_become_feed_events() -> None:
    before = [shot("a", "b", counters={"search.succeeded": 1}), shot("b", "a")]
    after = [
        shot("a", "b", counters={"search.succeeded": 2, "received.WalkStep": 3}),
        shot("b", "a", counters={"received.WalkStep": 5}),
    ]
    events = diff_events(before, after, 1.0)
    assert [(e.kind, e.peer) for e in events] == [("search", pid("a"))]
    assert events[0].detail.startswith("walk: 1 done, 1 found")
    assert "WalkStep +8" in events[0].detail


def test_notifications_become_feed_events() -> None:
    notes = [
        (1.0, pid("a"), Notify("suspect", pid("b"))),
        (1.5, pid("a"), Notify("neighbor_down", pid("b"))),
        (2.0, pid("c"), Notify("search_done", None, "flood 1234 success=True hits=2")),
    ]
    events = events_from_notifies(notes)
    assert [e.kind for e in events] == ["suspect", "search"]
    assert events[1].detail == "flood 1234 success=True hits=2"


def big_overlay(count: int, supers: int) -> list[Shot]:
    graph = nx.random_regular_graph(4, count, seed=3)
    ids = [f"{i:032x}" for i in range(count)]
    out = []
    for i in range(count):
        role: Role = "super" if i < supers else "weak"
        attach = () if role == "super" or not supers else (ids[i % supers],)
        neighbors = tuple(ids[j] for j in graph.neighbors(i))
        out.append(
            Shot(
                id=ids[i],
                address=Address("127.0.0.1", 10000 + i),
                role=role,
                joined=True,
                neighbors=neighbors,
                passive=(),
                known_hosts=0,
                super_peers=attach,
            )
        )
    return out


def test_above_the_limit_the_super_peer_layer_is_drawn_with_cluster_sizes() -> None:
    shots = big_overlay(200, 4)
    frame = ViewModel().update(shots, 0.0)
    shown = text_of(render(frame, height=16))
    assert "super-peer layer: 4 clusters of 200 peers" in shown
    assert shown.count(SUPER_GLYPH) >= 4
    assert "·50" in shown  # 200 peers, four clusters of 50 (each super peer counts itself)
    layer = drawn_graph(_graph(shots), shots)
    assert sorted(layer.nodes[n]["size"] for n in layer.nodes) == [50, 50, 50, 50]


def _graph(shots: list[Shot]) -> nx.Graph:
    graph = nx.Graph()
    for s in shots:
        graph.add_node(s.id, role=s.role)
        graph.add_edges_from((s.id, n) for n in s.neighbors)
    return graph


def test_above_the_limit_without_super_peers_a_sample_is_drawn() -> None:
    frame = ViewModel().update(big_overlay(200, 0), 0.0)
    shown = text_of(render(frame, height=16))
    assert "sample: 150 of 200 peers" in shown


def test_the_simulator_feeds_the_same_renderer() -> None:
    sim = build(Scenario(peers=20, seed=4, duration=10))
    frames = list(sim_frames(sim, 6.0, 3.0))
    assert [f.clock for f in frames] == [0.0, 3.0, 6.0]
    last = frames[-1]
    assert last.figures.peers == 20
    assert last.figures.components == 1
    assert sum(1 for e in last.events if e.kind == "joined") == 20
    assert "peers 20" in text_of(render(last, height=10))


def test_export_graphml_and_png(tmp_path: Path) -> None:
    graph = nx.Graph()
    graph.add_node(pid("a"), role="super", address="127.0.0.1:1")
    graph.add_node(pid("b"), role="weak", address="127.0.0.1:2")
    graph.add_edge(pid("a"), pid("b"))
    export_graph(graph, tmp_path / "g.graphml")
    back = nx.read_graphml(tmp_path / "g.graphml")
    assert set(back.edges) in ({(pid("a"), pid("b"))}, {(pid("b"), pid("a"))})
    assert back.nodes[pid("a")]["role"] == "super"
    export_graph(graph, tmp_path / "g.png")
    assert (tmp_path / "g.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with pytest.raises(ValueError, match=r"\.graphml, \.edgelist or \.png"):
        export_graph(graph, tmp_path / "g.txt")


def test_export_edge_list_replays_in_the_static_simulator(tmp_path: Path) -> None:
    graph = nx.Graph()
    for name, port in (("a", 1), ("b", 2), ("c", 3), ("d", 4)):
        graph.add_node(pid(name), role="weak", address=f"127.0.0.1:{port}")
    graph.add_edges_from([(pid("a"), pid("b")), (pid("b"), pid("c")), (pid("c"), pid("a"))])
    export_graph(graph, tmp_path / "g.edgelist")
    back = read_topology(tmp_path / "g.edgelist")
    order = sorted(graph.nodes)  # numbered in sorted order by default
    assert set(back.edges) == {
        tuple(sorted((order.index(u), order.index(v)))) for u, v in graph.edges
    }
    # Given numbers (a swarm's start order) win; "# node" lines say who is who.
    numbers = write_edge_list(graph, tmp_path / "s.edgelist", {pid("c"): 0, pid("b"): 7})
    assert numbers[pid("c")] == 0 and numbers[pid("b")] == 7
    assert sorted(numbers.values()) == [0, 7, 8, 9]
    text = (tmp_path / "s.edgelist").read_text()
    assert f"# node 0 {pid('c')} 127.0.0.1:3" in text
    assert set(read_topology(tmp_path / "s.edgelist").edges) == {
        tuple(sorted((numbers[u], numbers[v]))) for u, v in graph.edges
    }
    assert not list(tmp_path.glob("*.partial"))


def test_a_frame_renders_with_no_peers() -> None:
    empty = ViewModel().update([], 0.0)
    frame = Frame(snapshots=(), figures=empty.figures, events=(FeedEvent(0.0, "crawl"),))
    shown = text_of(render(frame, height=6))
    assert "peers 0" in shown
    assert "none yet" in shown


def test_a_simulator_run_replays_into_the_view() -> None:
    sim = build(Scenario(peers=12, seed=2, duration=10))
    out = io.StringIO()
    console = Console(file=out, width=140, force_terminal=False)
    last = replay_sim(sim, until=4.0, console=console, step=2.0, once=True)
    assert last is not None and last.clock == 4.0
    assert sim.now == pytest.approx(4.0)
    shown = out.getvalue()
    assert shown.count("peers 12") == 1  # one frame printed: the last
    assert "overlay sim" in shown


def test_header_path_length_and_clustering_agree_with_networkx() -> None:
    # A 4-cycle with one chord: small enough for the exact figures.
    shots = [shot("a", "bdc"), shot("b", "ac"), shot("c", "bda"), shot("d", "ca")]
    frame = ViewModel().update(shots, 0.0)
    graph = nx.Graph([(pid(x), pid(y)) for x, y in ("ab", "bc", "cd", "da", "ac")])
    assert frame.figures.avg_path_length == pytest.approx(nx.average_shortest_path_length(graph))
    assert frame.figures.clustering == pytest.approx(nx.average_clustering(graph))
    assert frame.figures.components == 1 and frame.figures.largest == 4


def test_promotions_in_a_simulated_super_peer_overlay_reach_the_feed() -> None:
    config = PeerConfig(supers=SuperConfig(enabled=True))
    sim = build(Scenario(peers=60, seed=3, duration=40, peer_config=config))
    last = list(sim_frames(sim, 30.0, 10.0))[-1]
    assert last.figures.super_peers > 0
    assert last.figures.super_peers + last.figures.weak_peers == 60
    promoted = {e.peer for e in last.events if e.kind == "promoted"}
    joined_super = {e.peer for e in last.events if e.kind == "joined" and e.detail[:5] == "super"}
    supers = {s.id for s in last.snapshots if s.role == "super"}
    assert promoted  # the election ran between two frames, and the diff saw it
    # Every super peer now was seen becoming one (or was one at its first frame).
    assert supers <= promoted | joined_super
    shown = text_of(render(last, height=12))
    assert "promoted" in shown
    assert any(short_id in shown for short_id in (s[:6] for s in supers))
