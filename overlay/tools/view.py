"""The live view's pictures: snapshots (and events) in, rich renderables out.

Everything here is a pure function of its inputs, or a small record that keeps
what one refresh needs from the previous one (:class:`ViewModel`: the previous
snapshots for diffs and rates, the layout so that nodes stay where they were),
so a test can draw a frame from fixed snapshots into a recording console and
read what it shows, and the simulator can feed the same renderer as the network
does (:func:`sim_frames`).

Choices, written down:

* **Drawing.**  Nodes are placed by networkx's spring layout (Fruchterman-Reingold),
  seeded and started from the previous refresh's positions so that the picture
  moves smoothly instead of jumping; positions are scaled to the space the
  console gives the panel.  Edges are braille dots (2x4 per character cell, so
  lines are four times finer than box characters), super peers are a magenta
  ``◆``, weak peers a cyan ``●``; up to :data:`LABEL_LIMIT` nodes carry their
  short id.
* **Above** :data:`LARGE` **peers** the picture would be a solid block, so it shows
  the super-peer layer: one node per super peer, labelled with the size of its
  cluster (itself and the weak peers whose first super peer it is: with k super
  peers per weak peer, each weak peer is counted once, so the sizes add up to the
  overlay; the table's "weak" column counts every attachment), an edge where the two
  clusters are linked (a super-super link, or any link between their members).
  With no super peers yet, it shows a *sample*: the :data:`LARGE` peers nearest,
  breadth-first, to the best-connected peer, with every link among them; the
  caption says so.  A sample keeps the real local structure (degrees, triangles),
  which a condensation would hide.
* **Events** come from two sources: events the source knows for certain (the
  simulator's notifications, the swarm's own key actions) and what a diff of
  two crawls shows (joins, graceful leaves, crashes detected, promotions,
  demotions, searches from the search counters).  A peer that vanished from
  the bootstrap's listing left; one still listed but unreachable crashed.
* **Messages per second** is the growth of the peers' ``received.*`` counters
  between two refreshes over the time between them, counted only over peers
  present in both (a peer that leaves must not make the rate negative).
"""

from __future__ import annotations

import math
import random
from collections import Counter, deque
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, Final

import attrs
import networkx as nx
from rich.console import Console, ConsoleOptions, Group, RenderableType, RenderResult
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from overlay.core.peer import PeerSnapshot
from overlay.protocol.effects import Notify
from overlay.protocol.identity import PeerId
from overlay.sim.topology import average_path_length, clustering, graph_of
from overlay.tools.crawl import Crawl, Member, index_size_of, super_peers_of, weak_peers_of

LARGE: Final = 150
"""Above this many peers the drawing shows the super-peer layer (or a sample)."""
LABEL_LIMIT: Final = 40
"""Up to this many drawn nodes carry their short id."""
PATH_SOURCES: Final = 32
"""Breadth-first searches the header's average path length is estimated from (the view
must refresh every second at 1,000 peers; the final summary of a run is exact-er)."""
CLUSTERING_SAMPLE: Final = 300
"""Above this many peers the header's clustering is averaged over a sample this size
(about a thousandth of standard error on a random overlay: enough for a header)."""
FEED_SIZE: Final = 200
"""Events kept (the feed shows the newest that fit)."""
SHORT_ID: Final = 6
SUPER_ROWS: Final = 10
SIDE_WIDTH: Final = 52
"""Width of the right-hand column (tables, histogram, feed)."""
SIDE_BY_SIDE: Final = 110
"""Narrower consoles get the tables under the drawing."""
MESSAGE_PREFIX: Final = "received."
SEARCH_DONE: Final = ("search.succeeded", "search.failed")
FLOOD_KIND: Final = "received.Query"
WALK_KIND: Final = "received.WalkStep"

BRAILLE_BASE: Final = 0x2800
# Dot bits of a braille cell, by (column 0..1, row 0..3).
BRAILLE_BITS: Final = ((0x01, 0x02, 0x04, 0x40), (0x08, 0x10, 0x20, 0x80))
SUPER_GLYPH: Final = "◆"
WEAK_GLYPH: Final = "●"
SUPER_STYLE: Final = "bold magenta"
WEAK_STYLE: Final = "cyan"
EDGE_STYLE: Final = "grey50"
SUPER_EDGE_STYLE: Final = "magenta"

EVENT_STYLES: Final = {
    "joined": "green",
    "left": "yellow",
    "crashed": "bold red",
    "suspect": "red",
    "promoted": "bold magenta",
    "demoted": "magenta",
    "search": "bold cyan",
    "action": "bold white",
    "isolated": "red",
    "crawl": "dim",
}


def short(peer: str | None) -> str:
    return peer[:SHORT_ID] if peer else "-"


# ---------------------------------------------------------------------- records


@attrs.frozen
class FeedEvent:
    """One line of the event feed."""

    at: float
    """Seconds since the view started (wall clock) or simulated time."""
    kind: str
    peer: PeerId | None = None
    detail: str = ""


@attrs.frozen
class Figures:
    """The header's numbers for one frame."""

    peers: int
    super_peers: int
    weak_peers: int
    joining: int
    components: int
    largest: int
    avg_path_length: float
    clustering: float
    messages_per_second: float | None
    unreachable: int = 0
    suspect: int = 0


@attrs.frozen
class Frame:
    """Everything one refresh draws."""

    snapshots: tuple[PeerSnapshot, ...]
    figures: Figures
    events: tuple[FeedEvent, ...] = ()
    loads: Mapping[PeerId, float] = attrs.field(factory=dict)
    """Messages received per second, per peer (empty on the first frame)."""
    positions: Mapping[str, tuple[float, float]] = attrs.field(factory=dict)
    drawn: nx.Graph | None = attrs.field(default=None, eq=False)
    """What the drawing shows (see :func:`drawn_graph`); computed from the snapshots if None."""
    title: str = "overlay view"
    clock: float = 0.0
    note: str = ""
    """One line under the header (crawl time, keys, ...)."""


# ---------------------------------------------------------------------- figures


def figures_of(
    snapshots: Sequence[PeerSnapshot],
    graph: nx.Graph,
    *,
    messages_per_second: float | None = None,
    members: Sequence[Member] = (),
    seed: int = 0,
) -> Figures:
    rng = random.Random(seed)
    components = list(nx.connected_components(graph)) if graph.number_of_nodes() else []
    roles = Counter(s.role for s in snapshots)
    statuses = Counter(m.status for m in members)
    return Figures(
        peers=len(snapshots),
        super_peers=roles.get("super", 0),
        weak_peers=roles.get("weak", 0),
        joining=sum(1 for s in snapshots if not s.joined),
        components=len(components),
        largest=max((len(c) for c in components), default=0),
        avg_path_length=average_path_length(
            graph, rng, sources=PATH_SOURCES, components=components
        ),
        clustering=clustering(graph, rng, sample=CLUSTERING_SAMPLE),
        messages_per_second=messages_per_second,
        unreachable=statuses.get("unreachable", 0),
        suspect=statuses.get("suspect", 0),
    )


# ---------------------------------------------------------------------- diffs


def message_total(shot: PeerSnapshot) -> int:
    return sum(v for k, v in shot.counters.items() if k.startswith(MESSAGE_PREFIX))


def diff_events(
    before: Sequence[PeerSnapshot],
    after: Sequence[PeerSnapshot],
    at: float,
    *,
    unreachable: Iterable[PeerId] = (),
) -> list[FeedEvent]:
    """What changed between two crawls, as feed events (see the module's docstring)."""
    old = {s.id: s for s in before}
    new = {s.id: s for s in after}
    gone_unreachable = set(unreachable)
    events: list[FeedEvent] = []
    for peer, shot in new.items():
        previous = old.get(peer)
        if shot.joined and (previous is None or not previous.joined):
            events.append(
                FeedEvent(at, "joined", peer, f"{shot.role}, degree {len(shot.neighbors)}")
            )
        if previous is not None and previous.role != shot.role:
            kind = "promoted" if shot.role == "super" else "demoted"
            events.append(FeedEvent(at, kind, peer, f"{previous.role} -> {shot.role}"))
    for peer, shot in old.items():
        if peer in new:
            continue
        if peer in gone_unreachable:
            events.append(FeedEvent(at, "crashed", peer, f"{shot.role} stopped answering"))
        else:
            events.append(FeedEvent(at, "left", peer, f"{shot.role}"))
    events.extend(_search_events(old, new, at))
    return events


def _growth(
    old: Mapping[PeerId, PeerSnapshot], new: Mapping[PeerId, PeerSnapshot], key: str
) -> int:
    total = 0
    for peer, shot in new.items():
        previous = old.get(peer)
        if previous is not None:
            total += max(0, shot.counters.get(key, 0) - previous.counters.get(key, 0))
    return total


def _search_events(
    old: Mapping[PeerId, PeerSnapshot], new: Mapping[PeerId, PeerSnapshot], at: float
) -> list[FeedEvent]:
    """Searches seen in the counters: origins that finished one, and the traffic."""
    floods = _growth(old, new, FLOOD_KIND)
    walks = _growth(old, new, WALK_KIND)
    events: list[FeedEvent] = []
    for peer, shot in new.items():
        previous = old.get(peer)
        if previous is None:
            continue
        done = {k: shot.counters.get(k, 0) - previous.counters.get(k, 0) for k in SEARCH_DONE}
        finished = sum(max(0, v) for v in done.values())
        if finished:
            mode = "flood" if floods and not walks else "walk" if walks and not floods else "search"
            events.append(
                FeedEvent(
                    at,
                    "search",
                    peer,
                    f"{mode}: {finished} done, {max(0, done['search.succeeded'])} found; "
                    f"Query +{floods}, WalkStep +{walks}",
                )
            )
    if not events and (floods or walks):
        events.append(FeedEvent(at, "search", None, f"traffic: Query +{floods}, WalkStep +{walks}"))
    return events


def events_from_notifies(
    notes: Iterable[tuple[float, PeerId, Notify]], *, skip: Iterable[str] = ()
) -> list[FeedEvent]:
    """The simulator's (or a runtime's) notifications as feed events.

    Neighbor churn (``neighbor_up``/``neighbor_down``) is left out: it is most of
    the notifications and says little to a person; a peer declared dead
    (``suspect``) is what shows a crash being detected.
    """
    kinds = {
        "joined": "joined",
        "suspect": "suspect",
        "isolated": "isolated",
        "search_done": "search",
        "search_hit": "search",
    }
    skipped = set(skip)
    events: list[FeedEvent] = []
    for at, peer, note in notes:
        kind = kinds.get(note.kind)
        if kind is None or note.kind in skipped:
            continue
        if note.kind == "suspect":
            detail = f"declared {short(note.peer)} dead"
        elif note.kind == "search_hit":
            detail = f"first hit at {short(note.peer)}: {note.detail}"
        else:
            detail = note.detail
        events.append(FeedEvent(at, kind, peer, detail))
    return events


# ---------------------------------------------------------------------- the model


class ViewModel:
    """What the view remembers between refreshes: snapshots, rates, layout, events."""

    def __init__(self, *, title: str = "overlay view", seed: int = 0) -> None:
        self.title = title
        self.seed = seed
        self.events: deque[FeedEvent] = deque(maxlen=FEED_SIZE)
        self.layout = LayoutCache(seed)
        self._previous: tuple[PeerSnapshot, ...] | None = None
        self._previous_at = 0.0

    def add(self, event: FeedEvent) -> None:
        self.events.append(event)

    def update(
        self,
        snapshots: Sequence[PeerSnapshot],
        at: float,
        *,
        members: Sequence[Member] = (),
        events: Iterable[FeedEvent] = (),
        derive_events: bool = True,
        unreachable: Iterable[PeerId] | None = None,
        note: str = "",
    ) -> Frame:
        """Take one refresh's snapshots (taken at ``at`` seconds) and make its frame."""
        shots = tuple(snapshots)
        graph = graph_of(shots)
        previous = self._previous
        rate: float | None = None
        loads: dict[PeerId, float] = {}
        if previous is not None and at > self._previous_at:
            elapsed = at - self._previous_at
            old = {s.id: s for s in previous}
            grown = 0
            for shot in shots:
                before = old.get(shot.id)
                if before is not None:
                    growth = max(0, message_total(shot) - message_total(before))
                    loads[shot.id] = growth / elapsed
                    grown += growth
            rate = grown / elapsed
        if previous is None:
            self.add(FeedEvent(at, "crawl", None, f"found {len(shots)} peers"))
        elif derive_events:
            if unreachable is None:
                unreachable = [m.id for m in members if m.status != "alive" and m.id is not None]
            for event in diff_events(previous, shots, at, unreachable=unreachable):
                self.add(event)
        for event in events:
            self.add(event)
        self._previous, self._previous_at = shots, at
        drawn = drawn_graph(graph, shots)
        positions = self.layout.place(drawn)
        return Frame(
            snapshots=shots,
            figures=figures_of(
                shots, graph, messages_per_second=rate, members=members, seed=self.seed
            ),
            events=tuple(self.events),
            loads=loads,
            positions=positions,
            drawn=drawn,
            title=self.title,
            clock=at,
            note=note,
        )

    def update_from_crawl(self, result: Crawl, at: float, *, note: str = "") -> Frame:
        if result.data_age is None:
            extra = f"crawl {result.elapsed * 1000:.0f} ms"
        else:  # a rolling crawl: what matters is how old the picture is
            extra = f"data ≤ {result.data_age:.1f} s old"
        if result.bootstrap_error:
            extra += f"  [bootstrap: {result.bootstrap_error}]"
        return self.update(
            result.snapshots,
            at,
            members=result.members,
            note=f"{extra}  {note}".strip(),
        )


# ---------------------------------------------------------------------- what is drawn


def drawn_graph(graph: nx.Graph, snapshots: Sequence[PeerSnapshot]) -> nx.Graph:
    """The graph the panel draws: all of it, or above :data:`LARGE` peers the super-peer
    layer (clusters) or a breadth-first sample.  Node attributes: ``role``, ``size``
    (cluster size, 1 for a plain peer); graph attribute ``caption``."""
    if graph.number_of_nodes() <= LARGE:
        drawn = nx.Graph(graph)
        for node in drawn.nodes:
            drawn.nodes[node]["size"] = 1
        drawn.graph["caption"] = f"{graph.number_of_nodes()} peers, {graph.number_of_edges()} links"
        return drawn
    by_id = {s.id: s for s in snapshots}
    supers = sorted(n for n in graph.nodes if graph.nodes[n].get("role") == "super")
    if supers:
        return _super_layer(graph, by_id, supers)
    return _sample(graph)


def _super_layer(
    graph: nx.Graph, by_id: Mapping[PeerId, PeerSnapshot], supers: list[Any]
) -> nx.Graph:
    super_set = set(supers)
    cluster: dict[Any, Any] = {s: s for s in supers}
    for node in graph.nodes:
        if node in cluster:
            continue
        shot = by_id.get(node)
        attached = [p for p in super_peers_of(shot) if p in super_set] if shot else []
        if not attached:
            attached = sorted(p for p in graph.neighbors(node) if p in super_set)
        if attached:
            cluster[node] = attached[0]
    for s in supers:  # a super peer's own list of weak peers counts too
        for weak in weak_peers_of(by_id.get(s)):
            if weak in graph and weak not in cluster:
                cluster[weak] = s
    sizes = Counter(cluster.values())
    layer = nx.Graph()
    for s in supers:
        layer.add_node(s, role="super", size=sizes[s])
    for a, b in graph.edges:
        ca, cb = cluster.get(a), cluster.get(b)
        if ca is not None and cb is not None and ca != cb:
            layer.add_edge(ca, cb)
    unattached = graph.number_of_nodes() - len(cluster)
    layer.graph["caption"] = (
        f"super-peer layer: {len(supers)} clusters of {graph.number_of_nodes()} peers"
        + (f", {unattached} unattached" if unattached else "")
    )
    return layer


def _sample(graph: nx.Graph) -> nx.Graph:
    start = min(graph.nodes, key=lambda n: (-graph.degree(n), n))
    chosen: list[Any] = []
    for node in nx.bfs_tree(graph, start):
        chosen.append(node)
        if len(chosen) >= LARGE:
            break
    if len(chosen) < LARGE:  # other components: take their members in id order
        rest = sorted(n for n in graph.nodes if n not in set(chosen))
        chosen.extend(rest[: LARGE - len(chosen)])
    sample = nx.Graph(graph.subgraph(chosen))
    for node in sample.nodes:
        sample.nodes[node]["size"] = 1
    sample.graph["caption"] = (
        f"sample: {len(chosen)} of {graph.number_of_nodes()} peers, "
        f"breadth-first from {short(start)} (no super peers yet)"
    )
    return sample


class LayoutCache:
    """Node positions that persist across refreshes, so the picture moves, not jumps."""

    def __init__(self, seed: int = 0) -> None:
        self.seed = seed
        self.rng = random.Random(seed)
        self.positions: dict[Any, tuple[float, float]] = {}

    def place(self, graph: nx.Graph) -> dict[str, tuple[float, float]]:
        """Positions in [0, 1] x [0, 1] for every node of ``graph``."""
        if graph.number_of_nodes() == 0:
            return {}
        known = self.positions
        initial: dict[Any, tuple[float, float]] = {}
        fresh = 0
        for node in graph.nodes:
            if node in known:
                initial[node] = known[node]
                continue
            fresh += 1
            anchor = next((known[n] for n in graph.neighbors(node) if n in known), None)
            if anchor is None:
                initial[node] = (self.rng.uniform(-1, 1), self.rng.uniform(-1, 1))
            else:
                initial[node] = (
                    anchor[0] + self.rng.uniform(-0.1, 0.1),
                    anchor[1] + self.rng.uniform(-0.1, 0.1),
                )
        iterations = 50 if fresh > graph.number_of_nodes() // 2 else 12
        raw = nx.spring_layout(graph, pos=initial, iterations=iterations, seed=self.seed)
        self.positions = {n: (float(p[0]), float(p[1])) for n, p in raw.items()}
        return normalize(self.positions)


def normalize(positions: Mapping[Any, tuple[float, float]]) -> dict[Any, tuple[float, float]]:
    """Scale positions into [0, 1] x [0, 1] (a single node sits in the middle)."""
    if not positions:
        return {}
    xs = [p[0] for p in positions.values()]
    ys = [p[1] for p in positions.values()]
    low_x, high_x, low_y, high_y = min(xs), max(xs), min(ys), max(ys)
    span_x = high_x - low_x or 1.0
    span_y = high_y - low_y or 1.0
    out: dict[Any, tuple[float, float]] = {}
    for node, (x, y) in positions.items():
        out[node] = (
            (x - low_x) / span_x if high_x > low_x else 0.5,
            (y - low_y) / span_y if high_y > low_y else 0.5,
        )
    return out


# ---------------------------------------------------------------------- the drawing


class TopologyDrawing:
    """The graph drawn in braille at whatever width the console gives it."""

    def __init__(
        self,
        graph: nx.Graph,
        positions: Mapping[Any, tuple[float, float]],
        height: int,
    ) -> None:
        self.graph = graph
        self.positions = positions
        self.height = max(4, height)

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        yield from self.lines(options.max_width)

    def cell_of(self, node: Any, width: int) -> tuple[int, int]:
        """Where a node's glyph goes: (column, row)."""
        x, y = self.positions.get(node, (0.5, 0.5))
        usable = max(1, width - SHORT_ID - 6)  # room on the right for "id·size"
        return round(x * (usable - 1)), round((1.0 - y) * (self.height - 1))

    def lines(self, width: int) -> Iterator[Text]:
        width = max(8, width)
        rows = self.height
        dots = [[0] * width for _ in range(rows)]
        strong = [[False] * width for _ in range(rows)]
        cells = {node: self.cell_of(node, width) for node in self.graph.nodes}
        roles = self.graph.nodes
        for a, b in self.graph.edges:
            (ca, ra), (cb, rb) = cells[a], cells[b]
            both_super = roles[a].get("role") == "super" and roles[b].get("role") == "super"
            _line(dots, strong if both_super else None, (ca * 2, ra * 4 + 1), (cb * 2, rb * 4 + 1))
        glyphs: dict[tuple[int, int], tuple[str, str]] = {}
        labelled = self.graph.number_of_nodes() <= LABEL_LIMIT
        for node, (column, row) in sorted(cells.items(), key=lambda item: str(item[0])):
            attributes = roles[node]
            is_super = attributes.get("role") == "super"
            glyph, style = (SUPER_GLYPH, SUPER_STYLE) if is_super else (WEAK_GLYPH, WEAK_STYLE)
            glyphs[(column, row)] = (glyph, style)
            size = int(attributes.get("size", 1))
            label = ""
            if labelled:
                label = short(str(node))
            if size > 1 or (is_super and not labelled):
                label = f"{label}·{size}" if label else str(size)
            for offset, char in enumerate(label, start=1):
                spot = (column + offset, row)
                if spot[0] < width and spot not in glyphs:
                    glyphs[spot] = (char, style)
        for row in range(rows):
            text = Text(no_wrap=True, overflow="crop")
            for column in range(width):
                mark = glyphs.get((column, row))
                if mark is not None:
                    text.append(mark[0], mark[1])
                elif dots[row][column]:
                    style = SUPER_EDGE_STYLE if strong[row][column] else EDGE_STYLE
                    text.append(chr(BRAILLE_BASE + dots[row][column]), style)
                else:
                    text.append(" ")
            yield text


def _line(
    dots: list[list[int]],
    strong: list[list[bool]] | None,
    start: tuple[int, int],
    end: tuple[int, int],
) -> None:
    """Bresenham's line in braille-dot coordinates (2 per column, 4 per row)."""
    (x0, y0), (x1, y1) = start, end
    rows, width = len(dots), len(dots[0])
    dx, dy = abs(x1 - x0), -abs(y1 - y0)
    sx = 1 if x0 < x1 else -1
    sy = 1 if y0 < y1 else -1
    error = dx + dy
    for _ in range(dx - dy + 1):
        column, row = x0 >> 1, y0 >> 2
        if 0 <= row < rows and 0 <= column < width:
            dots[row][column] |= BRAILLE_BITS[x0 & 1][y0 & 3]
            if strong is not None:
                strong[row][column] = True
        if x0 == x1 and y0 == y1:
            break
        doubled = 2 * error
        if doubled >= dy:
            error += dy
            x0 += sx
        if doubled <= dx:
            error += dx
            y0 += sy


# ---------------------------------------------------------------------- panels


def header(frame: Frame) -> RenderableType:
    f = frame.figures
    rate = "-" if f.messages_per_second is None else f"{f.messages_per_second:,.0f}"
    share = f"{100 * f.largest / f.peers:.0f}%" if f.peers else "-"
    line = Text()
    for label, value, style in (
        ("peers", f"{f.peers}", "bold"),
        ("super", f"{f.super_peers}", SUPER_STYLE),
        ("weak", f"{f.weak_peers}", WEAK_STYLE),
        ("joining", f"{f.joining}", ""),
        ("unreachable", f"{f.unreachable}", "red" if f.unreachable else ""),
        ("components", f"{f.components}", "bold" if f.components <= 1 else "bold red"),
        ("largest", f"{f.largest} ({share})", ""),
        ("avg path", f"{f.avg_path_length:.2f}", ""),
        ("clustering", f"{f.clustering:.3f}", ""),
        ("msgs/s", rate, "bold"),
    ):
        line.append(f"{label} ", "dim")
        line.append(value, style)
        line.append("  ")
    subtitle = f"t={frame.clock:.1f}s"
    if frame.note:
        subtitle += f"  {frame.note}"
    return Panel(line, title=frame.title, subtitle=subtitle, subtitle_align="right")


def super_peer_table(frame: Frame) -> Table:
    table = Table(title="super peers", expand=True, title_style="bold", pad_edge=False)
    table.add_column("peer", style=SUPER_STYLE, no_wrap=True)
    table.add_column("weak", justify="right")
    table.add_column("index", justify="right")
    table.add_column("degree", justify="right")
    table.add_column("load msg/s", justify="right")
    supers = [s for s in frame.snapshots if s.role == "super"]
    if not supers:
        table.add_row("none yet", "", "", "", "")
        return table
    supers.sort(key=lambda s: (-len(weak_peers_of(s)), s.id))
    for shot in supers[:SUPER_ROWS]:
        load = frame.loads.get(shot.id)
        table.add_row(
            short(shot.id),
            str(len(weak_peers_of(shot))),
            str(index_size_of(shot)),
            str(len(shot.neighbors)),
            "-" if load is None else f"{load:,.0f}",
        )
    if len(supers) > SUPER_ROWS:
        table.add_row(f"+{len(supers) - SUPER_ROWS} more", "", "", "", "")
    return table


def degree_histogram(frame: Frame, bar_width: int = 24) -> Table:
    degrees = Counter(len(s.neighbors) for s in frame.snapshots if s.joined)
    table = Table.grid(padding=(0, 1))
    table.add_column(justify="right", style="dim")
    table.add_column()
    table.add_column(justify="right")
    if not degrees:
        table.add_row("", Text("no joined peers", "dim"), "")
        return table
    most = max(degrees.values())
    for degree in range(min(degrees), max(degrees) + 1):
        count = degrees.get(degree, 0)
        bar = "█" * (math.ceil(bar_width * count / most) if count else 0)
        table.add_row(f"deg {degree}", Text(bar, WEAK_STYLE), str(count))
    return table


def event_feed(frame: Frame, rows: int = 10) -> Table:
    table = Table(title="events", expand=True, title_style="bold", pad_edge=False, show_edge=False)
    table.add_column("t", justify="right", style="dim", no_wrap=True, width=8)
    table.add_column("event", no_wrap=True, width=9)
    table.add_column("peer", no_wrap=True, width=SHORT_ID)
    table.add_column("detail", overflow="ellipsis", no_wrap=True, ratio=1)
    for event in list(frame.events)[-rows:][::-1]:
        table.add_row(
            f"{event.at:.1f}",
            Text(event.kind, EVENT_STYLES.get(event.kind, "")),
            short(event.peer),
            event.detail,
        )
    return table


def render(
    frame: Frame, *, height: int = 24, feed_rows: int = 10, width: int | None = None
) -> RenderableType:
    """One whole frame: header, then the drawing beside the tables, then the feed.

    ``height`` is the drawing's height in rows; the caller sizes it to the terminal.
    Narrower than :data:`SIDE_BY_SIDE` columns (``width``), the tables go under the
    drawing instead of beside it, so that the drawing keeps a usable width.
    """
    drawn = frame.drawn
    if drawn is None:
        drawn = drawn_graph(graph_of(frame.snapshots), frame.snapshots)
    positions = frame.positions or normalize(
        {n: (float(p[0]), float(p[1])) for n, p in nx.spring_layout(drawn, seed=0).items()}
        if drawn.number_of_nodes() and drawn.number_of_nodes() < 500
        else {}
    )
    drawing = Panel(
        TopologyDrawing(drawn, positions, height),
        title=str(drawn.graph.get("caption", "topology")),
        subtitle=f"{SUPER_GLYPH} super  {WEAK_GLYPH} weak",
    )
    side = Group(super_peer_table(frame), Panel(degree_histogram(frame), title="degrees"))
    if width is not None and width < SIDE_BY_SIDE:
        return Group(header(frame), drawing, side, event_feed(frame, feed_rows))
    body = Table.grid(expand=True)
    body.add_column(ratio=1)
    body.add_column(width=SIDE_WIDTH)
    body.add_row(drawing, side)
    return Group(header(frame), body, event_feed(frame, feed_rows))


# ---------------------------------------------------------------------- the simulator


def sim_frames(
    sim: Any, until: float, step: float = 1.0, *, title: str = "overlay sim"
) -> Iterator[Frame]:
    """Run ``sim`` (an :class:`overlay.sim.simulator.Simulator`) to ``until``, one frame
    per ``step`` seconds of simulated time: the same renderer as the live network, fed by the
    simulator's snapshots and its notifications (``overlay sim ... --view``).

    Joins, promotions and departures come from the snapshot diff, as on the network;
    a departed peer the simulator lists as dead shows as crashed (the simulator
    records graceful leaves as dead too, so they show as crashes here).
    """
    sim.keep_events = True
    model = ViewModel(title=title, seed=getattr(sim, "seed", 0))
    seen = len(sim.events)
    now = float(sim.now)
    while True:
        notes = sim.events[seen:]
        seen = len(sim.events)
        yield model.update(
            sim.snapshots(),
            now,
            events=events_from_notifies(notes, skip=("joined",)),
            unreachable=set(getattr(sim, "dead", ())),
            note=f"simulated, step {step:g} s",
        )
        if now >= until:
            return
        now = min(until, now + step)
        sim.run_until(now)


# ---------------------------------------------------------------------- export


def write_edge_list(
    graph: nx.Graph, path: Path, numbers: Mapping[Any, int] | None = None
) -> dict[Any, int]:
    """Write ``graph`` as an edge list of integer node ids, the format the static
    simulator replays (:func:`overlay.sim.static.read_topology`), and return the numbering.

    Nodes are numbered by ``numbers`` (``overlay swarm --topology-out`` numbers peers
    in the order they started, which is how its ``--items`` plan names holders);
    nodes it leaves out, or all of them by default, follow in sorted order.  A
    ``# node N ID ADDRESS`` comment line names each node, so the file says who is
    who.  Written to a temporary file first and renamed: a reader polling the file
    never sees half of it.
    """
    numbering = dict(numbers or {})
    following = max(numbering.values(), default=-1) + 1
    for node in sorted(n for n in graph.nodes if n not in numbering):
        numbering[node] = following
        following += 1
    present = sorted((numbering[n], n) for n in graph.nodes)
    lines = [f"# {graph.number_of_nodes()} nodes, {graph.number_of_edges()} edges"]
    lines += [f"# node {i} {n} {graph.nodes[n].get('address', '')}".rstrip() for i, n in present]
    lines += sorted(
        f"{min(numbering[u], numbering[v])} {max(numbering[u], numbering[v])}"
        for u, v in graph.edges
    )
    partial = path.with_name(path.name + ".partial")
    partial.write_text("\n".join(lines) + "\n", encoding="utf-8")
    partial.replace(path)
    return numbering


def export_graph(graph: nx.Graph, path: Path) -> None:
    """Write ``graph`` as GraphML (for Gephi or networkx), an edge list of integer ids
    (for ``overlay sim query`` and the static simulator) or a PNG drawing (matplotlib).

    Above 499 nodes networkx's spring layout needs scipy, which this project does not
    depend on, so a large PNG is laid out on a circle (the GraphML is always whole).
    """
    suffix = path.suffix.lower()
    if suffix == ".edgelist":
        write_edge_list(graph, path)
        return
    if suffix == ".graphml":
        clean = nx.Graph()
        for node, data in graph.nodes(data=True):
            clean.add_node(
                node, **{k: v for k, v in data.items() if isinstance(v, str | int | float)}
            )
            clean.nodes[node]["degree"] = graph.degree(node)
        clean.add_edges_from(graph.edges)
        nx.write_graphml(clean, str(path))
        return
    if suffix != ".png":
        raise ValueError(f"cannot export to {path}: use .graphml, .edgelist or .png")
    # Imported here: matplotlib takes most of a second to import and only a PNG needs it.
    import matplotlib  # noqa: PLC0415

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415

    if graph.number_of_nodes() < 500:
        positions = nx.spring_layout(graph, seed=0)
    else:
        positions = nx.circular_layout(graph)
    roles = nx.get_node_attributes(graph, "role")
    colors = ["#c2185b" if roles.get(n) == "super" else "#0097a7" for n in graph.nodes]
    sizes = [60 if roles.get(n) == "super" else 12 for n in graph.nodes]
    figure, axes = plt.subplots(figsize=(10, 10), dpi=100)
    nx.draw_networkx_edges(graph, positions, ax=axes, width=0.3, alpha=0.4)
    nx.draw_networkx_nodes(graph, positions, ax=axes, node_color=colors, node_size=sizes)
    axes.set_axis_off()
    axes.set_title(f"{graph.number_of_nodes()} peers, {graph.number_of_edges()} links")
    figure.savefig(str(path), bbox_inches="tight")
    plt.close(figure)
