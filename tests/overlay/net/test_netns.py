"""Several hosts: the bootstrap and peers in three network namespaces, over a bridge.

Namespaces ``ovl<pid>h1..h3`` each hold one address, 10.77.0.1-3/24 (a range used
nowhere else), on one end of a veth pair whose other end is a port of a bridge in a
fourth namespace, ``ovl<pid>br``: three hosts on one switch, and the host's own network
untouched.  The bootstrap runs in h1, three ``overlay peer --super-peers`` processes in
each namespace, bound to that namespace's address, on quick timers (the membership's and
the super layer's, by flags).  The test process
stays in the root namespace, where those addresses do not exist; it reads the peers'
stats through a probe process in each namespace (:mod:`tests.overlay.net.netns_probe`) and
drives publish, search and fetch with the ``overlay`` commands run by ``ip netns exec``.

It shows, in order: join across namespaces (one component of all nine), a flood search
from h3 finding an item published in h2, and fetching it; h3's bridge port taken down
(the overlay splits: h3's peers lose every neighbor outside h3) and brought up again
(one component again); a super peer's process killed and its weak peers, some in other
namespaces, re-attached to live super peers.
Every wait is on a condition read from the peers, under a deadline; the seconds each
step took are printed (``pytest -s``), never asserted.

A second test runs ``overlay swarm`` on each host instead (h1's with the bootstrap, h2's
and h3's joining it with ``--bootstrap --host``): one overlay of every swarm's peers,
super peers serving weak peers on other hosts, ``overlay members`` listing every host,
and a walk from h3 finding an item only h2's swarm holds (docs/multi-host.md).

Needs root and ``ip netns`` (iproute2, which ``.ci/run`` installs when it can): skipped
elsewhere, saying which is missing.
Namespaces and processes are removed in teardown whatever happens.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import attrs
import networkx as nx
import pytest
import trio

from overlay.core.config import SuperConfig
from overlay.core.peer import PeerSnapshot
from overlay.net.swarm.setup import seeded_items
from overlay.protocol.identity import Address, PeerId
from overlay.protocol.messages import StatsReply
from overlay.protocol.wire import FrameDecoder
from overlay.sim.topology import graph_of
from overlay.tools.crawl import snapshot_from
from search.store import content_key
from tests.conftest import OVERLAY, REPO, Child, interrupt, spawn_overlay

pytestmark = pytest.mark.netns

HOSTS = 3
PEERS_PER_HOST = 3
SUBNET = "10.77.0"
BOOTSTRAP_PORT = 7000
FAST_TIMERS = (
    *("--heartbeat-period", "0.5", "--failure-timeout", "2.0"),
    # The super layer's defaults are for real hosts: founding after 6-9 s, then a coin
    # of 1/21 every 6 s, and 10 s to replace a killed super peer, most of the test's
    # time, spent on nothing it checks.  Scaled down as the membership's are.
    *("--super-period", "0.5", "--super-failure-timeout", "2.0"),
    *("--super-seed-wait", "1.5", "--super-min-uptime", "1.0"),
)


def capacity(host: int, index: int) -> int:
    """Everyone may be elected (each eligible peer tosses a coin of 1/21 to found the
    super layer every 1.5 s on the test's timers, so the more of them, the sooner), in
    distinct capacities: the successors the super peers name are then well defined."""
    return 1 + 10 * host + index


SUPER_DEADLINE = 150.0
"""Founding is a coin toss (see :func:`capacity`): nine peers found within 15 s about 97%
of the time; this bound is for the unlucky rest (and a loaded machine), never a timing
claim."""
POLL = 0.3
JOIN_DEADLINE = 60.0
FAILOVER_DEADLINE = 40.0
SPLIT_DEADLINE = 20.0
MERGE_DEADLINE = 90.0
IP_TIMEOUT = 10.0
PROBE_TIMEOUT = 15.0
MAX_PROBE_LINE = 16 << 20


# ---------------------------------------------------------------------- namespaces


def _ip(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["ip", *args], capture_output=True, text=True, timeout=IP_TIMEOUT, check=False
    )


def netns_unavailable() -> str | None:
    """Why this machine cannot run the test, or None when it can."""
    if not sys.platform.startswith("linux"):
        return "network namespaces are Linux only"
    if shutil.which("ip") is None:
        return "iproute2's `ip` is not installed (the project installs nothing by hand)"
    if os.geteuid() != 0:
        return "creating network namespaces needs root"
    name = f"ovl{os.getpid()}probe"
    made = _ip("netns", "add", name)
    if made.returncode != 0:
        return f"`ip netns add` does not work here: {made.stderr.strip()}"
    _ip("netns", "del", name)
    return None


@attrs.frozen
class Network:
    """Three host namespaces on a bridge in a fourth."""

    tag: str

    @property
    def bridge(self) -> str:
        return f"{self.tag}br"

    def host(self, index: int) -> str:
        return f"{self.tag}h{index}"

    @staticmethod
    def address(index: int) -> str:
        return f"{SUBNET}.{index}"

    @staticmethod
    def port(index: int) -> str:
        """Host ``index``'s port on the bridge (in the bridge's namespace)."""
        return f"port{index}"

    def names(self) -> list[str]:
        return [self.bridge, *(self.host(i) for i in range(1, HOSTS + 1))]

    def run(self, *args: str) -> None:
        done = _ip(*args)
        if done.returncode != 0:
            raise RuntimeError(f"ip {' '.join(args)}: {done.stderr.strip()}")

    def build(self) -> None:
        for name in self.names():
            self.run("netns", "add", name)
        self.run("-n", self.bridge, "link", "add", "br0", "type", "bridge")
        self.run("-n", self.bridge, "link", "set", "br0", "up")
        for i in range(1, HOSTS + 1):
            host = self.host(i)
            self.run(
                "-n",
                self.bridge,
                "link",
                "add",
                self.port(i),
                "type",
                "veth",
                "peer",
                "name",
                "eth0",
                "netns",
                host,
            )
            self.run("-n", self.bridge, "link", "set", self.port(i), "master", "br0")
            self.run("-n", self.bridge, "link", "set", self.port(i), "up")
            self.run("-n", host, "link", "set", "lo", "up")
            self.run("-n", host, "addr", "add", f"{self.address(i)}/24", "dev", "eth0")
            self.run("-n", host, "link", "set", "eth0", "up")

    def set_link(self, index: int, state: str) -> None:
        """Pull (``down``) or plug back (``up``) host ``index``'s cable at the switch."""
        self.run("-n", self.bridge, "link", "set", self.port(index), state)

    def destroy(self) -> None:
        """Kill whatever still runs inside, then delete every namespace (and its links)."""
        for name in self.names():
            pids = _ip("netns", "pids", name).stdout.split()
            for pid in pids:
                with contextlib.suppress(ProcessLookupError, ValueError):
                    os.kill(int(pid), signal.SIGKILL)
            _ip("netns", "del", name)


@pytest.fixture
def network() -> Iterator[Network]:
    why = netns_unavailable()
    if why is not None:
        pytest.skip(why)
    net = Network(f"ovl{os.getpid()}")
    try:
        net.build()
        yield net
    finally:
        net.destroy()


# ---------------------------------------------------------------------- processes


def in_namespace(name: str) -> list[str]:
    return ["ip", "netns", "exec", name]


@attrs.define
class Probe:
    """A :mod:`tests.overlay.net.netns_probe` process inside one namespace."""

    process: trio.Process
    buffer: bytes = b""

    @classmethod
    async def start(cls, namespace: str) -> Probe:
        process = await trio.lowlevel.open_process(
            [*in_namespace(namespace), sys.executable, "-m", "tests.overlay.net.netns_probe"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            cwd=str(REPO),
        )
        return cls(process)

    async def stats(self, addresses: Sequence[Address]) -> list[StatsReply]:
        """The stats replies of those of ``addresses`` that answered."""
        assert self.process.stdin is not None and self.process.stdout is not None
        await self.process.stdin.send_all(json.dumps([str(a) for a in addresses]).encode() + b"\n")
        with trio.fail_after(PROBE_TIMEOUT):
            while b"\n" not in self.buffer:
                data = await self.process.stdout.receive_some(65536)
                if not data:
                    raise AssertionError("the probe exited")
                self.buffer += data
                assert len(self.buffer) < MAX_PROBE_LINE
        line, self.buffer = self.buffer.split(b"\n", 1)
        replies: list[StatsReply] = []
        for frame in json.loads(line)["frames"]:
            for message in FrameDecoder().feed(bytes.fromhex(frame)):
                assert isinstance(message, StatsReply)
                replies.append(message)
        return replies


@attrs.define
class Overlay:
    """What runs in the namespaces: the bootstrap, the peers by host, a probe per host."""

    net: Network
    children: list[Child] = attrs.field(factory=list)
    peers: dict[int, list[Child]] = attrs.field(factory=dict)
    probes: dict[int, Probe] = attrs.field(factory=dict)
    dead: set[PeerId] = attrs.field(factory=set)

    def host_of(self) -> dict[PeerId, int]:
        return {child.id: host for host, kids in self.peers.items() for child in kids}

    def alive(self) -> set[PeerId]:
        return set(self.host_of()) - self.dead

    async def survey(self) -> list[PeerSnapshot]:
        """Every live peer's stats, each read from inside its own namespace (so a host
        cut off from the others is still seen)."""
        shots: list[PeerSnapshot] = []
        for host, kids in self.peers.items():
            addresses = [c.address for c in kids if c.id not in self.dead]
            shots += [snapshot_from(r) for r in await self.probes[host].stats(addresses)]
        return shots

    async def until(
        self, what: str, condition: Callable[[list[PeerSnapshot]], bool], deadline: float
    ) -> tuple[float, list[PeerSnapshot]]:
        """Poll until ``condition`` holds; the seconds it took and the last survey."""
        began = time.monotonic()
        shots: list[PeerSnapshot] = []
        with trio.move_on_after(deadline):
            for _ in range(int(deadline / POLL) + 1):  # bounded, and the deadline too
                shots = await self.survey()
                if condition(shots):
                    return time.monotonic() - began, shots
                await trio.sleep(POLL)
        raise AssertionError(f"{what}: not within {deadline:g} s; last survey {describe(shots)}")

    async def stop_all(self) -> None:
        with trio.CancelScope(shield=True):
            for probe in self.probes.values():
                if probe.process.stdin is not None:
                    await probe.process.stdin.aclose()
            for child in reversed(self.children):
                if child.process.returncode is None:
                    child.process.send_signal(signal.SIGTERM)
            for process in [
                *(c.process for c in self.children),
                *(p.process for p in self.probes.values()),
            ]:
                with trio.move_on_after(5.0):
                    await process.wait()
                if process.returncode is None:
                    process.kill()
                    await process.wait()


def describe(shots: Sequence[PeerSnapshot]) -> str:
    return "; ".join(
        f"{s.id[:8]}@{s.address} {s.role} deg {len(s.neighbors)} "
        f"supers {[p[:8] for p in s.super_peers]} weak {len(s.weak_peers)}"
        for s in shots
    )


def one_component(alive: set[PeerId]) -> Callable[[list[PeerSnapshot]], bool]:
    def holds(shots: list[PeerSnapshot]) -> bool:
        if {s.id for s in shots} != alive or not all(s.joined for s in shots):
            return False
        graph = graph_of(shots, alive)
        return graph.number_of_nodes() == len(alive) and bool(nx.is_connected(graph))

    return holds


async def run_command(namespace: str, args: Sequence[str]) -> str:
    """``overlay ARGS`` in ``namespace``; its standard output (it must succeed)."""
    done = await trio.run_process(
        [*in_namespace(namespace), *OVERLAY, *args],
        capture_stdout=True,
        capture_stderr=True,
        cwd=str(REPO),
        check=False,
    )
    assert done.returncode == 0, f"overlay {' '.join(args)}: {done.stderr.decode()[-500:]}"
    return done.stdout.decode()


# ---------------------------------------------------------------------- the test


async def test_join_search_failover_and_merge_across_three_namespaces(
    network: Network, tmp_path: Path
) -> None:
    overlay = Overlay(network)
    timings: dict[str, float] = {}
    try:
        bootstrap = await spawn_overlay(
            ["bootstrap", "--host", network.address(1), "--port", str(BOOTSTRAP_PORT)],
            prefix=in_namespace(network.host(1)),
        )
        overlay.children.append(bootstrap)
        began = time.monotonic()

        async def start_peer(host: int, index: int) -> None:
            child = await spawn_overlay(
                [
                    "peer",
                    "--bootstrap",
                    str(bootstrap.address),
                    "--host",
                    network.address(host),
                    "--super-peers",
                    "--capacity",
                    str(capacity(host, index)),
                    "--seed",
                    str(10 * host + index),
                    *FAST_TIMERS,
                ],
                prefix=in_namespace(network.host(host)),
            )
            overlay.children.append(child)
            overlay.peers[host][index] = child
            assert child.address.host == network.address(host)

        async def start_probe(host: int) -> None:
            overlay.probes[host] = await Probe.start(network.host(host))

        placeholder = bootstrap  # replaced by each peer as it starts
        async with trio.open_nursery() as starting:  # concurrently: startup is most of the cost
            for host in range(1, HOSTS + 1):
                overlay.peers[host] = [placeholder] * PEERS_PER_HOST
                starting.start_soon(start_probe, host)
                for index in range(PEERS_PER_HOST):
                    starting.start_soon(start_peer, host, index)
        timings["start"] = time.monotonic() - began
        host_of = overlay.host_of()

        # Join: one component of all nine, with links between namespaces.
        timings["join"], shots = await overlay.until(
            "join", one_component(overlay.alive()), JOIN_DEADLINE
        )
        crossing = [(a, b) for a, b in graph_of(shots).edges if host_of[a] != host_of[b]]
        assert crossing, "one component of three namespaces needs links between them"

        # Search: an item published in h2 is found by a flood from h3, and fetched there.
        value = f"published in {network.host(2)}\n"
        key = (
            await run_command(
                network.host(2),
                [
                    "publish",
                    "--via",
                    str(overlay.peers[2][1].address),
                    "--text",
                    value,
                    "--name",
                    "netns item",
                ],
            )
        ).strip()
        via3 = str(overlay.peers[3][1].address)
        found = json.loads(
            await run_command(
                network.host(3), ["search", "--via", via3, "--mode", "flood", key, "--json"]
            )
        )
        assert found["success"]
        assert {hit["holder"]["address"] for hit in found["hits"]} == {
            str(overlay.peers[2][1].address)
        }
        out = tmp_path / "fetched"
        await run_command(network.host(3), ["fetch", "--via", via3, key, "-o", str(out)])
        assert out.read_text() == value

        # Partition: pull h3's cable; its peers lose every neighbor outside h3.  Plug it
        # back: one component again.
        cut = {p for p in overlay.alive() if host_of[p] == 3}

        def split(s: list[PeerSnapshot]) -> bool:
            return len(s) == len(overlay.alive()) and all(
                (x.id in cut) == (n in cut) for x in s for n in x.neighbors if n not in overlay.dead
            )

        network.set_link(3, "down")
        timings["split"], _ = await overlay.until("split", split, SPLIT_DEADLINE)
        network.set_link(3, "up")
        timings["merge"], shots = await overlay.until(
            "merge", one_component(overlay.alive()), MERGE_DEADLINE
        )
        assert any((host_of[a] == 3) != (host_of[b] == 3) for a, b in graph_of(shots).edges)

        # Super-peer failover: once the layer is founded (a coin toss, see capacity()), kill
        # the super peer serving the most weak peers, some in another namespace; they
        # re-attach to live super peers.
        def serving_across(s: list[PeerSnapshot]) -> list[PeerSnapshot]:
            """Super peers with weak peers in another namespace than their own."""
            return [
                x
                for x in s
                if x.role == "super" and any(host_of[w] != host_of[x.id] for w in x.weak_peers)
            ]

        def every_weak_homed(s: list[PeerSnapshot], wanted: int = 1) -> bool:
            """Every weak peer attached to ``wanted`` live super peers (or all there are)."""
            supers = {x.id for x in s if x.role == "super"}
            enough = min(wanted, len(supers))
            return len(s) == len(overlay.alive()) and all(
                len(supers & set(x.super_peers)) >= max(1, enough) for x in s if x.role == "weak"
            )

        _, shots = await overlay.until(
            "super layer",
            lambda s: bool(serving_across(s)) and every_weak_homed(s),
            SUPER_DEADLINE,
        )
        timings["super layer"] = time.monotonic() - began  # founding counts from the start
        chosen = max(serving_across(shots), key=lambda x: len(x.weak_peers))
        victim = next(c for kids in overlay.peers.values() for c in kids if c.id == chosen.id)
        homed = {s.id for s in shots if victim.id in s.super_peers}
        victim.process.send_signal(signal.SIGKILL)
        await victim.process.wait()
        overlay.dead.add(victim.id)

        def rehomed(s: list[PeerSnapshot]) -> bool:
            """Nobody names the victim, and every weak peer has its k super peers again."""
            return every_weak_homed(s, SuperConfig().k) and not any(
                victim.id in x.super_peers for x in s
            )

        timings["super failover"], shots = await overlay.until(
            "failover", rehomed, FAILOVER_DEADLINE
        )
        supers = {x.id for x in shots if x.role == "super"}
        assert homed and all(
            x.id in supers or set(x.super_peers) & supers for x in shots if x.id in homed
        )

        print(
            "netns: seconds to "
            + ", ".join(f"{name} {seconds:.1f}" for name, seconds in timings.items())
        )
    finally:
        await overlay.stop_all()


# ---------------------------------------------------------------------- swarms across hosts

SWARM_PEERS = 6
SWARM_ITEMS = 2


async def start_swarm(network: Network, host: int) -> trio.Process:
    """``overlay swarm`` on host ``host``: h1's starts the bootstrap, the others join it;
    each with its own --seed (its own items).  It runs until SIGINT."""
    where = ["--host", network.address(host)]
    if host == 1:
        where += ["--port", str(BOOTSTRAP_PORT)]
    else:
        where += ["--bootstrap", f"{network.address(1)}:{BOOTSTRAP_PORT}"]
    command = [
        *in_namespace(network.host(host)),
        *OVERLAY,
        "swarm",
        *where,
        *("--peers", str(SWARM_PEERS), "--processes", "1", "--seed", str(host)),
        *("--items", str(SWARM_ITEMS), "--duration", "0", "--no-searches", "--json"),
        *FAST_TIMERS,
    ]
    process = await trio.lowlevel.open_process(
        command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, cwd=str(REPO)
    )
    assert process.stderr is not None
    err = b""
    with trio.fail_after(JOIN_DEADLINE):
        while b"\npeers " not in err:  # the where-to-connect lines: its peers are up
            chunk = await process.stderr.receive_some(65536)
            assert chunk, err.decode()[-2000:]
            err += chunk
    return process


async def test_swarms_on_three_hosts_make_one_overlay_with_super_peers_across_them(
    network: Network,
) -> None:
    """h1 runs the bootstrap and a swarm; h2 and h3 join theirs to it with
    ``overlay swarm --bootstrap --host``: one component of every peer, super peers serving
    weak peers on other hosts, ``overlay members`` listing the peers of every host, and
    a search from h3 finding an item only h2's swarm holds."""
    processes: list[trio.Process] = []
    probe: Probe | None = None
    try:
        processes.append(await start_swarm(network, 1))
        async with trio.open_nursery() as starting:

            async def start(host: int) -> None:
                processes.append(await start_swarm(network, host))

            for host in (2, 3):
                starting.start_soon(start, host)
        probe = await Probe.start(network.host(1))
        bootstrap = f"{network.address(1)}:{BOOTSTRAP_PORT}"
        everyone = HOSTS * SWARM_PEERS

        def host_of(address: Address) -> int:
            return int(address.host.rsplit(".", 1)[1])

        began = time.monotonic()
        shots: list[PeerSnapshot] = []
        members: list[dict[str, object]] = []
        for _ in range(int(SUPER_DEADLINE / POLL) + 1):
            assert time.monotonic() - began < SUPER_DEADLINE, describe(shots)
            members = json.loads(
                await run_command(network.host(1), ["members", "--bootstrap", bootstrap, "--json"])
            )
            addresses = [Address.parse(str(m["address"])) for m in members]
            shots = [snapshot_from(r) for r in await probe.stats(addresses)]
            where = {s.id: host_of(s.address) for s in shots}
            graph = graph_of(shots)
            supers = {s.id for s in shots if s.role == "super"}
            across = [
                s
                for s in shots
                if s.role == "weak"
                and any(where[p] != where[s.id] for p in s.super_peers if p in supers)
            ]
            if (
                len(shots) == everyone
                and all(s.joined for s in shots)
                and nx.is_connected(graph)
                and supers
                and all(len(set(s.super_peers) & supers) >= 1 for s in shots if s.role == "weak")
                and across
            ):
                break
            await trio.sleep(POLL)
        assert {host_of(Address.parse(str(m["address"]))) for m in members} == {1, 2, 3}
        assert all(m["status"] == "alive" for m in members)

        key = content_key(seeded_items(SWARM_ITEMS, 2)[0][0])  # held in h2's swarm only
        via = next(s.address for s in shots if host_of(s.address) == 3)
        found = json.loads(
            await run_command(
                network.host(3), ["search", "--via", str(via), "--mode", "walk", key, "--json"]
            )
        )
        assert found["success"]
        assert {host_of(Address.parse(h["holder"]["address"])) for h in found["hits"]} == {2}
        assert found["messages"]["total"] >= found["messages_at_origin"]["total"] > 0
        took = time.monotonic() - began
        print(f"netns swarms: one overlay, super peers across hosts, in {took:.1f} s")
    finally:
        with trio.CancelScope(shield=True):
            if probe is not None and probe.process.stdin is not None:
                await probe.process.stdin.aclose()
            async with trio.open_nursery() as stopping:  # together: each leaves gracefully
                for process in processes:
                    stopping.start_soon(interrupt, process, 30.0)
                if probe is not None:
                    stopping.start_soon(interrupt, probe.process, 5.0)
