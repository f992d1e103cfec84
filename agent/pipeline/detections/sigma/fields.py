"""Sigma log sources and field names -> agentd's events.

A log source selects the datasets a rule is evaluated on; a field name reads one
value (or a list) out of an event. A name not listed here is something agentd
cannot provide: the rule using it is skipped at load with that reason.
"""

from __future__ import annotations

from typing import Any, Callable, Optional

from agent.pipeline.detections.rules.base import get

_EXEC = ("auditd.process",)
_NET = ("auditd.network", "psutil.network")
NET_DATASETS = _NET
_FILE = ("auditd.file",)
AUDIT = ("auditd.process", "auditd.network", "auditd.network:local", "auditd.file", "auditd.auth", "auditd.login", "auditd.config",
         "auditd.tty", "auditd.other")
JOURNAL_ANY = "journald:*"
# Text-bearing datasets for product-only (syslog-like) keyword rules: the journal, and
# what people type and run (shell-history rules are written for exactly that text).
TEXT = (JOURNAL_ANY, "auditd.tty", "auditd.process")


def _session_id(doc: dict) -> Any:
    return get(doc, "auditd", "session") or get(doc, "process", "session_id")


def _g(*path: str) -> Callable:
    # Unrolled for the common depths: these run for every field of every event scanned.
    if len(path) == 2:
        a, b = path
        return lambda doc: (doc.get(a) or _EMPTY).get(b)
    if len(path) == 3:
        a, b, c = path
        return lambda doc: ((doc.get(a) or _EMPTY).get(b) or _EMPTY).get(c)
    return lambda doc: get(doc, *path)


_EMPTY: dict = {}


_PROCESS = {
    "Image": _g("process", "executable"),
    "CommandLine": _g("process", "command_line"),
    "ParentImage": _g("process", "parent", "executable"),
    "ParentCommandLine": _g("process", "parent", "command_line"),
    "User": _g("user", "name"),
    "CurrentDirectory": _g("process", "working_directory"),
    "ProcessId": _g("process", "pid"),
    "ParentProcessId": _g("process", "parent", "pid"),
    "LogonId": _session_id,
}

CATEGORY_FIELDS = {
    "process_creation": (_EXEC, dict(_PROCESS)),
    "network_connection": (_NET, {
        "Image": _PROCESS["Image"], "CommandLine": _PROCESS["CommandLine"], "User": _PROCESS["User"],
        "ProcessId": _PROCESS["ProcessId"],
        "DestinationIp": _g("destination", "ip"), "DestinationPort": _g("destination", "port"),
        "SourceIp": _g("source", "ip"), "SourcePort": _g("source", "port"),
        "Protocol": _g("network", "transport"),
        "Initiated": lambda doc: "true",  # connect() and opened outbound connections only
    }),
    "file_event": (_FILE, {
        "TargetFilename": _g("file", "path"), "Image": _PROCESS["Image"], "User": _PROCESS["User"],
        "ProcessId": _PROCESS["ProcessId"], "CommandLine": _PROCESS["CommandLine"],
    }),
}

# The auditd service's raw record field names.
_RECORD_TYPES = {
    "exec": ("SYSCALL", "EXECVE", "CWD", "PATH", "PROCTITLE"),
    "exec-failed": ("SYSCALL", "CWD", "PATH", "PROCTITLE"),
    "connected-to": ("SYSCALL", "SOCKADDR"),
    "typed": ("TTY", "USER_TTY"),
    "audit-config-changed": ("CONFIG_CHANGE",),
    "changed-login-id": ("LOGIN",),
    "logged-in": ("USER_LOGIN",), "login-failed": ("USER_LOGIN",),
    "started-session": ("USER_START",), "ended-session": ("USER_END",),
    "authenticated": ("USER_AUTH",), "authentication-failed": ("USER_AUTH",),
    "was-authorized": ("USER_ACCT",), "ran-command": ("USER_CMD",),
    "audit-daemon-stopped": ("DAEMON_END",), "audit-daemon-started": ("DAEMON_START",),
    "audit-daemon-aborted": ("DAEMON_ABORT",),
}


def _record_type(doc: dict) -> Any:
    action = doc["event"].get("action")
    types = _RECORD_TYPES.get(action)
    if types:
        return list(types)
    if doc["event"].get("dataset") == "auditd.file":
        return ["SYSCALL", "PATH"]
    return None


def _arg(i: int) -> Callable:
    def read(doc: dict) -> Any:
        args = get(doc, "process", "args")
        return args[i] if isinstance(args, list) and len(args) > i else None
    return read


def _paths(doc: dict) -> Any:
    names = [p.get("name") for p in get(doc, "auditd", "paths") or [] if isinstance(p, dict) and p.get("name")]
    path = get(doc, "file", "path")
    return names + [path] if path else names or None


AUDITD_FIELDS: dict = {
    "type": _record_type,
    "exe": _PROCESS["Image"],
    "comm": _g("process", "name"),
    "key": lambda doc: doc.get("tags"),
    "syscall": _g("auditd", "syscall"),
    "name": _paths,
    "cwd": _PROCESS["CurrentDirectory"],
    "proctitle": lambda doc: get(doc, "process", "title") or get(doc, "process", "command_line"),
    "pid": _PROCESS["ProcessId"], "ppid": _PROCESS["ParentProcessId"],
    "uid": _g("user", "id"), "euid": _g("user", "effective", "id"), "ses": _session_id,
    "success": lambda doc: {"success": "yes", "failure": "no"}.get(doc["event"].get("outcome")),
    "exit": _g("auditd", "exit"),
}


def auditd_field(name: str) -> Optional[Callable]:
    if name in AUDITD_FIELDS:
        return AUDITD_FIELDS[name]
    if name.startswith("a") and name[1:].isdigit():
        return _arg(int(name[1:]))
    # Other raw names (acct, op, res, terminal, addr, …) are kept under auditd.data.
    if name.replace("_", "").replace("-", "").isalnum() and name.islower():
        return lambda doc: get(doc, "auditd", "data", name)
    return None


def getter(category: Optional[str], service: Optional[str], name: str) -> Optional[Callable]:
    """How a rule of this log source reads field ``name``, or None when agentd cannot."""
    if category is not None:
        return CATEGORY_FIELDS[category][1].get(name)
    return auditd_field(name) if service == "auditd" else None


def datasets(category: Optional[str], service: Optional[str]) -> tuple:
    return CATEGORY_FIELDS[category][0] if category is not None else service_datasets(service)


def raw_text(doc: dict) -> str:
    """The text keyword rules match: the source records (event.original, there when kept or
    when a keyword rule on auditd's log needs them) and what a person reads in the event:
    the message, the command line or the typed lines (auditd's records hex-encode those)."""
    ev = doc["event"]
    orig = ev.get("original") or ""
    msg = doc.get("message")
    if not msg:
        action = ev.get("action")
        if action == "exec":
            msg = get(doc, "process", "command_line")
        elif action == "typed":
            msg = "\n".join(x for x in get(doc, "keystrokes", "lines") or [] if isinstance(x, str))
    if not msg or msg == orig:
        return orig
    return orig + "\n" + msg if orig else msg


# The field whose value raw_text is on an exec that carries neither its raw records nor a
# message (text_is_command_line): the rule set then reads and looks the command line up once
# for both (an empty one gives "" to keywords, which no keyword literal is in).
COMMAND_LINE = "CommandLine"


def text_is_command_line(doc: dict) -> bool:
    ev = doc["event"]
    return ev.get("action") == "exec" and not ev.get("original") and not doc.get("message")


def service_datasets(service: Optional[str]) -> Optional[tuple]:
    """Datasets a `service:` log source reads, or None when agentd has no such source."""
    if service is None:
        return TEXT
    if service == "auditd":
        return AUDIT
    if service in ("sshd", "ssh"):
        return ("sshd.auth", "sshd.forward", "sshd.log", "sshd.sftp")
    if service in ("sudo",):
        return ("sudo.command",)
    if service in ("syslog", "auth"):
        return (JOURNAL_ANY,)
    # Other daemons (cron, vsftpd, clamav, guacamole…) reach the journal under their own name.
    return ("journald:" + service,)
