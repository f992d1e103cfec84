"""What the message parsers share: the fragment shape and PAM's session lines.

A parser returns a *fragment*: the ECS fields it read from one message plus an
``event`` dict with dataset/action/category/type/outcome. normalize.py lays the
fragment over the base document; parsers never see files, time or ids.
"""

from __future__ import annotations

import re
from typing import Optional

from agent.base.events import event_object, tty_device

# "pam_unix(sshd:session): session opened for user alice(uid=1001) by (uid=0)"
# Newer Linux-PAM writes the invoking user's name before "(uid=…)"; older leaves it empty.
_PAM_SESSION = re.compile(
    r"^pam_unix\((?P<service>[^:()]+):session\): session (?P<what>opened|closed) for user "
    r"(?P<user>[^\s(]+)(?:\(uid=(?P<uid>\d+)\))?(?: by (?P<by>[^\s(]*)\(uid=(?P<by_uid>\d+)\))?\s*$"
)


def fragment(dataset: str, action: str = "", *, category: Optional[list] = None,
             type: Optional[list] = None, outcome: str = "unknown", **fields) -> dict:
    frag = {k: v for k, v in fields.items() if v not in (None, {}, "")}
    frag["event"] = event_object(dataset, action, category, type, outcome)
    return frag


def generic(program: str) -> dict:
    """Any line a parser does not know: kept, with its message, under <program>.log."""
    return fragment(f"{_short(program)}.log")


def _short(program: str) -> str:
    # sshd-session (OpenSSH >= 9.8) is the same daemon as far as a reader is concerned;
    # sftp-server's lines sit next to sshd.sftp as sftp.log.
    if program.startswith("sshd"):
        return "sshd"
    if program == "sftp-server":
        return "sftp"
    if program == "tlog-rec-session":  # its own error lines, beside tlog.recording
        return "tlog"
    return program.replace("-", "_")


def pam_session(message: str) -> Optional[dict]:
    """The pam_unix session line's parts, or None: service, what, user, uid, by, by_uid."""
    m = _PAM_SESSION.match(message)
    return m.groupdict() if m else None


def port(value: Optional[str]) -> Optional[int]:
    return int(value) if value else None


def tty_fields(tty: Optional[str]) -> dict:
    """A terminal as fragment fields: ECS process.tty (char_device) and, since ECS has no
    tty name, agentd.process.tty.name; {} without a terminal."""
    if not tty:
        return {}
    dev = tty_device(tty)
    out: dict = {"agentd": {"process": {"tty": {"name": tty}}}}
    if dev is not None:
        out["process"] = {"tty": dev}
    return out


def tty_name(value: Optional[str]) -> Optional[str]:
    """"pts/1" from "pts/1" or "/dev/pts/1"; None for sudo/su's "unknown"/"none"."""
    if not value or value in ("unknown", "none", "???"):
        return None
    return value[5:] if value.startswith("/dev/") else value
