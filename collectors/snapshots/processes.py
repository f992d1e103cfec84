"""Processes of login sessions: seen at exec (proc connector) or by a scan, sampled,
and reported when they start and end, with CPU time, peak RSS and I/O at the end.

Only processes with a login session (/proc/PID/sessionid set) are tracked: that is what
attributes them to a login, and it keeps the cost proportional to what users run, not
to the host's daemons. A process whose session is set after it started (the sshd
monitor runs pam_loginuid) is looked at again while its name says it may do that.
"""

from __future__ import annotations

import pwd
import time
from typing import Optional

from agent.base.events import HostInfo, add_related, base_doc, make_event_id
from collectors.snapshots import scan

# Programs that set a login's session on themselves (pam_loginuid) after they started.
LOGIN_SETTERS = frozenset(("sshd", "sshd-session", "sshd-auth", "cron", "login", "systemd"))
MAX_ARGS_TEXT = 8192
NAMES_TTL = 60.0  # a renamed or new account is seen this late at most
MAX_NAMES = 1024
_names: dict = {}  # uid -> (name or None, when looked up)


def user_name(uid: Optional[int]) -> Optional[str]:
    """The account name of a uid. Looked up once a minute per uid: getpwuid goes through
    NSS (reads /etc/passwd) on each call, which was a sixth of a cold scan's cost."""
    if uid is None:
        return None
    now = time.monotonic()
    hit = _names.get(uid)
    if hit is not None and now - hit[1] < NAMES_TTL:
        return hit[0]
    try:
        name: Optional[str] = pwd.getpwuid(uid).pw_name
    except KeyError:
        name = None
    if len(_names) >= MAX_NAMES:
        _names.clear()
    _names[uid] = (name, now)
    return name


class Proc:
    __slots__ = ("pid", "ses", "auid", "uid", "euid", "comm", "exe", "args", "ppid", "start", "cpu", "rss", "hwm", "io",
                 "sockets", "nfds")

    def __init__(self, pid: int, ses: int):
        self.pid = pid
        self.ses = ses
        self.auid = self.uid = self.euid = None
        self.comm = self.exe = ""
        self.args: list = []
        self.ppid = None
        self.start = 0.0
        self.cpu = self.rss = self.hwm = 0
        self.io: dict = {}
        self.sockets: list = []  # socket inodes at the last read of its descriptors,
        self.nfds: Optional[int] = -1  # when it had this many (-1: never read)

    def sample(self) -> bool:
        """Read the counters now; False when the process is gone (or reaped)."""
        st = scan.stat(self.pid)
        if st is None:
            return False
        self.comm, self.ppid, self.cpu, _, self.rss, _ = st
        io = scan.io(self.pid)
        if io:
            self.io = io
        s = scan.status(self.pid)
        self.hwm = max(self.hwm, s.get("hwm", 0), self.rss)
        if "uid" in s:
            self.uid, self.euid = s["uid"], s["euid"]
        return True


def look(pid: int, boot: float) -> Optional[Proc]:
    """A process of a login session, read fully; None if it has no session or is gone."""
    ses = scan.session_of(pid)
    if ses is None:
        return None
    p = Proc(pid, ses)
    st = scan.stat(pid)
    if st is None or st[5] in ("Z", "X"):
        return None  # an exited process not yet reaped: already reported (or never in time)
    p.comm, p.ppid, p.cpu, _, p.rss, _ = st
    p.start = boot + st[3] / scan.CLK_TCK
    p.args = scan.cmdline(pid)
    p.exe = scan.exe(pid)
    p.auid = scan.loginuid(pid)
    # uid and peak RSS now; the I/O counters are read when they are reported (at exit,
    # at a state report, every watch_interval for a transfer client), not at start
    s = scan.status(pid)
    p.hwm = max(s.get("hwm", 0), p.rss)
    if "uid" in s:
        p.uid, p.euid = s["uid"], s["euid"]
    return p


def process_fields(p: Proc) -> dict:
    out: dict = {"pid": p.pid, "name": p.comm}
    if p.exe:
        out["executable"] = p.exe
    if p.args:
        out["args"] = list(p.args)
        out["args_count"] = len(p.args)
        out["command_line"] = " ".join(p.args)[:MAX_ARGS_TEXT]
    if p.ppid:
        out["parent"] = {"pid": p.ppid}
    return out


def common(doc: dict, p: Proc) -> dict:
    """Process, user and the audit session the join keys on (auditd.session: the kernel's
    audit session id, read from /proc/PID/sessionid; the same value audit records carry)."""
    doc["process"] = process_fields(p)
    name = user_name(p.uid)
    if p.uid is not None:
        doc["user"] = {"id": str(p.uid)}
        if name:
            doc["user"]["name"] = name
    doc["auditd"] = {"session": str(p.ses)}
    login = user_name(p.auid)
    add_related(doc, users=(name, login))
    doc.setdefault("agentd", {})["snapshot"] = {"seen_by": "snapshot", "login_uid": p.auid}
    return doc


def started(host: HostInfo, p: Proc, now: float, how: str) -> dict:
    doc = base_doc(host=host, timestamp=now, module="psutil", dataset="psutil.process",
                   event_id=make_event_id(host.id, host.boot_id, "psutil.process", "started", p.pid, p.start, p.exe,
                                          " ".join(p.args)),
                   category=["process"], type=["start"], action="process-started", outcome="success")
    common(doc, p)
    doc["agentd"]["snapshot"]["seen_at"] = how  # exec (proc connector) or scan
    doc["agentd"]["snapshot"]["process_start"] = p.start
    return doc


def ended(host: HostInfo, p: Proc, now: float, exit_code: Optional[int], at_exit: bool) -> dict:
    doc = base_doc(host=host, timestamp=now, module="psutil", dataset="psutil.process",
                   event_id=make_event_id(host.id, host.boot_id, "psutil.process", "ended", p.pid, p.start, p.exe),
                   category=["process"], type=["end"], action="process-ended", outcome="success")
    common(doc, p)
    if exit_code is not None:
        doc["process"]["exit_code"] = exit_code >> 8 if exit_code & 0x7F == 0 else 128 + (exit_code & 0x7F)
    if p.start:
        doc["event"]["duration"] = max(0, int((now - p.start) * 1e9))
    snap = doc["agentd"]["snapshot"]
    snap["counters"] = "at-exit" if at_exit else "last-sample"
    snap["cpu_seconds"] = round(p.cpu / scan.CLK_TCK, 2)
    snap["peak_rss_bytes"] = p.hwm
    if p.io:
        snap["io"] = {"read_chars": p.io.get("rchar"), "write_chars": p.io.get("wchar"),
                      "read_bytes": p.io.get("read_bytes"), "write_bytes": p.io.get("write_bytes")}
    return doc
