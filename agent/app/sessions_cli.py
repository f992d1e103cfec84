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
    labels = {"exec": "ran", "executed": "ran", "typed": "typed", "connected-to": "connect", "session-started": "login",
              "session-ended": "logout", "file-uploaded": "upload", "file-downloaded": "download",
              "events-lost": "LOST", "connection-opened": "connect", "listening": "listen",
              "file-sent": "send", "file-received": "receive", "file-transferred": "transfer",
              "forward-refused": "refused", "forward-failed": "fwd-fail"}
    for _, ts, kind, text in events:
        # One row per entry: a script typed or passed with -c keeps its newlines as \n.
        text = text.replace("\r", "\\r").replace("\n", "\\n")
        out.write(f"  {_fmt(ts)}  {labels.get(kind, kind):<9} {text}\n")
    return 0


# -- recordings: play, export, report ------------------------------------------


def _load_session(store: SessionReader, ident: str):
    s = store.find(ident)
    if s is None:
        print(f"agentd: no session {ident!r}", file=sys.stderr)
        return None, []
    return s, store.recording(s["id"])


def play(chunks, speed: float = 1.0, max_idle: float = 0.0, out=None, sleep=time.sleep) -> int:
    from agent.app.session_report.frames import frames

    out = out or sys.stdout.buffer
    t0 = 0.0
    for f in frames(chunks):
        pause = (f.t - t0) / max(speed, 1e-6)
        if max_idle:
            pause = min(pause, max_idle)
        if pause > 0:
            sleep(pause)
        t0 = f.t
        if f.text:
            out.write(f.text.encode("utf-8", "replace"))
            out.flush()
    return 0


def recording_command(state_dir: str, args) -> int:
    from agent.app.session_report import report

    if args.action == "report" and args.since:
        return report.write_index(state_dir, args.since, args.output, args.group, user=args.user)
    if not args.id:
        print(f"Error: sessions {args.action} needs a session id (from `agentd sessions`)", file=sys.stderr)
        return 2
    if args.action == "report":
        if not args.output:
            print("Error: sessions report needs -o FILE.html", file=sys.stderr)
            return 2
        return report.write_one(state_dir, args.id, args.output, args.group)
    with SessionReader(state_dir) as store:
        s, chunks = _load_session(store, args.id)
    if s is None:
        return 1
    if not chunks:
        print(f"agentd: session {s['id']} has no terminal recording", file=sys.stderr)
        return 1
    if args.action == "play":
        return play(chunks, args.speed, args.max_idle)
    from agent.app.session_report.asciicast import asciicast
    from agent.app.session_report.frames import frames

    text = asciicast(frames(chunks), s.get("start") or 0.0, f"session {s['id']} of {s.get('user')}")
    if args.output:
        report.write_private(args.output, text, args.group)
    else:
        sys.stdout.write(text)
    return 0
