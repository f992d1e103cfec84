"""`agentd doctor` on the real stack: every coverage check OK; with pam_tty_audit removed
from PAM, the connect rules deleted, the sftp subsystem's -l INFO removed, it names each
gap. Each toggle changes state the other tests share, so it is restored in a `finally`
and kept to one `doctor --only GROUP` run (well under a second or two)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time

import pytest

from tests.stack import stack as _stack
from tests.system.agentd_proc import REPO, AgentProc

pytestmark = pytest.mark.stack

COVERAGE = ("audit.daemon", "audit.log", "audit.rules.exec", "audit.rules.net_connect", "audit.rules.watches",
            "audit.rules.exclude", "pam.tty_audit", "pam.loginuid", "sshd.config", "sshd.loglevel", "sshd.sftp",
            "journald.storage", "journald.ratelimit", "shipper.file", "host.spool", "agent.config")
POSTURE = ("PermitRootLogin", "PasswordAuthentication", "AuthenticationMethods", "AllowAgentForwarding",
           "AllowTcpForwarding", "GatewayPorts", "PermitTunnel", "X11Forwarding", "ClientAliveInterval")
JUMP_CONFIG = str(_stack.STATE_DIR / "sshd_jump_config")


@pytest.fixture
def conf(tmp_path):
    p = tmp_path / "agentd.conf"
    p.write_text(f"[agent]\nstate_dir = {tmp_path}/state\n[collector:auditd]\ntype = auditd\n"
                 f"[collector:journald]\ntype = journald\n[shipper:file]\ntype = file\npath = {tmp_path}/out.jsonl\n")
    return str(p)


def doctor(conf: str, *args: str) -> tuple:
    p = subprocess.run([sys.executable, "-m", "agent.app.cli", "doctor", "-c", conf, "--json", *args],
                       capture_output=True, text=True, cwd=REPO, timeout=120)
    assert p.stdout, p.stderr
    return p.returncode, {f["check"]: f for f in json.loads(p.stdout)["findings"]}


def _replace(path: str, text: str, st: os.stat_result) -> None:
    """Atomic, same mode and mtime: readers never see half a file, and the restored file is the same."""
    tmp = f"{path}.agentd-doctor-test"
    with open(tmp, "w") as f:
        f.write(text)
    os.chmod(tmp, st.st_mode & 0o7777)
    os.utime(tmp, ns=(st.st_atime_ns, st.st_mtime_ns))
    os.replace(tmp, path)


def doctor_with_edit(conf: str, path: str, group: str, expect: str, edit) -> tuple:
    """Run `doctor --only GROUP` while ``path`` holds ``edit(original)``; restore it at once."""
    st = os.stat(path)
    with open(path) as f:
        original = f.read()
    assert expect in original
    try:
        _replace(path, edit(original), st)
        result = doctor(conf, "--only", group)
    finally:
        _replace(path, original, st)
    with open(path) as f:
        assert f.read() == original
    return result


def test_on_the_stack_every_coverage_check_is_ok(stack, conf):
    rc, found = doctor(conf)
    for check in COVERAGE:
        assert found[check]["status"] == "OK", found[check]
    assert JUMP_CONFIG in found["sshd.config"]["summary"]  # the stack's own sshd, not the target's
    assert "fingerprint" in found["sshd.loglevel"]["summary"]
    assert rc == (1 if any(f["status"] == "FAIL" for f in found.values()) else 0)
    # The posture lines say what the stack's sshd allows.
    for key in POSTURE:
        assert f"posture.{key}" in found
    pw = found["posture.PasswordAuthentication"]
    assert pw["status"] == "WARN" and "carol" in pw["summary"] and "dave" in pw["summary"]
    assert found["posture.PermitRootLogin"]["status"] == "OK"
    assert found["posture.AllowTcpForwarding"]["status"] == "WARN"
    assert "5.1.8" in found["posture.AllowTcpForwarding"]["cis"] and "5.1.10" in found["posture.AllowTcpForwarding"]["cis"]
    text = subprocess.run([sys.executable, "-m", "agent.app.cli", "doctor", "-c", conf], capture_output=True,
                          text=True, cwd=REPO, timeout=120).stdout.splitlines()
    assert len(text) == len(found) + 1 and all(ln.split()[0] in ("OK", "WARN", "FAIL") for ln in text[:-1])


def test_pam_tty_audit_removed_from_pam_is_named(stack, conf):
    rc, found = doctor_with_edit(conf, str(_stack.PAM_SSHD), "pam", "pam_tty_audit.so",
                                 lambda t: "".join(ln for ln in t.splitlines(True) if "pam_tty_audit.so" not in ln))
    gap = found["pam.tty_audit"]
    assert rc == 1 and gap["status"] == "FAIL" and "keystrokes" in gap["hides"]
    assert "agentd-tty-audit" in gap["fix"] and "pam_tty_audit.so enable=*" in gap["fix"]
    assert doctor(conf, "--only", "pam")[1]["pam.tty_audit"]["status"] == "OK"


def _auditctl(*args: str) -> str:
    return subprocess.run(["auditctl", *args], capture_output=True, text=True, check=True, timeout=30).stdout


def _restore_rules(before: list) -> None:
    """Put the rule list back exactly, order included (the stack reloads everything when
    its listing differs): from the first deleted rule on, take the tail out and re-add it."""
    now = _auditctl("-l").splitlines()
    first = next((i for i, ln in enumerate(before) if ln not in now), None)
    if first is None and now == before:
        return
    first = len(before) if first is None else first
    lines = []
    for ln in now:
        if ln in before[first:] or ln not in before:
            lines.append(("-W " + ln[3:]) if ln.startswith("-w ") else ("-d " + ln[3:]))
    lines += before[first:]
    with tempfile.NamedTemporaryFile("w", suffix=".rules", delete=False) as f:
        f.write("\n".join(lines) + "\n")
    try:
        subprocess.run(["auditctl", "-R", f.name], capture_output=True, text=True, timeout=30)
    finally:
        os.unlink(f.name)


def test_deleted_connect_rule_is_named(stack, conf):
    before = _auditctl("-l").splitlines()
    connect = [ln for ln in before if " -S connect " in ln and "net_connect" in ln]
    assert len(connect) == 2, before
    try:
        for ln in connect:
            _auditctl("-d", *ln[3:].split())
        during = _auditctl("-l")
        rc, found = doctor(conf, "--only", "audit")
    finally:
        _restore_rules(before)
    assert _auditctl("-l").splitlines() == before
    assert "connect" not in during
    gap = found["audit.rules.net_connect"]
    assert rc == 1 and gap["status"] == "FAIL"
    assert "connect on b64" in gap["summary"] and "connect on b32" in gap["summary"]
    assert "outbound connections" in gap["hides"]
    assert "auditctl -a always,exit -F arch=b64 -S connect -F auid!=unset -k net_connect" in gap["fix"]
    assert found["audit.rules.exec"]["status"] == "OK" and found["audit.rules.watches"]["status"] == "OK"


def test_sftp_subsystem_without_log_level_is_named(stack, conf):
    rc, found = doctor_with_edit(conf, JUMP_CONFIG, "sshd", "sftp-server -l INFO",
                                 lambda t: t.replace("sftp-server -l INFO", "sftp-server"))
    gap = found["sshd.sftp"]
    assert rc == 1 and gap["status"] == "FAIL" and "file transfers" in gap["hides"]
    assert "-l INFO" in gap["fix"] and "agentd-sftp-logging.conf" in gap["fix"]


def test_sshd_config_option_checks_another_file(stack, conf, tmp_path):
    other = tmp_path / "sshd_config"
    with open(JUMP_CONFIG) as f:
        text = f.read().replace("LogLevel VERBOSE", "LogLevel QUIET").replace("PermitRootLogin no", "PermitRootLogin yes")
    other.write_text(text)
    rc, found = doctor(conf, "--only", "sshd,posture", "--sshd-config", str(other))
    assert str(other) in found["sshd.config"]["summary"] and "--sshd-config" in found["sshd.config"]["summary"]
    assert found["sshd.loglevel"]["status"] == "FAIL" and rc == 1
    assert found["posture.PermitRootLogin"]["status"] == "WARN"


def test_run_says_first_where_events_go_then_logs_findings(stack, tmp_path):
    agent = AgentProc(tmp_path).start()
    try:
        deadline = time.monotonic() + 30
        while "doctor:" not in agent.log_text() and time.monotonic() < deadline:
            time.sleep(0.1)
    finally:
        agent.stop()
    lines = agent.log_text().splitlines()
    assert lines[0].endswith(f"events go to: [shipper:file] file {agent.out}"), lines[:3]
    doc = [ln for ln in lines if "doctor:" in ln]
    assert any("WARN posture.PasswordAuthentication" in ln for ln in doc), lines
    assert not any(" OK " in ln.split("doctor:", 1)[1][:6] for ln in doc)
    assert sum("posture.PasswordAuthentication" in ln for ln in lines) == 1
