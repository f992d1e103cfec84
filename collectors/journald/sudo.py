"""sudo's journal messages -> sudo.command fragments (pure).

sudo writes one line per decision, ``<user> : [reason ; ]TTY=… ; PWD=… ; USER=… ;
COMMAND=…``; that line is the ``sudo`` event (success when there is no reason, failure
with ``sudo.reason`` otherwise: ``user NOT in sudoers``, ``command not allowed``,
``3 incorrect password attempts``, ``a password is required``…). The PAM lines around
it (``pam_unix(sudo:auth): authentication failure``, ``pam_unix(sudo:session): session
opened …``) stay generic ``sudo.log`` events: the decision line already says everything
they do, and keeping them generic means one sudo invocation is one ``sudo`` event.
"""

from __future__ import annotations

import re
from typing import Optional

from collectors.journald.common import fragment, tty_fields, tty_name

DATASET = "sudo.command"
_HEAD = re.compile(r"^\s*(?P<user>\S+) : (?P<body>.*)$", re.S)
_KEY = re.compile(r"^(?P<key>[A-Z]+)=(?P<value>.*)$", re.S)


def _split(body: str) -> tuple:
    """(reasons, {KEY: value}, command). COMMAND= is always last and may itself contain
    " ; ", so it is cut off before the rest is split."""
    command = None
    idx = body.find("COMMAND=")
    if idx == 0 or (idx > 0 and body[idx - 3:idx] == " ; "):
        command = body[idx + len("COMMAND="):]
        body = body[:max(idx - 3, 0)]
    reasons, kv = [], {}
    for part in body.split(" ; ") if body else []:
        m = _KEY.match(part)
        if m:
            kv[m["key"]] = m["value"]
        elif part.strip():
            reasons.append(part.strip())
    return reasons, kv, command


def parse(message: str, fields: Optional[dict] = None) -> Optional[dict]:
    m = _HEAD.match(message)
    if not m:
        return None
    reasons, kv, command = _split(m["body"])
    if command is None and "TTY" not in kv:
        return None
    outcome = "failure" if reasons else "success"
    user: dict = {"name": m["user"]}
    if kv.get("USER"):
        user["target"] = {"name": kv["USER"]}
    group = {"target": {"name": kv["GROUP"]}} if kv.get("GROUP") else None
    process: dict = {}
    if command is not None:
        # process.pid/executable stay sudo's own (from the entry): the command runs in a
        # child whose pid sudo does not log; the audit EXECVE event has that.
        process["command_line"] = command
    if kv.get("PWD"):
        process["working_directory"] = kv["PWD"]
    tty = tty_fields(tty_name(kv.get("TTY")))
    if "process" in tty:
        process.update(tty["process"])
    sudo: dict = {k.lower(): v for k, v in kv.items() if k not in ("USER", "PWD", "TTY", "GROUP")}
    if reasons:
        sudo["reason"] = "; ".join(reasons)
    return fragment(DATASET, "sudo", category=["process", "iam"], type=["start"] if outcome == "success"
                    else ["start", "denied"], outcome=outcome, user=user, group=group, process=process,
                    sudo=sudo or None, agentd=tty.get("agentd"))
