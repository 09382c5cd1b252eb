"""A stats probe that lives inside one network namespace, for tests/overlay/net/test_netns.py.

The test process sits in the root namespace and cannot reach the peers' addresses;
this process, started with ``ip netns exec NS python -m tests.overlay.net.netns_probe``,
can.  Each line on its standard input is a JSON list of ``HOST:PORT``; it asks each of
them for its stats (:func:`overlay.tools.swarm.collect_stats`, every request under a
timeout) and answers with one JSON line: the replies as hex-encoded wire frames (so the
test decodes and validates them with the protocol's own decoder) and how many failed.
End of input ends it.
"""

from __future__ import annotations

import json
import sys

import trio

from overlay.protocol.identity import Address
from overlay.protocol.wire import encode_frame
from overlay.tools.swarm import collect_stats

TIMEOUT = 1.0
MAX_LINES = 1_000_000


def main() -> int:
    for _, line in zip(range(MAX_LINES), sys.stdin, strict=False):
        try:
            addresses = [Address.parse(text) for text in json.loads(line)]
        except (ValueError, TypeError):
            print(json.dumps({"error": "expected a JSON list of HOST:PORT"}), flush=True)
            continue
        replies, failed = trio.run(collect_stats, addresses, TIMEOUT)
        frames = [encode_frame(reply).hex() for reply in replies]
        print(json.dumps({"frames": frames, "failed": failed}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
