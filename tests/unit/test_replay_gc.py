"""`agentd replay` tunes the cyclic GC for its run (agent/app/replay.py, quiet_gc) and must
hand the process back as it found it: run() is also called in-process (tests, tools)."""

from __future__ import annotations

import gc
import os

from agent.app.cli import main
from tests.captures.replay import CAPTURE


def test_replay_in_process_restores_the_gc_settings(tmp_path):
    out = tmp_path / "events.jsonl"
    before = gc.get_threshold()
    frozen = gc.get_freeze_count()
    assert main(["replay", "--audit-log", os.path.join(CAPTURE, "audit.log"), "-o", str(out)]) == 0
    assert len(out.read_bytes().splitlines()) > 100
    assert gc.get_threshold() == before
    assert gc.get_freeze_count() == frozen
    assert gc.isenabled()
