"""A bounded memo table for the hot paths: a dict that forgets everything when it is full.

The parser and the normalizer remember values computed from text that repeats (record
bodies, SYSCALL tails, user names …). A plain dict is the fastest lookup Python has, but
a log full of distinct values must not grow it without limit. Emptying the table when it
reaches ``limit`` costs nothing per lookup (unlike an LRU's bookkeeping) and the working
set, a few hundred values, is back after a few events.

    cache = BoundedCache(2048)
    hit = cache.get(key)
    if hit is None:
        hit = cache.put(key, compute(key))

Where the value comes from a pure function that is called as a function anyway,
``functools.lru_cache`` is the better tool (a hit never enters Python code).
"""

from __future__ import annotations

__all__ = ["BoundedCache"]


class BoundedCache(dict):
    """A dict of at most ``limit`` entries, filled with :meth:`put` (``get`` as a dict's)."""

    __slots__ = ("limit",)

    def __init__(self, limit: int):
        super().__init__()
        if limit < 1:
            raise ValueError("limit must be at least 1")
        self.limit = limit

    def put(self, key, value):
        """Store ``value`` (emptying the table first when it is full) and return it."""
        if len(self) >= self.limit:
            self.clear()
        self[key] = value
        return value
