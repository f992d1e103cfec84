"""su's journal messages -> su.session fragments (pure).

util-linux su logs ``(to dave) carol on pts/1`` when it switches and ``FAILED SU (to
dave) carol on pts/1`` when authentication fails: those are the ``su`` events (actor
carol, target dave). The PAM session lines of the switched shell (``pam_unix(su-l:session):
session opened for user dave(uid=1004) by (uid=1003)`` / ``… closed …``) become
``session-opened`` / ``session-closed`` in the same dataset: they bound the time spent as
the target user. ``pam_unix(su:auth): authentication failure`` stays generic (the FAILED SU
line is that attempt's one failure event).
"""

from __future__ import annotations

import re
from typing import Optional

from collectors.journald.common import fragment, pam_session, tty_fields, tty_name

DATASET = "su.session"
_SU = re.compile(r"^(?P<failed>FAILED SU )?\(to (?P<target>\S+)\) (?P<user>\S+) on (?P<tty>\S+)\s*$")


def parse(message: str, fields: Optional[dict] = None) -> Optional[dict]:
    m = _SU.match(message)
    if m:
        failed = bool(m["failed"])
        tty = tty_name(m["tty"])
        return fragment(DATASET, "su", category=["authentication", "session"],
                        type=["start"], outcome="failure" if failed else "success",
                        user={"name": m["user"], "target": {"name": m["target"]}},
                        **tty_fields(tty))
    if message.startswith("pam_unix("):
        p = pam_session(message)
        if p and p["service"] in ("su", "su-l"):
            opened = p["what"] == "opened"
            target: dict = {"name": p["user"]}
            if p.get("uid"):
                target["id"] = p["uid"]
            user: dict = {"target": target}
            if p.get("by"):
                user["name"] = p["by"]
            if p.get("by_uid"):
                user["id"] = p["by_uid"]
            return fragment(DATASET, "session-opened" if opened else "session-closed", category=["session"],
                            type=["start"] if opened else ["end"], outcome="success", user=user)
    return None
