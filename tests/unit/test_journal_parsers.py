"""The journald message parsers over real lines recorded from this stack's journal.

tests/unit/data/journal_lines.jsonl is written by record_journal_lines.py next to it
(OpenSSH 9.2, sudo 1.9.13, util-linux su, Linux-PAM, on Debian 12). A few variants the
stack cannot produce (noted where used) are written in the exact format of the
program's source.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from collectors.journald import sftp, sshd, su, sudo

DATA = Path(__file__).with_name("data") / "journal_lines.jsonl"
LINES = [json.loads(line) for line in DATA.read_text().splitlines() if line.strip()]


def entries(scenario: str, program: str = "") -> list:
    return [d["entry"] for d in LINES if d["scenario"] == scenario
            and (not program or d["entry"].get("SYSLOG_IDENTIFIER") == program)]


def line(scenario: str, startswith: str, program: str = "") -> dict:
    for e in entries(scenario, program):
        if e["MESSAGE"].startswith(startswith):
            return e
    raise AssertionError(f"no {startswith!r} line in scenario {scenario}")


def parse_sshd(e: dict) -> dict:
    return sshd.parse(e["MESSAGE"], e)


def ev(frag: dict) -> tuple:
    return frag["event"]["dataset"], frag["event"].get("action"), frag["event"]["outcome"]


# -- sshd ------------------------------------------------------------------


def test_accepted_publickey():
    f = parse_sshd(line("alice-publickey-sudo", "Accepted publickey"))
    assert ev(f) == ("sshd.auth", "logged-in", "success")
    assert f["user"] == {"name": "alice"}
    assert f["source"]["ip"] == "127.0.0.1" and isinstance(f["source"]["port"], int)
    assert f["session"]["auth"] == {
        "method": "publickey", "key_type": "ED25519",
        "key_fingerprint": "SHA256:TWGlLIfHtQLF5JuHocdxlp2Y2wxiqBx7J0sNfThvY7A",
    }
    assert "authentication" in f["event"]["category"]


def test_accepted_password_and_keyboard_interactive():
    f = parse_sshd(line("carol-password-sudo-su", "Accepted password"))
    assert ev(f) == ("sshd.auth", "logged-in", "success")
    assert f["user"]["name"] == "carol" and f["session"]["auth"] == {"method": "password"}
    f = parse_sshd(line("carol-kbd-accepted", "Accepted keyboard-interactive"))
    assert f["session"]["auth"] == {"method": "keyboard-interactive", "submethod": "pam"}
    assert f["user"]["name"] == "carol"


def test_failed_password():
    e = line("carol-failed-password", "Failed password")
    f = parse_sshd(e)
    assert ev(f) == ("sshd.auth", "login-failed", "failure")
    assert f["user"]["name"] == "carol"
    assert f["source"]["port"] == int(e["MESSAGE"].split(" port ")[1].split()[0])
    assert f["session"]["auth"]["method"] == "password"
    assert "sshd" not in f  # a real account


def test_failed_password_for_invalid_user_and_invalid_user_line():
    f = parse_sshd(line("invalid-user", "Failed password for invalid user"))
    assert ev(f) == ("sshd.auth", "login-failed", "failure")
    assert f["user"]["name"] == "nosuchuser" and f["sshd"] == {"invalid_user": True}
    f = parse_sshd(line("invalid-user", "Invalid user"))
    assert ev(f) == ("sshd.auth", "invalid-user", "failure")
    assert f["user"]["name"] == "nosuchuser" and f["source"]["ip"] == "127.0.0.1"


def test_failed_keyboard_interactive():
    f = parse_sshd(line("carol-kbd-failed", "Failed keyboard-interactive"))
    assert ev(f) == ("sshd.auth", "login-failed", "failure")
    assert f["session"]["auth"]["method"] == "keyboard-interactive"


@pytest.mark.parametrize("scenario, user, want", [
    ("carol-failed-password", "carol", {"login-failed": 1, "disconnected": 1}),
    ("invalid-user", "nosuchuser", {"invalid-user": 1, "login-failed": 1, "disconnected": 1}),
    ("carol-kbd-failed", "carol", {"login-failed": 1, "disconnected": 1}),
])
def test_one_event_per_failed_attempt(scenario, user, want):
    # The attempt's pam_unix(sshd:auth) and "error: PAM:" lines must not add failures.
    pid = {e["_PID"] for e in entries(scenario, "sshd") if user in e["MESSAGE"] and "Failed" in e["MESSAGE"]}
    assert len(pid) == 1
    got = Counter()
    for e in entries(scenario, "sshd"):
        if e["_PID"] in pid or (e.get("SYSLOG_PID") in pid):
            f = parse_sshd(e)
            if f:
                got[f["event"]["action"]] += 1
    assert dict(got) == want


def test_disconnects():
    f = parse_sshd(line("alice-publickey-sudo", "Disconnected from user alice"))
    assert ev(f) == ("sshd.auth", "disconnected", "unknown")
    assert f["user"]["name"] == "alice" and f["sshd"] == {"preauth": False, "user_state": "authenticated"}
    assert f["event"]["category"] == ["network", "session"]
    f = parse_sshd(line("carol-failed-password", "Connection closed by authenticating user carol"))
    assert f["event"]["action"] == "disconnected" and f["sshd"]["preauth"] is True
    assert f["sshd"]["user_state"] == "authenticating" and f["user"]["name"] == "carol"
    f = parse_sshd(line("invalid-user", "Connection closed by invalid user"))
    assert f["user"]["name"] == "nosuchuser" and f["sshd"]["user_state"] == "invalid"
    # The client's reason line is followed by "Disconnected from": it stays generic.
    assert parse_sshd(line("alice-publickey-sudo", "Received disconnect")) is None


def test_disconnect_variants_from_openssh_source_formats():
    # Not produced by this stack's script; formats from OpenSSH's packet.c / sshd.c.
    f = sshd.parse("Connection closed by 10.0.0.9 port 51234 [preauth]")
    assert f["event"]["action"] == "disconnected" and f["source"] == {"ip": "10.0.0.9", "port": 51234}
    assert "user" not in f
    f = sshd.parse("Connection reset by 10.0.0.9 port 51234")
    assert f["sshd"]["reason"] == "connection reset"
    f = sshd.parse("Disconnecting authenticating user carol 10.0.0.9 port 51234: "
                   "Too many authentication failures [preauth]")
    assert f["user"]["name"] == "carol" and f["sshd"]["reason"] == "Too many authentication failures"
    f = sshd.parse("Timeout before authentication for 10.0.0.9 port 51234")
    assert f["event"]["action"] == "disconnected" and f["source"]["port"] == 51234


def test_pam_session_lines():
    f = parse_sshd(line("alice-publickey-sudo", "pam_unix(sshd:session): session opened"))
    assert ev(f) == ("sshd.auth", "session-opened", "success")
    assert f["user"] == {"name": "alice", "id": "1001"}
    f = parse_sshd(line("alice-publickey-sudo", "pam_unix(sshd:session): session closed"))
    assert ev(f) == ("sshd.auth", "logged-out", "success") and f["event"]["type"] == ["end"]
    assert f["user"]["name"] == "alice"


def test_starting_session():
    f = parse_sshd(line("alice-publickey-sudo", "Starting session: shell"))
    assert f["event"]["action"] == "started-session"
    assert f["agentd"]["process"]["tty"]["name"].startswith("pts/") and f["sshd"]["session_type"] == "shell"
    assert f["process"]["tty"]["char_device"]["major"] == 136
    f = parse_sshd(line("alice-sftp", "Starting session: subsystem"))
    assert f["sshd"]["session_type"] == "subsystem 'sftp'" and "process" not in f
    assert f["user"]["name"] == "alice"


@pytest.mark.parametrize("prefix", ["Accepted key ", "Postponed publickey", "pam_unix(sshd:auth): authentication failure",
                                    "pam_limits(sshd:session)", "Connection from", "User child is on pid"])
def test_generic_sshd_lines(prefix):
    scenario = "carol-failed-password" if "auth)" in prefix else "alice-sftp"
    assert parse_sshd(line(scenario, prefix)) is None


# -- sudo ------------------------------------------------------------------


def test_sudo_success():
    e = line("alice-publickey-sudo", "   alice : TTY", "sudo")
    f = sudo.parse(e["MESSAGE"], e)
    assert ev(f) == ("sudo.command", "sudo", "success")
    assert f["user"] == {"name": "alice", "target": {"name": "root"}}
    assert f["process"]["command_line"] == "/usr/bin/id"
    assert f["process"]["working_directory"] == "/home/alice"
    assert f["agentd"]["process"]["tty"]["name"].startswith("pts/")  # the number depends on other logins
    assert f["process"]["tty"]["char_device"]["major"] == 136
    assert "sudo" not in f


def test_sudo_login_shell():
    msgs = [e["MESSAGE"] for e in entries("alice-publickey-sudo", "sudo") if "COMMAND=/bin/bash" in e["MESSAGE"]]
    f = sudo.parse(msgs[0])
    assert f["process"]["command_line"] == "/bin/bash" and f["process"]["working_directory"] == "/root"


def test_sudo_not_in_sudoers():
    f = sudo.parse(line("carol-password-sudo-su", "   carol : user NOT in sudoers", "sudo")["MESSAGE"])
    assert ev(f) == ("sudo.command", "sudo", "failure")
    assert f["sudo"] == {"reason": "user NOT in sudoers"}
    assert f["user"] == {"name": "carol", "target": {"name": "root"}}
    assert f["process"]["command_line"] == "/usr/bin/id"


def test_sudo_command_not_allowed():
    f = sudo.parse(line("bob-sudo-not-allowed", "     bob : command not allowed", "sudo")["MESSAGE"])
    assert ev(f) == ("sudo.command", "sudo", "failure")
    assert f["sudo"]["reason"] == "command not allowed"
    assert f["process"]["command_line"] == "/bin/ls /root"


def test_sudo_formats_the_stack_cannot_produce():
    # Every sudoers rule on the stack is NOPASSWD, so sudo never counts wrong passwords
    # there; this is the line sudo 1.9 writes (plugins/sudoers/logging.c) when it does.
    f = sudo.parse("    dave : 3 incorrect password attempts ; TTY=pts/2 ; PWD=/home/dave ; USER=root ; "
                   "COMMAND=/usr/bin/systemctl restart nginx")
    assert f["event"]["outcome"] == "failure" and f["sudo"]["reason"] == "3 incorrect password attempts"
    assert f["process"]["command_line"] == "/usr/bin/systemctl restart nginx"
    # A command whose arguments contain the field separator keeps it.
    f = sudo.parse("alice : TTY=pts/1 ; PWD=/tmp ; USER=root ; ENV=A=1 ; COMMAND=/bin/sh -c echo a ; echo b")
    assert f["process"]["command_line"] == "/bin/sh -c echo a ; echo b" and f["sudo"] == {"env": "A=1"}
    f = sudo.parse("alice : TTY=unknown ; PWD=/ ; USER=bob ; GROUP=adm ; COMMAND=/usr/bin/id")
    assert f["group"] == {"target": {"name": "adm"}} and "tty" not in f["process"] and "agentd" not in f


@pytest.mark.parametrize("prefix", ["pam_unix(sudo:session): session opened", "pam_unix(sudo:auth): conversation failed",
                                    "pam_limits(sudo:session)"])
def test_generic_sudo_lines(prefix):
    scenario = "bob-sudo-not-allowed"
    assert sudo.parse(line(scenario, prefix, "sudo")["MESSAGE"]) is None


# -- su --------------------------------------------------------------------


def test_su_success_and_failure():
    f = su.parse(line("carol-password-sudo-su", "(to dave)", "su")["MESSAGE"])
    assert ev(f) == ("su.session", "su", "success")
    assert f["user"] == {"name": "carol", "target": {"name": "dave"}}
    assert f["agentd"]["process"]["tty"]["name"].startswith("pts/") and "char_device" in f["process"]["tty"]
    f = su.parse(line("carol-password-sudo-su", "FAILED SU", "su")["MESSAGE"])
    assert ev(f) == ("su.session", "su", "failure")
    assert f["user"] == {"name": "carol", "target": {"name": "dave"}}


def test_su_pam_session_lines():
    f = su.parse(line("carol-password-sudo-su", "pam_unix(su-l:session): session opened", "su")["MESSAGE"])
    assert ev(f) == ("su.session", "session-opened", "success")
    assert f["user"] == {"id": "1003", "target": {"name": "dave", "id": "1004"}}
    f = su.parse(line("carol-password-sudo-su", "pam_unix(su-l:session): session closed", "su")["MESSAGE"])
    assert f["event"]["action"] == "session-closed" and f["user"]["target"]["name"] == "dave"
    assert su.parse(line("carol-password-sudo-su", "pam_unix(su-l:auth)", "su")["MESSAGE"]) is None


# -- sftp-server -----------------------------------------------------------


def _sftp_frags() -> list:
    state = sftp.SftpState()
    out = []
    for e in entries("alice-sftp", "sftp-server"):
        f = sftp.parse(e["MESSAGE"], e, state)
        out.append((e["MESSAGE"], f))
    return out


def test_sftp_upload_and_download():
    frags = [f for _, f in _sftp_frags() if f and f["event"].get("action") in ("file-uploaded", "file-downloaded")]
    up, down = frags
    assert ev(up) == ("sshd.sftp", "file-uploaded", "success")
    assert up["file"] == {"path": "/home/alice/journal-upload.bin", "name": "journal-upload.bin"}
    assert up["transfer"] == {"protocol": "sftp", "direction": "upload", "bytes": 12288}
    assert up["user"] == {"name": "alice"} and up["source"] == {"ip": "127.0.0.1"}
    assert ev(down) == ("sshd.sftp", "file-downloaded", "success")
    assert down["file"]["path"] == "/etc/hostname"
    assert down["transfer"]["direction"] == "download" and down["transfer"]["bytes"] > 0


def test_sftp_session_and_file_operations():
    got: dict = {}
    for msg, f in _sftp_frags():
        got.setdefault(msg.split(" ", 1)[0], f)
    assert ev(got["session"]) == ("sshd.sftp", "session-opened", "success")
    assert got["session"]["user"]["name"] == "alice"
    assert got["open"]["sftp"]["flags"] == ["CREATE", "TRUNCATE", "WRITE"] and got["open"]["event"]["action"] == "file-opened"
    assert got["mkdir"]["event"]["action"] == "directory-created"
    assert got["mkdir"]["file"]["path"] == "/home/alice/jdir" and got["mkdir"]["file"]["type"] == "dir"
    assert got["posix-rename"]["event"]["action"] == "file-renamed"
    assert got["posix-rename"]["file"]["path"] == "/home/alice/jdir/moved.bin"
    assert got["posix-rename"]["sftp"]["old_path"] == "/home/alice/journal-upload.bin"
    assert got["remove"]["event"]["action"] == "file-deleted"
    assert got["rmdir"]["event"]["action"] == "directory-deleted"
    assert got["opendir"] is None and got["sent"] is None  # generic sftp.log


def test_sftp_empty_file_direction_comes_from_open_flags():
    # The format of the real lines above with a zero-byte file, which has no bytes to tell.
    state = sftp.SftpState()
    fields = {"_PID": "4242"}
    sftp.parse("session opened for local user bob from [10.1.2.3]", fields, state)
    sftp.parse('open "empty.txt" flags WRITE,CREATE,TRUNCATE mode 0644', fields, state)
    f = sftp.parse('close "empty.txt" bytes read 0 written 0', fields, state)
    assert f["event"]["action"] == "file-uploaded" and f["transfer"]["bytes"] == 0
    assert f["user"] == {"name": "bob"} and f["source"] == {"ip": "10.1.2.3"}
    assert f["file"] == {"path": "empty.txt", "name": "empty.txt"}
    sftp.parse("session closed for local user bob from [10.1.2.3]", fields, state)
    assert state.sessions == {} and state.opens == {}
    # Without its open line (collector started mid-session) the direction is unknown.
    f = sftp.parse('close "x" bytes read 0 written 0', fields, state)
    assert f["event"]["action"] == "file-closed" and "direction" not in f["transfer"]
