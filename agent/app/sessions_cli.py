"""`agentd sessions`: recent login sessions, and one session's timeline as a person
would read it (logins, commands, keystroke lines, connections, transfers)."""

from __future__ import annotations

import sys
import time

from agent.base.options import parse_duration
from agent.pipeline.session_store import SessionReader


def _fmt(ts) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(ts)) if ts else "-"


def list_sessions(state_dir: str, since: str, user: str, out=sys.stdout) -> int:
    with SessionReader(state_dir) as store:
        summaries = store.sessions(time.time() - parse_duration(since), user)
    out.write(f"{'SESSION':<12} {'USER':<10} {'FROM':<22} {'AUTH':<28} {'TTY':<7} {'START':<19} "
              f"{'END':<19} {'CMDS':>5} HOSTS\n")
    for s in summaries:
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
    with SessionReader(state_dir) as store:
        s = store.find(ident)
        if s is None:
            print(f"agentd: no session {ident!r}", file=sys.stderr)
            return 1
        sid = s["id"]
        events = store.timeline(sid)
    src = s.get("source") or {}
    out.write(f"session {sid}: {s.get('user')} from {src.get('ip', '?')} port {src.get('port', '?')}, "
              f"auth {(s.get('auth') or {}).get('method', '?')} {(s.get('auth') or {}).get('key_fingerprint', '')}\n")
    gaps = s.get("gaps") or []
    if gaps:
        out.write(f"timeline incomplete ({len(gaps)} gap{'s' if len(gaps) > 1 else ''}): "
                  + "; ".join(g.get("message", "events lost") for g in gaps) + "\n")
    labels = {"executed": "ran", "typed": "typed", "connected-to": "connect", "session-started": "login",
              "session-ended": "logout", "file-uploaded": "upload", "file-downloaded": "download",
              "events-lost": "LOST"}
    for _, ts, kind, text in events:
        # One row per entry: a script typed or passed with -c keeps its newlines as \n.
        text = text.replace("\r", "\\r").replace("\n", "\\n")
        out.write(f"  {_fmt(ts)}  {labels.get(kind, kind):<9} {text}\n")
    return 0
