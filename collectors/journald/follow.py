"""The live reader over the files it needs (files.py), reopened when they change.

``sd_journal_open_files`` reads a fixed list of files: it never adds a new one, and when
journald rotates ``system.journal`` (renames it ``system@….journal``, then creates a new
one) it drops the renamed file and ``process`` reports INVALIDATE. So the collector
reopens this reader on INVALIDATE, and whenever the set of active files (name, inode)
differs from the one taken when it was opened: a rotation, or a user's first entry into
a new ``user-UID.journal``.

The one thing a fixed file list could get wrong is order: journald may write entry N into
a file this reader lacks (just created) and N+1 into one it has. N+1 is then read before
N is visible. The file holding N was created before N+1 was written, so a check of the
active set made after reading N+1 sees it: the collector checks before emitting every
batch, and on a change drops the batch and reads again from its committed cursor over
the new set of files.

The floor: every entry before it has been read. It starts at the committed cursor; after
the reader has been read to its end, it moves to the newest entry the active files'
headers showed before that reading began (``files.newest_mark``). Reopening selects the
files with entries at or after the floor: the active files, and the archived ones only
while they can still hold unread entries (after a rotation, the file just archived).
"""

from __future__ import annotations

import os
import time
from typing import Callable, List, Optional

from collectors.journald import files as jfiles
from collectors.journald.files import Mark

# Every entry read leaves its pages mapped until the reader is closed (~0.3 KB an entry
# here): after this many, the reader is reopened at its place once it reaches the end.
REOPEN_ENTRIES = 5000
MARK_INTERVAL = 1.0  # seconds between reads of the active files' headers while archived files are open
CHECK_INTERVAL = 0.5  # seconds between checks of the active set while only waiting


class Follower:
    """``make_reader(files or None)`` builds a matched Reader over those files (None: the
    whole journal ``journal_dir`` names, as ``sd_journal_open`` would)."""

    def __init__(self, make_reader: Callable, journal_dir: str = ""):
        self._make_reader = make_reader
        self._journal_dir = journal_dir
        self.reader = None
        self.files: Optional[List[str]] = None  # None: the whole journal (no journal file found)
        self.floor: Optional[Mark] = None
        self._pending: Optional[Mark] = None
        self._snapshot: frozenset = frozenset()
        self._checked = self._marked = 0.0
        self.entries = 0  # read since the reader was opened

    # -- opening -------------------------------------------------------------

    def open(self, floor: Optional[Mark]) -> None:
        """A reader over the files holding entries at or after ``floor`` (None: every file)."""
        self.close()
        self.entries = 0
        dirs = jfiles.journal_dirs(self._journal_dir)
        active = jfiles.active_files(dirs)
        # Read before the snapshot and the file list: every entry below this mark is
        # then in a file the reader opens, or in one the snapshot check will notice.
        self._pending = jfiles.newest_mark(active)
        self._marked = time.monotonic()
        self._snapshot = jfiles.active_set(dirs)
        self._checked = self._marked
        self.floor = floor
        selected = jfiles.select(dirs, floor)
        for attempt in range(3):
            try:
                self.reader = self._make_reader(selected or None)
                break
            except OSError:
                # A file vacuumed between the listing and the open: list again.
                if attempt == 2:
                    raise
                selected = jfiles.select(dirs, floor)
        self.files = selected or None
        self.reader.fileno()  # inotify set up now: nothing appended from here on is missed

    def active_files(self) -> List[str]:
        """The active files as they are now (opening them alone costs a few MB)."""
        return jfiles.active_files(jfiles.journal_dirs(self._journal_dir))

    def resume(self, cursor: Optional[str]) -> None:
        """Reopen and place the reader right after ``cursor``'s entry, which the new file
        list may no longer hold (its file archived and read to its end): then the reader
        stands before the first entry after it."""
        self.open(self.floor)
        if not cursor:
            self.reader.seek_head()
            return
        self.reader.seek_cursor(cursor)
        entry = self.reader.get_next()
        if not (entry and self.reader.test_cursor(cursor)):
            self.reader.seek_cursor(cursor)

    def close(self) -> None:
        if self.reader is not None:
            self.reader.close()
            self.reader = None

    # -- while reading -------------------------------------------------------

    def changed(self) -> bool:
        """Has the set of active files changed since the reader was opened?"""
        self._checked = time.monotonic()
        return jfiles.active_set(jfiles.journal_dirs(self._journal_dir)) != self._snapshot

    def due_check(self) -> bool:
        return time.monotonic() - self._checked >= CHECK_INTERVAL

    def before_drain(self) -> None:
        """While the reader holds archived files, note a newer mark now and then, so that
        once read to the end the reader can let them go."""
        if self._pending is not None or not self._holds_archived():
            return
        now = time.monotonic()
        if now - self._marked >= MARK_INTERVAL:
            self._marked = now
            mark = jfiles.newest_mark(self._active_files())
            # Entries below the mark sit in files that existed when it was read; if the
            # active set is still the reader's, those are all in the reader.
            if not self.changed():
                self._pending = mark

    def drained(self) -> bool:
        """The reader was read to its end: the floor moves up. True if the caller should
        resume (reopen at its place) to unmap what it no longer needs: an archived file
        read to its end, or the pages of many entries read."""
        if self.entries >= REOPEN_ENTRIES:
            return True
        if self._pending is None:
            return False
        self.floor, self._pending = self._pending, None
        return any(not jfiles.needed(p, self.floor) for p in self._archived_files())

    def _active_files(self) -> List[str]:
        return [p for p, _ in self._snapshot]

    def _archived_files(self) -> List[str]:
        return [p for p in (self.files or ()) if not jfiles.is_active(os.path.basename(p))]

    def _holds_archived(self) -> bool:
        return self.files is None or bool(self._archived_files())
