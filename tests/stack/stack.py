"""Bring up (and down) the real bastion stack on this machine: journald, auditd with the
project's rules, test users, a PAM-enabled "jump" sshd and a PAM-less "target" sshd.

Stdlib only, so it runs under the repo venv and under a bare /usr/bin/python3. Everything
this module starts or changes is written to /run/agentd-stack/state.json, and `down()`
undoes only that: daemons that were already running are left alone.
"""

from __future__ import annotations

import dataclasses
import json
import os
import pwd
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Dict, List, Optional

REPO_ROOT = Path(__file__).resolve().parents[2]
RULES_FILE = REPO_ROOT / "packaging" / "audit" / "agentd.rules"

STATE_DIR = Path("/run/agentd-stack")
STATE_FILE = STATE_DIR / "state.json"
KEYS_DIR = STATE_DIR / "keys"
AUDIT_LOG = "/var/log/audit/audit.log"

JOURNALD_BIN = "/lib/systemd/systemd-journald"
JOURNALD_DROPIN = Path("/etc/systemd/journald.conf.d/agentd-stack.conf")
# journald's built-in default here switches kernel auditing off when it starts; Audit=yes
# keeps it on. Persistent storage so journal cursors survive a journald restart.
JOURNALD_DROPIN_TEXT = "[Journal]\nAudit=yes\nStorage=persistent\n"
JOURNAL_SOCKETS = ("/run/systemd/journal/socket", "/run/systemd/journal/dev-log")

SSHD_BIN = "/usr/sbin/sshd"
PAM_SSHD = Path("/etc/pam.d/sshd")
PAM_MARKER = "# agentd-stack: keystroke audit (added by tests/stack, removed by stackctl down)"
PAM_LINE = "session required pam_tty_audit.so enable=*"

SUDOERS_FILE = Path("/etc/sudoers.d/agentd-stack")
SUDOERS_TEXT = """\
# agentd test stack (tests/stack/stack.py). Removed by `tests/stack/stackctl down`.
alice ALL=(ALL:ALL) NOPASSWD: ALL
bob ALL=(root) NOPASSWD: /usr/bin/id, /bin/cat /etc/hostname
erin ALL=(ALL:ALL) NOPASSWD: ALL
"""

JUMP_HOST, JUMP_PORT = "127.0.0.1", 2222
TARGET_HOST, TARGET_PORT = "127.0.0.2", 2222
TARGET_LOG = STATE_DIR / "target-sshd.log"

# name -> (password or None, has a key pair). Key-only accounts get password field "*"
# (not "!"): usable for pubkey logins without PAM, but no password can ever match.
USERS: Dict[str, Dict[str, Any]] = {
    "alice": {"password": None, "key": True},
    "bob": {"password": None, "key": True},
    "carol": {"password": "carol-pass-123", "key": False},
    "dave": {"password": "dave-pass-123", "key": False},
    # Recorded: her login shell is packaging/tlog/agentd-tlog-shell (tlog-rec-session).
    # Not sshd's ForceCommand: the jump sshd's config is shared by every test run.
    "erin": {"password": None, "key": True},
}
RECORDED_USERS = ("erin",)
HOP_USERS = ("alice", "erin")  # have their own key on the jump host for the target

# tlog on Debian 12 is not setuid: the recorder cannot write its lock under
# /run/tlog (_tlog 0755) nor add a utmp record (/run/utmp missing in a container).
TLOG_REC = "/usr/bin/tlog-rec-session"
TLOG_SHELL_SRC = REPO_ROOT / "packaging" / "tlog" / "agentd-tlog-shell"
TLOG_SHELL = STATE_DIR / "agentd-tlog-shell"  # a copy: the shared stack outlives a work tree
UTMP = Path("/run/utmp")


@dataclasses.dataclass
class StackInfo:
    jump_host: str
    jump_port: int
    target_host: str
    target_port: int
    users: Dict[str, Dict[str, Optional[str]]]
    audit_log: str = AUDIT_LOG
    target_log: str = str(TARGET_LOG)
    state_dir: str = str(STATE_DIR)


class StackError(RuntimeError):
    pass


# ---------------------------------------------------------------- small helpers


def _run(cmd: List[str], check: bool = True, input: Optional[str] = None) -> str:
    p = subprocess.run(cmd, input=input, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       text=True)
    if check and p.returncode != 0:
        raise StackError(f"{' '.join(cmd)} failed ({p.returncode}): {p.stderr.strip()}")
    return p.stdout


def _log(msg: str) -> None:
    if os.environ.get("AGENTD_STACK_QUIET") != "1":
        print(f"[stack] {msg}", file=sys.stderr)


def _load_state() -> Dict[str, Any]:
    try:
        return json.loads(STATE_FILE.read_text())
    except (OSError, ValueError):
        return {"started": {}, "created": {}}


def _save_state(state: Dict[str, Any]) -> None:
    STATE_DIR.mkdir(parents=True, exist_ok=True)
    tmp = STATE_FILE.with_suffix(".tmp")
    tmp.write_text(json.dumps(state, indent=2, sort_keys=True))
    os.replace(tmp, STATE_FILE)


def _write_if_changed(path: Path, text: str, mode: int = 0o644) -> bool:
    """Write only when needed: files under /etc/sudoers.d etc. are audit watches, and a
    needless rewrite would put noise in every capture."""
    try:
        if path.read_text() == text:
            return False
    except OSError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.agentd-tmp")
    tmp.write_text(text)
    os.chmod(tmp, mode)
    os.replace(tmp, path)
    return True


def _alive(pid: Optional[int]) -> bool:
    if not pid:
        return False
    try:
        with open(f"/proc/{pid}/stat") as f:
            state = f.read().rsplit(")", 1)[1].split()[0]
        return state not in ("Z", "X")
    except (OSError, IndexError):
        return False


def _cmdline(pid: int) -> List[str]:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return [a.decode(errors="replace") for a in f.read().split(b"\0") if a]
    except OSError:
        return []


def _pids_of(comm: str) -> List[int]:
    """pidof by /proc/PID/comm (what `pidof` compares, minus its dependency on procps)."""
    out = []
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/comm") as f:
                if f.read().strip() == comm[:15] and _alive(int(d)):
                    out.append(int(d))
        except OSError:
            continue
    return sorted(out)


def _wait(cond, timeout: float, what: str, interval: float = 0.05) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return
        time.sleep(interval)
    raise StackError(f"timed out after {timeout:.0f}s waiting for {what}")


def _port_open(host: str, port: int) -> bool:
    """Is something listening there? Read from /proc/net/tcp rather than connecting: a
    probe connection would put "Connection from ... [preauth]" noise in sshd's log."""
    want = "%s:%04X" % (socket.inet_aton(host)[::-1].hex().upper(), port)
    try:
        with open("/proc/net/tcp") as f:
            next(f)
            return any(ln.split()[1] == want and ln.split()[3] == "0A" for ln in f)
    except OSError:
        return False


def _spawn(cmd: List[str]) -> int:
    """Start a long-running daemon detached from our session and stdio."""
    p = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                         stderr=subprocess.DEVNULL, start_new_session=True, close_fds=True)
    return p.pid


def _stop_pid(pid: int, expect_in_cmdline: str, timeout: float = 10.0) -> bool:
    if not _alive(pid):
        return False
    if expect_in_cmdline not in " ".join(_cmdline(pid)):
        _log(f"pid {pid} is no longer {expect_in_cmdline!r}; not touching it")
        return False
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and _alive(pid):
        try:
            os.waitpid(pid, os.WNOHANG)  # reap it if it happens to be our child
        except ChildProcessError:
            pass
        time.sleep(0.05)
    if _alive(pid):
        os.kill(pid, signal.SIGKILL)
    return True


def audit_supported() -> bool:
    try:
        p = subprocess.run(["auditctl", "-s"], stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, text=True)
    except OSError:
        return False
    return p.returncode == 0 and "enabled" in p.stdout


def audit_status() -> Dict[str, str]:
    out = {}
    for line in _run(["auditctl", "-s"]).splitlines():
        k, _, v = line.partition(" ")
        out[k] = v.strip()
    return out


# ---------------------------------------------------------------- components


def _journald(state: Dict[str, Any]) -> None:
    mid = Path("/etc/machine-id")
    if not mid.exists() or not mid.read_text().strip():
        # journald refuses to run without one; a fresh container may lack it.
        _run(["systemd-machine-id-setup"])
        state["created"]["machine_id"] = True
    running = _pids_of("systemd-journald")
    if not running:
        if _write_if_changed(JOURNALD_DROPIN, JOURNALD_DROPIN_TEXT):
            state["created"]["journald_dropin"] = True
        Path("/var/log/journal").mkdir(parents=True, exist_ok=True)
        pid = _spawn([JOURNALD_BIN])
        state["started"]["journald"] = {"pid": pid, "match": "systemd-journald"}
        _log(f"started systemd-journald pid {pid}")
    _wait(lambda: all(os.path.exists(s) for s in JOURNAL_SOCKETS), 15, "journald sockets")
    if "journald" in state["started"] and not state.get("journal_flushed"):
        # Under systemd, systemd-journal-flush.service moves the journal from /run to
        # /var/log/journal; without it journald keeps writing the volatile runtime journal.
        _run(["journalctl", "--flush"], check=False)
        state["journal_flushed"] = True
    if not os.path.lexists("/dev/log") or not os.path.exists("/dev/log"):
        if os.path.lexists("/dev/log"):
            os.unlink("/dev/log")  # dangling link from an earlier run
        os.symlink("/run/systemd/journal/dev-log", "/dev/log")
        state["created"]["dev_log"] = True


def _auditd(state: Dict[str, Any]) -> None:
    if not _pids_of("auditd"):
        # auditd forks and its parent returns once the daemon has initialised.
        _run(["auditd"])
        _wait(lambda: bool(_pids_of("auditd")), 10, "auditd")
        pid = _pids_of("auditd")[0]
        state["started"]["auditd"] = {"pid": pid, "match": "auditd"}
        _log(f"started auditd pid {pid}")
    pid = _pids_of("auditd")[0]
    _wait(lambda: audit_status().get("pid") == str(pid), 10, "auditd to register with kernel")
    # Reload only when the kernel's rule list differs from what we loaded last time: every
    # reload writes CONFIG_CHANGE records, which would otherwise clutter each test's slice.
    listing = _run(["auditctl", "-l"])
    rules_mtime = RULES_FILE.stat().st_mtime
    if listing != state.get("rules_listing") or rules_mtime != state.get("rules_mtime"):
        _run(["auditctl", "-D"])
        _run(["auditctl", "-R", str(RULES_FILE)])
        state["rules_listing"] = _run(["auditctl", "-l"])
        state["rules_mtime"] = rules_mtime
        _log(f"loaded {RULES_FILE}")
    st = audit_status()
    if st.get("enabled") != "1":
        _run(["auditctl", "-e", "1"])
        st = audit_status()
    if st.get("enabled") != "1" or st.get("pid") != str(pid):
        raise StackError(f"audit not active after setup: {st}")


def _shadow_field(user: str) -> Optional[str]:
    with open("/etc/shadow") as f:
        for line in f:
            parts = line.split(":")
            if parts[0] == user:
                return parts[1]
    return None


def _users(state: Dict[str, Any]) -> Dict[str, Dict[str, Optional[str]]]:
    KEYS_DIR.mkdir(parents=True, exist_ok=True)
    os.chmod(STATE_DIR, 0o755)
    os.chmod(KEYS_DIR, 0o700)
    info: Dict[str, Dict[str, Optional[str]]] = {}
    for name, spec in USERS.items():
        try:
            pw = pwd.getpwnam(name)
        except KeyError:
            _run(["useradd", "--create-home", "--shell", "/bin/bash", name])
            state["created"].setdefault("users", []).append(name)
            pw = pwd.getpwnam(name)
        field = _shadow_field(name) or ""
        if spec["password"] is None:
            if field != "*":
                _run(["usermod", "-p", "*", name])
        elif not field.startswith("$") or state.get("pw_set", {}).get(name) != spec["password"]:
            _run(["chpasswd"], input=f"{name}:{spec['password']}\n")
            state.setdefault("pw_set", {})[name] = spec["password"]
        key_path = None
        authorized = []
        if spec["key"]:
            key_path = KEYS_DIR / name
            if not key_path.exists():
                _run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C",
                      f"agentd-stack-{name}", "-f", str(key_path)])
            authorized.append(Path(f"{key_path}.pub").read_text().strip())
            key_path = str(key_path)
        home = Path(pw.pw_dir)
        ssh_dir = home / ".ssh"
        if name in HOP_USERS:
            # Her own key *on the jump host*, used to hop to the target host.
            hop_key = ssh_dir / "id_ed25519"
            if not hop_key.exists():
                ssh_dir.mkdir(mode=0o700, exist_ok=True)
                _run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", f"{name}@bastion-hop",
                      "-f", str(hop_key)])
            authorized.append(Path(f"{hop_key}.pub").read_text().strip())
            _write_if_changed(ssh_dir / "config", (
                f"Host {TARGET_HOST}\n    Port {TARGET_PORT}\n    StrictHostKeyChecking no\n"
                "    UserKnownHostsFile /dev/null\n    LogLevel ERROR\n"), 0o600)
        if authorized:
            ssh_dir.mkdir(mode=0o700, exist_ok=True)
            _write_if_changed(ssh_dir / "authorized_keys", "\n".join(authorized) + "\n", 0o600)
        if ssh_dir.exists():
            for p in [ssh_dir, *ssh_dir.iterdir()]:
                if p.stat().st_uid != pw.pw_uid:
                    os.chown(p, pw.pw_uid, pw.pw_gid)
        info[name] = {"key_path": key_path, "password": spec["password"]}
    if _write_if_changed(SUDOERS_FILE, SUDOERS_TEXT, 0o440):
        _run(["visudo", "-c", "-q", "-f", str(SUDOERS_FILE)])
        state["created"]["sudoers"] = True
    return info


def _pam(state: Dict[str, Any]) -> None:
    text = PAM_SSHD.read_text()
    if "pam_tty_audit.so" in text:
        return
    if not text.endswith("\n"):
        text += "\n"
    _write_if_changed(PAM_SSHD, f"{text}\n{PAM_MARKER}\n{PAM_LINE}\n")
    state["created"]["pam_tty_audit"] = True


def _tlog(state: Dict[str, Any]) -> None:
    """Recording for RECORDED_USERS, the way packaging/tlog and the README say: the
    recorder setuid/setgid _tlog (so it can take its lock, and the user does not own
    it), a utmp file for its utmp record, and the wrapper as their login shell."""
    if not Path(TLOG_REC).exists():
        raise StackError(f"{TLOG_REC} missing: apt-get install tlog (make venv does)")
    listed = _run(["dpkg-statoverride", "--list", TLOG_REC], check=False).strip()
    if not listed:
        _run(["dpkg-statoverride", "--update", "--add", "_tlog", "_tlog", "6755", TLOG_REC])
        state["created"]["tlog_statoverride"] = True
    if not UTMP.exists():
        UTMP.touch()
        os.chmod(UTMP, 0o664)  # touch's mode goes through the umask
        os.chown(UTMP, 0, _gid("utmp"))
        state["created"]["utmp"] = True
    _write_if_changed(TLOG_SHELL, TLOG_SHELL_SRC.read_text(), 0o755)
    for name in RECORDED_USERS:
        if pwd.getpwnam(name).pw_shell != str(TLOG_SHELL):
            _run(["usermod", "--shell", str(TLOG_SHELL), name])


def _gid(group: str) -> int:
    import grp

    return grp.getgrnam(group).gr_gid


def _sshd_config(which: str) -> str:
    common = [
        "HostKey /etc/ssh/ssh_host_ed25519_key",
        "HostKey /etc/ssh/ssh_host_ecdsa_key",
        "HostKey /etc/ssh/ssh_host_rsa_key",
        "PermitRootLogin no",
        "PubkeyAuthentication yes",
        "AuthorizedKeysFile .ssh/authorized_keys",
        # VERBOSE so sshd logs the fingerprint of the key that was accepted.
        "LogLevel VERBOSE",
        "UseDNS no",
        "PrintMotd no",
        "AcceptEnv LANG LC_*",
        "AllowTcpForwarding yes",
        "X11Forwarding no",
        "MaxAuthTries 6",
        "MaxStartups 50:30:100",
        f"PidFile {STATE_DIR}/sshd_{which}.pid",
        "Subsystem sftp /usr/lib/openssh/sftp-server -l INFO",
    ]
    if which == "jump":
        return "\n".join([
            f"ListenAddress {JUMP_HOST}:{JUMP_PORT}",
            "UsePAM yes",
            "PasswordAuthentication yes",
            "KbdInteractiveAuthentication yes",
            "SyslogFacility AUTH",
            *common,
        ]) + "\n"
    return "\n".join([
        f"ListenAddress {TARGET_HOST}:{TARGET_PORT}",
        "UsePAM no",
        "PasswordAuthentication no",
        "KbdInteractiveAuthentication no",
        *common,
    ]) + "\n"


def _sshd(state: Dict[str, Any], which: str, host: str, port: int) -> None:
    cfg = STATE_DIR / f"sshd_{which}_config"
    changed = _write_if_changed(cfg, _sshd_config(which))
    Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)
    rec = state["started"].get(f"sshd_{which}")
    if rec and _alive(rec["pid"]) and str(cfg) in " ".join(_cmdline(rec["pid"])):
        if not changed and _port_open(host, port):
            return
        _stop_pid(rec["pid"], str(cfg))
    elif _port_open(host, port):
        raise StackError(f"{host}:{port} is taken by something this stack did not start")
    _run([SSHD_BIN, "-t", "-f", str(cfg)])
    cmd = [SSHD_BIN, "-D", "-f", str(cfg)]
    if which == "target":
        # Its own log file: the target stands for another machine, so nothing it logs may
        # show up in the jump host's journal.
        cmd += ["-E", str(TARGET_LOG)]
    pid = _spawn(cmd)
    state["started"][f"sshd_{which}"] = {"pid": pid, "match": str(cfg)}
    _save_state(state)
    _wait(lambda: _port_open(host, port) or not _alive(pid), 15, f"sshd on {host}:{port}")
    if not _alive(pid):
        raise StackError(f"sshd ({which}) exited; see journal / {TARGET_LOG}")
    _log(f"started sshd ({which}) pid {pid} on {host}:{port}")


# ---------------------------------------------------------------- public API


def up() -> StackInfo:
    if os.geteuid() != 0:
        raise StackError("the stack needs root")
    if not RULES_FILE.exists():
        raise StackError(f"missing {RULES_FILE}")
    STATE_DIR.mkdir(parents=True, exist_ok=True)
    state = _load_state()
    state.setdefault("started", {})
    state.setdefault("created", {})
    if not state["started"] and audit_supported():
        # Before journald (Audit=yes) flips it: what `down` restores if it stops auditd.
        state["audit_prev_enabled"] = audit_status().get("enabled", "0")
    try:
        _journald(state)
        _auditd(state)
        users = _users(state)
        _pam(state)
        _tlog(state)
        _sshd(state, "jump", JUMP_HOST, JUMP_PORT)
        _sshd(state, "target", TARGET_HOST, TARGET_PORT)
    finally:
        _save_state(state)
    return StackInfo(JUMP_HOST, JUMP_PORT, TARGET_HOST, TARGET_PORT, users)


def down() -> None:
    state = _load_state()
    started = state.get("started", {})
    # Reverse order of start: clients first, then auditd, journald last so it logs the rest.
    for name in ("sshd_target", "sshd_jump", "auditd", "journald"):
        rec = started.pop(name, None)
        if rec and _stop_pid(rec["pid"], rec["match"]):
            _log(f"stopped {name} pid {rec['pid']}")
        if name == "auditd" and rec and audit_supported():
            # We started auditd, so we also own the rules and the enabled flag we set.
            _run(["auditctl", "-D"], check=False)
            _run(["auditctl", "-e", state.pop("audit_prev_enabled", "0")], check=False)
            state.pop("rules_listing", None)
        if name == "journald" and rec:
            state.pop("journal_flushed", None)
    created = state.get("created", {})
    if created.pop("pam_tty_audit", False):
        lines = PAM_SSHD.read_text().splitlines(keepends=True)
        kept = [ln for ln in lines if ln.strip() not in (PAM_MARKER, PAM_LINE)]
        while kept and kept[-1].strip() == "" and lines[-1].strip() != "":
            kept.pop()
        _write_if_changed(PAM_SSHD, "".join(kept))
        _log("removed pam_tty_audit line from /etc/pam.d/sshd")
    if created.pop("tlog_statoverride", False):
        _run(["dpkg-statoverride", "--remove", TLOG_REC], check=False)
        _run(["chown", "root:root", TLOG_REC], check=False)
        os.chmod(TLOG_REC, 0o755)
    if created.pop("utmp", False):
        UTMP.unlink(missing_ok=True)
    if created.pop("sudoers", False):
        SUDOERS_FILE.unlink(missing_ok=True)
    if created.pop("dev_log", False) and os.path.islink("/dev/log") and "journald" not in started:
        if not _pids_of("systemd-journald"):
            os.unlink("/dev/log")
    if created.pop("journald_dropin", False):
        JOURNALD_DROPIN.unlink(missing_ok=True)
    # Users, their keys and homes stay: recreating them on every cycle would churn
    # /etc/passwd (an audited file) and break sessions other test runs may hold.
    state["started"], state["created"] = started, created
    _save_state(state)


def status() -> Dict[str, Any]:
    state = _load_state()
    started = state.get("started", {})
    out: Dict[str, Any] = {}
    for comm, key in (("systemd-journald", "journald"), ("auditd", "auditd")):
        pids = _pids_of(comm)
        rec = started.get(key)
        out[key] = {"running": bool(pids), "pids": pids,
                    "started_by_stack": bool(rec and rec["pid"] in pids)}
    for which, host, port in (("jump", JUMP_HOST, JUMP_PORT), ("target", TARGET_HOST, TARGET_PORT)):
        rec = started.get(f"sshd_{which}")
        alive = bool(rec and _alive(rec["pid"]))
        out[f"sshd_{which}"] = {"running": alive and _port_open(host, port),
                                "pid": rec["pid"] if alive else None,
                                "listen": f"{host}:{port}", "started_by_stack": alive}
    if audit_supported():
        st = audit_status()
        out["audit"] = {"enabled": st.get("enabled"), "pid": st.get("pid"),
                        "lost": st.get("lost"), "backlog_limit": st.get("backlog_limit")}
    out["pam_tty_audit"] = "pam_tty_audit.so" in PAM_SSHD.read_text()
    out["created"] = state.get("created", {})
    return out


def main(argv: Optional[List[str]] = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 1 or argv[0] not in ("up", "down", "status"):
        print("usage: stackctl up|down|status", file=sys.stderr)
        return 2
    try:
        if argv[0] == "up":
            t0 = time.monotonic()
            info = up()
            print(json.dumps(dataclasses.asdict(info), indent=2))
            _log(f"up in {time.monotonic() - t0:.2f}s")
        elif argv[0] == "down":
            down()
        else:
            print(json.dumps(status(), indent=2))
    except StackError as e:
        print(f"stackctl: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
