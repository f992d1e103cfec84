"""The journald collector: follow the journal for sshd, sudo, su and sftp-server.

Position is the journal cursor of the last entry turned into events (or skipped):
``{"cursor": "s=…;i=…;…"}``. On restart the reader seeks to it and steps over that one
entry, so nothing committed is read twice and nothing after it is missed. Waiting is
on the journal's own inotify descriptor (``Reader.wait``), never a sleep loop.
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
        self.stats = {"entries": 0, "events": 0, "skipped": 0, "gaps": 0}

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

    def _exists(self, cursor: str) -> bool:
        """Is the entry still in the journal at all (ignoring our matches)?"""
        probe = self._reader(self.conf["journal_dir"], matched=False)
        try:
            probe.seek_cursor(cursor)
            return bool(probe.get_next()) and probe.test_cursor(cursor)
        finally:
            probe.close()

    def _seek(self, reader, position: Optional[Position]) -> tuple:
        """Place the reader; returns (cursor now committed-equivalent, loss events)."""
        cursor = (position or {}).get("cursor")
        if cursor:
            try:
                reader.seek_cursor(cursor)
                if reader.get_next() and reader.test_cursor(cursor):
                    return cursor, []  # on the committed entry: the next read is the first new one
                if self._exists(cursor):
                    # The committed entry no longer matches (programs changed): read from it on.
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
        if self.conf["start_at"] == "beginning":
            reader.seek_head()
            return None, []
        reader.seek_tail()
        last = reader.get_previous()  # the newest matching entry: the next read is after it
        return (text(last.get("__CURSOR")) or None) if last else None, []

    def _entries(self, reader) -> Iterator[dict]:
        while True:
            entry = reader.get_next()
            if not entry:
                return
            yield entry

    def _batches(self, entries: Iterator[dict], norm: Normalizer, batch_max: int) -> Iterator[tuple]:
        """(events, cursor of the last entry consumed) per batch, until entries run out."""
        events: list = []
        cursor = None
        n = 0
        for entry in entries:
            n += 1
            self.stats["entries"] += 1
            cursor = text(entry.get("__CURSOR")) or cursor
            doc = norm.normalize(entry)
            if doc is None:
                self.stats["skipped"] += 1
            else:
                events.append(Event(doc, {"cursor": cursor}))
            if len(events) >= batch_max or n >= batch_max * SCAN_FACTOR:
                self.stats["events"] += len(events)
                yield events, cursor
                events, n = [], 0
        if events or cursor:
            self.stats["events"] += len(events)
            yield events, cursor

    # -- the loop ----------------------------------------------------------

    def run(self, emit: Emit, stop: threading.Event, position: Optional[Position] = None) -> None:
        reader = self._reader(self.conf["journal_dir"])
        try:
            cursor, lost = self._seek(reader, position)
            if lost or (cursor and cursor != (position or {}).get("cursor")):
                # Commit where a first run starts (and the loss) before anything else.
                emit(lost, {"cursor": cursor} if cursor else position)
            norm = self._normalizer()
            batch_max = int(self.context.agent.get("batch_max_events", 500))
            reader.fileno()  # sets up inotify now, so nothing appended from here on is missed
            while not stop.is_set():
                got = False
                for events, cur in self._batches(self._entries(reader), norm, batch_max):
                    got = True
                    emit(events, {"cursor": cur})
                    if stop.is_set():
                        return
                if not got:
                    # wait() runs sd_journal_process: rotation and vacuuming (INVALIDATE)
                    # are handled by the library; entries in new files are just read on.
                    reader.wait(WAIT_SECONDS)
        finally:
            reader.close()

    def replay(self, source: str, emit: Emit) -> None:
        """A journal directory, a .journal file, or `journalctl -o json` lines (.json/.jsonl)."""
        norm = self._normalizer()
        batch_max = int(self.context.agent.get("batch_max_events", 500))
        if source.endswith((".json", ".jsonl")):
            for events, cur in self._batches(_json_entries(source), norm, batch_max):
                emit(events, {"cursor": cur})
            return
        if os.path.isdir(source):
            reader = self._reader(path=source)
        elif os.path.exists(source):
            reader = self._reader(files=[source])
        else:
            raise FileNotFoundError(2, "No such file or directory", source)
        try:
            reader.seek_head()
            for events, cur in self._batches(self._entries(reader), norm, batch_max):
                emit(events, {"cursor": cur})
        finally:
            reader.close()


def _json_entries(path: str) -> Iterator[dict]:
    from agent.base.events import loads

    with open(path, "rb") as f:
        for line in f:
            line = line.strip()
            if line:
                yield loads(line)
