"""Which journal files the live reader opens: the active ones, plus the archived ones that
may still hold entries it has not read.

Why: ``sd_journal`` maps every file it opens, and with the collector's matches each file's
hash table and entry arrays are paged in (one lookup per match per file). A reader over a
whole day's journal (99 files, 635 MB here) kept ~90 MB of journal pages mapped, all of
it counted in the agent's RSS; over the active files alone, ~6 MB. Entries are only ever
appended to the active files (``system.journal``, ``user-UID.journal``); an archived file
(``name@….journal``, or ``….journal~`` after an unclean shutdown) never gains one, so a
reader that has read past an archived file's last entry never needs it again.

An archived file's last entry is in its header (the on-disk format,
https://systemd.io/JOURNAL_FILE_FORMAT/): ``tail_entry_seqnum`` in the sequence-number
space ``seqnum_id``, ``tail_entry_monotonic`` in the boot of the last writer
(``boot_id``), and ``tail_entry_realtime``. Reading those 208 bytes is a plain ``read``,
not a mapping. Files are compared the way ``sd_journal`` orders entries: by sequence
number within one space; else by monotonic time within one boot (each user journal has
a sequence-number space of its own, the system journal another); else by wall time.
"""

from __future__ import annotations

import functools
import os
import re
import struct
from typing import Iterable, List, NamedTuple, Optional

# Offsets in the journal file header (struct Header, systemd's journal-def.h).
_SIGNATURE = b"LPKSHHRH"
_HEADER_LEN = 208
_BOOT_ID = slice(56, 72)
_SEQNUM_ID = slice(72, 88)
_COUNTS = struct.Struct("<QQ")  # n_entries, tail_entry_seqnum at 152
_TIMES = struct.Struct("<QQ")  # tail_entry_realtime (µs since the epoch), tail_entry_monotonic at 192
# Files of another boot are ordered by wall time: kept if their newest entry is no more
# than this older than the floor, so a clock step does not hide them.
OTHER_BOOT_SLACK_US = 3600 * 1_000_000
_ID128 = re.compile(r"^[0-9a-f]{32}$")


class Mark(NamedTuple):
    """A point in the journal: every entry before it has been read (the floor)."""

    seqnum_id: str
    seqnum: int
    boot_id: str
    monotonic: int
    realtime: int


class Header(NamedTuple):
    n_entries: int
    tail: Mark  # the file's newest entry


def mark_of_cursor(cursor: Optional[str]) -> Optional[Mark]:
    """The cursor's own place (s=, i=, b=, m=, t=), or None for a cursor without them."""
    parts = dict(p.split("=", 1) for p in (cursor or "").split(";") if "=" in p)
    try:
        return Mark(parts["s"], int(parts["i"], 16), parts["b"], int(parts["m"], 16), int(parts["t"], 16))
    except (KeyError, ValueError):
        return None


def read_header(path: str) -> Optional[Header]:
    """The header's tail fields, or None if the file cannot be read as a journal file."""
    try:
        with open(path, "rb") as f:
            raw = f.read(_HEADER_LEN)
    except OSError:
        return None
    if len(raw) < _HEADER_LEN or not raw.startswith(_SIGNATURE):
        return None
    n_entries, seqnum = _COUNTS.unpack_from(raw, 152)
    realtime, monotonic = _TIMES.unpack_from(raw, 192)
    return Header(n_entries, Mark(raw[_SEQNUM_ID].hex(), seqnum, raw[_BOOT_ID].hex(), monotonic, realtime))


def journal_dirs(journal_dir: str = "") -> List[str]:
    """The directories the reader covers, as ``sd_journal_open`` picks them: the given
    directory and its machine-id subdirectories; by default /run/log/journal's and this
    machine's /var/log/journal/MACHINE-ID (LOCAL_ONLY; no namespaces, no remote)."""
    if journal_dir:
        roots = [(journal_dir, None)]
    else:
        roots = [("/run/log/journal", None), ("/var/log/journal", _machine_id())]
    out = []
    for root, only in roots:
        if not os.path.isdir(root):
            continue
        out.append(root)
        try:
            with os.scandir(root) as it:
                subs = sorted(e.name for e in it if _ID128.match(e.name) and e.is_dir())
        except OSError:
            continue
        out.extend(os.path.join(root, s) for s in subs if only is None or s == only)
    return out


@functools.lru_cache(maxsize=1)
def _machine_id() -> Optional[str]:
    try:
        with open("/etc/machine-id") as f:
            return f.read().strip() or None
    except OSError:
        return None


def is_active(name: str) -> bool:
    """journald writes only to ``system.journal`` and ``user-UID.journal``; archiving
    renames a file to ``…@….journal`` (``….journal~`` if it was not closed cleanly)."""
    return name.endswith(".journal") and "@" not in name


def journal_files(dirs: Iterable[str]) -> List[str]:
    out = []
    for d in dirs:
        try:
            with os.scandir(d) as it:
                out.extend(e.path for e in it if e.name.endswith((".journal", ".journal~")))
        except OSError:
            continue
    return sorted(out)


def active_files(dirs: Iterable[str]) -> List[str]:
    """The active files (journald appends to them) in these directories."""
    return [p for p in journal_files(dirs) if is_active(os.path.basename(p))]


def active_set(dirs: Iterable[str]) -> frozenset:
    """(path, inode) of every active file: a rotation (same name, new inode) or a new
    user's journal changes it."""
    out = set()
    for d in dirs:
        try:
            with os.scandir(d) as it:
                out.update((e.path, e.inode()) for e in it if is_active(e.name))
        except OSError:
            continue
    return frozenset(out)


def newest_mark(paths: Iterable[str]) -> Optional[Mark]:
    """The newest tail among these files' headers (the active files': the journal's
    newest entry as of now). Every entry with a lower sequence number was completely
    written before it (journald writes one entry at a time), so a reader that reads to
    its end after this call has read them all."""
    best: Optional[Mark] = None
    for p in paths:
        h = read_header(p)
        if h and h.n_entries and (best is None or h.tail.realtime > best.realtime):
            best = h.tail
    return best


def needed(path: str, floor: Optional[Mark]) -> bool:
    """Must a reader whose unread entries all lie at or after ``floor`` open this file?"""
    if floor is None or is_active(os.path.basename(path)):
        return True
    h = read_header(path)
    if h is None:
        return True  # not understood: open it rather than risk missing its entries
    if not h.n_entries:
        return False
    return after(h.tail, floor)


def after(tail: Mark, floor: Mark) -> bool:
    """Is ``tail`` at or after ``floor`` in the journal's order?"""
    if tail.seqnum_id == floor.seqnum_id:
        return tail.seqnum >= floor.seqnum
    if tail.boot_id == floor.boot_id:
        return tail.monotonic >= floor.monotonic
    return tail.realtime + OTHER_BOOT_SLACK_US >= floor.realtime


def select(dirs: Iterable[str], floor: Optional[Mark]) -> List[str]:
    """The files holding an entry at or after ``floor`` (every file for None), and every
    active file."""
    return [p for p in journal_files(dirs) if needed(p, floor)]
