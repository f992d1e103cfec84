"""AGENTD_TRACEMALLOC: the allocation report names where the memory was allocated."""

from __future__ import annotations

import tracemalloc

from agent.app import memtrace


def _hold_memory() -> list:
    return [bytearray(4096) for _ in range(2000)]  # ~8 MB, from this file's line


def test_report_names_the_biggest_allocation_site_and_the_rss():
    was = tracemalloc.is_tracing()
    tracemalloc.start(4)
    try:
        held = _hold_memory()
        lines = memtrace.report(top=3)
    finally:
        if not was:
            tracemalloc.stop()
    assert len(held) == 2000
    assert lines[0].startswith("memory: RSS ") and "Python heap" in lines[0]
    assert float(lines[0].split()[2]) > 8  # MiB: the process holds at least what the test allocated
    assert "test_memtrace.py" in lines[1] and "memory top 1: " in lines[1]
    assert 2 <= len(lines) <= 4  # top=3: at most three sites


def test_off_unless_the_environment_asks(monkeypatch):
    monkeypatch.delenv(memtrace.ENV, raising=False)
    assert memtrace.start_from_env() is False
    monkeypatch.setenv(memtrace.ENV, "not-a-number")
    assert memtrace.start_from_env() is False
    lines = memtrace.report()
    assert len(lines) == 1 and "not set" in lines[0]
