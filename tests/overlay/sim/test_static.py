"""Static-topology mode: a graph from a file, fixed neighbors, and the ``query`` command."""

from __future__ import annotations

import json
from pathlib import Path

import networkx as nx
import pytest

from overlay.sim.static import StaticNetwork, TopologyError, read_placement, read_topology
from overlay.tools.cli import main
from tests.conftest import REPO

GNUTELLA = REPO / "benchmarks" / "data" / "gnutella" / "p2p-Gnutella08.txt.gz"


@pytest.fixture
def files(tmp_path: Path) -> tuple[Path, Path]:
    topology = tmp_path / "ring.edgelist"
    topology.write_text(
        "# a cycle of 12 with a chord, as networkx writes it\n"
        + "".join(f"{i}\t{(i + 1) % 12}\n" for i in range(12))
        + "3 3\n0 6 {}\n"
    )
    placement = tmp_path / "placement.json"
    placement.write_text(json.dumps({"free software manual": [6, 9], "other": [1]}))
    return topology, placement


def test_read_topology_is_undirected_without_self_loops(files: tuple[Path, Path]) -> None:
    graph = read_topology(files[0])
    assert sorted(graph.nodes) == list(range(12))
    assert graph.number_of_edges() == 13
    assert graph.has_edge(6, 0) and not graph.has_edge(3, 3)


def test_static_peers_keep_exactly_the_graph_and_send_nothing_on_their_own(
    files: tuple[Path, Path],
) -> None:
    net = StaticNetwork.from_files(*files, seed=1)
    for node, peer in net.peer_of.items():
        neighbors = {net.node_of_id[p] for p in peer.membership.active}
        assert neighbors == set(net.graph.adj[node])
    net.sim.run_until(60.0)
    assert sum(net.sim.sent.values()) == 0  # no heartbeats, shuffles or joins


def test_gnutella_crawl_flood_reaches_the_ball() -> None:
    graph = read_topology(GNUTELLA)
    assert graph.number_of_nodes() == 6301
    net = StaticNetwork(graph, seed=1)
    outcome = net.query(0, "flood", keywords="nothing", ttl=3)
    ball = nx.single_source_shortest_path_length(graph, 0, cutoff=3)
    assert net.outcome_json(outcome)["visited"] == sorted(ball)


def test_query_command_prints_the_outcome_as_json(
    files: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    topology, placement = files
    common = ["--topology", str(topology), "--placement", str(placement), "--source", "0", "--json"]
    assert (
        main(
            ["sim", "query", *common, "--mode", "flood", "--keywords", "Manual FREE", "--ttl", "2"]
        )
        == 0
    )
    report = json.loads(capsys.readouterr().out)
    assert report["success"] and [hit["holder"] for hit in report["hits"]] == [6]
    assert report["visited"] == [0, 1, 2, 5, 6, 7, 10, 11]
    # deg(0) = 3, then 1 and 11 forward to 1 neighbor each, 6 to 2: 3 + 1 + 1 + 2.
    assert report["messages"] == {"query": 7, "hit": 1, "check": 0, "fetch": 0, "total": 8}
    assert (
        main(
            [
                "sim",
                "query",
                *common,
                "--mode",
                "walk",
                "--key",
                "other",
                "--walkers",
                "2",
                "--check",
                "2",
                "--seed",
                "3",
                "--loss",
                "0.0",
            ]
        )
        == 0
    )
    report = json.loads(capsys.readouterr().out)
    assert report["success"] and report["hits"][0]["holder"] == 1
    assert report["visited"] == sorted(report["visited"]) and 0 in report["visited"]
    assert main(["sim", "query", *common, "--mode", "ring", "--key", "free software manual"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["rings"] == [1] and report["first_hit_hops"] == 1


def test_query_command_reports_bad_files(
    files: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    topology, _ = files
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"x": [99]}))
    args = [
        "sim",
        "query",
        "--topology",
        str(topology),
        "--placement",
        str(bad),
        "--source",
        "0",
        "--mode",
        "flood",
        "--key",
        "x",
    ]
    assert main(args) == 2
    assert "node 99 is not in the graph" in capsys.readouterr().err
    bad.write_text("[1, 2]")
    with pytest.raises(TopologyError):
        read_placement(bad)
    assert main([*args[:-2], "--keywords", "x", "--source", "42"]) == 2


def test_query_refuses_a_negative_ttl_and_fails_when_nothing_is_found(
    files: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    topology, placement = files
    common = ["sim", "query", "--topology", str(topology), "--placement", str(placement)]
    common += ["--source", "0", "--mode", "flood"]
    assert main([*common, "--key", "other", "--ttl", "-3"]) == 2
    assert capsys.readouterr().err.strip() == "overlay sim query: --ttl must be at least 1, not -3"
    # As `overlay search`: exit status 1 when nothing is found, the outcome printed all the same.
    assert main([*common, "--keywords", "nobody holds this", "--json"]) == 1
    assert json.loads(capsys.readouterr().out)["success"] is False
