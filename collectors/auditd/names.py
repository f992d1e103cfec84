"""uid/gid -> name, for RAW logs (ENRICHED logs carry the names themselves).

Names are looked up in the local passwd/group databases and cached, misses included,
because an exec-heavy log asks for the same few ids hundreds of thousands of times and a
getpwuid() through NSS costs far more than parsing the record. The cache is bounded so a
log full of random ids cannot grow it without limit.
"""

from __future__ import annotations

import grp
import pwd
from typing import Optional

from agent.base.cache import BoundedCache

__all__ = ["NameCache", "UNSET", "enriched_name"]

# (uid_t)-1: "not set" (auid before login, ses 4294967295).
UNSET = 4294967295
_MAX = 4096


def enriched_name(value: Optional[str]) -> Optional[str]:
    """An ENRICHED UID="…" value as a user name; None for "unset"/"unknown(N)"."""
    if not value or value == "unset" or value.startswith("unknown("):
        return None
    return value


class NameCache:
    def __init__(self, resolve: bool = True):
        self.resolve = resolve
        self._users = BoundedCache(_MAX)
        self._groups = BoundedCache(_MAX)

    def _get(self, cache: BoundedCache, fn, raw: Optional[str]) -> Optional[str]:
        if raw is None:
            return None
        if raw in cache:
            return cache[raw]
        name = None
        if self.resolve:
            try:
                n = int(raw)
            except ValueError:
                n = -1
            if 0 <= n < UNSET:
                try:
                    name = fn(n)[0]
                except (KeyError, OverflowError):
                    name = None
        return cache.put(raw, name)

    def user(self, uid: Optional[str]) -> Optional[str]:
        return self._get(self._users, pwd.getpwuid, uid)

    def group(self, gid: Optional[str]) -> Optional[str]:
        return self._get(self._groups, grp.getgrgid, gid)
