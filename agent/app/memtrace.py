"""AGENTD_TRACEMALLOC=N: where the running agent's memory is, for users and benchmarks.

Off unless the environment variable is set (tracemalloc slows every allocation and costs
memory of its own). Set to a positive number N, ``agentd run`` starts tracemalloc with N
frames per traceback; on SIGUSR2 and when it stops, it logs the Python heap size, the
process's RSS and the top allocations grouped by traceback (``AGENTD_TRACEMALLOC_TOP``,
default 25). The heap against RSS tells Python objects from what the allocator keeps
(glibc arenas: MALLOC_ARENA_MAX) and from native libraries.
"""

from __future__ import annotations

import logging
import os
import sys
import tracemalloc

log = logging.getLogger("agentd.memtrace")

ENV = "AGENTD_TRACEMALLOC"
ENV_TOP = "AGENTD_TRACEMALLOC_TOP"
DEFAULT_TOP = 25
MAX_FRAMES = 50


def _env_int(name: str, default: int) -> int:
    try:
        return int(os.environ.get(name, "") or default)
    except ValueError:
        log.warning("%s=%r is not a number: using %d", name, os.environ.get(name), default)
        return default


def start_from_env() -> bool:
    """Start tracing when AGENTD_TRACEMALLOC asks for it; True when tracing."""
    frames = _env_int(ENV, 0)
    if frames <= 0:
        return False
    if not tracemalloc.is_tracing():
        tracemalloc.start(min(frames, MAX_FRAMES))
    log.info("tracemalloc on (%d frames): SIGUSR2 logs the top allocations", min(frames, MAX_FRAMES))
    return True


def rss() -> dict:
    """VmRSS, RssAnon and RssFile of this process in bytes (empty where /proc has none).
    RssFile is mapped files: shared libraries and the journal files the journald collector
    reads (page cache, reclaimable, yet counted in RSS)."""
    out = {}
    try:
        with open("/proc/self/status") as f:
            for line in f:
                key = line.split(":", 1)[0]
                if key in ("VmRSS", "RssAnon", "RssFile"):
                    out[key] = int(line.split()[1]) * 1024
    except OSError:
        pass
    return out


def _rss_text() -> str:
    r = rss()
    # allocated blocks: Python objects alive, cheap to count (no tracing needed)
    return (f"RSS {r.get('VmRSS', 0) / 2**20:.1f} MiB (anonymous {r.get('RssAnon', 0) / 2**20:.1f}, "
            f"mapped files {r.get('RssFile', 0) / 2**20:.1f}), {sys.getallocatedblocks()} Python blocks")


def report(top: int = 0) -> list:
    """The heap, RSS and the ``top`` allocations by traceback, as log lines (also logged)."""
    if not tracemalloc.is_tracing():
        line = f"memory: {_rss_text()}; {ENV} not set: no allocation traces"
        log.info("%s", line)
        return [line]
    top = top or _env_int(ENV_TOP, DEFAULT_TOP)
    snap = tracemalloc.take_snapshot().filter_traces(
        (tracemalloc.Filter(False, tracemalloc.__file__), tracemalloc.Filter(False, "<frozen importlib._bootstrap>")))
    current, peak = tracemalloc.get_traced_memory()
    lines = [f"memory: {_rss_text()}, Python heap {current / 2**20:.1f} MiB "
             f"(peak {peak / 2**20:.1f} MiB), tracemalloc's own {tracemalloc.get_tracemalloc_memory() / 2**20:.1f} MiB"]
    for i, stat in enumerate(snap.statistics("traceback")[:top], 1):
        frames = " <- ".join(f"{fr.filename}:{fr.lineno}" for fr in reversed(stat.traceback))
        lines.append(f"memory top {i}: {stat.size / 1024:.0f} KiB in {stat.count} blocks: {frames}")
    for line in lines:
        log.info("%s", line)
    return lines
