"""The sshd that is actually running: its config (from its command line's -f), read
through `sshd -T` so defaults and Include files count; LogLevel, the sftp subsystem's
logging, where sshd logs to."""

from __future__ import annotations

import dataclasses
import os
import shlex
from typing import Optional

from agent.app.doctor.finding import FAIL, OK, WARN, Finding, cis, first_line, run, shared_file

DEFAULT_CONFIG = "/etc/ssh/sshd_config"
SFTP_DROPIN_REL = "sshd/agentd-sftp-logging.conf"


@dataclasses.dataclass
class Listener:
    pid: int
    exe: str
    argv: list

    def option(self, flag: str) -> Optional[str]:
        for i, a in enumerate(self.argv):
            if a == flag and i + 1 < len(self.argv):
                return self.argv[i + 1]
            if a.startswith(flag) and len(a) > len(flag) and not a.startswith("--"):
                return a[len(flag):]
        return None

    def options(self, flag: str) -> list:
        return [self.argv[i + 1] for i, a in enumerate(self.argv) if a == flag and i + 1 < len(self.argv)]


@dataclasses.dataclass
class Sshd:
    config: str                 # the file read
    source: str                 # how doctor chose it
    listener: Optional[Listener]
    others: list                # other listeners not checked
    settings: dict              # sshd -T: lower-case keyword -> list of values
    error: str = ""

    def get(self, key: str, default: str = "") -> str:
        v = self.settings.get(key)
        return v[0] if v else default


def _read(path: str) -> str:
    try:
        with open(path, "rb") as f:
            return f.read().decode(errors="replace")
    except OSError:
        return ""


def _argv(pid: int) -> list:
    """sshd rewrites its title ("sshd: /usr/sbin/sshd -D -f FILE [listener] 0 of 10-100 startups"):
    take the arguments back out of it."""
    return title_argv([a for a in _read(f"/proc/{pid}/cmdline").split("\0") if a])


def title_argv(args: list) -> list:
    if len(args) == 1 and args[0].startswith("sshd:"):
        text = args[0][len("sshd:"):].split("[listener]")[0]
        try:
            args = shlex.split(text)
        except ValueError:
            args = text.split()
    return args


def listeners() -> list:
    """Running sshd processes whose parent is not an sshd: the listeners, not sessions."""
    comms: dict = {}
    parents: dict = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        stat = _read(f"/proc/{d}/stat")
        if not stat or ")" not in stat:
            continue
        comm = stat[stat.index("(") + 1:stat.rindex(")")]
        rest = stat[stat.rindex(")") + 2:].split()
        if rest and rest[0] in ("Z", "X"):
            continue
        comms[int(d)] = comm
        parents[int(d)] = int(rest[1]) if len(rest) > 1 else 0
    out = []
    for pid, comm in sorted(comms.items()):
        if comm == "sshd" and comms.get(parents[pid]) not in ("sshd",):
            try:
                exe = os.readlink(f"/proc/{pid}/exe")
            except OSError:
                exe = "/usr/sbin/sshd"
            out.append(Listener(pid, exe.replace(" (deleted)", ""), _argv(pid)))
    return out


def _settings(exe: str, config: str, extra: list) -> tuple:
    cmd = [exe, "-T", "-f", config]
    for o in extra:
        cmd += ["-o", o]
    rc, out, err = run(cmd)
    if rc != 0:
        return {}, first_line(err) or f"{' '.join(cmd)} failed (exit {rc})"
    settings: dict = {}
    for line in out.splitlines():
        k, _, v = line.partition(" ")
        if k:
            settings.setdefault(k.lower(), []).append(v.strip())
    return settings, ""


def find(ctx) -> Sshd:
    def load() -> Sshd:
        running = listeners()
        # An sshd started with -E logs to a file, not the journal: prefer one that logs
        # where agentd reads (on the test stack, the "target" sshd stands for another host).
        ranked = sorted(running, key=lambda ls: (ls.option("-E") is not None, ls.pid))
        if ctx.sshd_config:
            chosen, config, source = None, ctx.sshd_config, "--sshd-config"
            others = running
        elif ranked:
            chosen, others = ranked[0], ranked[1:]
            config = chosen.option("-f") or DEFAULT_CONFIG
            source = f"running sshd pid {chosen.pid}"
        else:
            chosen, others, config, source = None, [], DEFAULT_CONFIG, "no sshd running; the default config"
        exe = chosen.exe if chosen else "/usr/sbin/sshd"
        extra = chosen.options("-o") if chosen else []
        settings, error = _settings(exe, config, extra)
        return Sshd(config, source, chosen, others, settings, error)
    return ctx.memo("sshd", load)


def check_process(ctx) -> Finding:
    s = find(ctx)
    others = "; ".join(f"pid {o.pid} -f {o.option('-f') or DEFAULT_CONFIG}" + (" -E" if o.option("-E") else "")
                       for o in s.others)
    also = f" (also running, not checked: {others}; --sshd-config FILE checks another)" if others else ""
    if s.error:
        return Finding("sshd.config", FAIL, f"cannot read {s.config} with sshd -T ({s.source}): {s.error}{also}",
                       "what sshd logs and allows (the checks below are skipped)",
                       "run doctor as root; sshd -t -f FILE shows the config error")
    if s.listener and s.listener.option("-E"):
        return Finding("sshd.config", FAIL,
                       f"{s.source} logs to the file {s.listener.option('-E')} (-E), not the journal{also}",
                       "logins, accepted keys and sftp transfers: agentd reads sshd from the journal",
                       "start sshd without -E")
    status = OK if s.listener or ctx.sshd_config else WARN
    return Finding("sshd.config", status, f"{s.source}: {s.config} (read with sshd -T){also}",
                   "" if status == OK else "nothing yet: no sshd is running to log logins",
                   "" if status == OK else "start sshd")


LEVELS = {
    "QUIET": (FAIL, "nothing is logged, not even logins"),
    "SILENT": (FAIL, "nothing is logged, not even logins (QUIET)"),
    "FATAL": (FAIL, "only fatal errors: no logins"),
    "ERROR": (FAIL, "only errors: no logins"),
    "INFO": (OK, "logins with user, source, method and the accepted key's fingerprint; refused "
                 "forwarding and failed keys are not logged (VERBOSE adds them), forwarded channels only at "
                 "DEBUG (their connects are in the audit net_connect rule)"),
    "VERBOSE": (OK, "logins with the accepted key's fingerprint, failed keys and refused forwarding/channel "
                    "requests; forwarded channels themselves only at DEBUG (their connects are in the audit "
                    "net_connect rule)"),
}


def check_loglevel(ctx) -> Finding:
    s = find(ctx)
    level = s.get("loglevel", "INFO").upper()
    ref = cis("5.1.14", "5.1.15")
    if level.startswith("DEBUG"):
        return Finding("sshd.loglevel", WARN, f"LogLevel {level}: everything VERBOSE gives plus each forwarded "
                       "channel (direct-tcpip host:port), but a flood of debug lines",
                       "nothing, but debug output may record private user data (sshd_config(5)) and floods "
                       "the journal's rate limit", "LogLevel VERBOSE", ref)
    status, gives = LEVELS.get(level, (WARN, "unknown level"))
    return Finding("sshd.loglevel", status, f"LogLevel {level}: {gives}",
                   "" if status == OK else "logins, keys and sources: session-started events lose their details",
                   "" if status == OK else f"LogLevel VERBOSE in {s.config}, then reload sshd", ref)


def check_sftp(ctx) -> Finding:
    s = find(ctx)
    dropin = shared_file(SFTP_DROPIN_REL)
    subs = [v.split(None, 1) for v in s.settings.get("subsystem", [])]
    sftp = next((v[1] for v in subs if v and v[0] == "sftp" and len(v) > 1), None)
    if sftp is None:
        return Finding("sshd.sftp", OK, "no sftp subsystem: sftp (and scp, which uses it since OpenSSH 9.0) "
                       "is off")
    try:
        args = shlex.split(sftp)
    except ValueError:
        args = sftp.split()
    level = None
    for i, a in enumerate(args):
        if a == "-l" and i + 1 < len(args):
            level = args[i + 1].upper()
        elif a.startswith("-l") and len(a) > 2:
            level = a[2:].upper()
    if level in ("INFO", "VERBOSE", "DEBUG", "DEBUG1", "DEBUG2", "DEBUG3"):
        return Finding("sshd.sftp", OK, f"sftp subsystem logs at {level}: {sftp}")
    return Finding("sshd.sftp", FAIL, f"sftp subsystem without -l INFO: {sftp}",
                   "file transfers: which files were uploaded, downloaded, renamed or removed over sftp and scp",
                   f"append -l INFO to the Subsystem sftp line in {s.config} (see {dropin}; a drop-in that "
                   "defines Subsystem sftp a second time stops sshd), then reload sshd")


def checks(ctx) -> list:
    first = check_process(ctx)
    if find(ctx).error:
        return [first]
    return [first, check_loglevel(ctx), check_sftp(ctx)]
