import time
import trio
import networkx as nx
from tests.overlay import test_search_tcp as T

async def test_start(nursery: trio.Nursery) -> None:
    t = time.monotonic()
    T.SWARM
    async def watch():
        while True:
            await trio.sleep(2)
            s = swarm_holder[0] if swarm_holder else None
            print(time.monotonic()-t, "peers", len(peers), flush=True)
            if peers:
                g = nx.Graph()
                for p in peers:
                    g.add_node(p.id)
                    g.add_edges_from((p.id, o) for o in p.membership.active)
                print(" deg0", sum(1 for p in peers if not p.membership.active), "comp", nx.number_connected_components(g), "boot", len(server[0].cache) if server else None, flush=True)
    swarm_holder = []
    peers = []
    server = []
    nursery.start_soon(watch)
    orig = T.Swarm.connected
    def connected(self):
        if not peers:
            peers.extend(self.peers); server.append(self.bootstrap)
        return orig(self)
    T.Swarm.connected = connected
    s = await T.start_swarm(nursery, 200)
    print("connected after", time.monotonic() - t)
    assert False
