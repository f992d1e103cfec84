"""agent/app/gc_tune.py: `agentd run` freezes what its runtime loaded; on SIGHUP it thaws
before building the new runtime, so the old one's objects (cycles included: components
point back at their context) are collected rather than kept for the agent's life."""

from __future__ import annotations

import gc
import weakref

from agent.app.gc_tune import quiet_gc


class _Runtime:
    def __init__(self):
        self.me = self  # a cycle: only the cyclic collector frees it
        self.blob = bytearray(1 << 20)


def test_a_reload_thaws_so_the_old_runtime_is_collected():
    before = gc.get_threshold()
    rt = _Runtime()
    ref = weakref.ref(rt)
    thaw = quiet_gc()
    try:
        assert gc.get_freeze_count() > 0
        del rt
        gc.collect()
        assert ref() is not None  # frozen: out of every collection, as intended while it runs
        thaw()
        thaw = quiet_gc()  # the daemon's reload: thaw, new runtime, freeze again
        assert ref() is None
    finally:
        thaw()
    assert gc.get_threshold() == before


def test_garbage_present_at_freeze_time_is_not_frozen():
    rt = _Runtime()
    ref = weakref.ref(rt)
    del rt
    thaw = quiet_gc()
    try:
        assert ref() is None
    finally:
        thaw()
