"""agent.base.cache.BoundedCache: the memo table of the parser and the normalizer."""

from __future__ import annotations

import pytest

from agent.base.cache import BoundedCache


def test_put_returns_the_value_and_get_finds_it():
    c = BoundedCache(3)
    assert c.put("a", 1) == 1
    assert c.get("a") == 1 and c.get("b") is None


def test_never_holds_more_than_the_limit():
    c = BoundedCache(3)
    for i in range(10):
        c.put(i, str(i))
        assert len(c) <= 3
        assert c.get(i) == str(i)  # the value just stored is always there


def test_full_table_is_emptied_before_the_next_new_value():
    c = BoundedCache(2)
    c.put("a", 1)
    c.put("b", 2)
    c.put("c", 3)
    assert dict(c) == {"c": 3}


def test_a_limit_below_one_is_refused():
    with pytest.raises(ValueError):
        BoundedCache(0)
