"""The real stack end to end: a real ssh login through a pty lands in the real audit log
(EXECVE + TTY keystrokes) and in the real journal (sshd's Accepted line); the target host's
sshd stays out of the journal."""

from __future__ import annotations

import re
import secrets
import subprocess

import pytest

from tests.stack.fixtures import (
    audit_records_since,
    decode_tty_data,
    execve_argv,
    group_events,
    journal_since,
    wait_for_audit,
    wait_for_journal,
)
from tests.stack.session import SshSession

pytestmark = pytest.mark.stack


def _fingerprint(pubkey_path: str) -> str:
    out = subprocess.run(["ssh-keygen", "-lf", pubkey_path], capture_output=True, text=True,
                         check=True).stdout
    return out.split()[1]  # "256 SHA256:... comment (ED25519)"


def test_alice_session_reaches_audit_log_and_journal(stack, ssh_session, audit_mark,
                                                       journal_mark):
    token = secrets.token_hex(6)
    alice_uid = subprocess.run(["id", "-u", "alice"], capture_output=True, text=True,
                               check=True).stdout.strip()
    s = ssh_session("alice")
    ses = s.run("cat /proc/self/sessionid").strip()
    assert ses.isdigit() and ses != "4294967295", ses
    assert f"agentd-probe-{token}" in s.run(f"/bin/echo agentd-probe-{token}")
    assert f"uid={alice_uid}(alice)" in s.run("id")
    s.close()
    assert s.proc.exit_status == 0

    # EXECVE records for both commands, attributed (SYSCALL auid/ses) to alice's login.
    def execs(lines):
        found = {}
        for serial, recs in group_events(lines).items():
            by_type = {r["type"]: r for r in recs}
            if "EXECVE" not in by_type or "SYSCALL" not in by_type:
                continue
            argv = [a.decode(errors="replace") for a in execve_argv(by_type["EXECVE"])]
            sc = by_type["SYSCALL"]["fields"]
            if sc.get("auid") == alice_uid and sc.get("ses") == ses and sc.get("key") == "exec":
                if argv == ["/bin/echo", f"agentd-probe-{token}"]:
                    found["echo"] = serial
                elif argv == ["id"]:
                    found["id"] = serial
        return found if len(found) == 2 else None

    wait_for_audit(execs, timeout=20, since=audit_mark)

    # pam_tty_audit flushed the typed keystrokes at logout: a TTY record for this ses.
    def tty_text(lines):
        typed = b"".join(
            decode_tty_data(r["fields"]["data"])
            for recs in group_events(lines).values() for r in recs
            if r["type"] == "TTY" and r["fields"].get("ses") == ses
        )
        return typed if f"/bin/echo agentd-probe-{token}".encode() in typed else None

    typed = wait_for_audit(tty_text, timeout=20, since=audit_mark)
    assert b"id\r" in typed and b"exit\r" in typed

    # journald got sshd's Accepted line with the key's fingerprint (LogLevel VERBOSE).
    fp = _fingerprint(stack.users["alice"]["key_path"] + ".pub")
    rx = re.compile(r"^Accepted publickey for alice from 127\.0\.0\.1 port (\d+) ssh2: "
                    r"ED25519 (SHA256:\S+)$")

    def accepted(entries):
        for e in entries:
            m = rx.match(e.get("MESSAGE", ""))
            if m and m.group(2) == fp:
                return e
        return None

    entry = wait_for_journal(accepted, journal_mark, ["_COMM=sshd"], timeout=20)
    assert entry.get("SYSLOG_IDENTIFIER") == "sshd"


def test_target_sshd_logs_to_its_file_not_the_journal(stack, journal_mark):
    token = secrets.token_hex(6)
    key = stack.users["bob"]["key_path"]
    with SshSession("bob", host=stack.target_host, port=stack.target_port, key=key) as s:
        assert "bob" in s.run("id -un")
        local_port = s.run("echo ${SSH_CLIENT}").split()[1]
        s.run(f"echo {token}")
    line = f"Accepted publickey for bob from 127.0.0.1 port {local_port} ssh2"

    def in_target_log(_lines):
        with open(stack.target_log, errors="replace") as f:
            return line in f.read()

    wait_for_audit(in_target_log, timeout=20)
    # The jump host's journal must not know about this login at all.
    leaked = [e for e in journal_since(journal_mark, ["_COMM=sshd"])
              if f"port {local_port}" in str(e.get("MESSAGE"))]
    assert leaked == []


def test_audit_log_slice_is_line_aligned(stack, audit_mark):
    # Helpers other tests rely on: a fresh mark yields only whole lines.
    for line in audit_records_since(audit_mark):
        assert line.startswith("type=")
