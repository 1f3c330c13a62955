"""Hidden checks for r7-class-lru-cache."""

import pytest
from lru import LRUCache


def test_get_and_put() -> None:
    cache = LRUCache(2)
    cache.put("a", 1)
    assert cache.get("a") == 1 and cache.get("b") is None and cache.get("b", 0) == 0


def test_evicts_the_least_recently_used() -> None:
    cache = LRUCache(2)
    cache.put("a", 1)
    cache.put("b", 2)
    cache.get("a")
    cache.put("c", 3)
    assert "b" not in cache and cache.keys() == ["a", "c"]


def test_put_of_a_known_key_refreshes_it_and_evicts_nothing() -> None:
    cache = LRUCache(2)
    cache.put("a", 1)
    cache.put("b", 2)
    cache.put("a", 10)
    assert len(cache) == 2 and cache.keys() == ["b", "a"] and cache.get("a") == 10
    cache.put("c", 3)
    assert cache.keys() == ["a", "c"]


def test_contains_does_not_refresh() -> None:
    cache = LRUCache(2)
    cache.put("a", 1)
    cache.put("b", 2)
    assert "a" in cache
    cache.put("c", 3)
    assert cache.keys() == ["b", "c"]


def test_a_miss_does_not_refresh_or_insert() -> None:
    cache = LRUCache(1)
    cache.put("a", 1)
    assert cache.get("zzz") is None and len(cache) == 1


def test_on_evict_is_told_what_went() -> None:
    gone = []
    cache = LRUCache(1, on_evict=lambda k, v: gone.append((k, v)))
    cache.put("a", 1)
    cache.put("a", 2)
    cache.put("b", 3)
    assert gone == [("a", 2)]


def test_falsy_values_are_values() -> None:
    cache = LRUCache(2)
    cache.put("zero", 0)
    assert cache.get("zero", "missing") == 0


@pytest.mark.parametrize("capacity", [0, -1, 1.5, True])
def test_bad_capacity(capacity) -> None:
    with pytest.raises(ValueError):
        LRUCache(capacity)
