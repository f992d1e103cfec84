"""The exec fast path (normalize/fastpath.py) must build exactly what the general builders
build: it mirrors them for speed, so a change to one without the other would go
unnoticed by the golden test (which only ever sees the fast path for execs)."""

from __future__ import annotations

import lzma
import os

from agent.base.events import HostInfo, dumps
from collectors.auditd.normalize import Normalizer
from collectors.auditd.parse import ParseError, parse_line
from collectors.auditd.reassemble import Reassembler

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
HOST = HostInfo("bastion1", "0123456789abcdef")


def _events(lines):
    reasm = Reassembler(timeout=2.0)
    for i, line in enumerate(lines):
        try:
            rec = parse_line(line, i)
        except ParseError:
            continue
        yield from reasm.push(rec)
    yield from reasm.flush()


def _compare(lines, keep_original: bool) -> int:
    """Normalizes every event both ways; returns how many the fast path built."""
    fast = Normalizer(HOST, keep_original=keep_original)
    slow = Normalizer(HOST, keep_original=keep_original, fast_path=False)  # the general builders only
    used = 0
    for ev in _events(lines):
        if not hasattr(ev, "records"):
            continue
        used += fast.fast_path.build(ev) is not None
        a = [dumps(d) for d in fast.normalize(ev)]
        b = [dumps(d) for d in slow.normalize(ev)]
        assert a == b, ev.stamp
    return used


def test_fast_path_equals_general_builders_on_the_real_capture():
    with open(os.path.join(REPO, "tests", "captures", "bastion1", "audit.log"), "rb") as f:
        lines = f.read().splitlines()
    assert _compare(lines, keep_original=False) > 100
    assert _compare(lines, keep_original=True) > 100


def test_fast_path_equals_general_builders_on_the_exec_storm_sample():
    with lzma.open(os.path.join(REPO, "benchmarks", "data", "exec_storm.log.xz")) as f:
        lines = f.read().splitlines()[:20000]
    assert _compare(lines, keep_original=False) > 1000
