"""Bad input through the real replay path: every malformed line is counted and kept
with its reason in the dead-letter file, and every good event still comes out."""

from __future__ import annotations

import json
import os
import subprocess
import sys

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CAPTURE = os.path.join(REPO, "tests", "captures", "bastion1", "audit.log")


def replay(tmp_path, data: bytes):
    log = tmp_path / "audit.log"
    log.write_bytes(data)
    out, dead = tmp_path / "out.jsonl", tmp_path / "dead.jsonl"
    p = subprocess.run([sys.executable, "-m", "agent.app.cli", "replay", "--audit-log", str(log), "-o", str(out),
                        "--dead-letter", str(dead)], cwd=REPO, capture_output=True, text=True, timeout=120)
    events = [json.loads(line) for line in out.read_bytes().splitlines()] if out.exists() else []
    deads = [json.loads(line) for line in dead.read_bytes().splitlines()] if dead.exists() else []
    return p, events, deads


def test_garbage_between_real_lines_loses_nothing_else(tmp_path):
    with open(CAPTURE, "rb") as f:
        good = f.read()
    lines = good.splitlines(keepends=True)
    bad = [
        b"type=SYSCALL msg=audit(1795806943.1",  # truncated
        b"\x00\xff\xfe garbage \x80\x81",  # binary garbage
        b"type=EXECVE msg=audit(17958069xx.123:9): argc=1 a0=\"x\"",  # bad stamp
        b"type=EXECVE msg=audit(1795806943.999:999999): argc=2 a0=ZZ a1=\"ok\"",  # bad hex arg
        b"A" * 300_000,  # huge line
        b"type=USER_CMD msg=audit(1795806943.998:999998): pid=1 uid=0 auid=0 ses=1 msg='cmd=\xff\xfe res=success'",
    ]
    mixed = b"".join(lines[:100]) + b"\n".join(bad) + b"\n" + b"".join(lines[100:])
    p, events, deads = replay(tmp_path, mixed)
    assert p.returncode == 0, p.stderr
    (tmp_path / "clean").mkdir()
    _, clean_events, clean_deads = replay(tmp_path / "clean", good)
    assert clean_deads == []
    ids = {e["event"]["id"] for e in events}
    missing = [e for e in clean_events if e["event"]["id"] not in ids]
    assert missing == [], "good events must come out unchanged next to bad lines"
    reasons = " | ".join(d["reason"] for d in deads)
    assert len(deads) >= 3, reasons
    assert "malformed" in p.stderr and f"{len(deads)} malformed" in p.stderr
    assert all(d.get("raw") is not None for d in deads)
    kept = b"".join(d["raw"].encode("utf-8", "surrogateescape") for d in deads)
    assert b"garbage" in kept and b"1795806943.1" in kept
