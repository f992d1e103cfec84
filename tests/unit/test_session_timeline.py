"""The session join's stored history as `agentd sessions` shows it: the join is fed
documents shaped as the auditd and journald normalizers make them (the fields the
join reads; the real capture's end-to-end version is tests/system/test_session_catchup.py),
then the commands read back what was stored."""

from __future__ import annotations

import io

from agent.app import sessions_cli
from agent.base.events import HostInfo, rfc3339
from agent.pipeline.session_store import SessionStore
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
    return audit("exec", ses, pid, ts, name=line.split()[0],
                 process={"pid": pid + 1, "name": line.split()[0], "command_line": line, "args": line.split()})


def logout(ses: str, pid: int, ts: float) -> dict:
    return audit("ended-session", ses, pid, ts)


def tracker(tmp_path, now: float, spool=None):
    spool = spool or Spool(str(tmp_path / "state" / "spool.db"))
    return SessionTracker(HOST, store=SessionStore(spool), now=lambda: now, live=False, expect_journal=True), spool


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


def listing(tmp_path, since: str = "3650d") -> list:
    buf = io.StringIO()
    assert sessions_cli.list_sessions(str(tmp_path / "state"), since, "", out=buf) == 0
    return buf.getvalue().splitlines()[1:]


def test_a_catch_up_over_old_logins_keeps_their_history(tmp_path):
    # The agent was down for a day; the backlog holds logins that ended long ago
    # by the wall clock, each beginning and ending inside one batch.
    t, spool = tracker(tmp_path, now=T0 + 86400)
    for n, ses in enumerate(("16", "17")):
        pid, at = 300 + n, T0 + 100 * n
        out = feed(t, [login(ses, pid, at), accepted(pid, at + 0.001, 51000 + n),
                       executed(ses, pid, at + 1, f"echo {ses}"), logout(ses, pid, at + 2)])
        actions = [d["event"]["action"] for d in out]
        assert actions.count("session-started") == actions.count("session-ended") == 1
    # Keystrokes are flushed at logout: the TTY record comes after the end, in the next batch.
    typed = audit("typed", "16", 300, T0 + 2.5, keystrokes={"lines": ["echo 16"]})
    feed(t, [typed])
    t.commit(force=True)
    spool.close()
    assert typed.get("session", {}).get("user") == "bob", "a late record of a caught-up session was not joined"
    rows = listing(tmp_path)
    assert [r.split()[0] for r in rows] == ["16", "17"], rows
    assert kinds(show(tmp_path, "16")) == ["login", "ran", "logout", "typed"]
    assert kinds(show(tmp_path, "17")) == ["login", "ran", "logout"]


def test_ended_sessions_expire_an_hour_of_event_time_after_their_end(tmp_path):
    t, spool = tracker(tmp_path, now=T0 + 86400)
    feed(t, [login("20", 400, T0), accepted(400, T0, 52000), logout("20", 400, T0 + 2)])
    feed(t, [login("21", 401, T0 + 1800)])  # another login half an hour later: 20 is still kept
    assert "20" in t.sessions
    feed(t, [executed("21", 401, T0 + 3700, "true")])  # over an hour after 20's end
    t.commit(force=True)
    assert "20" not in t.sessions
    spool.close()
    assert [r.split()[0] for r in listing(tmp_path)] == ["20", "21"]  # the history stays


def test_unix_socket_connects_show_the_socket(tmp_path):
    t, spool = tracker(tmp_path, now=T0 + 5)
    abstract = unix_connect("9", 500, T0 + 1, path="/org/freedesktop/systemd1/notify")
    abstract["auditd"]["data"]["socket"]["abstract"] = True
    inet6 = audit("connected-to", "9", 500, T0 + 1.5, name="ssh", destination={"ip": "::1", "port": 2222})
    feed(t, [login("9", 500, T0), accepted(500, T0, 53000), unix_connect("9", 500, T0 + 0.5), abstract, inet6,
             logout("9", 500, T0 + 2)])
    t.commit(force=True)
    spool.close()
    rows = [line.split(None, 3)[3] for line in show(tmp_path, "9")[1:] if " connect " in line]
    assert rows == ["/dev/log (sshd)", "@/org/freedesktop/systemd1/notify (sshd)", "[::1]:2222 (ssh)"]


def gap(ts: float, message: str = "auditd: serials 1820-1820 missing from the log (1)") -> dict:
    from agent.base.gaps import gap_doc

    return gap_doc(HOST, "auditd", "sequence-gap", "serials 1820-1820", count=1, timestamp=ts) | {"message": message}


def test_a_gap_inside_a_session_marks_its_timeline_and_summary_incomplete(tmp_path):
    t, spool = tracker(tmp_path, now=T0 + 60)
    lost = gap(T0 + 1)
    feed(t, [login("30", 600, T0), accepted(600, T0, 54000), login("31", 601, T0 + 0.5), accepted(601, T0, 54001),
             logout("31", 601, T0 + 0.8)])  # 31 ended before the loss: complete
    feed(t, [lost])
    out = feed(t, [executed("30", 600, T0 + 1.5, "id"), logout("30", 600, T0 + 2)])
    t.commit(force=True)
    spool.close()
    assert lost["session"]["id"].endswith(":30") and lost["agentd"]["gap"]["sessions"] == [lost["session"]["id"]]
    ended = [d for d in out if d["event"]["action"] == "session-ended"][0]
    assert ended["agentd"]["session"]["complete"] is False
    assert ended["agentd"]["session"]["gaps"][0]["reason"] == "sequence-gap"
    assert "timeline incomplete: auditd: serials 1820-1820 missing" in ended["message"]
    lines = show(tmp_path, "30")
    assert lines[1].startswith("timeline incomplete (1 gap): auditd: serials 1820-1820 missing")
    assert kinds(lines[1:]) == ["login", "LOST", "ran", "logout"]
    assert [line for line in lines if " LOST " in line][0].endswith("auditd: serials 1820-1820 missing from the log (1)")
    assert len(show(tmp_path, "31")) == 3 and "LOST" not in kinds(show(tmp_path, "31"))


def test_a_gap_found_after_the_session_ended_reissues_its_summary(tmp_path):
    # An audit hole is final only event_timeout after it: the session may be over by then.
    t, spool = tracker(tmp_path, now=T0 + 60)
    first = feed(t, [login("40", 700, T0), accepted(700, T0, 55000), logout("40", 700, T0 + 1)])
    lost = gap(T0 + 0.5)
    again = feed(t, [lost])[1:]
    t.commit(force=True)
    spool.close()
    before = [d for d in first if d["event"]["action"] == "session-ended"][0]
    assert before["agentd"]["session"]["complete"] is True
    assert [d["event"]["action"] for d in again] == ["session-ended"]
    assert again[0]["agentd"]["session"]["complete"] is False and again[0]["event"]["id"] != before["event"]["id"]
    assert "timeline incomplete" in again[0]["message"]
    assert kinds(show(tmp_path, "40")[1:]) == ["login", "LOST", "logout"]


def test_one_row_per_entry_even_for_a_multi_line_command(tmp_path):
    t, spool = tracker(tmp_path, now=T0 + 60)
    feed(t, [login("41", 800, T0), accepted(800, T0, 56000),
             executed("41", 800, T0 + 0.5, "bash -c for x in 1 2;\ndo echo $x;\ndone"), logout("41", 800, T0 + 1)])
    t.commit(force=True)
    spool.close()
    lines = show(tmp_path, "41")
    assert kinds(lines) == ["login", "ran", "logout"]
    assert lines[2].endswith("bash -c for x in 1 2;\\ndo echo $x;\\ndone")


def test_a_backlog_login_takes_no_peer_from_a_process_that_now_has_its_pid(tmp_path):
    import os
    import socket

    # This test process plays the unrelated process that now has the old sshd's pid.
    srv = socket.create_server(("127.0.0.1", 0))
    cli = socket.create_connection(srv.getsockname())
    conn, _ = srv.accept()
    try:
        spool = Spool(str(tmp_path / "state" / "spool.db"))
        live = SessionTracker(HOST, store=SessionStore(spool), now=lambda: T0 + 86400, live=True)
        feed(live, [login("50", os.getpid(), T0)])
        assert live.sessions["50"]["source"] == {}, "a caught-up login took a live process's peer"
        fresh = SessionTracker(HOST, now=lambda: T0 + 1, live=True)
        fresh.apply(login("51", os.getpid(), T0))
        assert fresh.sessions["51"]["source"].get("ip") == "127.0.0.1"  # a login happening now does
        spool.close()
    finally:
        for s in (cli, conn, srv):
            s.close()


def test_journal_line_without_audit_session_joins_by_its_terminal(tmp_path):
    """journald leaves _AUDIT_SESSION out when the sender (a sudo that was refused) has already
    exited; the line's terminal and user still name the one open login on that pty."""
    t, spool = tracker(tmp_path, T0 + 5)
    feed(t, [login("50", 700, T0, user="carol"),
             audit("logged-in", "50", 700, T0 + 0.1, auditd={"session": "50", "data": {"terminal": "/dev/pts/1"}}),
             login("51", 800, T0 + 0.2, user="dave"),
             audit("logged-in", "51", 800, T0 + 0.3, auditd={"session": "51", "data": {"terminal": "/dev/pts/2"}})])

    def sudo_line(user: str, tty: str) -> dict:
        return {"@timestamp": rfc3339(T0 + 1), "event": {"module": "journald", "dataset": "sudo.command",
                                                         "action": "sudo", "id": f"j-sudo-{user}-{tty}"},
                "process": {"pid": 9999, "name": "sudo"}, "user": {"name": user},
                "agentd": {"process": {"tty": {"name": tty}}}}

    carol, stranger, wrong_tty = sudo_line("carol", "pts/1"), sudo_line("erin", "pts/1"), sudo_line("carol", "pts/2")
    feed(t, [carol, stranger, wrong_tty])
    assert carol["session"]["id"].endswith(":50") and carol["session"]["user"] == "carol"
    assert "session" not in stranger and "session" not in wrong_tty
    # Read late: the audit log already said carol logged out, and her pty went to a new login.
    feed(t, [logout("50", 700, T0 + 2), login("52", 710, T0 + 3, user="carol"),
             audit("logged-in", "52", 710, T0 + 3.1, auditd={"session": "52", "data": {"terminal": "/dev/pts/1"}})])
    late, later = sudo_line("carol", "pts/1"), sudo_line("carol", "pts/1")
    later["@timestamp"], later["event"]["id"] = rfc3339(T0 + 4), "j-sudo-later"
    feed(t, [late, later])
    assert late["session"]["id"].endswith(":50"), "a line from before the logout lost its login"
    assert later["session"]["id"].endswith(":52")
    spool.close()
