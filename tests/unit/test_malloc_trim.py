"""agent/app/malloc_trim.py: the daemon hands memory glibc kept after a burst back to the
system. A burst here: 64 MB of 16 KB buffers (glibc's heap, below its mmap threshold), every
other one freed while the last stays, so the heap's top is held and glibc's automatic trim at
free() cannot give anything back; only malloc_trim can (the whole pages inside free chunks)."""

from __future__ import annotations

import os

import pytest

from agent.app import malloc_trim

PAGE = os.sysconf("SC_PAGE_SIZE")


def _rss() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * PAGE


@pytest.mark.skipif(malloc_trim._TRIM is None, reason="no malloc_trim in this C library (not glibc)")
def test_trim_gives_back_what_a_burst_left():
    bufs = [bytearray(16 * 1024) for _ in range(4096)]  # zero-filled: every page touched
    for i in range(0, len(bufs) - 1, 2):
        bufs[i] = None
    held = _rss()
    assert malloc_trim.trim() is True
    after = _rss()
    assert held - after > 16 * 1024 * 1024, (held, after)  # of the 32 MB freed
    del bufs
