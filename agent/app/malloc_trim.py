"""Give the memory glibc keeps after a burst back to the system (``malloc_trim``).

The daemon's events are many small objects, freed by reference counting as soon as a batch
is spooled; glibc keeps the freed pages of its heaps for reuse, so one burst (a catch-up, a
command storm) would leave the agent's RSS high for good: 3.5 MB after 10,000 journal lines
here (benchmarks/README.md, "The journal's files"). ``malloc_trim(0)`` hands back the free
pages at the top of each heap and the whole free pages inside them. The daemon calls it once
a minute, off the event path: a walk of the heap's free lists, well under a millisecond at
the agent's size. Where the C library has no malloc_trim (musl), nothing is done.
"""

from __future__ import annotations

import ctypes
from typing import Callable, Optional

INTERVAL = 60.0  # seconds between two trims in the daemon


def _find() -> Optional[Callable[[int], int]]:
    try:
        fn = ctypes.CDLL(None).malloc_trim  # the C library the interpreter already runs on
    except (OSError, AttributeError):
        return None
    fn.argtypes = [ctypes.c_size_t]
    fn.restype = ctypes.c_int
    return fn


_TRIM = _find()


def trim() -> bool:
    """True when memory was given back to the system."""
    return bool(_TRIM(0)) if _TRIM is not None else False
