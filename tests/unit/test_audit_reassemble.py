"""Reassembly: completion rules, interleaving, expiry, serial gaps and lost counters."""

from __future__ import annotations

from collectors.auditd.parse import parse_line
from collectors.auditd.reassemble import AuditEvent, Gap, Reassembler, is_single_record_type


def rec(t, ts, serial, body="a=1", node="", offset=-1):
    pre = f"node={node} " if node else ""
    return parse_line(f"{pre}type={t} msg=audit({ts:.3f}:{serial}): {body}".encode(), offset)


def types(items):
    return [[r.type for r in e.records] if isinstance(e, AuditEvent) else "GAP" for e in items]


def test_syscall_event_completes_on_proctitle_and_user_records_alone():
    r = Reassembler()
    assert r.push(rec("SYSCALL", 10.0, 1)) == []
    assert r.push(rec("EXECVE", 10.0, 1)) == []
    assert r.push(rec("CWD", 10.0, 1)) == []
    assert types(r.push(rec("USER_ACCT", 10.0, 2))) == [["USER_ACCT"]]  # interleaved, alone
    assert types(r.push(rec("PROCTITLE", 10.0, 1))) == [["SYSCALL", "EXECVE", "CWD", "PROCTITLE"]]
    assert r.flush() == []


def test_kernel_config_change_login_tty_are_not_single():
    for t in ("CONFIG_CHANGE", "LOGIN", "TTY", "SYSCALL", "PATH"):
        assert not is_single_record_type(t), t
    for t in ("USER_LOGIN", "CRED_ACQ", "ADD_USER", "DAEMON_START", "USER_TTY", "UNKNOWN[1105]"):
        assert is_single_record_type(t), t
    r = Reassembler()
    assert r.push(rec("CONFIG_CHANGE", 1.0, 3)) == []
    assert r.push(rec("SYSCALL", 1.0, 3)) == []
    assert types(r.push(rec("PROCTITLE", 1.0, 3))) == [["CONFIG_CHANGE", "SYSCALL", "PROCTITLE"]]


def test_eoe_completes():
    r = Reassembler()
    r.push(rec("SYSCALL", 1.0, 1))
    assert types(r.push(rec("EOE", 1.0, 1, body=""))) == [["SYSCALL", "EOE"]]


def test_expiry_by_record_time_and_pending_offset():
    r = Reassembler(timeout=2.0)
    r.push(rec("SYSCALL", 10.0, 1, offset=100))
    r.push(rec("SYSCALL", 11.0, 2, offset=200))
    assert r.pending_min_offset() == 100
    out = r.push(rec("USER_ACCT", 12.5, 3, offset=300))
    assert [e.serial for e in out if isinstance(e, AuditEvent)] == [1, 3]
    assert r.pending_min_offset() == 200
    assert [e.serial for e in r.flush()] == [2]
    assert r.pending_min_offset() is None


def test_events_keyed_by_node():
    r = Reassembler()
    r.push(rec("SYSCALL", 1.0, 7, node="a"))
    r.push(rec("SYSCALL", 1.0, 7, node="b"))
    out = r.push(rec("PROCTITLE", 1.0, 7, node="b"))
    assert len(out) == 1 and out[0].node == "b" and len(out[0].records) == 2


def test_contiguous_and_slightly_reordered_serials_are_not_gaps():
    r = Reassembler()
    items = []
    for s in (1, 3, 2, 4, 5):
        items += r.push(rec("USER_ACCT", 1.0, s))
    items += r.flush()
    assert not [i for i in items if isinstance(i, Gap)]


def test_gap_within_a_daemon_run_is_reported_once_after_timeout():
    r = Reassembler(timeout=2.0)
    r.push(rec("USER_ACCT", 1.0, 10))
    assert not [i for i in r.push(rec("USER_ACCT", 1.5, 15)) if isinstance(i, Gap)]
    gaps = [i for i in r.push(rec("USER_ACCT", 4.0, 16)) if isinstance(i, Gap)]
    assert len(gaps) == 1
    g = gaps[0]
    assert (g.reason, g.first, g.last, g.count, g.stamp) == ("sequence-gap", 11, 14, 4, "1.500:15")
    assert not [i for i in r.flush() if isinstance(i, Gap)]


def test_gap_across_daemon_restart_is_expected():
    # Real shape: records logged while auditd is down go to kmsg, not the log.
    r = Reassembler()
    items = []
    for t, ts, s in (("USER_LOGIN", 1.0, 261), ("DAEMON_END", 5.0, 8785), ("DAEMON_START", 9.0, 2334),
                     ("SYSCALL", 9.0, 279), ("PROCTITLE", 9.0, 279), ("USER_ACCT", 20.0, 280)):
        items += r.push(rec(t, ts, s))
    items += r.flush()
    assert not [i for i in items if isinstance(i, Gap)]


def test_gap_across_daemon_resume_is_loss():
    r = Reassembler()
    items = []
    for t, ts, s in (("USER_ACCT", 1.0, 5), ("DAEMON_RESUME", 50.0, 9000), ("USER_ACCT", 50.0, 40),
                     ("USER_ACCT", 60.0, 41)):
        items += r.push(rec(t, ts, s))
    gaps = [i for i in items if isinstance(i, Gap)]
    assert [(g.first, g.last) for g in gaps] == [(6, 39)]


def test_backwards_serial_rebases_silently():
    r = Reassembler()
    items = r.push(rec("USER_ACCT", 1.0, 5_000_000)) + r.push(rec("USER_ACCT", 2.0, 1))
    items += r.push(rec("USER_ACCT", 9.0, 2)) + r.flush()
    assert not [i for i in items if isinstance(i, Gap)]


def test_lost_counter_reset_reports_kernel_lost():
    r = Reassembler()
    r.push(rec("CONFIG_CHANGE", 1.0, 9, body="op=set lost=0 old=17 auid=0 ses=1 res=1"))
    out = r.push(rec("SYSCALL", 1.0, 9)) + r.push(rec("PROCTITLE", 1.0, 9))
    out = r.flush()
    assert out == []
    r = Reassembler()
    gaps = [i for i in r.push(rec("CONFIG_CHANGE", 1.0, 9, body="op=set lost=0 old=17 res=1"))
            if isinstance(i, Gap)]
    assert [(g.reason, g.count) for g in gaps] == [("kernel-lost", 17)]


def test_rising_lost_field_reports_difference():
    r = Reassembler()
    r.push(rec("UNKNOWN[1000]", 1.0, 1, body="lost=3"))
    gaps = [i for i in r.push(rec("UNKNOWN[1000]", 2.0, 2, body="lost=10")) if isinstance(i, Gap)]
    assert [(g.reason, g.count) for g in gaps] == [("kernel-lost", 7)]
