"""`agentd sessions report`: one session as a self-contained HTML page, or an index
of the sessions of a period with a page for each. What a page shows comes from the
session store only (summary, timeline, recording): it works after the events were
shipped and deleted from the spool, and needs no network to open.

Reports hold sensitive data: written 0600, or 0640 with a group the admin names.
"""

from __future__ import annotations

import grp
import os
import sys
import time

from agent.app.session_report import html
from agent.app.session_report.frames import frames
from agent.base.options import parse_duration
from agent.pipeline.session_store import SessionReader


def write_private(path: str, text: str, group: str = "") -> None:
    """Write ``text`` readable by the owner only (or the owner and ``group``), whatever
    the umask, without a moment at a wider mode."""
    mode = 0o640 if group else 0o600
    gid = grp.getgrnam(group).gr_gid if group else -1
    tmp = f"{path}.tmp{os.getpid()}"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, mode)
    try:
        os.fchmod(fd, mode)
        if group:
            os.fchown(fd, -1, gid)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            fd = -1
            f.write(text)
        os.replace(tmp, path)
    finally:
        if fd >= 0:
            os.close(fd)
        if os.path.exists(tmp):
            os.unlink(tmp)


def _page(store: SessionReader, s: dict) -> str:
    return html.session_page(s, store.timeline(s["id"]), frames(store.recording(s["id"])))


def _check_group(group: str) -> bool:
    if not group:
        return True
    try:
        grp.getgrnam(group)
        return True
    except KeyError:
        print(f"Error: --group {group!r}: no such group", file=sys.stderr)
        return False


def write_one(state_dir: str, ident: str, path: str, group: str = "") -> int:
    if not _check_group(group):
        return 2
    with SessionReader(state_dir) as store:
        s = store.find(ident)
        if s is None:
            print(f"agentd: no session {ident!r}", file=sys.stderr)
            return 1
        page = _page(store, s)
    write_private(path, page, group)
    print(f"wrote {path}")
    return 0


def file_name(s: dict) -> str:
    stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime(s.get("start") or 0))
    return f"session-{stamp}-{s.get('user') or 'unknown'}-{s['ses']}.html"


def write_index(state_dir: str, since: str, out_dir: str, group: str = "", user: str = "") -> int:
    if not out_dir:
        print("Error: sessions report --since needs -o DIR", file=sys.stderr)
        return 2
    if not _check_group(group):
        return 2
    try:
        span = parse_duration(since)
    except ValueError as e:
        print(f"Error: --since: {e}", file=sys.stderr)
        return 2
    os.makedirs(out_dir, mode=0o750 if group else 0o700, exist_ok=True)
    with SessionReader(state_dir) as store:
        sessions = store.sessions(time.time() - span, user)
        rows = []
        for s in sessions:
            name = file_name(s)
            write_private(os.path.join(out_dir, name), _page(store, s), group)
            rows.append((s, name, bool(store.recording(s["id"]))))
    write_private(os.path.join(out_dir, "index.html"), html.index_page(rows, since), group)
    print(f"wrote {os.path.join(out_dir, 'index.html')} and {len(rows)} session page(s)")
    return 0
