"""The four figures of the flood-vs-walk benchmark, drawn from its rows (matplotlib, Agg).

Drawn from the same rows that go to JSON and CSV, never from separate runs, so a
figure cannot disagree with the table beside it.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # files only: the benchmark runs headless (CI, ssh)

import matplotlib.pyplot as plt

Row = dict[str, Any]
WALK_COLORS = {1: "tab:olive", 16: "tab:green", 32: "tab:blue", 64: "tab:purple"}
PLACEMENT_COLORS = {"uniform": "tab:blue", "proportional": "tab:red", "square-root": "tab:green"}


def _topologies(rows: Iterable[Row]) -> list[str]:
    names: list[str] = []
    for row in rows:
        if row["topology"] not in names:
            names.append(row["topology"])
    return names


def _share(rows: Sequence[Row]) -> str:
    """The main table's replication ratio as text (1% in the full run, 5% with --quick)."""
    return f"{100 * rows[0]['replication_ratio']:g}%" if rows else "?"


def _grid(count: int) -> tuple[Any, list[Any]]:
    columns = 2 if count > 1 else 1
    lines = (count + columns - 1) // columns
    figure, axes = plt.subplots(lines, columns, figsize=(6.4 * columns, 4.6 * lines), squeeze=False)
    flat = [ax for line in axes for ax in line]
    for ax in flat[count:]:
        ax.set_visible(False)
    return figure, flat[:count]


def _save(figure: Any, path: Path) -> Path:
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path


def flood_at_stop(rows: Sequence[Row], topology: str, loss: float) -> Row | None:
    """The largest-TTL flood measured (the first reaching the stop success rate)."""
    floods = [
        r
        for r in rows
        if r["table"] == "main"
        and r["topology"] == topology
        and r["loss"] == loss
        and r["mode"] == "flood"
    ]
    return max(floods, key=lambda r: r["ttl"], default=None)


def _pick(
    rows: Sequence[Row], topology: str, loss: float, mode: str, walkers: int | None = None
) -> Row | None:
    for row in rows:
        if (
            row["table"] == "main"
            and row["topology"] == topology
            and row["loss"] == loss
            and row["mode"] == mode
            and (walkers is None or row["walkers"] == walkers)
        ):
            return row
    return None


def cost_vs_success(rows: Sequence[Row], path: Path) -> Path:
    """Messages per query against success rate, by mode: the trade-off at a glance."""
    main = [r for r in rows if r["table"] == "main"]
    names = _topologies(main)
    figure, axes = _grid(len(names))
    for ax, name in zip(axes, names, strict=True):
        for loss, style in ((0.0, "-"), (0.1, ":")):
            mine = [r for r in main if r["topology"] == name and r["loss"] == loss]
            if not mine:
                continue
            hollow = loss > 0
            floods = sorted((r for r in mine if r["mode"] == "flood"), key=lambda r: r["ttl"])
            ax.plot(
                [r["search_messages_per_query"] for r in floods],
                [r["success_rate"] for r in floods],
                style,
                marker="o",
                color="tab:red",
                mfc="white" if hollow else "tab:red",
                label=f"flood TTL 1..{floods[-1]['ttl']}, loss {loss:g}" if floods else None,
            )
            for r in floods:
                ax.annotate(
                    str(r["ttl"]),
                    (r["search_messages_per_query"], r["success_rate"]),
                    textcoords="offset points",
                    xytext=(3, -10),
                    fontsize=7,
                )
            for r in mine:
                if r["mode"] == "ring":
                    ax.plot(
                        r["search_messages_per_query"],
                        r["success_rate"],
                        "s",
                        color="tab:orange",
                        mfc="white" if hollow else "tab:orange",
                        label=f"expanding ring, loss {loss:g}",
                    )
                elif r["mode"] == "walk":
                    color = WALK_COLORS.get(r["walkers"], "black")
                    ax.plot(
                        r["search_messages_per_query"],
                        r["success_rate"],
                        "^",
                        color=color,
                        mfc="white" if hollow else color,
                        label=f"walk k={r['walkers']}, loss {loss:g}",
                    )
        ax.set_xscale("log")
        ax.set_xlabel("search messages per query (query + check)")
        ax.set_ylabel("success rate")
        nodes = next(r["nodes"] for r in main if r["topology"] == name)
        ax.set_title(f"{name} ({nodes} peers), {_share(main)} uniform replication")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=6, loc="lower right")
    return _save(figure, path)


def messages_vs_ratio(rows: Sequence[Row], path: Path) -> Path:
    """Search messages against the average replication ratio, log-log, by placement."""
    sweep = [r for r in rows if r["table"] == "replication"]
    names = _topologies(sweep)
    figure, axes = _grid(max(1, len(names)))
    for ax, name in zip(axes, names, strict=False):
        mine = [r for r in sweep if r["topology"] == name]
        ratios = sorted({r["replication_ratio"] for r in mine})
        for strategy, color in PLACEMENT_COLORS.items():
            line = sorted(
                (r for r in mine if r["placement"] == strategy),
                key=lambda r: r["replication_ratio"],
            )
            if line:
                ax.plot(
                    [r["replication_ratio"] for r in line],
                    [r["search_messages_per_query"] for r in line],
                    "o-",
                    color=color,
                    label=f"{strategy} ({line[0]['mode_name']})",
                )
        if ratios:
            ax.plot(ratios, [1 / r for r in ratios], "k--", lw=0.8, label="1/r probes")
            ax.plot(ratios, [2.5 / r for r in ratios], "k:", lw=0.8, label="2.5/r")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("average replication ratio r")
        ax.set_ylabel("search messages per query")
        ax.set_title(f"{name}: Zipf(1.2) queries over 100 items")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=7)
    return _save(figure, path)


def _cdf(row: Row) -> tuple[list[float], list[float]]:
    histogram = {int(k): v for k, v in row["hops_histogram"].items()}
    xs: list[float] = []
    ys: list[float] = []
    total = 0
    for hops in sorted(histogram):
        total += histogram[hops]
        xs.append(hops)
        ys.append(total / row["queries"])
    return xs, ys


def hops_cdf(rows: Sequence[Row], path: Path) -> Path:
    """CDF of hops to the first hit over all queries (it ends at the success rate)."""
    main = [r for r in rows if r["table"] == "main" and r["loss"] == 0.0]
    names = _topologies(main)
    figure, axes = _grid(len(names))
    for ax, name in zip(axes, names, strict=True):
        picks: list[tuple[Row | None, str]] = [
            (flood_at_stop(main, name, 0.0), "tab:red"),
            (_pick(main, name, 0.0, "ring"), "tab:orange"),
        ]
        picks += [(_pick(main, name, 0.0, "walk", k), c) for k, c in WALK_COLORS.items()]
        for row, color in picks:
            if row is None:
                continue
            xs, ys = _cdf(row)
            # The ring finds what the flood finds, at the same distance: dash it so
            # that the flood's line stays visible underneath.
            ax.step(
                xs,
                ys,
                where="post",
                color=color,
                label=row["mode_name"],
                linestyle="--" if row["mode"] == "ring" else "-",
            )
        ax.set_xscale("symlog", linthresh=1)
        ax.set_ylim(0, 1.02)
        ax.set_xlabel("hops to the first hit")
        ax.set_ylabel("fraction of queries")
        ax.set_title(f"{name}, {_share(main)} uniform, loss 0")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=7, loc="lower right")
    return _save(figure, path)


def load_distribution(rows: Sequence[Row], path: Path) -> Path:
    """Messages each peer handles per query, peers sorted from most to least loaded."""
    main = [r for r in rows if r["table"] == "main" and r["loss"] == 0.0]
    names = _topologies(main)
    figure, axes = _grid(len(names))
    for ax, name in zip(axes, names, strict=True):
        picks = [
            flood_at_stop(main, name, 0.0),
            _pick(main, name, 0.0, "ring"),
            _pick(main, name, 0.0, "walk", 32),
        ]
        for row, color in zip(picks, ("tab:red", "tab:orange", "tab:blue"), strict=True):
            if row is None or not row["load_percentiles"]:
                continue
            values = list(reversed(row["load_percentiles"]))
            ax.plot(range(len(values)), values, color=color, label=row["mode_name"])
        ax.set_yscale("symlog", linthresh=1e-3)
        ax.set_xlabel("peers, most loaded first (percent of peers)")
        ax.set_ylabel("messages handled per query (mean over queries)")
        ax.set_title(f"{name}, {_share(main)} uniform, loss 0")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=7)
    return _save(figure, path)


def draw_all(rows: Sequence[Row], out: Path) -> list[Path]:
    return [
        cost_vs_success(rows, out / "flood_vs_walk_cost_vs_success.png"),
        messages_vs_ratio(rows, out / "flood_vs_walk_messages_vs_replication.png"),
        hops_cdf(rows, out / "flood_vs_walk_hops_cdf.png"),
        load_distribution(rows, out / "flood_vs_walk_peer_load.png"),
    ]
