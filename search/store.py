"""A peer's own items.  An item is a value whose key is its SHA-256, so anyone can check
that the bytes a holder serves are the bytes that were asked for.

The store is bounded (a peer never holds more than ``capacity`` items) and indexes
items by key and by keyword, so that a query by keywords ("every word must match")
costs a lookup of the rarest word rather than a scan of the whole store.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterator

import attrs

from overlay.protocol.errors import LocalError
from overlay.protocol.messages import MAX_KEYWORD_LENGTH, MAX_NAME, MAX_VALUE

_WORD = re.compile(r"[^\W_]+")


def content_key(value: bytes) -> str:
    """The key of a value: its SHA-256 as 64 lowercase hex digits."""
    return hashlib.sha256(value).hexdigest()


def keywords_of(text: str) -> tuple[str, ...]:
    """The lowercased words of ``text``, each once, in order of first appearance.

    A word is a run of letters and digits; punctuation separates words, so
    ``"Free_Software-Manual.pdf"`` has the keywords free, software, manual, pdf.
    Words longer than the wire allows are cut to that length rather than refused,
    so that any name can be searched for.
    """
    words: dict[str, None] = {}
    for word in _WORD.findall(text.lower()):
        words[word[:MAX_KEYWORD_LENGTH]] = None
    return tuple(words)


class StoreFull(LocalError):
    """The store is at its capacity; the item was not added."""


class ItemTooLarge(LocalError):
    """A value larger than one fetch reply can carry."""


def _check_value(_instance: object, _attribute: attrs.Attribute[bytes], value: object) -> None:
    if type(value) is not bytes:
        raise TypeError("an item's value is bytes")
    if len(value) > MAX_VALUE:
        raise ItemTooLarge(f"value of {len(value)} bytes exceeds the limit of {MAX_VALUE}")


def _check_name(_instance: object, _attribute: attrs.Attribute[str | None], value: object) -> None:
    if value is not None and (type(value) is not str or len(value) > MAX_NAME):
        raise ValueError(f"an item's name is a string of at most {MAX_NAME} characters")


@attrs.frozen
class Item:
    """A value and its optional name.  Its key and keywords are derived, never stored apart,
    so they cannot disagree with the value and name."""

    value: bytes = attrs.field(validator=_check_value, repr=False)
    name: str | None = attrs.field(default=None, validator=_check_name)
    key: str = attrs.field(init=False)
    keywords: tuple[str, ...] = attrs.field(init=False)

    @key.default
    def _key(self) -> str:
        return content_key(self.value)

    @keywords.default
    def _keywords(self) -> tuple[str, ...]:
        return keywords_of(self.name) if self.name is not None else ()

    @property
    def size(self) -> int:
        return len(self.value)


@attrs.frozen
class Criteria:
    """What a query asks for: one key, or items whose keywords include every given word."""

    key: str | None = None
    keywords: tuple[str, ...] = ()

    def __attrs_post_init__(self) -> None:
        if (self.key is None) == (not self.keywords):
            raise ValueError("search for a key or for keywords, exactly one of them")

    @classmethod
    def for_key(cls, key: str) -> Criteria:
        return cls(key=key)

    @classmethod
    def for_words(cls, text: str) -> Criteria:
        return cls(keywords=keywords_of(text))

    def __str__(self) -> str:
        return self.key if self.key is not None else " ".join(self.keywords)


class ItemStore:
    """A bounded set of items, looked up by key or by keywords."""

    def __init__(self, capacity: int = 1024) -> None:
        self.capacity = capacity
        self._items: dict[str, Item] = {}
        self._by_word: dict[str, dict[str, None]] = {}
        self.version = 0
        """Bumped by every change of content: what was derived from the items (a weak
        peer's signed index entries) stands while it is unchanged."""

    def __len__(self) -> int:
        return len(self._items)

    def __iter__(self) -> Iterator[Item]:
        return iter(list(self._items.values()))

    def __contains__(self, key: object) -> bool:
        return key in self._items

    def add(self, item: Item) -> bool:
        """Add ``item``; False if it was already here.  Raises :class:`StoreFull`."""
        if item.key in self._items:
            return False
        if len(self._items) >= self.capacity:
            raise StoreFull(f"the store holds its capacity of {self.capacity} items")
        self._items[item.key] = item
        self.version += 1
        for word in item.keywords:
            self._by_word.setdefault(word, {})[item.key] = None
        return True

    def remove(self, key: str) -> Item | None:
        item = self._items.pop(key, None)
        if item is not None:
            self.version += 1
            for word in item.keywords:
                keys = self._by_word[word]
                del keys[item.key]
                if not keys:
                    del self._by_word[word]
        return item

    def get(self, key: str) -> Item | None:
        return self._items.get(key)

    def with_keywords(self, words: tuple[str, ...]) -> list[Item]:
        """Items having every word of ``words``, in the order they were added."""
        if not words:
            return []
        postings: list[dict[str, None]] = []
        for word in words:
            keys = self._by_word.get(word)
            if keys is None:
                return []
            postings.append(keys)
        postings.sort(key=len)
        rarest, rest = postings[0], postings[1:]
        return [self._items[key] for key in rarest if all(key in other for other in rest)]

    def matching(
        self,
        criteria: Criteria | None = None,
        *,
        key: str | None = None,
        keywords: tuple[str, ...] = (),
    ) -> list[Item]:
        """Items that answer a query (by ``criteria`` or by its key/keywords)."""
        if criteria is not None:
            key, keywords = criteria.key, criteria.keywords
        if key is not None:
            item = self._items.get(key)
            return [item] if item is not None else []
        return self.with_keywords(keywords)
