"""Small graphs of peer cores for the search tests."""

from __future__ import annotations

import random

import networkx as nx

from overlay.core.config import PeerConfig
from overlay.core.peer import Peer
from overlay.protocol.effects import Effect, Send
from overlay.protocol.identity import Address, Contact
from overlay.protocol.messages import Message
from overlay.sim.static import StaticNetwork
from tests.keys import KEYRING, model_key


def wired_peers(
    graph: nx.Graph, seed: int = 0, config: PeerConfig | None = None
) -> dict[int, Peer]:
    """Peer cores with fixed neighbors, not in any runtime: tests hand them messages."""
    rng = random.Random(seed)
    peers = {
        node: Peer(
            Address("127.0.0.1", 8000 + node),
            config or PeerConfig(),
            random.Random(rng.getrandbits(64)),
            signer=model_key(rng.getrandbits(64)),
            verifier=KEYRING,
        )
        for node in sorted(graph.nodes)
    }
    for node, peer in peers.items():
        peer.membership.fix_neighbors([peers[n].contact for n in sorted(graph.adj[node])], 0.0)
    return peers


def sends(effects: list[Effect]) -> list[Send]:
    return [effect for effect in effects if type(effect) is Send]


def sent_messages(effects: list[Effect], kind: type[Message]) -> list[tuple[Address, Message]]:
    return [(e.to, e.message) for e in sends(effects) if type(e.message) is kind]


def random_connected_graph(n: int, p: float, seed: int) -> nx.Graph:
    """A connected G(n, p) graph (the largest component of one, relabelled 0..m-1)."""
    graph = nx.gnp_random_graph(n, p, seed=seed)
    largest = max(nx.connected_components(graph), key=lambda c: (len(c), min(c)))
    return nx.convert_node_labels_to_integers(graph.subgraph(largest).copy(), ordering="sorted")


def contact_of(net: StaticNetwork, node: int) -> Contact:
    return net.peer_of[node].contact
