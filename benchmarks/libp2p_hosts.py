"""A worker of benchmarks/libp2p_compare.py: py-libp2p hosts in one process.

Run by the comparison under the interpreter of its own venv (where ``libp2p==0.8.1`` is
installed; never this project's), so it imports nothing of this repository.  Each host
is ``libp2p.new_host`` with an Ed25519 identity, Noise as its only security transport
and yamux as its only muxer, listening on 127.0.0.1, with a ``Pubsub`` over ``FloodSub``
subscribed to one topic.

It speaks JSON lines: on standard output ``{"hosts": [multiaddr, ...]}`` once its hosts
listen (with ``"rss_before_hosts"``, its resident memory after the imports), then one
answer per command; on standard input the commands

* ``{"connect": [[host, multiaddr], ...]}``: each pair is one dial from its host
  ``host``, then the dialler's floodsub stream to it; answered
  ``{"connected": n, "failed": m, "seconds": s}``;
* ``{"ensure": true}``: every host opens a floodsub stream to each peer it is connected
  to and has none with; ``{"ensured": [count per host], "seconds": s}``;
* ``{"peers": true}``: ``{"pubsub_peers": [count per host]}``;
* ``{"publish": [host, data]}``: host ``host`` publishes ``data``;
  answered ``{"published": data, "at": monotonic}``;
* ``{"report": true}``: ``{"received": {data: [monotonic, ...]}, "rss": bytes}``, the
  first reception of each message by each of its hosts;
* end of input: stop.

Times are ``time.monotonic()``: on Linux one clock for every process of the machine.
"""

from __future__ import annotations

import json
import sys
import time
from typing import Any

import multiaddr  # type: ignore[import-not-found, unused-ignore]
import trio
from libp2p import new_host  # type: ignore[import-not-found, unused-ignore]
from libp2p.crypto import ed25519, x25519  # type: ignore[import-not-found, unused-ignore]
from libp2p.custom_types import TProtocol  # type: ignore[import-not-found, unused-ignore]
from libp2p.peer.peerinfo import info_from_p2p_addr  # type: ignore[import-not-found, unused-ignore]
from libp2p.pubsub.floodsub import FloodSub  # type: ignore[import-not-found, unused-ignore]
from libp2p.pubsub.pubsub import Pubsub  # type: ignore[import-not-found, unused-ignore]
from libp2p.security.noise.transport import (  # type: ignore[import-not-found, unused-ignore]
    PROTOCOL_ID as NOISE_PROTOCOL_ID,
)
from libp2p.security.noise.transport import (  # type: ignore[import-not-found, unused-ignore]
    Transport as NoiseTransport,
)
from libp2p.stream_muxer.yamux.yamux import (  # type: ignore[import-not-found, unused-ignore]
    PROTOCOL_ID as YAMUX_PROTOCOL_ID,
)
from libp2p.stream_muxer.yamux.yamux import Yamux  # type: ignore[import-not-found, unused-ignore]
from libp2p.tools.anyio_service import (  # type: ignore[import-not-found, unused-ignore]
    background_trio_service,
)

TOPIC = "overlay-compare"
DIALS_AT_ONCE = 16
"""Dials (and stream openings) one worker runs at once: 100 hosts dialling 300 peers all
at once left most floodsub streams unopened on a loaded machine."""
STREAM_TIMEOUT = 60.0
FLOODSUB = TProtocol("/floodsub/1.0.0")


def rss_bytes() -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


def say(record: dict[str, Any]) -> None:
    print(json.dumps(record), flush=True)


class Hosts:
    """This worker's hosts, their pubsubs, and what each has received."""

    def __init__(self) -> None:
        self.hosts: list[Any] = []
        self.pubsubs: list[Any] = []
        self.received: dict[str, list[float]] = {}

    def make(self) -> tuple[Any, Any]:
        key_pair = ed25519.create_new_key_pair()
        noise = NoiseTransport(key_pair, noise_privkey=x25519.create_new_key_pair().private_key)
        host = new_host(
            key_pair=key_pair,
            sec_opt={NOISE_PROTOCOL_ID: noise},
            muxer_opt={TProtocol(YAMUX_PROTOCOL_ID): Yamux},
        )
        pubsub = Pubsub(host, FloodSub(protocols=[FLOODSUB]))
        self.hosts.append(host)
        self.pubsubs.append(pubsub)
        return host, pubsub

    async def listen(self, count: int, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        """Start ``count`` hosts, each with its pubsub, subscribed; run until cancelled."""
        async with trio.open_nursery() as nursery:
            for _ in range(count):
                await nursery.start(self._one)
            task_status.started()

    async def _one(self, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        host, pubsub = self.make()
        address = multiaddr.Multiaddr("/ip4/127.0.0.1/tcp/0")
        async with host.run(listen_addrs=[address]), background_trio_service(pubsub):
            await pubsub.wait_until_ready()
            subscription = await pubsub.subscribe(TOPIC)
            task_status.started()
            while True:
                message = await subscription.get()
                data = bytes(message.data).decode()
                self.received.setdefault(data, []).append(time.monotonic())

    def addresses(self) -> list[str]:
        out = []
        for host in self.hosts:
            listen = next(a for a in host.get_addrs() if "/tcp/" in str(a))
            address = str(listen)
            if "/p2p/" not in address:
                address += f"/p2p/{host.get_id().to_string()}"
            out.append(address)
        return out

    async def connect(self, dials: list[list[Any]]) -> dict[str, Any]:
        """Dial, at most :data:`DIALS_AT_ONCE` at a time, and open the dialler's floodsub
        stream to each peer reached (with the library's own retry)."""
        began = time.monotonic()
        done = {"connected": 0, "failed": 0}
        limiter = trio.CapacityLimiter(DIALS_AT_ONCE)

        async def dial(index: int, address: str) -> None:
            info = info_from_p2p_addr(multiaddr.Multiaddr(address))
            async with limiter:
                try:
                    await self.hosts[index].connect(info)
                    await self.pubsubs[index].ensure_peer_stream(info.peer_id, STREAM_TIMEOUT)
                    done["connected"] += 1
                except Exception as error:  # any failure of the library's is a failed dial
                    done["failed"] += 1
                    print(f"dial failed: {error!r}"[:300], file=sys.stderr, flush=True)

        async with trio.open_nursery() as nursery:
            for index, address in dials:
                nursery.start_soon(dial, int(index), str(address))
        return {**done, "seconds": time.monotonic() - began}

    async def ensure_streams(self) -> dict[str, Any]:
        """Every host opens its floodsub stream to every peer it is connected to (the
        dialled side's stream is opened by the library when the connection arrives, and
        under load that can fail for good)."""
        began = time.monotonic()
        limiter = trio.CapacityLimiter(DIALS_AT_ONCE)

        async def ensure(pubsub: Any, peer: Any) -> None:
            async with limiter:
                await pubsub.ensure_peer_stream(peer, STREAM_TIMEOUT)

        async with trio.open_nursery() as nursery:
            for host, pubsub in zip(self.hosts, self.pubsubs, strict=True):
                for peer in host.get_connected_peers():
                    if peer not in pubsub.peers:
                        nursery.start_soon(ensure, pubsub, peer)
        return {
            "ensured": [len(p.peers) for p in self.pubsubs],
            "seconds": time.monotonic() - began,
        }


async def main() -> None:
    count = int(sys.argv[1])
    hosts = Hosts()
    rss_before = rss_bytes()
    stdin = trio.lowlevel.FdStream(0)
    async with trio.open_nursery() as nursery:
        await nursery.start(hosts.listen, count)
        say({"hosts": hosts.addresses(), "rss_before_hosts": rss_before})
        pending = b""
        while chunk := await stdin.receive_some(65536):
            pending += chunk
            *lines, pending = pending.split(b"\n")
            for line in lines:
                command = json.loads(line)
                if "connect" in command:
                    say(await hosts.connect(command["connect"]))
                elif "ensure" in command:
                    say(await hosts.ensure_streams())
                elif "peers" in command:
                    say({"pubsub_peers": [len(p.peers) for p in hosts.pubsubs]})
                elif "publish" in command:
                    index, data = command["publish"]
                    at = time.monotonic()
                    await hosts.pubsubs[int(index)].publish(TOPIC, str(data).encode())
                    say({"published": data, "at": at})
                elif "report" in command:
                    say({"received": hosts.received, "rss": rss_bytes()})
        nursery.cancel_scope.cancel()


if __name__ == "__main__":
    trio.run(main)
