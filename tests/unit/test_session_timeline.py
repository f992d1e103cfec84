"""The session join's stored history as `agentd sessions` shows it: the join is fed
documents shaped as the auditd and journald normalizers make them (the fields the
join reads; the real capture's end-to-end version is tests/system/test_session_catchup.py),
then the commands read back what was stored."""

from __future__ import annotations

import io

from agent.app import sessions_cli
from agent.base.events import HostInfo, rfc3339
from agent.pipeline.sessions import SessionTracker
from agent.pipeline.spool import Spool

HOST = HostInfo("bastion1", "0123456789abcdef0123456789abcdef", "b" * 32)
T0 = 1_795_806_943.427  # event time of the login; "now" is whatever the test says


def audit(action: str, ses: str, pid: int, ts: float, **extra) -> dict:
    doc = {"@timestamp": rfc3339(ts), "event": {"module": "auditd", "dataset": "auditd.x", "action": action,
                                                  "id": f"a-{action}-{ts}"},
           "auditd": {"session": ses}, "process": {"pid": pid, "name": extra.pop("name", "sshd")}}
    doc.update(extra)
    return doc


def login(ses: str, pid: int, ts: float, user: str = "bob") -> dict:
    d = audit("changed-login-id", ses, pid, ts)
    d["auditd"]["data"] = {"auid": "1001", "interpreted": {"AUID": user}}
    return d


def accepted(pid: int, ts: float, port: int, user: str = "bob") -> dict:
    return {"@timestamp": rfc3339(ts), "event": {"module": "journald", "dataset": "sshd.auth",
                                                   "action": "logged-in", "id": f"j-{pid}"},
            "process": {"pid": pid}, "user": {"name": user}, "source": {"ip": "127.0.0.1", "port": port},
            "session": {"auth": {"method": "publickey", "key_fingerprint": "SHA256:abc"}}}


def unix_connect(ses: str, pid: int, ts: float, path: str = "/dev/log") -> dict:
    return audit("connected-to", ses, pid, ts, auditd={"session": ses, "syscall": "connect",
                                                       "data": {"socket": {"family": "unix", "path": path}}})


def executed(ses: str, pid: int, ts: float, line: str) -> dict:
    return audit("executed", ses, pid, ts, name=line.split()[0],
                 process={"pid": pid + 1, "name": line.split()[0], "command_line": line, "args": line.split()})


def logout(ses: str, pid: int, ts: float) -> dict:
    return audit("ended-session", ses, pid, ts)


def tracker(tmp_path, now: float, spool=None):
    spool = spool or Spool(str(tmp_path / "state" / "spool.db"))
    return SessionTracker(HOST, store=spool, now=lambda: now, live=False, expect_journal=True), spool


def feed(t: SessionTracker, docs: list) -> list:
    """As the daemon does: each document through the join, the state committed per batch."""
    out = []
    for d in docs:
        out.append(d)
        out.extend(t.apply(d))
    t.commit()
    return out


def show(tmp_path, ident: str) -> list:
    buf = io.StringIO()
    assert sessions_cli.show_session(str(tmp_path / "state"), ident, out=buf) == 0
    return buf.getvalue().splitlines()


def kinds(lines: list) -> list:
    return [line.split()[2] for line in lines[1:]]


def test_login_heads_the_timeline_though_it_arrives_after_records_of_the_same_millisecond(tmp_path):
    # Live, sshd's journal line (which completes the login's announcement) arrives
    # after the audit records stamped in the login's own millisecond.
    t, spool = tracker(tmp_path, now=T0 + 5)
    feed(t, [login("7", 100, T0), unix_connect("7", 100, T0), unix_connect("7", 100, T0)])
    feed(t, [accepted(100, T0 + 0.0004, 50000), executed("7", 100, T0 + 1, "id -u"), logout("7", 100, T0 + 2)])
    t.commit(force=True)  # as the daemon does when it stops
    spool.close()
    assert kinds(show(tmp_path, "7")) == ["login", "connect", "connect", "ran", "logout"]


def test_logout_closes_the_timeline_at_its_own_millisecond(tmp_path):
    t, spool = tracker(tmp_path, now=T0 + 5)
    feed(t, [login("8", 200, T0), accepted(200, T0, 50001), logout("8", 200, T0 + 2)])
    feed(t, [unix_connect("8", 200, T0 + 2)])  # a late record of the same millisecond as the end
    t.commit(force=True)
    spool.close()
    assert kinds(show(tmp_path, "8")) == ["login", "connect", "logout"]
