"""tlog's journal messages (``tlog-rec-session`` with ``"writer": "journal"``) -> tlog.recording.

tlog writes one journal entry per chunk of a recording: fields ``TLOG_REC`` (the
recording id), ``TLOG_USER``, ``TLOG_SESSION`` (the kernel audit session of the
login: the session join's key) and ``TLOG_ID`` (the chunk number, 1, 2, …), and a
MESSAGE that is tlog's JSON log format v2::

    {"ver":"2.3","host":…,"rec":…,"user":…,"term":"xterm","session":N,"id":N,
     "pos":MS,"time":EPOCH,"timing":"=80x24+3>12+10>49","in_txt":"","in_bin":[],
     "out_txt":"…","out_bin":[]}

``timing`` says how the text is played: ``+MS`` a delay, ``>N``/``<N`` N characters
of output/input text, ``]N``/``[N`` N bytes of output/input binary, ``=WxH`` the
window size. The chunk's output text goes into ``process.io.text`` (Kibana Session
View's field, and one the redaction stage masks); the timing and order keys stay
under ``tlog.*`` so the agent can replay the terminal and see a missing chunk.
Pure: no state here; ordering and gaps are the recordings stage's (after the join).
"""

from __future__ import annotations

import json
from typing import Optional

from collectors.journald.common import fragment

DATASET = "tlog.recording"
PROGRAM = "tlog-rec-session"


def _field(fields: dict, name: str) -> str:
    v = fields.get(name)
    if isinstance(v, list):
        v = v[0] if v else ""
    if isinstance(v, (bytes, bytearray)):
        v = bytes(v).decode("utf-8", "replace")
    return "" if v is None else str(v)


def _int(v) -> Optional[int]:
    try:
        return int(v)
    except (TypeError, ValueError):
        return None


def parse(message: str, fields: dict) -> Optional[dict]:
    """A tlog chunk's fragment, or None when the message is not tlog's JSON (tlog's own
    error lines then stay tlog_rec_session.log)."""
    try:
        msg = json.loads(message)
    except ValueError:
        return None
    if not isinstance(msg, dict) or "timing" not in msg or "rec" not in msg:
        return None
    out_txt = str(msg.get("out_txt") or "")
    in_txt = str(msg.get("in_txt") or "")
    session = _field(fields, "TLOG_SESSION") or str(msg.get("session", ""))
    tlog: dict = {
        "rec": _field(fields, "TLOG_REC") or str(msg.get("rec", "")),
        "id": _int(_field(fields, "TLOG_ID") or msg.get("id")),
        "pos": _int(msg.get("pos")) or 0,
        "timing": str(msg.get("timing") or ""),
        "term": str(msg.get("term") or ""),
        "ver": str(msg.get("ver") or ""),
    }
    if isinstance(msg.get("time"), (int, float)):
        tlog["time"] = float(msg["time"])
    if in_txt:  # only with tlog's input logging on (off by default, and keep it off)
        tlog["in_txt"] = in_txt
    for key in ("out_bin", "in_bin"):
        if msg.get(key):
            tlog[key] = [int(b) & 0xFF for b in msg[key] if isinstance(b, int)]
    io = {"type": "tty", "text": out_txt, "total_bytes_captured": len(out_txt.encode("utf-8"))}
    user = _field(fields, "TLOG_USER") or str(msg.get("user") or "")
    frag = fragment(DATASET, "terminal-output", category=["session"], type=["info"], outcome="success",
                    tlog=tlog, process={"io": io}, user={"name": user} if user else None)
    # The message is the chunk's own JSON: shipped as a short line instead, the text
    # lives (once, redacted) in process.io.text.
    frag["message"] = f"terminal recording {tlog['rec']} chunk {tlog['id']} ({len(out_txt)} characters)"
    if session and session not in ("4294967295", "-1"):
        frag["auditd"] = {"session": session}
    return frag
