"""A line of a login (here sshd's refusal of a forward, from journald) that reaches the
daemon before the audit LOGIN naming that login is held until the auditd collector has
read its log through the line's time, so it carries who and from where like every other
event of the login. Real daemon runtime and auditd collector following a log file the
test writes; the LOGIN records are the bastion1 capture's, renumbered per login; the
journald entry is a recorded one (tests/unit/data/journal_lines.jsonl). The stack's own
race is tests/system/test_forwards.py."""

from __future__ import annotations

import json
import time
from pathlib import Path

from agent.app.daemon import Runtime
from agent.base.config import parse_config_text
from agent.base.events import Event
from collectors.journald.normalize import Normalizer

CAPTURE = Path(__file__).parent.parent / "captures" / "bastion1" / "audit.log"
LINES = Path(__file__).parent.parent / "unit" / "data" / "journal_lines.jsonl"


def login_records(ses: int, pid: int, serial: int, at: float) -> str:
    """The capture's LOGIN event of ses 16 (LOGIN, SYSCALL, PROCTITLE) as login ``ses``."""
    recs = [line for line in CAPTURE.read_text().splitlines() if ":1256)" in line]
    assert [r.split()[0] for r in recs] == ["type=LOGIN", "type=SYSCALL", "type=PROCTITLE"]
    out = []
    for r in recs:
        r = r.replace("msg=audit(1795806952.254:1256)", f"msg=audit({at:.3f}:{serial})")
        out.append(r.replace(" ses=16 ", f" ses={ses} ").replace(" pid=9518 ", f" pid={pid} "))
    return "\n".join(out) + "\n"


def refusal(ses: int, pid: int, at: float) -> dict:
    for line in LINES.read_text().splitlines():
        e = json.loads(line)["entry"]
        if e["MESSAGE"].startswith("refused local port forward"):
            return dict(e, _AUDIT_SESSION=str(ses), _PID=str(pid), __REALTIME_TIMESTAMP=str(int(at * 1e6)),
                        __CURSOR=f"s=0;i={ses:x}")
    raise AssertionError("no recorded refusal")


def test_a_line_read_before_its_login_is_held_until_the_audit_log_names_it(tmp_path):
    log = tmp_path / "audit.log"
    log.write_text("")
    cfg = parse_config_text(
        f"[agent]\nstate_dir = {tmp_path / 'state'}\n"
        f"[collector:auditd]\ntype = auditd\nlog_file = {log}\nstart_at = beginning\n"
        "[collector:snapshots]\ntype = snapshots\nenabled = false\n"
        f"[shipper:file]\ntype = file\npath = {tmp_path / 'events.jsonl'}\n", str(tmp_path / "agentd.conf"))
    rt = Runtime(cfg)
    rt.start()
    try:
        deadline = time.monotonic() + 20
        while not rt.snapshot()["collectors"]["auditd"].get("read_through"):
            assert time.monotonic() < deadline, "the auditd collector never read its log"
            time.sleep(0.05)
        norm = Normalizer(rt.ctx.host, ["sshd"])
        emit = rt._emit_for("journald")
        joined = []
        for n in range(5):  # each login written to the log, its line emitted at once: a race every time
            ses, now = 900 + n, time.time()
            with open(log, "a") as f:
                f.write(login_records(ses, 20000 + n, 5000 + n, now))
            ev = Event(norm.normalize(refusal(ses, 20100 + n, now + 0.001)))
            emit([ev], None)
            joined.append((ev.doc.get("session") or {}).get("id", "").rpartition(":")[2])
        assert joined == ["900", "901", "902", "903", "904"]
        assert ev.doc["session"]["user"] == "alice"
    finally:
        rt.stop(10)
