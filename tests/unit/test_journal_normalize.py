"""Journal entry -> event: ids, time, session keys, nothing dropped; replay of
`journalctl -o json` lines (the recorded real entries) through the collector."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

from agent.base.component import RunContext
from agent.base.config import AGENT_OPTIONS
from agent.base.events import HostInfo, make_event_id
from agent.pipeline.sessions import SessionTracker
from collectors.journald import normalize as jnorm
from collectors.journald.collector import JournaldCollector

DATA = Path(__file__).with_name("data") / "journal_lines.jsonl"
LINES = [json.loads(line) for line in DATA.read_text().splitlines() if line.strip()]
HOST = HostInfo("bastion1", "0123456789abcdef0123456789abcdef", "b" * 32)
PROGRAMS = ["sshd", "sshd-session", "sudo", "su", "sftp-server", "tlog-rec-session"]


def entry(scenario: str, startswith: str) -> dict:
    for d in LINES:
        if d["scenario"] == scenario and d["entry"]["MESSAGE"].startswith(startswith):
            return dict(d["entry"])
    raise AssertionError(startswith)


def norm(**kw) -> jnorm.Normalizer:
    return jnorm.Normalizer(HOST, PROGRAMS, **kw)


def test_common_fields_of_a_real_entry():
    e = entry("alice-publickey-sudo", "Accepted publickey")
    doc = norm().normalize(e)
    cur = jnorm.cursor_parts(e["__CURSOR"])
    assert doc["event"]["id"] == make_event_id(HOST.id, "journald", e["_BOOT_ID"], cur["s"], int(cur["i"], 16))
    usec = int(e["__REALTIME_TIMESTAMP"])
    assert doc["@timestamp"].endswith(f".{usec % 1_000_000:06d}Z")
    assert doc["event"]["module"] == "journald" and doc["event"]["dataset"] == "sshd.auth"
    assert doc["process"] == {"pid": int(e["_PID"]), "name": "sshd", "executable": "/usr/sbin/sshd"}
    assert doc["message"] == e["MESSAGE"] and "original" not in doc["event"]
    assert doc["related"] == {"user": ["alice"], "ip": ["127.0.0.1"]}
    assert doc["host"] == {"name": "bastion1", "id": HOST.id}
    assert doc["journald"]["cursor"] == e["__CURSOR"]
    # The monitor process has no audit session yet when it logs the accept.
    assert "auditd" not in doc


def test_session_keys_kept_for_the_join():
    e = entry("alice-publickey-sudo", "   alice : TTY")
    doc = norm().normalize(e)
    assert doc["auditd"] == {"session": e["_AUDIT_SESSION"]}
    assert doc["agentd"]["user"]["audit"] == {"id": e["_AUDIT_LOGINUID"]}
    assert doc["user"]["name"] == "alice" and doc["process"]["pid"] == int(e["_PID"])
    assert doc["related"]["user"] == ["alice", "root"]


def test_keep_original_and_same_id_twice():
    e = entry("carol-failed-password", "Failed password")
    a, b = norm(keep_original=True).normalize(e), norm().normalize(dict(e))
    assert a["event"]["original"] == e["MESSAGE"]
    assert a["event"]["id"] == b["event"]["id"]


def test_audit_transport_entries_are_left_to_the_auditd_collector():
    e = {"_TRANSPORT": "audit", "_COMM": "sshd", "MESSAGE": "USER_LOGIN pid=1 uid=0", "__CURSOR": "s=a;i=1"}
    assert norm().normalize(e) is None
    e = {"SYSLOG_IDENTIFIER": "cron", "_COMM": "cron", "MESSAGE": "x", "__CURSOR": "s=a;i=2"}
    assert norm().normalize(e) is None


def test_non_utf8_message_and_missing_comm():
    e = {"SYSLOG_IDENTIFIER": "sudo", "_PID": "7", "__CURSOR": "s=ab;i=1f;b=cd", "_BOOT_ID": "cd",
         "__REALTIME_TIMESTAMP": "1700000000000000", "MESSAGE": list(b"alice : odd \xff byte")}
    doc = norm().normalize(e)
    assert doc["message"] == "alice : odd \\xff byte" and doc["event"]["dataset"] == "sudo.log"
    assert doc["process"]["name"] == "sudo"  # no _COMM: the identifier stands in
    assert doc["event"]["id"] == make_event_id(HOST.id, "journald", "cd", "ab", 31)


def test_parser_error_keeps_the_line(monkeypatch):
    from collectors.journald import sshd

    def boom(message, fields=None):
        raise RuntimeError("bug")

    monkeypatch.setattr(sshd, "parse", boom)
    n = norm()
    doc = n.normalize(entry("alice-publickey-sudo", "Accepted publickey"))
    assert doc["event"]["dataset"] == "sshd.log" and n.parse_errors == 1


def test_logged_in_event_feeds_the_session_join():
    tracker = SessionTracker(HOST)
    e = entry("alice-publickey-sudo", "Accepted publickey")
    tracker.apply(norm().normalize(e))
    acc = tracker.accepts[int(e["_PID"])]
    assert acc["user"] == "alice" and acc["ip"] == "127.0.0.1"
    assert acc["auth"]["key_fingerprint"].startswith("SHA256:")


def _collector(tmp_path) -> JournaldCollector:
    agent = {k: o.default_value() for k, o in AGENT_OPTIONS.items()}
    agent["state_dir"] = str(tmp_path)
    conf = {k: o.default_value() for k, o in JournaldCollector.options.items()}
    return JournaldCollector("journald", conf, RunContext(agent, HOST))


def test_replay_of_json_lines_drops_nothing(tmp_path):
    src = tmp_path / "journal.json"
    src.write_text("".join(json.dumps(d["entry"]) + "\n" for d in LINES))
    c = _collector(tmp_path)
    out, positions = [], []
    c.replay(str(src), lambda events, pos: (out.extend(events), positions.append(pos)))
    assert len(out) == len(LINES) == c.stats["events"]
    assert len({e.id for e in out}) == len(out)
    assert positions[-1] == {"cursor": LINES[-1]["entry"]["__CURSOR"]}
    actions = Counter((e.doc["event"]["dataset"], e.doc["event"].get("action")) for e in out)
    for want in [("sshd.auth", "logged-in"), ("sshd.auth", "login-failed"), ("sshd.auth", "invalid-user"),
                 ("sshd.auth", "disconnected"), ("sshd.auth", "session-opened"), ("sshd.auth", "logged-out"),
                 ("sudo.command", "sudo"), ("su.session", "su"), ("sshd.sftp", "file-uploaded"),
                 ("sshd.sftp", "file-downloaded"), ("sshd.log", None), ("sudo.log", None), ("sftp.log", None)]:
        assert actions[want] >= 1, want
    # The sftp transfer carries the session keys and the sftp-server pid.
    up = next(e.doc for e in out if e.doc["event"].get("action") == "file-uploaded")
    assert up["process"]["name"] == "sftp-server" and up["auditd"]["session"]
    assert up["transfer"]["bytes"] == 12288 and up["user"]["name"] == "alice"


def test_options_and_validation():
    assert JournaldCollector.type_name == "journald"
    conf = {k: o.default_value() for k, o in JournaldCollector.options.items()}
    assert conf == {"journal_dir": "", "programs": PROGRAMS, "start_at": "end"}
    assert JournaldCollector.validate_conf({"programs": []})
    try:
        JournaldCollector.options["journal_dir"].parse("relative/dir")
    except ValueError as e:
        assert "absolute" in str(e)
    else:
        raise AssertionError("relative journal_dir accepted")
