"""Keystrokes of the real bastion1 capture: render() vs aureport, typed lines vs the manifest.

tests/captures/bastion1 holds audit.log (TTY records from pam_tty_audit on the stack),
aureport_tty.txt (``aureport --tty -if audit.log`` when it was recorded) and manifest.json
(what the driver typed in each session and the line bash ran). aureport is run again on the
same file when installed; otherwise the saved report is the oracle.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from collections import Counter

import pytest

from collectors.auditd.keystrokes import render, typed_lines
from tests.captures.aureport import tty_rows

CAPTURE = os.path.join(os.path.dirname(__file__), "..", "captures", "bastion1")
LOG = os.path.join(CAPTURE, "audit.log")
MANIFEST = os.path.join(CAPTURE, "manifest.json")
SAVED = os.path.join(CAPTURE, "aureport_tty.txt")

pytestmark = pytest.mark.skipif(
    not all(os.path.exists(p) for p in (LOG, MANIFEST, SAVED)),
    reason="capture tests/captures/bastion1 (audit.log, manifest.json, aureport_tty.txt) not recorded yet")

_TTY = re.compile(r"^type=(?:TTY|USER_TTY) msg=audit\([\d.]+:(\d+)\):.*?\bses=(\d+)\b.*?"
                  r"\bcomm=\"([^\"]*)\".*?\bdata=([0-9A-Fa-f]+)(?:[ \x1d]|$)")


def _records() -> list:
    """(serial, ses, comm, data bytes) of every TTY record, in log order."""
    out = []
    with open(LOG, encoding="utf-8", errors="surrogateescape") as f:
        for line in f:
            m = _TTY.match(line)
            if m:
                out.append((int(m.group(1)), int(m.group(2)), m.group(3), bytes.fromhex(m.group(4))))
    return out


def _oracles() -> list:
    with open(SAVED, "rb") as f:
        found = [("saved aureport_tty.txt", tty_rows(f.read()))]
    if shutil.which("aureport"):
        out = subprocess.run(["aureport", "--tty", "-if", LOG], capture_output=True, check=True).stdout
        found.append(("aureport now", tty_rows(out)))
    return found


def test_capture_has_tty_records():
    assert len(_records()) >= 3


def test_render_equals_aureport_for_every_record():
    records = _records()
    for name, rows in _oracles():
        assert sorted(rows) == sorted(r[0] for r in records), name
        for serial, _ses, _comm, data in records:
            assert render(data) == rows[serial], (name, serial)


def _matches(line: str, want: str) -> bool:
    """A line with markers (<tab>, <up> …) matches when the markers stand for any text."""
    pattern = "".join(".*" if re.fullmatch(r"<[^>]+>", p) else re.escape(p)
                      for p in re.split(r"(<[^>]+>)", line))
    return re.fullmatch(pattern, want, re.S) is not None


def _expected(manifest: dict, session: dict) -> list:
    want = []
    for step in manifest["steps"]:
        if step.get("session") != session["name"]:
            continue
        line = step.get("effective", step.get("typed"))
        if step.get("kind") == "logout":
            line = step["typed"]
        want.append((step["n"], line, step))
    return want


def test_typed_lines_match_the_manifest():
    with open(MANIFEST) as f:
        manifest = json.load(f)
    records = _records()
    for session in manifest["sessions"]:
        got = []
        for _serial, ses, _comm, data in records:
            if ses == session["ses"]:
                got += [t for t in typed_lines(data) if t.accepted]
        assert got, session["name"]
        pool = Counter(t.text for t in got)
        for n, line, step in _expected(manifest, session):
            if line is None:          # never run (^C): must not show up as a command line
                half = step["keys"].rstrip("\x03")
                assert half not in pool, (n, step)
                continue
            hit = next((t for t in pool if pool[t] and _matches(t, line)), None)
            assert hit is not None, (n, line, sorted(pool))
            pool[hit] -= 1
        # every reconstructed line is certain except where a key we cannot replay was typed
        for t in got:
            assert t.uncertain == ("<tab>" in t.text), t


def test_edited_lines_of_the_capture():
    # The steps that exercise line editing, by what bash actually ran.
    records = _records()
    lines = [t for r in records for t in typed_lines(r[3]) if t.accepted]
    texts = [t.text for t in lines]
    assert "uptime" in texts and "uptimr" not in texts                     # backspace
    assert texts.count("cat /etc/hostname") >= 2                            # left-arrow insert, then <up>
    assert "cat /etc/debian_v<tab>" in texts                                # completion kept visible
    assert "/bin/echo after-ctrl-u" in texts                                # ^U
    assert not any("typed-then-killed" in t for t in texts)
    assert "/bin/echo 'h\u00e9llo w\u00f6rld' \"\u65e5\u672c\"" in texts    # UTF-8 typed
