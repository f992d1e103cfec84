"""What people do in a session: history wiping, reverse shells, download-and-run, privilege escalation,
and borrowing someone else's forwarded SSH agent.

Command text is read from both the audit exec record (``process.command_line``) and
the keystrokes (``keystrokes.lines``): shell built-ins and redirections
(``history -c``, ``>& /dev/tcp/…``) exist only in what was typed.
"""

from __future__ import annotations

import os
import re

from agent.base.options import Option
from agent.pipeline.detections.gate import Gate, command_texts
from agent.pipeline.detections.literals import Gated
from agent.pipeline.detections.rules.base import About, Hit, Rule, get, login_user, opt_users

SHELLS = ("sh", "bash", "dash", "zsh", "ksh", "fish", "tcsh", "csh", "ash", "busybox")
_CMD_DATASETS = ("auditd.process", "auditd.tty")


class _PatternRule(Rule):
    """A pattern in what was run or typed; ``check_other`` for the rule's other datasets."""

    datasets = _CMD_DATASETS
    patterns: Gated = Gated(re.compile(r"(?!x)x"))
    options = {"allow_users": opt_users()}

    def check_other(self, doc: dict) -> list:
        return []

    def check(self, doc: dict, ts: float) -> list:
        if doc["event"].get("dataset") not in _CMD_DATASETS:
            return self.check_other(doc)
        for text in command_texts(doc):
            if self.patterns.search(text):
                user = login_user(doc)
                if self.allowed_user(user):
                    return []
                return [Hit(doc, [doc["event"]["id"]], f"{user or '?'}: {text[:300]}",
                            key=get(doc, "session", "id") or user or "")]
        return []


class HistoryWipe(_PatternRule):
    about = About("history_wipe", "Shell history or traces wiped", "medium", ("T1070", "T1070.003", "T1690"),
                  "Shell history cleared, disabled or deleted, or login records wiped.")
    datasets = _CMD_DATASETS + ("auditd.file",)
    patterns = Gated(re.compile(
        r"\bhistory\s+-[a-z]*c|\bunset\s+HISTFILE\b|\bHISTFILE=(?:/dev/null|\s|$)|\bHISTSIZE=0\b|"
        r"\bHISTFILESIZE=0\b|\bset\s+\+o\s+history\b|"
        r"\b(?:rm|shred|truncate|unlink)\b[^|;&]*(?:_history|/var/log/(?:wtmp|btmp|lastlog|auth\.log|secure))\b|"
        r">\s*~?[\w/.]*(?:\.bash_history|\.zsh_history|/var/log/(?:wtmp|btmp|lastlog))\b|"
        r"\bln\s+-[a-z]*s[a-z]*\s+/dev/null\s+\S*_history"))
    gate = Gate(patterns=(patterns,))  # a command without the pattern cannot match

    def check_other(self, doc: dict) -> list:
        path = str(get(doc, "file", "path") or "")  # auditd.file
        if path.endswith("_history") and doc["event"].get("action") == "file-deleted" \
                and not self.allowed_user(login_user(doc)):
            return [Hit(doc, [doc["event"]["id"]], f"{path} deleted by {login_user(doc) or '?'}",
                        key=get(doc, "session", "id") or "")]
        return []


class ReverseShell(_PatternRule):
    about = About("reverse_shell", "Reverse shell", "critical", ("T1059", "T1059.004", "T1071"),
                  "A shell wired to a network socket: /dev/tcp redirection, nc -e, socat exec, a shell connecting out.")
    datasets = _CMD_DATASETS + ("auditd.network",)
    patterns = Gated(re.compile(
        r"/dev/(?:tcp|udp)/[^/\s]+/\d+|\b(?:nc|ncat|netcat)\b[^|;]*\s-[a-z]*[ec]\s|"
        r"\bsocat\b[^|;]*\b(?:exec|system):|\bmkfifo\b.*\|\s*(?:nc|ncat|netcat)\b|"
        r"\b(?:python[\d.]*|perl|ruby|php)\b.*(?:socket|fsockopen|TCPSocket).*(?:pty|/bin/(?:ba)?sh|dup2|exec)"))
    gate = Gate(patterns=(patterns,))

    def check_other(self, doc: dict) -> list:
        # auditd.network: bash's own connect(), the /dev/tcp redirection, whatever was typed.
        name = str(get(doc, "process", "name") or "")
        ip = get(doc, "destination", "ip")
        if name not in SHELLS or not ip or self.allowed_user(login_user(doc)):
            return []
        return [Hit(doc, [doc["event"]["id"]], f"shell {name} (pid {get(doc, 'process', 'pid')}) connected to "
                    f"{ip}:{get(doc, 'destination', 'port')}", key=get(doc, "session", "id") or "",
                    fields={"destination": {"ip": ip, "port": get(doc, "destination", "port")}})]


_FETCH = r"\b(?:curl|wget|fetch)\b"
_DOWNLOAD_RUN = Gated(re.compile(_FETCH + r"[^|;&]*\|\s*(?:sudo\s+(?:-\S+\s+)*)?(?:\S*/)?(?:ba|da|z|k)?sh\b|"
                           r"\b(?:ba|da|z|k)?sh\s+(?:-c\s+)?[\"']?\$\(\s*" + _FETCH + r"|"
                           r"\b(?:ba|da|z|k)?sh\s+<\(\s*" + _FETCH + r"|"
                           r"\b(?:python[\d.]*|perl)\b\s+(?:-\s+)?<\(\s*" + _FETCH + r"|"
                           + _FETCH + r"[^|;&]*\|\s*(?:python[\d.]*|perl|ruby|php)\b"))
_OUT_FLAG = re.compile(r"(?:^|\s)(?:-o|-O|--output(?:-document)?=?)\s*(\S+)")


class DownloadAndRun(Rule):
    about = About("download_and_run", "Download and run", "high", ("T1105", "T1059.004"),
                  "Something fetched from the network was executed: piped into a shell, or saved and run.")
    datasets = _CMD_DATASETS
    # Piped into a shell, a fetch tool run, or any exec while a download is remembered.
    gate = Gate(names=frozenset(("curl", "wget")), patterns=(_DOWNLOAD_RUN,), watch="files")
    options = {
        "window": Option("duration", "30m", "how long a downloaded file is remembered", minimum=1),
        "allow_users": opt_users(),
    }

    def check(self, doc: dict, ts: float) -> list:
        piped = next((t for t in command_texts(doc) if _DOWNLOAD_RUN.search(t)), None)
        run = doc["event"].get("action") == "exec"
        name = get(doc, "process", "name") if run else None
        # The common case, kept cheap: no fetch piped into a shell, no download, and no
        # file downloaded lately that this exec could run.
        if piped is None and (not run or (name not in ("curl", "wget") and not self.state.get("files"))):
            return []
        user = login_user(doc)
        if self.allowed_user(user):
            return []
        sid = get(doc, "session", "id") or ""
        if piped is not None:
            return [Hit(doc, [doc["event"]["id"]], f"{user or '?'}: {piped[:300]}", key=sid)]
        args = get(doc, "process", "args") or []
        cwd = get(doc, "process", "working_directory") or "/"
        files = self.state.setdefault("files", {})
        if name in ("curl", "wget"):
            cmd = " ".join(a for a in args if isinstance(a, str))
            m = _OUT_FLAG.search(cmd)
            target = m.group(1) if m else None
            if target is None and name == "wget":
                url = next((a for a in args[1:] if isinstance(a, str) and "://" in a), "")
                target = url.rstrip("/").rsplit("/", 1)[-1] or None
            if target and target != "-":
                path = os.path.normpath(os.path.join(cwd, target))
                files[path] = [ts, doc["event"]["id"], sid]
                if len(files) > 1000:
                    del files[min(files, key=lambda k: files[k][0])]
            return []
        exe = get(doc, "process", "executable")
        cands = {exe} if exe else set()
        # chmod +x of a download, or a shell/interpreter given it as its script
        for a in args[1:]:
            if isinstance(a, str) and not a.startswith("-"):
                cands.add(os.path.normpath(os.path.join(cwd, a)))
        for path in cands:
            got = files.get(path)
            if got and ts - got[0] <= self.conf["window"]:
                if name == "chmod" and not any("x" in str(a) for a in args[1:]):
                    continue
                return [Hit(doc, [got[1], doc["event"]["id"]], f"{user or '?'} ran {path}, downloaded "
                            f"{ts - got[0]:.0f}s before: {get(doc, 'process', 'command_line') or ''}"[:400],
                            key=sid or path)]
        return []

    def expire(self, now: float) -> None:
        files = self.state.setdefault("files", {})
        for k in [k for k, v in files.items() if now - v[0] > self.conf["window"]]:
            del files[k]


class SudoDenied(Rule):
    about = About("sudo_denied", "sudo denied", "medium", ("T1548", "T1548.003"),
                  "sudo refused a command (not in sudoers, wrong password, command not allowed).")
    datasets = ("sudo.command",)
    options = {"allow_users": opt_users()}

    def check(self, doc: dict, ts: float) -> list:
        if doc["event"].get("outcome") != "failure":
            return []
        user = get(doc, "user", "name")
        if self.allowed_user(user):
            return []
        reason = get(doc, "sudo", "reason") or "denied"
        return [Hit(doc, [doc["event"]["id"]], f"sudo denied to {user}: {reason}: "
                    f"{get(doc, 'process', 'command_line') or ''}"[:300], key=get(doc, "session", "id") or user)]


class SuFailure(Rule):
    about = About("su_failure", "su failed", "medium", ("T1548", "T1110"),
                  "A failed su: someone tried another account's password.")
    datasets = ("su.session", "auditd.auth")
    options = {"allow_users": opt_users()}

    def check(self, doc: dict, ts: float) -> list:
        ev = doc["event"]
        if ev.get("dataset") == "su.session":
            if ev.get("action") != "su" or ev.get("outcome") != "failure":
                return []
            actor, target = get(doc, "user", "name"), get(doc, "user", "target", "name")
        elif ev.get("action") == "authentication-failed" and str(
                get(doc, "process", "executable") or "").endswith("/su"):
            actor, target = login_user(doc), get(doc, "user", "name")
        else:
            return []
        if self.allowed_user(actor):
            return []
        # The journal line and the audit record of one attempt meet in one alert (throttled by session).
        return [Hit(doc, [ev["id"]], f"{actor or '?'} failed su to {target or '?'}",
                    key=get(doc, "session", "id") or actor or "")]


class SudoShell(Rule):
    about = About("sudo_shell", "sudo to a shell", "low", ("T1548", "T1548.003", "T1059.004"),
                  "sudo used to open a root shell (sudo -i, sudo -s, sudo bash): what follows is not itemised by sudo.")
    datasets = ("sudo.command",)
    options = {"allow_users": opt_users("users whose root shells are expected")}

    def check(self, doc: dict, ts: float) -> list:
        if doc["event"].get("outcome") != "success":
            return []
        cmd = str(get(doc, "process", "command_line") or "")
        first = os.path.basename(cmd.split(" ", 1)[0]) if cmd else ""
        user = get(doc, "user", "name")
        if first.lstrip("-") not in SHELLS or self.allowed_user(user):
            return []
        return [Hit(doc, [doc["event"]["id"]], f"{user} opened a shell as "
                    f"{get(doc, 'user', 'target', 'name') or 'root'}: {cmd}"[:300],
                    key=get(doc, "session", "id") or user)]


_AGENT_SOCK = re.compile(r"^/tmp/ssh-[^/]+/agent\.\d+$")


class ForeignAgentSocket(Rule):
    about = About("ssh_agent_hijack", "Someone else's SSH agent socket used", "critical", ("T1563", "T1563.001"),
                  ("A process of another user (root included) connected to a user's forwarded SSH agent socket "
                   "(SSH_AUTH_SOCK): it can log in anywhere with that user's keys."))
    datasets = ("auditd.network",)
    options = {"allow_users": opt_users("login users allowed to use others' agents")}

    def check(self, doc: dict, ts: float) -> list:
        sock = get(doc, "auditd", "data", "socket") or {}
        path = sock.get("path") if isinstance(sock, dict) else None
        if not path or not _AGENT_SOCK.match(path):
            return []
        owner = next((p.get("ouid") for p in get(doc, "auditd", "paths") or [] if p.get("name") == path), None)
        uid = get(doc, "user", "id")
        euid = get(doc, "user", "effective", "id") or uid
        if owner is None or euid is None or str(euid) == str(owner) or self.allowed_user(login_user(doc)):
            return []
        return [Hit(doc, [doc["event"]["id"]], f"{login_user(doc) or '?'} (uid {euid}, "
                    f"{get(doc, 'process', 'executable') or '?'}) used the SSH agent socket {path} of uid {owner}",
                    key=path)]


RULES = (HistoryWipe, ReverseShell, DownloadAndRun, SudoDenied, SuFailure, SudoShell, ForeignAgentSocket)
