"""Record a capture: real bastion sessions run through the real stack, and the exact audit
log bytes and journal entries they produced, plus the audit project's own readings of them.

    python tests/captures/record.py [--out tests/captures/bastion1]

Writes into the output directory:
  audit.log          the exact raw bytes auditd appended during the run (whole lines)
  journal.export     journalctl -o export of the sshd/sudo/su/sftp-server syslog entries
  journal.json       the same entries, -o json (one per line), for reading
  manifest.json      every scripted step: user, how they logged in, what was typed
  auparse.json, aureport_tty.txt, ausearch_i.txt   via oracles.py (re-runnable)

Needs root and the stack (it brings it up). Other ssh activity on the machine during the
run would land in the capture too; the manifest lists the sessions (ses) it expects.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Dict, List, Optional

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from tests.stack import stack as stackmod  # noqa: E402
from tests.stack.fixtures import (  # noqa: E402
    audit_bytes_since,
    audit_position,
    group_events,
    journal_cursor,
)
from tests.stack.session import SshSession, attempt_login, scp, sftp_batch  # noqa: E402

# By SYSLOG_IDENTIFIER, not _COMM: journald reads _COMM from /proc after the fact, so a
# process that logs and exits at once (sudo refusing carol) arrives without one. This also
# leaves out the audit records journald itself ingests (Audit=yes; identifier "audit").
JOURNAL_MATCHES = ["SYSLOG_IDENTIFIER=sshd", "SYSLOG_IDENTIFIER=sshd-session",
                   "SYSLOG_IDENTIFIER=sudo", "SYSLOG_IDENTIFIER=su",
                   "SYSLOG_IDENTIFIER=sftp-server"]
UP, LEFT = b"\x1b[A", b"\x1b[D"
BS, TAB, CTRL_C, CTRL_U = b"\x7f", b"\t", b"\x03", b"\x15"


class Recorder:
    def __init__(self, info: stackmod.StackInfo):
        self.info = info
        self.steps: List[Dict[str, Any]] = []
        self.sessions: List[Dict[str, Any]] = []

    def key(self, user: str) -> str:
        return self.info.users[user]["key_path"]  # type: ignore[return-value]

    def step(self, session: Optional[Dict[str, Any]], kind: str, **kw: Any) -> Dict[str, Any]:
        st = {"n": len(self.steps) + 1, "kind": kind, **kw}
        if session is not None:
            st["session"] = session["name"]
            session["steps"].append(st["n"])
        self.steps.append(st)
        return st

    def open(self, name: str, user: str, **kw: Any) -> "tuple[SshSession, Dict[str, Any]]":
        auth = "publickey" if "key" in kw else "password"
        s = SshSession(user, host=self.info.jump_host, port=self.info.jump_port, **kw)
        ses = s.run("cat /proc/self/sessionid").strip()
        local_port = s.run("echo $SSH_CLIENT").split()[1]
        meta = {"name": name, "user": user, "auth": auth, "ses": int(ses),
                "client_port": int(local_port), "steps": [],
                "note": "login types a prompt-setup line, then `cat /proc/self/sessionid` and "
                        "`echo $SSH_CLIENT`; logout types `exit`"}
        self.sessions.append(meta)
        return s, meta

    # -- one interactive command, typed plainly
    def run(self, s: SshSession, meta: Dict[str, Any], cmd: str, **kw: Any) -> str:
        out = s.run(cmd, timeout=kw.pop("timeout", 20))
        self.step(meta, "command", typed=cmd, effective=cmd, output=out[-400:], **kw)
        return out

    # -- keystrokes that edit the line before Enter
    def keys(self, s: SshSession, meta: Dict[str, Any], keys: bytes, effective: Optional[str],
             **kw: Any) -> str:
        out = s.type_line(keys, timeout=20)
        self.step(meta, "keystrokes", keys=keys.decode("utf-8", errors="backslashreplace"),
                  effective=effective, output=out[-400:], **kw)
        return out


def script(r: Recorder, workdir: Path) -> None:
    info = r.info

    # 1. failed logins first: they have no session, only sshd/PAM records.
    for attempt in (1, 2):
        ok = attempt_login("carol", "wrong-pass-%d" % attempt, info.jump_host, info.jump_port)
        r.step(None, "failed_password", user="carol", password_typed=f"wrong-pass-{attempt}",
               succeeded=ok)
    ok = attempt_login("nosuchuser", "whatever-123", info.jump_host, info.jump_port)
    r.step(None, "invalid_user", user="nosuchuser", succeeded=ok)

    # 2. alice: interactive admin work on the bastion.
    s, m = r.open("alice-admin", "alice", key=r.key("alice"))
    r.keys(s, m, b"uptimr" + BS + b"e\r", "uptime", what="typo fixed with backspace")
    r.keys(s, m, b"cat /etc/hostnme" + LEFT + LEFT + b"a\r", "cat /etc/hostname",
           what="left-arrow insertion")
    r.keys(s, m, UP + b"\r", "cat /etc/hostname", what="up-arrow history recall")
    r.keys(s, m, b"cat /etc/debian_v" + TAB + b"\r", "cat /etc/debian_version",
           what="tab completion")
    r.keys(s, m, b"rm -rf /tmp/agentd-important" + CTRL_C, None,
           what="ctrl-c on a half-typed line (never executed)")
    r.keys(s, m, b"echo typed-then-killed" + CTRL_U + b"/bin/echo after-ctrl-u\r",
           "/bin/echo after-ctrl-u", what="ctrl-u kills the line, then a new command")
    r.run(s, m, "/bin/echo 'héllo wörld' \"日本\"", what="non-ASCII arguments")
    r.run(s, m, "/bin/echo \"two words\" 'single quoted arg' plain",
          what="quoted arguments with spaces")
    r.run(s, m, "/bin/echo $(python3 -c 'print(\"A\"*9000)') >/dev/null",
          what="argument over 8 KB (kernel splits it into a1_len/a1[0..])")
    r.run(s, m, "/bin/echo $'\\xff\\xfe' | od -An -tx1",
          what="non-UTF-8 bytes in an argument")
    r.run(s, m, "mysql -pHunter2 -e 'select 1'",
          what="password on a command line (mysql not installed: command not found)")
    r.run(s, m, "export API_TOKEN=abc123", what="secret in an export (a bash builtin: no EXECVE)")
    r.run(s, m, "sudo id", what="sudo success (NOPASSWD)")
    # sudo -i: a root login shell; the prompt has to be set again inside it.
    s.send(b"sudo -i\r")
    s.read_quiet(0.5)
    s.set_prompt()
    r.step(m, "keystrokes", keys="sudo -i\\r + prompt-setup line", effective="sudo -i",
           what="sudo -i: root shell")
    r.run(s, m, "id", what="inside sudo -i")
    r.run(s, m, "ls /root >/dev/null; head -n 1 /etc/shadow | cut -d: -f1",
          what="inside sudo -i")
    r.run(s, m, "exit", what="leave the root shell")
    r.run(s, m, f"ssh -p {info.target_port} {info.target_host} 'hostname; id'",
          what="hop to the target host", timeout=30)
    s.close()
    r.step(m, "logout", typed="exit")

    # 3. carol (password): sudo denied, su success and FAILED SU.
    s, m = r.open("carol-su", "carol", password=info.users["carol"]["password"])
    s.send(b"sudo id\r")
    s.expect(rb"password for carol: ?$", 20)
    s.send(b"carol-pass-123\r")
    out = s.wait_prompt(20)
    r.step(m, "keystrokes", keys="sudo id\\r + carol's password (echo off, not logged)",
           effective="sudo id", what="sudo denied: carol is not in sudoers", output=out)
    s.send(b"su - dave\r")
    s.expect(rb"Password: ?$", 20)
    s.send(b"dave-pass-123\r")
    s.read_quiet(0.5)
    s.set_prompt()
    r.step(m, "keystrokes", keys="su - dave\\r + dave's password + prompt-setup line",
           effective="su - dave", what="su success")
    r.run(s, m, "id", what="inside su - dave")
    r.run(s, m, "exit", what="leave dave's shell")
    s.send(b"su - dave\r")
    s.expect(rb"Password: ?$", 20)
    s.send(b"not-daves-password\r")
    out = s.wait_prompt(30)
    r.step(m, "keystrokes", keys="su - dave\\r + wrong password", effective="su - dave",
           what="FAILED SU", output=out)
    s.close()
    r.step(m, "logout", typed="exit")

    # 4. bob: a sudo rule limited to two commands.
    s, m = r.open("bob-sudo", "bob", key=r.key("bob"))
    r.run(s, m, "sudo /usr/bin/id", what="sudo success, allowed command")
    r.run(s, m, "sudo -n /bin/cat /etc/shadow",
          what="sudo -n for a command bob may not run: refused ('a password is required'); "
               "sudo writes no syslog line for it, only an audit USER_ERR")
    s.close()
    r.step(m, "logout", typed="exit")

    # 5. file transfers (non-interactive ssh sessions, no tty).
    up = workdir / "upload.bin"
    up.write_bytes(bytes(range(256)) * 80)  # 20480 bytes
    key = r.key("bob")
    scp("bob", key, str(up), "upload-scp.bin", upload=True)
    r.step(None, "scp_upload", user="bob", bytes=20480, protocol="sftp (OpenSSH 9 default)",
           remote="upload-scp.bin")
    scp("bob", key, "/etc/hostname", str(workdir / "hostname.scp"), upload=False, legacy=True)
    r.step(None, "scp_download", user="bob", protocol="legacy scp (-O): `scp -f` on the server",
           remote="/etc/hostname")
    sftp_batch("bob", key, [f"put {up} upload-sftp.bin", "ls -l",
                            f"get /etc/debian_version {workdir / 'debian_version.sftp'}",
                            "rm upload-scp.bin", "rm upload-sftp.bin"])
    r.step(None, "sftp", user="bob", commands=["put upload.bin (20480 bytes)", "ls -l",
                                               "get /etc/debian_version", "rm x2"])


def _wait_flushed(mark, sessions: List[Dict[str, Any]], timeout: float = 30.0) -> bytes:
    """Wait until every interactive session's TTY record and USER_END are in the log, then
    until the log stops growing (auditd writes asynchronously)."""
    want = {str(m["ses"]) for m in sessions}
    deadline = time.monotonic() + timeout
    while True:
        data = audit_bytes_since(mark)
        lines = data[:data.rfind(b"\n") + 1].decode(errors="surrogateescape").splitlines()
        seen_tty, seen_end = set(), set()
        for recs in group_events(lines).values():
            for rec in recs:
                ses = rec["fields"].get("ses")
                if rec["type"] == "TTY":
                    seen_tty.add(ses)
                elif rec["type"] == "USER_END":
                    seen_end.add(ses)
        if want <= seen_tty and want <= seen_end:
            break
        if time.monotonic() > deadline:
            raise SystemExit(f"TTY/USER_END records missing for ses {want - seen_tty}"
                             f" / {want - seen_end}")
        time.sleep(0.3)
    size = -1
    while size != len(data):
        size = len(data)
        time.sleep(1.0)
        data = audit_bytes_since(mark)
    return data[:data.rfind(b"\n") + 1]


def _wait_journal(cursor: str, timeout: float = 30.0) -> None:
    """journald also ingests every audit record (Audit=yes), so it can lag behind auditd:
    wait for the last step's line (the sftp session closing), then for quiet."""
    def entries() -> bytes:
        return subprocess.run(["journalctl", "--no-pager", "-o", "cat", "--after-cursor",
                               cursor, *JOURNAL_MATCHES], capture_output=True,
                              check=True).stdout
    deadline = time.monotonic() + timeout
    while entries().count(b"session closed for local user bob") < 2:
        if time.monotonic() > deadline:
            raise SystemExit("journal never showed the sftp sessions closing")
        time.sleep(0.3)
    n = -1
    while n != len(entries()):
        n = len(entries())
        time.sleep(1.0)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", default=str(REPO / "tests" / "captures" / "bastion1"))
    args = ap.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    info = stackmod.up()
    workdir = Path(stackmod.STATE_DIR) / "capture-work"
    workdir.mkdir(exist_ok=True)

    mark = audit_position(info.audit_log)
    cursor = journal_cursor()
    started = time.time()
    rec = Recorder(info)
    script(rec, workdir)
    data = _wait_flushed(mark, rec.sessions)
    now = audit_position(info.audit_log)
    if (now.dev, now.inode) != (mark.dev, mark.inode):
        # A rotation mid-run is survivable for the agent, but a capture must be one
        # contiguous slice of one file; record again.
        print("audit.log rotated during the recording; refusing to write a capture",
              file=sys.stderr)
        return 1

    (out / "audit.log").write_bytes(data)
    _wait_journal(cursor)
    for fmt, name in (("export", "journal.export"), ("json", "journal.json")):
        p = subprocess.run(["journalctl", "--no-pager", "-o", fmt, "--after-cursor", cursor,
                            *JOURNAL_MATCHES], capture_output=True, check=True)
        (out / name).write_bytes(p.stdout)
    manifest = {
        "name": out.name,
        "recorded_at": started,
        "host": os.uname().nodename,
        "kernel": os.uname().release,
        "audit_log_slice": {"dev": mark.dev, "inode": mark.inode, "offset": mark.offset,
                            "length": len(data)},
        "journal_after_cursor": cursor,
        "journal_matches": JOURNAL_MATCHES,
        "stack": {"jump": f"{info.jump_host}:{info.jump_port}",
                  "target": f"{info.target_host}:{info.target_port}",
                  "users": {u: {"password": c["password"], "auth": "publickey"
                                if c["key_path"] else "password"}
                            for u, c in info.users.items()}},
        "sessions": rec.sessions,
        "steps": rec.steps,
    }
    (out / "manifest.json").write_text(json.dumps(manifest, indent=2, ensure_ascii=False) + "\n")
    subprocess.run(["/usr/bin/python3", str(Path(__file__).with_name("oracles.py")), str(out)],
                   check=True)
    n = len(re.findall(rb"^type=", data, re.M))
    print(f"wrote {out}: {len(data)} bytes, {n} audit records, {len(rec.steps)} steps")
    return 0


if __name__ == "__main__":
    sys.exit(main())
