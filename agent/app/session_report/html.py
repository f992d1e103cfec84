"""The report's HTML: one page per session and an index, self-contained (the CSS and
the player are inlined; nothing is fetched), escaped everywhere (every text comes from
the users being audited), readable on a laptop and printable."""

from __future__ import annotations

import json
import re
import time
from html import escape
from importlib import resources
from typing import Iterable, List

from agent.app.session_report.frames import Frame, size_of

TRANSFER_PROGRAMS = ("scp", "sftp", "rsync", "sftp-server")
HOP_PROGRAMS = ("ssh", "scp", "sftp", "rsync", "nc", "ncat", "socat", "telnet")
KNOWN = ("session-started", "session-ended", "exec", "executed", "typed", "connected-to", "connection-opened",
         "forward-refused", "forward-failed", "file-uploaded", "file-downloaded", "sudo", "su", "events-lost",
         "rule-matched")
FORWARD_MARK = {"forward-refused": "refused", "forward-failed": "failed"}  # tunnels sshd stopped or could not open


def _asset(name: str) -> str:
    return resources.files("agent.app.session_report").joinpath(name).read_text(encoding="utf-8")


def _t(ts) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(ts)) + " UTC" if ts else "-"


def _clock(ts) -> str:
    return time.strftime("%H:%M:%S", time.gmtime(ts)) if ts else "-"


def _dur(seconds) -> str:
    if seconds is None:
        return "still open"
    s = int(seconds)
    return f"{s // 3600}h {s % 3600 // 60:02d}m {s % 60:02d}s" if s >= 3600 else f"{s // 60}m {s % 60:02d}s"


def _table(head: List[str], rows: Iterable[List[str]], cls: str = "") -> str:
    """Rows of already-escaped cells."""
    rows = list(rows)
    if not rows:
        return '<p class="none">None.</p>'
    th = "".join(f"<th>{h}</th>" for h in head)
    body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in r) + "</tr>" for r in rows)
    return f'<table class="{cls}"><thead><tr>{th}</tr></thead><tbody>{body}</tbody></table>'


def _program(text: str) -> str:
    first = (text.split() or [""])[0]
    return first.rsplit("/", 1)[-1]


def _commands(timeline) -> List[List[str]]:
    """Executed commands with the typed line that ran them beside them. pam_tty_audit's
    lines are flushed per shell (at its exit or logout), so their times say little: each
    command takes the first unused typed line that names its program; typed lines that
    ran no program (builtins, lines typed inside vim or top) are listed after them."""
    typed: List[str] = []
    for r in timeline:
        if r.kind == "typed":
            typed += [p for p in r.text.split(" | ") if p.strip()]
    used = [False] * len(typed)
    rows = []
    for r in timeline:
        if r.kind not in ("exec", "executed"):
            continue
        prog = _program(r.text)
        match = ""
        # the program as a command word: at the line's start, after ; | & ( or sudo, with a path
        pattern = re.compile(rf"(^\s*|[;|&(]\s*|sudo\s+)(\S*/)?{re.escape(prog)}(\s|$)") if prog else None
        for i, line in enumerate(typed):
            if not used[i] and pattern is not None and pattern.search(line):
                match, used[i] = line, True
                break
        rows.append([_clock(r.ts), f'<code class="typed">{escape(match)}</code>' if match else "",
                     f"<code>{escape(r.text)}</code>"])
    rows += [["typed", f'<code class="typed">{escape(line)}</code>', "(no program of its own)"]
             for i, line in enumerate(typed) if not used[i]]
    return rows


def _rows(timeline, kinds, label=None) -> List[List[str]]:
    return [[_clock(r.ts)] + ([escape(label(r))] if label else []) + [f"<code>{escape(r.text)}</code>"]
            for r in timeline if r.kind in kinds]


def _player(fr: List[Frame]) -> str:
    if not fr:
        return '<p class="none">No terminal recording for this session (not a recorded user, a ' \
               'transfer session, or pruned by the store\'s retention).</p>'
    cols, rows = size_of(fr)
    data = {"cols": cols, "rows": rows, "frames": [[round(f.t, 3), f.text] for f in fr if f.text]}
    # "</" inside a script element would end it: JSON escapes it away.
    payload = json.dumps(data, ensure_ascii=True).replace("</", "<\\/")
    return (f'<div class="player" data-time="0"><div class="controls"><button class="play" type="button">Play'
            f'</button> <input class="seek" type="range" min="0" step="0.01" value="0"> <span class="clock"></span> '
            f'<label>speed <select class="speed"><option>1</option><option>2</option><option>4</option>'
            f'<option>8</option></select></label></div>'
            f'<pre class="screen" style="--cols:{cols}"></pre>'
            f'<script type="application/json" class="frames">{payload}</script></div>')


def session_page(s: dict, timeline, fr: List[Frame]) -> str:
    src = s.get("source") or {}
    auth = s.get("auth") or {}
    end = s.get("end")
    gaps = s.get("gaps") or []
    who = [
        ["User", escape(str(s.get("user") or "?"))],
        ["Source", f'<span class="ip">{escape(str(src.get("ip", "?")))}</span> port {escape(str(src.get("port", "?")))}'],
        ["Authentication", escape(str(auth.get("method", "?")))],
        ["Key", f"<code>{escape(str(auth.get('key_type', '')))} {escape(str(auth.get('key_fingerprint', '-')))}</code>"],
        ["Terminal", escape(str(s.get("tty") or "none"))],
        ["Start", _t(s.get("start"))],
        ["End", _t(end) if end else "still open (or its end was not seen)"],
        ["Duration", _dur(end - s["start"] if end and s.get("start") else None)],
        ["Counts", f"{s.get('commands', 0)} commands, {len(s.get('hosts') or [])} hosts, "
                   f"{s.get('bytes', 0)} bytes transferred, {s.get('alerts', 0)} alerts"],
        ["Session id", f"<code>{escape(s['id'])}</code> (audit session {escape(str(s.get('ses')))})"],
    ]
    who_html = "".join(f"<tr><th>{k}</th><td>{v}</td></tr>" for k, v in who)
    gap_rows = [[escape(g.get("message", "events lost"))] for g in gaps]
    gap_rows += [[f"{_clock(r.ts)} <code>{escape(r.text)}</code>"] for r in timeline if r.kind == "events-lost"
                 and not any(r.text == g.get("message") for g in gaps)]
    status = ('<p class="warn">Incomplete: the agent lost events in this session (see Gaps).</p>' if gap_rows
              else '<p class="ok">Complete: no loss recorded in this session.</p>')
    logins = _rows(timeline, ("session-started", "session-ended", "sudo", "su"),
                   lambda r: {"session-started": "login", "session-ended": "logout"}.get(r.kind, r.kind))
    privileged = [[_clock(r.ts), f"<code>{escape(r.text)}</code>"] for r in timeline
                  if r.kind in ("sudo", "su") or (r.kind in ("exec", "executed") and _program(r.text) in ("sudo", "su"))]
    hops = [[_clock(r.ts), f"<code>{escape(r.text)}</code>",
             FORWARD_MARK.get(r.kind) or ("hop" if any(f"({p})" in r.text for p in HOP_PROGRAMS) else "")]
            for r in timeline if r.kind in ("connected-to", "connection-opened") or r.kind in FORWARD_MARK]
    transfers = _rows(timeline, ("file-uploaded", "file-downloaded"),
                      lambda r: "upload" if r.kind == "file-uploaded" else "download")
    transfers += [[_clock(r.ts), "copy command", f"<code>{escape(r.text)}</code>"] for r in timeline
                  if r.kind in ("exec", "executed") and _program(r.text) in TRANSFER_PROGRAMS]
    alerts = [[_clock(r.ts), f"<code>{escape(r.text)}</code>"] for r in timeline
              if r.kind == "rule-matched" or r.kind.startswith("alert")]
    other = _rows(timeline, (), None)
    other = [[_clock(r.ts), escape(r.kind), f"<code>{escape(r.text)}</code>"] for r in timeline if r.kind not in KNOWN]
    title = f"Session of {s.get('user')} from {src.get('ip', '?')} at {_t(s.get('start'))}"
    body = f"""
<header><h1>{escape(title)}</h1>{status}</header>
<section class="who"><h2>Who, from where, when</h2><table class="facts">{who_html}</table></section>
<section><h2>Alerts</h2>{_table(["Time", "Rule [ATT&amp;CK technique]"], alerts, "alerts")}</section>
<section><h2>Gaps</h2>{_table(["What was lost"], gap_rows, "gaps")}</section>
<section><h2>Logins, logouts, sudo and su</h2>{_table(["Time", "What", "Detail"], logins)}</section>
<section><h2>Commands</h2>{_table(["Time", "Typed (keystrokes)", "Executed (argv)"], _commands(timeline), "commands")}</section>
<section><h2>Privilege changes</h2>{_table(["Time", "Command"], privileged)}</section>
<section><h2>Connections and hops</h2>{_table(["Time", "Destination (program)", ""], hops, "hops")}</section>
<section><h2>File transfers</h2>{_table(["Time", "Kind", "File (size)"], transfers, "transfers")}</section>
<section class="recording"><h2>Terminal recording</h2>{_player(fr)}</section>
{f'<section><h2>Other events</h2>{_table(["Time", "Kind", "Detail"], other)}</section>' if other else ""}
<footer>Written by agentd on {_t(time.time())}. Times are UTC. Typed lines come from pam_tty_audit,
executed commands from the audit log, the recording from tlog; secrets the agent recognises are masked
(********) in all three.</footer>"""
    return _document(title, body)


def index_page(rows, since: str) -> str:
    table = _table(["Start", "User", "From", "Auth", "Duration", "Commands", "Alerts", "Gaps", "Recording", ""], (
        [_t(s.get("start")), escape(str(s.get("user"))),
         escape(f"{(s.get('source') or {}).get('ip', '?')}:{(s.get('source') or {}).get('port', '?')}"),
         escape(str((s.get("auth") or {}).get("method", "?"))),
         _dur(s["end"] - s["start"] if s.get("end") and s.get("start") else None),
         str(s.get("commands", 0)), str(s.get("alerts", 0)), str(len(s.get("gaps") or [])),
         "yes" if rec else "no", f'<a href="{escape(name)}">report</a>'] for s, name, rec in rows), "index")
    title = f"Sessions of the last {since}"
    return _document(title, f"<header><h1>{escape(title)}</h1><p>{len(rows)} session(s), written "
                            f"{_t(time.time())}.</p></header><section>{table}</section>")


def _document(title: str, body: str) -> str:
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline'">
<title>{escape(title)}</title><style>{_asset("report.css")}</style></head>
<body>{body}<script>{_asset("player.js")}</script></body></html>
"""
