"""What the session join reads from an event document: the audit session, the
sshd monitor pid, the audit record a login step came from, and what one line of
a session's timeline says about the event."""

from __future__ import annotations

from typing import Optional

from agent.base.docpath import get as get  # the stages import it from here

UNSET = ("4294967295", "-1", "", None, "unset")


def ses_of(doc: dict) -> Optional[str]:
    v = get(doc, "auditd", "session")
    if v is None:
        v = get(doc, "process", "session_id")
    v = None if v is None else str(v)
    return None if v in UNSET else v


# The normalizer's actions for the audit records the join needs.
_AUDIT_ACTIONS = {
    "changed-login-id": "LOGIN",
    "started-session": "USER_START",
    "logged-in": "USER_LOGIN",
    "ended-session": "USER_END",
}


def record_type(doc: dict) -> str:
    ev = doc.get("event", {})
    if ev.get("module") != "auditd":
        return ""
    return _AUDIT_ACTIONS.get(ev.get("action"), "")


def pid_of(doc: dict) -> Optional[int]:
    v = get(doc, "process", "pid")
    try:
        return int(v) if v is not None else None
    except (TypeError, ValueError):
        return None


def connect_target(doc: dict) -> str:
    """What a connect reached: ip:port, [ipv6]:port, or the socket's path for a
    unix socket (@name for an abstract one), else the address family."""
    ip = get(doc, "destination", "ip")
    if ip:
        port = get(doc, "destination", "port")
        return f"[{ip}]:{port}" if ":" in str(ip) else f"{ip}:{port}"
    sock = get(doc, "auditd", "data", "socket") or {}
    if sock.get("path"):
        return ("@" if sock.get("abstract") else "") + str(sock["path"])
    return str(sock.get("family") or "?")


def tty_name(terminal) -> str:
    t = str(terminal or "")
    if t.startswith("/dev/"):
        t = t[5:]
    return t if t.startswith(("pts/", "tty")) else ""


def timeline_text(doc: dict) -> str:
    """The text of the event's row in its session's timeline; "" for no row."""
    action = doc["event"].get("action")
    if doc["event"].get("kind") == "alert":
        # The technique with the rule's name: what a report shows without the alert itself.
        tech = get(doc, "threat", "technique", "subtechnique", "id") or get(doc, "threat", "technique", "id") or []
        name = get(doc, "rule", "name") or "alert"
        return f"{name} [{', '.join(tech)}]" if tech else name
    if action == "exec":
        return get(doc, "process", "command_line") or " ".join(get(doc, "process", "args") or [])
    if action in ("connected-to", "connection-opened", "listening"):
        text = f"{connect_target(doc)} ({get(doc, 'process', 'name') or '?'})"
        if "ssh-forwarded" in (doc.get("tags") or ()):
            return text + " forwarded by sshd"
        # a snapshot naming the audit connect of the same connection: that one has the row
        return "" if get(doc, "agentd", "same_as") and action == "connection-opened" else text
    if action in ("file-sent", "file-received", "file-transferred"):
        return doc.get("message") or ""
    if action in ("file-uploaded", "file-downloaded"):
        return f"{get(doc, 'file', 'path')} ({int(get(doc, 'transfer', 'bytes') or 0)} bytes)"
    if action == "typed":
        return " | ".join(str(x.get("line", x) if isinstance(x, dict) else x)
                          for x in (get(doc, "keystrokes", "lines") or []))
    if action in ("sudo", "su"):
        return doc.get("message") or get(doc, "process", "command_line") or ""
    if action in ("forward-refused", "forward-failed"):
        return forward_text(doc)
    return ""


def forward_text(doc: dict) -> str:
    """A refused or failed sshd forward, as its timeline row: what was asked and what came of it."""
    fwd = get(doc, "sshd", "forward") or {}
    kind = fwd.get("type")
    if kind == "remote-forward":
        listen = fwd.get("listen") or {}
        what = f"remote forward (-R) on {listen.get('address', '*')}:{listen.get('port', '?')}"
    elif kind in ("direct-streamlocal", "remote-streamlocal"):
        what = f"{'remote ' if kind == 'remote-streamlocal' else ''}forward to socket {fwd.get('path')}"
    else:
        what = f"forward to {get(doc, 'destination', 'address')}:{get(doc, 'destination', 'port')}"
    if doc["event"].get("action") == "forward-failed":
        return f"{what} failed: {fwd.get('error')}"
    return f"{what} refused by sshd"
