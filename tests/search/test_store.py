from __future__ import annotations

import hashlib

import pytest

from overlay.protocol.messages import MAX_VALUE
from search.store import (
    Criteria,
    Item,
    ItemStore,
    ItemTooLarge,
    StoreFull,
    content_key,
    keywords_of,
)


def test_key_is_sha256_of_the_value_and_keywords_are_lowercased_words() -> None:
    item = Item(b"hello world", "Free_Software-Manual.PDF free")
    assert item.key == hashlib.sha256(b"hello world").hexdigest() == content_key(b"hello world")
    assert item.keywords == ("free", "software", "manual", "pdf")
    assert item.size == 11
    assert Item(b"x").keywords == ()


def test_keywords_of_bounds_each_word() -> None:
    assert keywords_of("a " + "b" * 100) == ("a", "b" * 64)


def test_lookup_by_key_and_by_every_keyword() -> None:
    store = ItemStore()
    manual = Item(b"1", "free software manual")
    song = Item(b"2", "free song")
    store.add(manual)
    store.add(song)
    assert store.matching(Criteria.for_key(manual.key)) == [manual]
    assert store.matching(Criteria.for_words("FREE")) == [manual, song]
    assert store.matching(Criteria.for_words("manual free")) == [manual]
    assert store.matching(Criteria.for_words("free manual missing")) == []
    assert store.matching(Criteria.for_key(content_key(b"absent"))) == []
    assert store.remove(manual.key) == manual
    assert store.matching(Criteria.for_words("manual")) == []


def test_store_is_bounded_and_items_are_bounded() -> None:
    store = ItemStore(capacity=2)
    assert store.add(Item(b"a"))
    assert not store.add(Item(b"a"))  # already there
    store.add(Item(b"b"))
    with pytest.raises(StoreFull):
        store.add(Item(b"c"))
    assert len(store) == 2
    with pytest.raises(ItemTooLarge):
        Item(b"x" * (MAX_VALUE + 1))


def test_criteria_need_exactly_one_of_key_and_keywords() -> None:
    with pytest.raises(ValueError):
        Criteria()
    with pytest.raises(ValueError):
        Criteria(key=content_key(b"a"), keywords=("a",))
