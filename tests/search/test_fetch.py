"""Fetching: the value comes from the holder and is checked against its key."""

from __future__ import annotations

import networkx as nx
import pytest

from overlay.protocol.errors import RemoteError
from overlay.protocol.messages import Fetch, FetchReply
from overlay.sim.static import StaticNetwork
from search.errors import ContentMismatch, FetchTimeout, ItemNotFound
from search.store import Item, content_key
from tests.search.helpers import sent_messages, wired_peers


def test_a_fetched_value_is_verified_against_its_key() -> None:
    net = StaticNetwork(nx.path_graph(5), seed=1, placement={"hello": [4]})
    outcome = net.query(0, "flood", keywords="hello", ttl=4, fetch=True)
    assert outcome.fetch is not None
    assert outcome.fetch.value_or_raise() == b"hello"
    assert outcome.messages["fetch"] == 2
    assert net.fetch(0, "hello", 4).value == b"hello"


def test_tampered_bytes_are_refused_with_an_error_naming_the_holder(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    net = StaticNetwork(nx.path_graph(5), seed=1, placement={"hello": [4]})
    holder = net.peer_of[4]
    key = net.resolve_key("hello")
    monkeypatch.setattr(holder.search.store, "get", lambda _key: Item(b"hell0", "hello"))
    result = net.fetch(0, "hello", 4)
    assert result.value is None
    assert isinstance(result.error, ContentMismatch)
    assert result.error.holder == holder.contact
    assert str(holder.contact) in str(result.error) and key in str(result.error)
    with pytest.raises(ContentMismatch) as raised:
        result.value_or_raise()
    assert isinstance(raised.value, RemoteError)
    assert net.peer_of[0].search.counters["search.fetch.mismatch"] == 1


def test_fetch_reply_checks_by_hand() -> None:
    peers = wired_peers(nx.path_graph(2), seed=3)
    asker, holder = peers[0], peers[1]
    key = content_key(b"real bytes")
    request_id, effects = asker.search.start_fetch(key, holder.contact, 0.0)
    ((to, fetch),) = sent_messages(effects, Fetch)
    assert to == holder.address and isinstance(fetch, Fetch)
    # An impostor's reply is refused and leaves the request waiting.
    stranger = peers[0].contact
    asker.receive(FetchReply(request_id, key, True, b"real bytes"), stranger, 0.1)
    assert request_id not in asker.search.fetches
    asker.receive(FetchReply(request_id, key, False), holder.contact, 0.2)
    assert isinstance(asker.search.fetches[request_id].error, ItemNotFound)
    # No answer at all: a timeout, also naming the holder.
    request_id, _ = asker.search.start_fetch(key, holder.contact, 1.0)
    asker.handle_timer(1.0 + asker.search.config.fetch_timeout)
    error = asker.search.fetches[request_id].error
    assert isinstance(error, FetchTimeout) and error.holder == holder.contact
