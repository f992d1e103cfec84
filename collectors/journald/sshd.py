"""sshd's journal messages -> sshd.auth fragments (pure).

One event per fact, so counting events counts attempts:

- ``Accepted <method> for U from IP port N ssh2[: TYPE SHA256:…]`` -> ``logged-in``.
  (The VERBOSE ``Accepted key … found at …`` and ``Postponed …`` lines before it are
  pre-auth chatter and stay generic.)
- ``Failed <method> for [invalid user ]U from IP port N ssh2`` -> ``login-failed``: the
  one line per failed attempt that has the port and the method. The PAM lines of the
  same attempt (``pam_unix(sshd:auth): authentication failure; …``,
  ``pam_unix(sshd:auth): check pass; user unknown``, ``error: PAM: Authentication failure
  for U from IP``) stay generic ``sshd.log`` events, so one wrong password is exactly
  one ``login-failed``.
- ``Invalid user U from IP port N`` -> ``invalid-user`` (once per connection; the
  ``Failed password for invalid user U`` that follows it is that attempt's
  ``login-failed``).
- ``Disconnected from [user|authenticating user|invalid user U ]IP port N``,
  ``Connection closed|reset by …``, ``Disconnecting …: reason``, ``Timeout before
  authentication …`` -> ``disconnected``. ``Received disconnect from …`` (the client's
  reason, always followed by ``Disconnected from …``) stays generic, so a connection
  ends in one ``disconnected``.
- ``pam_unix(sshd:session): session opened|closed for user U`` -> ``session-opened`` /
  ``logged-out`` (the PAM session end, logged by the monitor process whose pid is the
  session join key).
- ``Starting session: shell on pts/1 for U from IP port N id 0`` -> ``started-session``
  (the tty and kind of session; category session, type info).

Everything else -> ``None`` (the caller makes a generic ``sshd.log`` event).
"""

from __future__ import annotations

import re
from typing import Optional

from collectors.journald.common import fragment, pam_session, port, tty_fields, tty_name

DATASET = "sshd.auth"
_WHO = r"(?:(?P<kind>user|authenticating user|invalid user) (?P<user>.*?) )?(?P<ip>\S+) port (?P<port>\d+)"

_ACCEPTED = re.compile(
    r"^Accepted (?P<method>\S+) for (?P<user>.*?) from (?P<ip>\S+) port (?P<port>\d+)(?: ssh\d)?"
    r"(?:: (?P<key_type>\S+) (?P<fp>\S+)(?P<rest>.*))?$"
)
_FAILED = re.compile(
    r"^Failed (?P<method>\S+) for (?P<invalid>invalid user )?(?P<user>.*?) from (?P<ip>\S+) "
    r"port (?P<port>\d+)(?: ssh\d)?(?:: (?P<key_type>\S+) (?P<fp>\S+).*)?$"
)
_INVALID = re.compile(r"^Invalid user (?P<user>.*?) from (?P<ip>\S+) port (?P<port>\d+)\s*$")
_DISCONNECTED = re.compile(r"^Disconnected from " + _WHO + r"(?P<preauth> \[preauth\])?$")
_CLOSED = re.compile(r"^Connection (?P<how>closed|reset) by " + _WHO + r"(?P<preauth> \[preauth\])?$")
_DISCONNECTING = re.compile(r"^Disconnecting " + _WHO + r": (?P<reason>.*?)(?P<preauth> \[preauth\])?$")
_TIMEOUT = re.compile(r"^Timeout before authentication for (?:connection from )?(?P<ip>\S+) port (?P<port>\d+)")
_STARTING = re.compile(
    r"^Starting session: (?P<what>.+?)(?: on (?P<tty>\S+))? for (?P<user>.*?) from (?P<ip>\S+) "
    r"port (?P<port>\d+)(?: id (?P<id>\d+))?$"
)
_USER_STATE = {"user": "authenticated", "authenticating user": "authenticating", "invalid user": "invalid"}


def _method(raw: str) -> tuple:
    # "keyboard-interactive/pam": the method is what EVENTS.md names; the PAM
    # submethod is kept apart so a search on session.auth.method stays simple.
    method, _, sub = raw.partition("/")
    return method, sub or None


def _auth(method_raw: str, key_type: Optional[str] = None, fp: Optional[str] = None) -> dict:
    method, sub = _method(method_raw)
    auth = {"method": method}
    if sub:
        auth["submethod"] = sub
    if key_type and fp:
        auth["key_type"] = key_type
        auth["key_fingerprint"] = fp
    return auth


def _accepted(m: re.Match) -> dict:
    auth = _auth(m["method"], m["key_type"], m["fp"])
    sshd = {"certificate": m["rest"].strip()} if m["rest"] and m["rest"].strip() else None
    return fragment(DATASET, "logged-in", category=["authentication", "session"], type=["start"],
                    outcome="success", user={"name": m["user"]},
                    source={"ip": m["ip"], "port": port(m["port"])}, session={"auth": auth}, sshd=sshd)


def _failed(m: re.Match) -> dict:
    sshd = {"invalid_user": True} if m["invalid"] else None
    return fragment(DATASET, "login-failed", category=["authentication"], type=["start"], outcome="failure",
                    user={"name": m["user"]}, source={"ip": m["ip"], "port": port(m["port"])},
                    session={"auth": _auth(m["method"], m["key_type"], m["fp"])}, sshd=sshd)


def _disconnected(m: re.Match, reason: Optional[str] = None) -> dict:
    gd = m.groupdict()
    preauth = bool(gd.get("preauth"))
    sshd: dict = {"preauth": preauth}
    if gd.get("kind"):
        sshd["user_state"] = _USER_STATE[gd["kind"]]
    if reason:
        sshd["reason"] = reason
    if gd.get("how") == "reset":
        sshd["reason"] = "connection reset"
    category = ["network"] if preauth or not gd.get("kind") else ["network", "session"]
    return fragment(DATASET, "disconnected", category=category, type=["end"], outcome="unknown",
                    user={"name": gd.get("user")} if gd.get("user") else None,
                    source={"ip": m["ip"], "port": port(m["port"])}, sshd=sshd)


def _pam(p: dict) -> Optional[dict]:
    if p["service"] != "sshd":
        return None
    opened = p["what"] == "opened"
    user = {"name": p["user"]}
    if p.get("uid"):
        user["id"] = p["uid"]
    return fragment(DATASET, "session-opened" if opened else "logged-out", category=["session"],
                    type=["start"] if opened else ["end"], outcome="success", user=user)


def parse(message: str, fields: Optional[dict] = None) -> Optional[dict]:
    """The sshd.auth fragment for one sshd message, or None when it is not one of ours."""
    if message.startswith("Accepted "):
        m = _ACCEPTED.match(message)
        return _accepted(m) if m else None
    if message.startswith("Failed "):
        m = _FAILED.match(message)
        return _failed(m) if m else None
    if message.startswith("Invalid user "):
        m = _INVALID.match(message)
        if m:
            return fragment(DATASET, "invalid-user", category=["authentication"], type=["info"],
                            outcome="failure", user={"name": m["user"]},
                            source={"ip": m["ip"], "port": port(m["port"])})
        return None
    for rx in (_DISCONNECTED, _CLOSED):
        m = rx.match(message)
        if m:
            return _disconnected(m)
    m = _DISCONNECTING.match(message)
    if m:
        return _disconnected(m, m["reason"])
    m = _TIMEOUT.match(message)
    if m:
        return fragment(DATASET, "disconnected", category=["network"], type=["end"], outcome="unknown",
                        source={"ip": m["ip"], "port": port(m["port"])},
                        sshd={"preauth": True, "reason": "timeout before authentication"})
    if message.startswith("pam_unix("):
        p = pam_session(message)
        return _pam(p) if p else None
    if message.startswith("Starting session: "):
        m = _STARTING.match(message)
        if m:
            tty = tty_name(m["tty"])
            return fragment(DATASET, "started-session", category=["session"], type=["info"], outcome="success",
                            user={"name": m["user"]}, source={"ip": m["ip"], "port": port(m["port"])},
                            sshd={"session_type": m["what"]}, **tty_fields(tty))
    return None
