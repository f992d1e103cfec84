"""agentd doctor: the parsers behind the PAM, sshd, journald, posture and shipper checks,
on files the tests write (the system test runs the same checks on the real stack)."""

from __future__ import annotations

import os

import pytest

from agent.app.doctor import journald, pam, posture, shippers, sshd
from agent.app.doctor.context import Context
from agent.app.doctor.finding import FAIL, OK, WARN, Finding
from agent.base.config import parse_config_text


@pytest.fixture
def ctx(tmp_path):
    conf = tmp_path / "agentd.conf"
    conf.write_text("[collector:journald]\ntype = journald\n[shipper:file]\ntype = file\n"
                    f"path = {tmp_path}/out.jsonl\n")
    return Context(str(conf), online=False)


def _sshd(ctx, **settings) -> sshd.Sshd:
    s = sshd.Sshd("/etc/ssh/sshd_config", "test", None, [], {k: [v] for k, v in settings.items()})
    ctx._memo["sshd"] = s
    return s


def _pam(tmp_path, files: dict) -> str:
    d = tmp_path / "pam.d"
    d.mkdir()
    for name, text in files.items():
        (d / name).write_text(text)
    return str(d)


def test_pam_tty_audit_found_through_include_and_substack(ctx, tmp_path):
    _sshd(ctx, usepam="yes")
    d = _pam(tmp_path, {
        "sshd": "auth include common-auth\n@include common-session\nsession substack postlogin\n",
        "common-session": "session [default=1] pam_permit.so\nsession required pam_loginuid.so\n",
        "postlogin": "-session optional /usr/lib/security/pam_tty_audit.so enable=* open_only # keys\n",
    })
    f = pam.check_tty_audit(ctx, d)
    assert f.status == OK and "enable=* open_only" in f.summary and f.summary.endswith("(log_passwd off)")
    assert pam.check_loginuid(ctx, d).status == OK


def test_pam_tty_audit_missing_log_passwd_or_no_pam(ctx, tmp_path):
    _sshd(ctx, usepam="yes")
    d = _pam(tmp_path, {"sshd": "session required pam_unix.so\n# session required pam_tty_audit.so enable=*\n"})
    f = pam.check_tty_audit(ctx, d)
    assert f.status == FAIL and "not in the session stack" in f.summary
    assert "keystrokes" in f.hides and "pam/agentd-tty-audit" in f.fix and "enable=*" in f.fix
    assert pam.check_loginuid(ctx, d).status == FAIL
    (tmp_path / "pam.d" / "sshd").write_text("session required pam_tty_audit.so enable=* log_passwd\n")
    assert pam.check_tty_audit(ctx, d).status == WARN
    _sshd(ctx, usepam="no")
    assert "UsePAM no" in pam.check_tty_audit(ctx, d).summary


def test_shipped_pam_line_is_what_doctor_accepts(ctx, tmp_path):
    _sshd(ctx, usepam="yes")
    here = os.path.dirname(__file__)
    with open(os.path.join(here, "..", "..", "packaging", "pam", "agentd-tty-audit")) as f:
        line = f.read()
    assert pam.check_tty_audit(ctx, _pam(tmp_path, {"sshd": line})).status == OK


def test_sshd_title_gives_back_its_arguments():
    title = ["sshd: /usr/sbin/sshd -D -f /run/x/sshd_config -o LogLevel=INFO [listener] 0 of 10-100 startups"]
    ls = sshd.Listener(1, "/usr/sbin/sshd", sshd.title_argv(title))
    assert ls.option("-f") == "/run/x/sshd_config" and ls.options("-o") == ["LogLevel=INFO"]
    assert ls.option("-E") is None
    assert sshd.title_argv(["/usr/sbin/sshd", "-D", "-E", "/tmp/log"])[3] == "/tmp/log"


@pytest.mark.parametrize("subsystem,status", [
    ("sftp /usr/lib/openssh/sftp-server -l INFO", OK),
    ("sftp internal-sftp -f AUTHPRIV -lVERBOSE", OK),
    ("sftp /usr/lib/openssh/sftp-server", FAIL),
    ("sftp /usr/lib/openssh/sftp-server -l ERROR", FAIL),
])
def test_sftp_logging_level(ctx, subsystem, status):
    _sshd(ctx, subsystem=subsystem)
    f = sshd.check_sftp(ctx)
    assert f.status == status
    if status == FAIL:
        assert "file transfers" in f.hides and "already defined" not in f.fix and "-l INFO" in f.fix


@pytest.mark.parametrize("level,status", [("QUIET", FAIL), ("INFO", OK), ("VERBOSE", OK), ("DEBUG3", WARN)])
def test_loglevel_says_what_each_level_gives(ctx, level, status):
    _sshd(ctx, loglevel=level)
    f = sshd.check_loglevel(ctx)
    assert f.status == status and "5.1.14" in f.cis
    if level == "INFO":
        assert "fingerprint" in f.summary and "DEBUG" in f.summary


def test_posture_lines(ctx, tmp_path, monkeypatch):
    shadow = tmp_path / "shadow"
    shadow.write_text("root:*:1::::::\nalice:!:1::::::\ncarol:$y$j9T$abc:1::::::\nbob::1::::::\n")
    monkeypatch.setattr(posture, "SHADOW", str(shadow))
    _sshd(ctx, permitrootlogin="prohibit-password", passwordauthentication="yes", usepam="yes",
          kbdinteractiveauthentication="no", authenticationmethods="any", allowagentforwarding="yes",
          allowtcpforwarding="yes", gatewayports="no", permittunnel="no", x11forwarding="yes",
          disableforwarding="no", clientaliveinterval="0", clientalivecountmax="3")
    found = {f.check: f for f in posture.checks(ctx)}
    assert set(found) == {f"posture.{k}" for k in (
        "PermitRootLogin", "PasswordAuthentication", "AuthenticationMethods", "AllowAgentForwarding",
        "AllowTcpForwarding", "GatewayPorts", "PermitTunnel", "X11Forwarding", "ClientAliveInterval")}
    assert found["posture.PermitRootLogin"].status == WARN and "5.1.20" in found["posture.PermitRootLogin"].cis
    assert "2 account(s) have a password: carol, bob" in found["posture.PasswordAuthentication"].summary
    assert found["posture.PermitTunnel"].status == OK and found["posture.X11Forwarding"].status == WARN
    assert found["posture.AuthenticationMethods"].cis == "CIS item not confirmed"
    assert "5.1.7" in found["posture.ClientAliveInterval"].cis and "5.1.9" in found["posture.ClientAliveInterval"].cis
    _sshd(ctx, disableforwarding="yes", allowtcpforwarding="yes", authenticationmethods="publickey,password")
    found = {f.check: f for f in posture.checks(ctx)}
    assert found["posture.AllowTcpForwarding"].status == OK and "DisableForwarding yes" in \
        found["posture.AllowTcpForwarding"].summary
    assert found["posture.AuthenticationMethods"].status == OK
    _sshd(ctx, authenticationmethods="publickey,password publickey")
    assert {f.check: f for f in posture.checks(ctx)}["posture.AuthenticationMethods"].status == WARN


def test_journald_settings_merge_drop_ins_by_name(tmp_path):
    (tmp_path / "etc/systemd/journald.conf.d").mkdir(parents=True)
    (tmp_path / "usr/lib/systemd/journald.conf.d").mkdir(parents=True)
    (tmp_path / "etc/systemd/journald.conf").write_text("[Journal]\nStorage=volatile\nRateLimitBurst=50\n")
    (tmp_path / "usr/lib/systemd/journald.conf.d/10-a.conf").write_text("[Journal]\nStorage=auto\n")
    (tmp_path / "etc/systemd/journald.conf.d/20-b.conf").write_text("[Journal]\nStorage=persistent\n")
    st = journald.settings(str(tmp_path))
    assert st["Storage"][0] == "persistent" and st["RateLimitBurst"][0] == "50"
    assert journald.seconds("1min 30s") == 90 and journald.seconds("30s") == 30


def test_shipper_destination_never_shows_a_secret():
    cfg = parse_config_text(
        "[collector:auditd]\ntype = auditd\n"
        "[shipper:hec]\ntype = splunk_hec\nurl = https://user:pw@splunk.example:8088/x?token=abc\ntoken = T0K\n"
        "[shipper:file]\ntype = file\npath = /var/log/agentd/e.jsonl\n", "t.conf")
    dest = {c.section: shippers.destination(c) for c in cfg.enabled("shipper")}
    assert dest == {"shipper:hec": "https://splunk.example:8088/x", "shipper:file": "/var/log/agentd/e.jsonl"}


def test_a_finding_is_one_line():
    f = Finding("x.y", FAIL, "seen", "hidden", "do this", "CIS item not confirmed")
    assert f.line() == f"FAIL {'x.y':<30} seen | hides: hidden | fix: do this | CIS item not confirmed"
    assert "\n" not in f.line()


def test_run_logs_what_it_could_not_ask_once_at_info(ctx, monkeypatch, caplog):
    from agent.app.doctor import audit, startup

    # As the packaged unit's non-root user: auditctl and sshd -T refuse.
    monkeypatch.setattr(audit, "status", lambda: {"_error": "Operation not permitted"})
    monkeypatch.setattr(sshd, "_settings", lambda exe, c, extra: ({}, "sshd: no hostkeys available -- exiting."))
    caplog.set_level("INFO", logger="agentd")
    startup.log_findings_in_background(ctx.cfg).join(30)
    msgs = [(r.levelname, r.getMessage()) for r in caplog.records]
    assert ("INFO", "doctor: could not check audit.daemon, sshd.config with this process's rights; "
                    "`agentd doctor` as root does") in msgs
    assert not any(level == "ERROR" and ("audit.daemon" in m or "sshd.config" in m) for level, m in msgs), msgs
    assert startup.destinations(ctx.cfg) == f"events go to: [shipper:file] file {ctx.cfg.enabled('shipper')[0].conf['path']}"


def test_check_config_online_runs_the_same_shipper_checks(tmp_path, capsys):
    from agent.app import cli

    good = tmp_path / "good.conf"
    good.write_text(f"[collector:auditd]\ntype = auditd\n[shipper:out]\ntype = file\npath = {tmp_path}/o.jsonl\n")
    assert cli.main(["check-config", "-c", str(good), "--online"]) == 0
    assert f"[shipper:out] OK: {tmp_path}/o.jsonl is writable" in capsys.readouterr().out
    bad = tmp_path / "bad.conf"
    bad.write_text("[collector:auditd]\ntype = auditd\n[shipper:out]\ntype = file\n"
                   f"path = {tmp_path}/missing/deeper/o.jsonl\n")
    assert cli.main(["check-config", "-c", str(bad), "--online"]) == 1
    assert "[shipper:out] FAILED:" in capsys.readouterr().out
