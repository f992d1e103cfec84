"""The session join when its two sources race, live: a short sshd login ends in the
audit stream before journald delivers sshd's "Accepted" line (its port and key), and
lines of a login arrive before the audit LOGIN that names it. Documents are shaped as
the normalizers make them (tests/unit/test_session_timeline.py); the real race on the
stack is tests/system/test_forwards.py."""

from __future__ import annotations

from agent.base.events import rfc3339
from agent.pipeline.pipeline import Pipeline
from agent.pipeline.sessions import ACCEPT_WAIT, TTY_GRACE, SessionTracker
from tests.unit.test_session_timeline import HOST, T0, accepted, audit, login, logout


class Clock:
    def __init__(self, t: float):
        self.t = t

    def __call__(self) -> float:
        return self.t


def live(clock: Clock, expect_journal: bool = True) -> SessionTracker:
    return SessionTracker(HOST, now=clock, live=True, expect_journal=expect_journal)


def actions(docs: list) -> list:
    return [d["event"]["action"] for d in docs]


def test_an_end_read_before_sshds_line_waits_for_it_and_carries_port_and_key():
    clock = Clock(T0 + 1)
    t = live(clock)
    assert t.apply(login("30", 500, T0)) == []  # announced once sshd says how it authenticated
    assert t.apply(logout("30", 500, T0 + 0.07)) == []  # a 70 ms login: its end is held
    clock.t += 1
    assert t.due() == []  # still within ACCEPT_WAIT
    out = t.apply(accepted(500, T0 + 0.001, 41000))
    assert actions(out) == ["session-started", "session-ended"]
    ended = out[1]
    assert ended["session"]["source"] == {"ip": "127.0.0.1", "port": 41000}
    assert ended["session"]["auth"]["key_fingerprint"] == "SHA256:abc"
    assert abs(ended["event"]["duration"] - 70_000_000) < 1000  # the end is the audit record's time
    clock.t += 2 * ACCEPT_WAIT
    assert t.due() == []  # said once


def test_an_end_whose_sshd_line_never_comes_is_released_on_time():
    clock = Clock(T0 + 1)
    t = live(clock)
    t.apply(login("31", 501, T0))
    t.apply(logout("31", 501, T0 + 0.5))
    clock.t = T0 + 1 + ACCEPT_WAIT - 0.1
    assert t.due() == []
    clock.t = T0 + 1 + ACCEPT_WAIT + 0.1
    out = t.due()
    assert actions(out) == ["session-started", "session-ended"]
    assert out[1]["session"]["user"] == "bob" and "port" not in out[1]["session"].get("source", {})
    # the line, later still, completes the stored history but says nothing twice
    assert t.apply(accepted(501, T0 + 0.001, 41001)) == []


def test_only_sshd_logins_wait_and_never_without_journald_or_in_a_replay():
    clock = Clock(T0 + 1)
    t = live(clock)
    cron = login("32", 502, T0)
    cron["process"]["name"] = "cron"  # a cron job's PAM session: no sshd line will come
    t.apply(cron)
    assert actions(t.apply(logout("32", 502, T0 + 0.2))) == ["session-started", "session-ended"]
    for tracker in (live(clock, expect_journal=False),
                    SessionTracker(HOST, now=clock, live=False, expect_journal=True)):
        said = tracker.apply(login("33", 503, T0)) + tracker.apply(logout("33", 503, T0 + 0.2))
        assert actions(said) == ["session-started", "session-ended"]


def test_a_held_end_survives_a_restart(tmp_path):
    from agent.pipeline.session_store import SessionStore
    from agent.pipeline.spool import Spool

    clock = Clock(T0 + 1)
    spool = Spool(str(tmp_path / "spool.db"))
    t = SessionTracker(HOST, store=SessionStore(spool), now=clock, live=True, expect_journal=True)
    t.apply(login("34", 504, T0))
    t.apply(logout("34", 504, T0 + 0.3))
    t.commit(force=True)
    again = SessionTracker(HOST, store=SessionStore(spool), now=clock, live=True, expect_journal=True)
    clock.t += ACCEPT_WAIT + 1
    assert actions(again.due()) == ["session-started", "session-ended"]
    spool.close()


def test_the_pipeline_tick_emits_the_released_summaries():
    clock = Clock(T0 + 1)
    p = Pipeline({"redact": True}, HOST, live=True, expect_journal=True,
                 sections={"detections": {"enabled": False}})
    p.sessions.now = clock
    from agent.base.events import Event

    docs = [login("35", 505, T0), logout("35", 505, T0 + 0.3)]
    for d in docs:
        d["event"]["outcome"] = "success"
    p.apply([Event(d) for d in docs])
    assert p.tick() == []
    clock.t += ACCEPT_WAIT + 1
    out = p.tick()
    assert [e.doc["event"]["action"] for e in out] == ["session-started", "session-ended"]
    assert all(e.doc["session"]["id"].endswith(":35") for e in out)


def test_lines_of_a_login_the_join_does_not_know_yet_are_pointed_out():
    clock = Clock(T0 + 1)
    t = live(clock)
    t.apply(login("36", 506, T0))
    known = audit("forward-refused", "36", 507, T0 + 0.01)
    known["event"]["module"] = "journald"
    early = audit("forward-refused", "37", 509, T0 + 0.02)  # its LOGIN is still in the audit reader
    early["event"]["module"] = "journald"
    own = audit("exec", "38", 510, T0 + 0.03)  # the audit log itself is never held
    assert t.unknown_login_time([known, own]) is None
    assert abs(t.unknown_login_time([known, early, own]) - (T0 + 0.02)) < 1e-3


def _sudo_refused(ts: float, user: str = "bob", tty: str = "pts/3") -> dict:
    # As the journald normalizer makes sudo's refusal when sudo exited before journald
    # read its line: no _AUDIT_SESSION, only the user and the terminal.
    return {"@timestamp": rfc3339(ts), "event": {"module": "journald", "dataset": "sudo.command",
                                                   "action": "sudo", "outcome": "failure"},
            "user": {"name": user}, "agentd": {"process": {"tty": {"name": tty}}}}


def _on_pty(t: SessionTracker, ses: str, pid: int, ts: float, tty: str = "pts/3") -> None:
    t.apply(login(ses, pid, ts))
    t.apply(audit("logged-in", ses, pid, ts + 0.01, auditd={"session": ses, "data": {"terminal": f"/dev/{tty}"}}))


def test_a_line_logged_just_after_its_login_ended_still_joins_it_by_pty():
    # Seen on the stack (tests/system/test_detections.py): a refused sudo's line 3 ms after
    # sshd's USER_END, without _AUDIT_SESSION; the alert lost who and from where.
    t = SessionTracker(HOST, now=lambda: T0 + 60, live=False, expect_journal=False)
    _on_pty(t, "40", 600, T0)
    t.apply(logout("40", 600, T0 + 5))
    late = _sudo_refused(T0 + 5.003)
    t.apply(late)
    assert late["session"]["id"].endswith(":40")
    much_later = _sudo_refused(T0 + 5 + TTY_GRACE + 1)
    t.apply(much_later)
    assert "session" not in much_later
    other_user = _sudo_refused(T0 + 5.003, user="mallory")
    t.apply(other_user)
    assert "session" not in other_user


def test_a_pty_reused_at_once_joins_the_login_that_holds_it():
    t = SessionTracker(HOST, now=lambda: T0 + 60, live=False, expect_journal=False)
    _on_pty(t, "41", 610, T0)
    t.apply(logout("41", 610, T0 + 5))
    _on_pty(t, "42", 620, T0 + 5.5)  # the same user again, the kernel hands out the same pty
    line = _sudo_refused(T0 + 6)
    t.apply(line)
    assert line["session"]["id"].endswith(":42")
