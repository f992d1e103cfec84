"""The journald collector: follow the journal for sshd, sudo, su and sftp-server.

Position is the journal cursor of the last entry turned into events (or skipped):
``{"cursor": "s=…;i=…;…"}``. On restart the reader seeks to it and steps over that one
entry, so nothing committed is read twice and nothing after it is missed. Waiting is
on the journal's own inotify descriptor (``Reader.wait``), never a sleep loop.

The reader opens only the journal files that can hold entries it has not read: the
active ones and, while needed, archived ones (follow.py, files.py); the whole journal's
files mapped with the matches cost ~90 MB of RSS on a busy host.
"""

from __future__ import annotations

import logging
import os
import threading
from typing import Iterator, Optional

from systemd import journal  # a missing python3-systemd is a config error on [journald] sections

from agent.base.events import Event, Position
from agent.base.gaps import gap_doc
from agent.base.options import Option
from collectors.base import Collector, Emit
from collectors.journald.files import mark_of_cursor
from collectors.journald.follow import Follower
from collectors.journald.normalize import Normalizer, text

log = logging.getLogger("agentd.journald")

WAIT_SECONDS = 0.5  # how long one wait may block before `stop` is looked at again
SCAN_FACTOR = 20  # entries read per batch at most, as a multiple of batch_max_events (skips are cheap)


def _raw(value):
    # The Reader's default converters turn ids into UUID objects and times into
    # datetimes; the ids must stay the exact text journald stores so event ids match
    # across the Reader, journalctl -o json and replays.
    if isinstance(value, (bytes, bytearray)):
        return bytes(value).decode("utf-8")  # ValueError -> the Reader keeps the bytes
    return value


RAW_CONVERTERS = {name: _raw for name in journal.DEFAULT_CONVERTERS}


def _check_dir(value: str) -> None:
    if value and not os.path.isabs(value):
        raise ValueError(f"{value!r} is not an absolute path; leave it empty for the system journal")


class JournaldCollector(Collector):
    type_name = "journald"
    description = "follow the systemd journal: sshd logins, sudo, su, sftp transfers and tlog recordings"
    options = {
        "journal_dir": Option("str", "", "journal directory to read; empty means the local system journal",
                              check=_check_dir),
        "programs": Option("list", "sshd, sshd-session, sudo, su, sftp-server, tlog-rec-session",
                           "programs to read, matched by SYSLOG_IDENTIFIER or _COMM (not unit names)"),
        "start_at": Option("choice", "end", "where to start when there is no checkpoint: end or beginning",
                           choices=("end", "beginning")),
    }

    def __init__(self, name: str, conf: dict, context=None):
        super().__init__(name, conf, context)
        self.stats = {"entries": 0, "events": 0, "skipped": 0, "gaps": 0, "reopens": 0}

    @classmethod
    def validate_conf(cls, conf: dict) -> list:
        if not conf.get("programs"):
            return [("programs", "empty list; name at least one program, e.g. sshd")]
        return []

    # -- pieces ------------------------------------------------------------

    def _normalizer(self) -> Normalizer:
        return Normalizer(self.context.host, self.conf["programs"],
                          keep_original=bool(self.context.agent.get("keep_original", False)))

    def _reader(self, path: str = "", files: Optional[list] = None, matched: bool = True):
        if files:
            reader = journal.Reader(files=files, converters=RAW_CONVERTERS)
        elif path:
            reader = journal.Reader(path=path, converters=RAW_CONVERTERS)
        else:
            reader = journal.Reader(converters=RAW_CONVERTERS)
        if matched:
            # OR over both fields: a process that logs and exits at once has no _COMM
            # (journald reads it from /proc too late), while a program whose syslog
            # identifier differs from its name still has one.
            for p in self.conf["programs"]:
                reader.add_match(f"SYSLOG_IDENTIFIER={p}")
            reader.add_disjunction()
            for p in self.conf["programs"]:
                reader.add_match(f"_COMM={p}")
        return reader

    def _exists(self, cursor: str, files: Optional[list]) -> bool:
        """Is the entry still in the journal at all (ignoring our matches)?"""
        try:
            probe = self._reader(self.conf["journal_dir"], files=files, matched=False)
        except OSError:  # one of the files rotated or vacuumed away since: ask the whole journal
            probe = self._reader(self.conf["journal_dir"], matched=False)
        try:
            probe.seek_cursor(cursor)
            return bool(probe.get_next()) and probe.test_cursor(cursor)
        finally:
            probe.close()

    def _tail_cursor(self, follow: Follower) -> Optional[str]:
        """The newest entry's cursor, whatever its program: where a first run with
        start_at = end starts (it then reads what follows it). The active files hold it;
        just after a rotation they may hold nothing yet, then the whole journal is asked."""
        for attempt in range(3):
            # listed at each attempt: a retry after a rotation lists the new files
            files = follow.active_files() if attempt < 2 else None
            if files == []:
                continue
            try:
                probe = self._reader(self.conf["journal_dir"], files=files, matched=False)
            except OSError:  # a file renamed (rotated) since it was listed: list again
                continue
            try:
                probe.seek_tail()
                last = probe.get_previous()
            finally:
                probe.close()
            if last:
                return text(last.get("__CURSOR")) or None
        return None

    def _seek(self, follow: Follower, cursor: Optional[str]) -> tuple:
        """Place the reader; returns (cursor now committed-equivalent, loss events)."""
        reader = follow.reader
        if cursor:
            try:
                reader.seek_cursor(cursor)
                if reader.get_next() and reader.test_cursor(cursor):
                    return cursor, []  # on the committed entry: the next read is the first new one
                if self._exists(cursor, follow.files):
                    # The committed entry does not match (programs changed, or a first
                    # run's start at the newest entry): read from it on.
                    reader.seek_cursor(cursor)
                    return cursor, []
            except (OSError, ValueError) as e:  # a cursor journald cannot even parse
                log.error("journald: committed cursor %r is unusable: %s", cursor, e)
            reader.seek_head()
            head = reader.get_next()
            reader.seek_head()
            first = text(head.get("__CURSOR")) if head else "nothing"
            detail = (f"committed journal entry {cursor} is no longer in the journal (vacuumed or rotated "
                      f"away); resuming at the oldest entry ({first})")
            log.error("journald: %s", detail)
            self.stats["gaps"] += 1
            return None, [Event(gap_doc(self.context.host, "journald", "cursor-not-found", detail))]
        reader.seek_head()  # start_at = beginning, or a journal that was empty at start
        return None, []

    def _entries(self, reader) -> Iterator[dict]:
        while True:
            entry = reader.get_next()
            if not entry:
                return
            yield entry

    def _batches(self, entries: Iterator[dict], norm: Normalizer, batch_max: int) -> Iterator[tuple]:
        """(events, cursor of the last entry consumed, entries consumed) per batch, until
        entries run out. The caller counts what it emits (a dropped batch is read again)."""
        events: list = []
        cursor = None
        n = 0
        for entry in entries:
            n += 1
            cursor = text(entry.get("__CURSOR")) or cursor
            doc = norm.normalize(entry)
            if doc is not None:
                events.append(Event(doc, {"cursor": cursor}))
            if len(events) >= batch_max or n >= batch_max * SCAN_FACTOR:
                yield events, cursor, n
                events, n = [], 0
        if events or n:
            yield events, cursor, n

    def _emit(self, emit: Emit, events: list, cursor: str, n: int) -> None:
        emit(events, {"cursor": cursor})
        self.stats["entries"] += n
        self.stats["events"] += len(events)
        self.stats["skipped"] += n - len(events)

    # -- the loop ----------------------------------------------------------

    def run(self, emit: Emit, stop: threading.Event, position: Optional[Position] = None) -> None:
        follow = Follower(lambda files: self._reader(self.conf["journal_dir"], files=files),
                          self.conf["journal_dir"])
        committed = (position or {}).get("cursor")
        cursor = committed
        if not cursor and self.conf["start_at"] == "end":
            cursor = self._tail_cursor(follow)
        try:
            follow.open(mark_of_cursor(cursor) if cursor else None)
            cursor, lost = self._seek(follow, cursor)
            if lost or (cursor and cursor != committed):
                # Commit where a first run starts (and the loss) before anything else.
                emit(lost, {"cursor": cursor} if cursor else position)
            norm = self._normalizer()
            batch_max = int(self.context.agent.get("batch_max_events", 500))
            while not stop.is_set():
                follow.before_drain()
                got = dropped = False
                for events, cur, n in self._batches(self._entries(follow.reader), norm, batch_max):
                    got = True
                    follow.entries += n
                    if follow.changed():
                        # Rotated, or a new user journal: what was just read may have
                        # overtaken an entry in a file this reader lacks (follow.py).
                        self._resume(follow, cursor)
                        dropped = True
                        break
                    self._emit(emit, events, cur, n)
                    cursor = cur
                    if stop.is_set():
                        return
                if dropped:
                    continue
                if follow.drained():
                    self._resume(follow, cursor)  # unmap archived files read to their end
                    continue
                if not got:
                    change = follow.reader.wait(WAIT_SECONDS)
                    if change == journal.INVALIDATE or (follow.due_check() and follow.changed()):
                        # A file of the reader was archived or deleted, or new files
                        # appear: entries may now be in files it does not have.
                        self._resume(follow, cursor)
        finally:
            follow.close()

    def _resume(self, follow: Follower, cursor: Optional[str]) -> None:
        follow.resume(cursor)
        self.stats["reopens"] += 1

    def replay(self, source: str, emit: Emit) -> None:
        """A journal directory, a .journal file, or `journalctl -o json` lines (.json/.jsonl)."""
        norm = self._normalizer()
        batch_max = int(self.context.agent.get("batch_max_events", 500))
        if source.endswith((".json", ".jsonl")):
            for events, cur, n in self._batches(_json_entries(source), norm, batch_max):
                self._emit(emit, events, cur, n)
            return
        if os.path.isdir(source):
            reader = self._reader(path=source)
        elif os.path.exists(source):
            reader = self._reader(files=[source])
        else:
            raise FileNotFoundError(2, "No such file or directory", source)
        try:
            reader.seek_head()
            for events, cur, n in self._batches(self._entries(reader), norm, batch_max):
                self._emit(emit, events, cur, n)
        finally:
            reader.close()


def _json_entries(path: str) -> Iterator[dict]:
    from agent.base.events import loads

    with open(path, "rb") as f:
        for line in f:
            line = line.strip()
            if line:
                yield loads(line)
