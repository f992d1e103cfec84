"""The real `agentd run` catching up over a backlog: the recorded capture's audit log
(with one audit event cut out of bob's session, as a loss) and its journal, all of it
older than an hour by the wall clock. Then `agentd sessions` is read as an analyst
would: every recorded login is listed and shown, connects name their socket, and the
one session with a hole says so."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time

import pytest

from tests.system.agentd_proc import REPO, AgentProc
from tests.system.journal_files import CAPTURE_EXPORT, capture_entries, write_journal

pytestmark = pytest.mark.stack
CAPTURE = CAPTURE_EXPORT.parent
STAMP = re.compile(rb"msg=audit\((\d+)\.\d+:(\d+)\)")


def _audit_log_without_one_event(dst, ses: str) -> tuple:
    """The capture's audit log minus every record of one event in the middle of
    session ``ses`` (its serial goes missing: a sequence gap). Returns (serial, oldest time)."""
    lines = (CAPTURE / "audit.log").read_bytes().splitlines(keepends=True)
    serials = sorted({int(STAMP.search(line).group(2)) for line in lines if f" ses={ses} ".encode() in line})
    cut = serials[len(serials) // 2]
    dst.write_bytes(b"".join(line for line in lines if int(STAMP.search(line).group(2)) != cut))
    return cut, int(STAMP.search(lines[0]).group(1))


def test_sessions_after_a_catch_up_over_a_backlog(stack, tmp_path):
    manifest = json.loads((CAPTURE / "manifest.json").read_text())
    recorded = {str(s["ses"]): s for s in manifest["sessions"]}
    log = tmp_path / "audit.log"
    cut, oldest = _audit_log_without_one_event(log, "20")
    assert time.time() - oldest > 3600, "the capture is meant to be older than the session table keeps ended logins"
    jdir = tmp_path / "journal"
    jdir.mkdir()
    write_journal(jdir / "capture.journal", capture_entries())

    agent = AgentProc(tmp_path, audit_log=str(log), collector_extra="start_at = beginning\n")
    with open(agent.conf, "a") as f:
        f.write(f"[collector:journald]\ntype = journald\njournal_dir = {jdir}\nstart_at = beginning\n")
    agent.start()
    n_journal = len(capture_entries())

    def done(evs):
        ended = {e["session"]["id"].rsplit(":", 1)[1] for e in evs if e["event"].get("action") == "session-ended"}
        journal = [e for e in evs if e["event"]["module"] == "journald"]
        return evs if set(recorded) <= ended and len(journal) >= n_journal - 5 else None

    agent.wait_for(done, timeout=60)
    # Time goes on on the bastion: a record event_timeout later makes the hole final.
    last = log.read_bytes().splitlines()[-1]
    (t, serial) = STAMP.search(last).groups()
    later = last.replace(f"audit({t.decode()}.".encode(), f"audit({int(t) + 10}.".encode()
                         ).replace(f":{serial.decode()})".encode(), f":{int(serial) + 1})".encode())
    with open(log, "ab") as f:
        f.write(later + b"\n")
    evs = agent.wait_for(lambda evs: evs if [e for e in evs if e["event"]["dataset"] == "agentd.gap"] else None,
                         timeout=30)
    assert agent.stop() == 0
    evs = agent.events()

    def agentd(*args):
        p = subprocess.run([sys.executable, "-m", "agent.app.cli", *args, "-c", agent.conf], cwd=REPO,
                           capture_output=True, text=True, timeout=60)
        assert p.returncode == 0, p.stderr
        return p.stdout

    days = int((time.time() - oldest) / 86400) + 2
    listing = agentd("sessions", "--since", f"{days}d").splitlines()[1:]
    rows = {line.split()[0]: line for line in listing}
    for ses, s in recorded.items():
        assert ses in rows, f"session {ses} dropped from `agentd sessions`:\n" + "\n".join(listing)
        assert s["user"] in rows[ses] and f"127.0.0.1:{s['client_port']}" in rows[ses] and s["auth"] in rows[ses]

    for ses in recorded:
        shown = agentd("sessions", "show", ses).splitlines()
        rows_ = [line for line in shown if line.startswith("  ")]
        assert rows_[0].split()[2] == "login", shown
        assert any(line.split()[2] == "ran" for line in rows_)
        connects = [line for line in rows_ if line.split()[2] == "connect"]
        assert connects and not [c for c in connects if "None" in c], connects
        assert any(" /dev/log (" in c for c in connects), connects
        lost = [line for line in rows_ if line.split()[2] == "LOST"]
        if ses == "20":
            assert shown[1].startswith("timeline incomplete (1 gap): auditd: serials"), shown[:2]
            assert len(lost) == 1 and f"serials {cut}-{cut} missing" in lost[0]
        else:
            assert not lost and not shown[1].startswith("timeline incomplete"), shown[:2]

    # The summary said "complete" at the logout; the hole, final only later, re-issues it.
    ended: dict = {}
    for e in evs:
        if e["event"].get("action") == "session-ended":
            ended.setdefault(e["session"]["id"].rsplit(":", 1)[1], []).append(e)
    assert [e["agentd"]["session"]["complete"] for e in ended["20"]] == [True, False]
    assert f"timeline incomplete: auditd: serials {cut}-{cut} missing" in ended["20"][1]["message"]
    assert all(len(ended[ses]) == 1 and ended[ses][0]["agentd"]["session"]["complete"] for ses in ("16", "19"))
    gaps = [e for e in evs if e["event"]["dataset"] == "agentd.gap"]
    # Every session open at the loss may have lost events: 20, not 16 or 19 (over by then);
    # the capture's two logins that never end (a helper's own LOGIN, no sshd) count as open.
    assert len(gaps) == 1
    hit = {sid.rsplit(":", 1)[1] for sid in gaps[0]["agentd"]["gap"]["sessions"]}
    assert "20" in hit and not hit & {"16", "19"}, hit
