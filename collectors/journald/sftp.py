"""sftp-server's journal messages (``-l INFO``) -> sshd.sftp fragments.

The transfer is the ``close "PATH" bytes read R written W`` line: it is the only one
with the byte count, and it is logged once per opened file. ``written`` > 0 is an upload
(into the jump server), ``read`` > 0 a download; a close with no bytes either way (an
empty file copied) takes its direction from the ``open`` line's flags, which
:class:`SftpState` remembers per (pid, path). The state also remembers the ``session
opened for local user U from [IP]`` line so transfers carry user and source address.
The parser functions take the state explicitly: they stay free of I/O and time.

Paths are kept as the client sent them (scp sends names relative to the home
directory); ``file.name`` is the last component.
"""

from __future__ import annotations

import re
from typing import Optional

from collectors.journald.common import fragment

DATASET = "sshd.sftp"
_SESSION = re.compile(r"^session (?P<what>opened|closed) for local user (?P<user>\S+) from \[(?P<ip>[^\]]*)\]")
_OPEN = re.compile(r'^open "(?P<path>.*)" flags (?P<flags>\S+) mode (?P<mode>[0-7]+)$', re.S)
_CLOSE = re.compile(r'^close "(?P<path>.*)" bytes read (?P<read>\d+) written (?P<written>\d+)$', re.S)
_NAMED = re.compile(r'^(?P<op>remove|mkdir|rmdir) name "(?P<path>.*?)"(?: mode (?P<mode>[0-7]+))?$', re.S)
_RENAME = re.compile(r'^(?P<op>rename|posix-rename) old "(?P<old>.*)" new "(?P<new>.*)"$', re.S)
_NAMED_ACTIONS = {
    "remove": ("file-deleted", ["deletion"], "file"),
    "mkdir": ("directory-created", ["creation"], "dir"),
    "rmdir": ("directory-deleted", ["deletion"], "dir"),
}
_WRITE_FLAGS = {"WRITE", "CREATE", "TRUNCATE", "APPEND"}
MAX_TRACKED = 4096


class SftpState:
    """Per sftp-server process: who it serves, and the flags of files it has open."""

    def __init__(self) -> None:
        self.sessions: dict = {}  # pid -> {"user": …, "ip": …}
        self.opens: dict = {}  # (pid, path) -> set of flags

    def _bound(self, table: dict) -> None:
        # A server killed before its "session closed" would leak entries forever.
        while len(table) > MAX_TRACKED:
            table.pop(next(iter(table)))


def _file(path: str) -> dict:
    name = path.rstrip("/").rsplit("/", 1)[-1]
    return {"path": path, "name": name} if name else {"path": path}


def _who(state: Optional[SftpState], pid) -> tuple:
    s = state.sessions.get(pid, {}) if state is not None else {}
    user = {"name": s["user"]} if s.get("user") else None
    source = {"ip": s["ip"]} if s.get("ip") else None
    return user, source


def _close(m: re.Match, state: Optional[SftpState], pid) -> dict:
    read, written = int(m["read"]), int(m["written"])
    flags = state.opens.pop((pid, m["path"]), None) if state is not None else None
    if written > 0:
        direction = "upload"
    elif read > 0:
        direction = "download"
    elif flags is not None:
        direction = "upload" if flags & _WRITE_FLAGS else "download"
    else:
        direction = ""
    transfer: dict = {"protocol": "sftp", "bytes": written if direction == "upload" else read}
    if direction:
        transfer["direction"] = direction
    if read and written:
        transfer["bytes_read"], transfer["bytes_written"] = read, written
    user, source = _who(state, pid)
    action = {"upload": "file-uploaded", "download": "file-downloaded"}.get(direction, "file-closed")
    ftype = ["creation"] if direction == "upload" else ["access"]
    return fragment(DATASET, action, category=["file"], type=ftype, outcome="success",
                    file=_file(m["path"]), transfer=transfer, user=user, source=source)


def parse(message: str, fields: Optional[dict] = None, state: Optional[SftpState] = None) -> Optional[dict]:
    pid = (fields or {}).get("_PID")
    m = _CLOSE.match(message)
    if m:
        return _close(m, state, pid)
    m = _OPEN.match(message)
    if m:
        flags = set(m["flags"].split(","))
        if state is not None:
            state.opens[(pid, m["path"])] = flags
            state._bound(state.opens)
        user, source = _who(state, pid)
        return fragment(DATASET, "file-opened", category=["file"], type=["access"], outcome="success",
                        file=_file(m["path"]), user=user, source=source,
                        sftp={"flags": sorted(flags), "mode": m["mode"]})
    m = _SESSION.match(message)
    if m:
        opened = m["what"] == "opened"
        if state is not None:
            if opened:
                state.sessions[pid] = {"user": m["user"], "ip": m["ip"]}
                state._bound(state.sessions)
            else:
                state.sessions.pop(pid, None)
                for key in [k for k in state.opens if k[0] == pid]:
                    del state.opens[key]
        return fragment(DATASET, "session-opened" if opened else "session-closed", category=["session"],
                        type=["start"] if opened else ["end"], outcome="success",
                        user={"name": m["user"]}, source={"ip": m["ip"]} if m["ip"] else None)
    m = _NAMED.match(message)
    if m:
        action, etype, ftype = _NAMED_ACTIONS[m["op"]]
        f = _file(m["path"])
        f["type"] = ftype
        user, source = _who(state, pid)
        return fragment(DATASET, action, category=["file"], type=etype, outcome="success", file=f,
                        user=user, source=source, sftp={"mode": m["mode"]} if m["mode"] else None)
    m = _RENAME.match(message)
    if m:
        user, source = _who(state, pid)
        return fragment(DATASET, "file-renamed", category=["file"], type=["change"], outcome="success",
                        file=_file(m["new"]), user=user, source=source, sftp={"old_path": m["old"]})
    return None
