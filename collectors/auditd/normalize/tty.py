"""Builder for keystroke records (TTY from pam_tty_audit, USER_TTY from user space):
auditd.tty, with the ``keystrokes`` object of ../keystrokes/.

``history`` (the Normalizer's :func:`new_history`, per audit session) holds the lines typed earlier in each
session, so that <up> in a keystroke record flushed later (sudo's pty, a full buffer)
recalls the right line.
"""

from __future__ import annotations

from agent.base.cache import BoundedCache
from collectors.auditd import decode
from collectors.auditd.keystrokes import keystrokes_fields
from collectors.auditd.normalize.document import Documents, finish

_UNSET = (None, "4294967295")
_MAX_SESSIONS = 1000  # sessions end; keep the table bounded
_MAX_LINES = 500      # per session


def new_history() -> BoundedCache:
    return BoundedCache(_MAX_SESSIONS)


def build(docs: Documents, ev, by_type: dict, history: BoundedCache) -> dict:
    rec = (by_type.get("TTY") or by_type["USER_TTY"])[0]
    sc = by_type.get("SYSCALL", [None])[0]
    doc = docs.start(ev, "auditd.tty", category=["process"], type=["info"], action="typed",
                     outcome="success")
    users: list = []
    if sc is not None:
        docs.add_process(doc, sc, by_type, users)
    proc = doc.setdefault("process", {})
    f = rec.fields
    pid = f.get("pid")
    if pid is not None and pid.isdecimal():
        proc["pid"] = int(pid)   # the TTY record's pid is the reader's, the one that matters
    comm = decode.value_text(rec, "comm")
    if comm is not None:
        proc["name"] = comm
    user = docs.user_of(rec, "uid", "UID", users)
    if user is not None:
        doc.setdefault("user", {}).update(user)
    docs.add_audit_ids(doc, rec, users)
    if "major" in f:
        proc.setdefault("tty", {})["char_device"] = {"major": _int(f["major"]), "minor": _int(f.get("minor"))}
    data = decode.value_bytes(rec, "data") or b""
    ses = f.get("ses")
    if ses in _UNSET:
        doc["keystrokes"] = keystrokes_fields(data, None)
    else:
        hist = history.get(ses)
        doc["keystrokes"] = ks = keystrokes_fields(data, hist)
        if hist is None:
            hist = history.put(ses, [])
        hist.extend(ks["lines"])
        del hist[:-_MAX_LINES]
    return finish(doc, users, [], [])


def _int(v):
    return int(v) if v is not None and v.isdecimal() else v
