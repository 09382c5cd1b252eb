"""Hits carry their holder's own signature: nobody can name an honest peer as a holder.

Each test tries one lie and shows it changes nothing: the hit never reaches the
origin's results, and whoever sent it is charged with proof of lying.
"""

from __future__ import annotations

from typing import Any

import attrs
import networkx as nx
from hypothesis import given, settings
from hypothesis import strategies as st

from overlay.core.peer import Peer
from overlay.protocol.messages import Query, QueryHit
from overlay.protocol.proofs import entry_statement
from search.store import Criteria, content_key
from tests.keys import model_key, signed_entry, signed_hit
from tests.search.helpers import sent_messages, wired_peers

KEY = content_key(b"the honest holder's item")


def chain() -> tuple[Peer, Peer, Peer]:
    """origin - relay - holder, with the holder holding KEY."""
    peers = wired_peers(nx.path_graph(3), seed=7)
    origin, relay, holder = peers[0], peers[1], peers[2]
    holder.search.publish(b"the honest holder's item", "honest item")
    return origin, relay, holder


def flood(origin: Peer) -> str:
    search_id, _ = origin.search.start_flood(Criteria(key=KEY), 0.0, ttl=3)
    return search_id


def hits_of(origin: Peer, search_id: str) -> list[str]:
    origin.handle_timer(100.0)
    return [hit.holder.id for hit in origin.search.results[search_id].hits]


def assert_charged(origin: Peer, liar: Peer) -> None:
    counters = origin.snapshot().counters
    assert counters["search.hit.forged"] >= 1
    assert counters["standing.forged_content"] >= 1
    assert counters["standing.distrusted"] >= 1, "one forged hit is proof: the liar is out"
    assert origin.standing.faults_of(liar.id) == 0.0  # a clean slate, on the blacklist


def test_a_genuine_hit_passes_every_check() -> None:
    origin, relay, holder = chain()
    search_id = flood(origin)
    hit = signed_hit(holder.signer, search_id, KEY, "honest item", 24, holder.contact, 2)
    origin.receive(hit, relay.contact, 0.1)
    assert hits_of(origin, search_id) == [holder.id]
    assert "search.hit.forged" not in origin.snapshot().counters


def test_a_hit_naming_an_honest_holder_without_its_signature_never_reaches_the_results() -> None:
    origin, relay, holder = chain()
    search_id = flood(origin)
    # The relay names the honest holder, signing with its own key (it has no other).
    forged = signed_hit(relay.signer, search_id, KEY, "honest item", 24, holder.contact, 2)
    origin.receive(forged, relay.contact, 0.1)
    # Or it copies the holder's public key, and signs with its own anyway.
    copied = QueryHit(
        search_id,
        KEY,
        "honest item",
        24,
        holder.contact,
        2,
        holder.signer.public_key,
        relay.signer.sign(b"anything"),
    )
    origin.receive(copied, relay.contact, 0.2)
    assert hits_of(origin, search_id) == []
    assert_charged(origin, relay)


def test_a_signature_for_another_query_does_not_verify() -> None:
    origin, relay, holder = chain()
    earlier = signed_hit(holder.signer, "e" * 32, KEY, "honest item", 24, holder.contact, 2)
    search_id = flood(origin)
    replayed = QueryHit(
        search_id,
        KEY,
        earlier.name,
        earlier.size,
        earlier.holder,
        earlier.hops,
        earlier.holder_key,
        earlier.signature,
    )
    origin.receive(replayed, relay.contact, 0.1)
    assert hits_of(origin, search_id) == []
    assert_charged(origin, relay)


def test_a_relay_checks_before_passing_a_hit_on_so_the_liar_and_not_the_relay_is_charged() -> None:
    origin, relay, holder = chain()
    search_id, effects = origin.search.start_flood(Criteria(key=KEY), 0.0, ttl=3)
    [(_to, query)] = sent_messages(effects, Query)
    relay.receive(query, origin.contact, 0.05)  # the relay learns the reverse path
    liar = holder  # the peer beyond the relay lies about someone else
    other = wired_peers(nx.path_graph(1), seed=99)[0]
    forged = signed_hit(liar.signer, search_id, KEY, "x", 1, other.contact, 2)
    assert sent_messages(relay.receive(forged, liar.contact, 0.1), QueryHit) == []
    assert relay.snapshot().counters["search.hit.forged"] == 1
    assert relay.snapshot().counters["standing.distrusted"] == 1
    genuine = signed_hit(other.signer, search_id, KEY, "x", 1, other.contact, 2)
    relayed = sent_messages(relay.receive(genuine, holder.contact, 0.3), QueryHit)
    assert relayed == [(origin.address, genuine)]


def test_a_super_peer_can_repeat_a_weak_peers_entry_but_never_invent_one() -> None:
    origin, relay, holder = chain()
    search_id = flood(origin)
    entry = signed_entry(holder.signer, holder.id, KEY, "honest item", 24, epoch=5)

    def answer(name: str | None, epoch: int, signature: bytes, key: bytes) -> QueryHit:
        return QueryHit(search_id, KEY, name, 24, holder.contact, 1, key, signature, epoch)

    public = holder.signer.public_key
    invented = answer("honest item", 5, relay.signer.sign(b"x"), relay.signer.public_key)
    renamed = answer("something else", 5, entry.signature, public)  # entry altered
    re_dated = answer("honest item", 6, entry.signature, public)
    origin.receive(invented, relay.contact, 0.1)
    origin.receive(renamed, relay.contact, 0.1)
    origin.receive(re_dated, relay.contact, 0.1)
    assert origin.search.ctx.active[search_id].hits == []
    passed_on = answer("honest item", 5, entry.signature, public)
    origin.receive(passed_on, relay.contact, 0.2)
    assert hits_of(origin, search_id) == [holder.id]


@settings(max_examples=60, deadline=None)
@given(
    flip=st.integers(0, 63),
    field=st.sampled_from(["query_id", "key", "name", "size", "signature"]),
)
def test_any_change_to_a_signed_hit_breaks_it(flip: int, field: str) -> None:
    origin, _relay, holder = chain()
    search_id = flood(origin)
    good = signed_hit(holder.signer, search_id, KEY, "honest item", 24, holder.contact, 2)
    assert origin.search.ctx.genuine(good)
    changes: dict[str, dict[str, Any]] = {
        "query_id": {"query_id": f"{flip:032x}"},
        "key": {"key": content_key(bytes([flip]))},
        "name": {"name": f"honest item {flip}"},
        "size": {"size": 25 + flip},
        "signature": {
            "signature": bytes(b ^ (1 if i == flip else 0) for i, b in enumerate(good.signature))
        },
    }
    changed = changes[field]
    assert not origin.search.ctx.genuine(attrs.evolve(good, **changed))


def test_an_entry_statement_names_its_holder() -> None:
    """An entry signed for one holder cannot be passed off as another's."""
    key = model_key("someone")
    a = entry_statement("a" * 32, KEY, None, 1, 0)
    b = entry_statement("b" * 32, KEY, None, 1, 0)
    assert a != b and key.sign(a) != key.sign(b)
