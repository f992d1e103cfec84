"""`agentd sessions`: recent login sessions, and one session's timeline as a person
would read it (logins, commands, keystroke lines, connections, transfers)."""

from __future__ import annotations

import os
import sqlite3
import sys
import time

from agent.base.events import loads
from agent.base.options import parse_duration

# By time. Rows are stored as they arrive, and audit stamps are millisecond-coarse:
# the login's row is written when sshd's journal line (which says how the login
# authenticated) arrives, after audit records of the same millisecond. So among rows
# of the same time the login comes first and the logout last, the rest as they came.
TIMELINE_ORDER = ("ts, CASE kind WHEN 'session-started' THEN 0 WHEN 'session-ended' THEN 2 ELSE 1 END, rowid")


def _open(state_dir: str) -> sqlite3.Connection:
    path = os.path.join(state_dir, "spool.db")
    if not os.path.exists(path):
        raise FileNotFoundError(path)
    return sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=10)


def _fmt(ts) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(ts)) if ts else "-"


def list_sessions(state_dir: str, since: str, user: str, out=sys.stdout) -> int:
    cutoff = time.time() - parse_duration(since)
    with _open(state_dir) as db:
        rows = db.execute("SELECT summary FROM session_history WHERE start >= ? ORDER BY start", (cutoff,)).fetchall()
    out.write(f"{'SESSION':<12} {'USER':<10} {'FROM':<22} {'AUTH':<28} {'TTY':<7} {'START':<19} "
              f"{'END':<19} {'CMDS':>5} HOSTS\n")
    for (blob,) in rows:
        s = loads(blob)
        if user and s.get("user") != user:
            continue
        src = s.get("source") or {}
        auth = s.get("auth") or {}
        method = auth.get("method", "")
        if auth.get("key_fingerprint"):
            method += " " + auth["key_fingerprint"][:19]
        out.write(f"{s['ses']:<12} {str(s.get('user')):<10} {src.get('ip', '?')}:{src.get('port', '?'):<12} "
                  f"{method:<28} {s.get('tty') or '-':<7} {_fmt(s.get('start')):<19} {_fmt(s.get('end')):<19} "
                  f"{s.get('commands', 0):>5} {','.join(s.get('hosts', [])) or '-'}\n")
    return 0


def show_session(state_dir: str, ident: str, out=sys.stdout) -> int:
    with _open(state_dir) as db:
        rows = db.execute("SELECT id, summary FROM session_history WHERE id = ? OR id LIKE ? ORDER BY start DESC",
                          (ident, f"%:{ident}")).fetchall()
        if not rows:
            print(f"agentd: no session {ident!r}", file=sys.stderr)
            return 1
        sid, blob = rows[0]
        events = db.execute(f"SELECT ts, kind, text FROM timeline WHERE session_id = ? ORDER BY {TIMELINE_ORDER}",
                            (sid,)).fetchall()
    s = loads(blob)
    src = s.get("source") or {}
    out.write(f"session {sid}: {s.get('user')} from {src.get('ip', '?')} port {src.get('port', '?')}, "
              f"auth {(s.get('auth') or {}).get('method', '?')} {(s.get('auth') or {}).get('key_fingerprint', '')}\n")
    gaps = s.get("gaps") or []
    if gaps:
        out.write(f"timeline incomplete ({len(gaps)} gap{'s' if len(gaps) > 1 else ''}): "
                  + "; ".join(g.get("message", "events lost") for g in gaps) + "\n")
    labels = {"events-lost": "LOST", "executed": "ran", "typed": "typed", "connected-to": "connect", "session-started": "login",
              "session-ended": "logout", "file-uploaded": "upload", "file-downloaded": "download"}
    for ts, kind, text in events:
        # One row per entry: a script typed or passed with -c keeps its newlines as \n.
        text = text.replace("\r", "\\r").replace("\n", "\\n")
        out.write(f"  {_fmt(ts)}  {labels.get(kind, kind):<9} {text}\n")
    return 0
