"""Follow auditd's log across rotations and truncations, line by complete line.

Positions are (dev, ino, offset) of the *start of a line*: resuming there never
splits a record. Identity is by (dev, ino), not by name, because auditd rotates by
renaming: audit.log becomes audit.log.1 (and .1 becomes .2 …) and a new audit.log
is created. So a checkpoint taken before a rotation, even several rotations while
the agent was stopped, is found again among audit.log.N and read to its end before
the newer files are read from their start.

Known limits, reported rather than hidden: if the checkpointed file has been
rotated out of existence (more rotations while down than num_logs keeps), or the
file was truncated below the checkpoint, the follower records a ``Loss`` and starts
at the beginning of what exists.
"""

from __future__ import annotations

import errno
import os
import select
from typing import Iterator, Optional

CHUNK = 256 * 1024


class Loss:
    """Evidence that some of the log could not be read (for an agentd.gap event)."""

    __slots__ = ("reason", "detail")

    def __init__(self, reason: str, detail: str):
        self.reason = reason
        self.detail = detail

    def __repr__(self) -> str:
        return f"Loss({self.reason}: {self.detail})"


def _ident(st: os.stat_result) -> tuple:
    return (st.st_dev, st.st_ino)


def _rotated_names(path: str, limit: int = 99) -> list:
    """audit.log.1, audit.log.2, … that exist, newest first."""
    out = []
    for i in range(1, limit + 1):
        p = f"{path}.{i}"
        if not os.path.exists(p):
            break
        out.append(p)
    return out


class LogFollower:
    """Reads complete lines from a log file and the files it is rotated to.

    ``follow=False`` reads what exists and stops at the end (replay); the caller
    then still gets a final partial line if the file does not end in a newline.
    """

    def __init__(self, path: str, position: Optional[dict] = None, start_at: str = "end",
                 follow: bool = True, max_line: int = 1 << 20):
        self.path = path
        self.follow = follow
        self.max_line = max_line
        self.losses: list = []
        self._fd = -1
        self._ident: tuple = (0, 0)
        self._offset = 0  # offset in the current file of the first byte not yet returned as a line
        self._buf = b""
        self._backlog: list = []  # rotated files still to read after the current one, oldest first
        self._open_start(position, start_at)

    # -- opening -----------------------------------------------------------

    def _open_file(self, path: str, offset: int) -> bool:
        try:
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        except OSError as e:
            if e.errno in (errno.ENOENT, errno.EACCES):
                return False
            raise
        self._close()
        self._fd = fd
        self._ident = _ident(os.fstat(fd))
        self._offset = offset
        self._buf = b""
        os.lseek(fd, offset, os.SEEK_SET)
        return True

    def _open_start(self, position: Optional[dict], start_at: str) -> None:
        if position:
            if self._resume(position):
                return
        elif start_at == "beginning":
            self._open_file(self.path, 0)
            return
        if self._open_file(self.path, 0) and start_at == "end" and not position:
            self._seek_to_last_line_end()

    def _seek_to_last_line_end(self) -> None:
        size = os.fstat(self._fd).st_size
        start = max(0, size - 65536)
        os.lseek(self._fd, start, os.SEEK_SET)
        tail = os.read(self._fd, size - start)
        cut = tail.rfind(b"\n")
        self._offset = start + cut + 1 if cut >= 0 else start
        os.lseek(self._fd, self._offset, os.SEEK_SET)

    def _resume(self, pos: dict) -> bool:
        want = (pos.get("dev"), pos.get("ino"))
        offset = int(pos.get("offset", 0))
        candidates = [self.path] + _rotated_names(self.path)
        for i, p in enumerate(candidates):
            try:
                st = os.stat(p)
            except OSError:
                continue
            if _ident(st) != want:
                continue
            if st.st_size < offset:
                self.losses.append(Loss("truncated", f"{p} is {st.st_size} bytes, below checkpoint {offset}"))
                offset = 0
            # Files newer than the checkpointed one, read after it, oldest first.
            self._backlog = list(reversed(candidates[:i]))
            return self._open_file(p, offset)
        self.losses.append(Loss("rotated-away", f"checkpointed file {want} of {self.path} no longer exists"))
        rotated = _rotated_names(self.path)
        if rotated:
            # Start at the oldest file that still exists: better duplicates than a hole.
            self._backlog = list(reversed([self.path] + rotated[:-1]))
            return self._open_file(rotated[-1], 0)
        return self._open_file(self.path, 0)

    def _close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    def close(self) -> None:
        self._close()

    # -- position ----------------------------------------------------------

    def position(self, pending_offset: Optional[int] = None) -> dict:
        """The safe resume point; ``pending_offset`` is the earliest line still held by the caller."""
        off = self._offset if pending_offset is None else min(pending_offset, self._offset)
        return {"dev": self._ident[0], "ino": self._ident[1], "offset": off, "path": self.path}

    # -- reading -----------------------------------------------------------

    def lines(self, max_bytes: int = 4 * CHUNK) -> Iterator[tuple]:
        """Yield (line_without_newline, start_offset) for what is readable now.

        Returns at the end of available data or after ``max_bytes``. The caller
        may abandon the generator at any point: the next call re-reads from the
        first line not yet yielded. A switch to the next file happens only once
        the current one is fully read.
        """
        if self._fd < 0 and not self._open_file(self.path, 0):
            return
        self._buf = b""
        os.lseek(self._fd, self._offset, os.SEEK_SET)
        read = 0
        while read < max_bytes:
            data = os.read(self._fd, CHUNK)
            if data:
                read += len(data)
                yield from self._split(data)
                continue
            # End of this file for now: has it been rotated, replaced or truncated?
            nxt = self._next_file()
            if nxt is None:
                return
            if self._buf:
                # A file that ends without a newline when we leave it will never
                # get one: hand the fragment out so it is accounted for.
                frag, off = self._buf, self._offset
                self._offset += len(frag)
                self._buf = b""
                yield frag, off
            path, offset = nxt
            if not self._open_file(path, offset):
                return

    def _split(self, data: bytes) -> Iterator[tuple]:
        buf = self._buf + data if self._buf else data
        self._buf = b""
        # One split in C, not a find per line; the offset still moves line by line, so
        # a caller that stops early resumes at the first line it did not get.
        lines = buf.split(b"\n")
        rest = lines.pop()
        off = self._offset
        for line in lines:
            nxt = off + len(line) + 1
            self._offset = nxt
            yield line, off
            off = nxt
        if len(rest) > self.max_line:
            # Longer than any audit record can be: hand it out (the caller
            # dead-letters it) instead of buffering without bound.
            self._offset = off + len(rest)
            yield rest, off
            rest = b""
        self._buf = rest

    def _next_file(self) -> Optional[tuple]:
        """At EOF: (path, offset) of what to read next, or None to wait."""
        if self._backlog:
            return self._backlog.pop(0), 0
        try:
            st = os.stat(self.path)
        except OSError:
            return None  # between rename and create: the next wake-up finds the new file
        if _ident(st) != self._ident:
            # Rotated (renamed away) or replaced. auditd closes the old file before
            # renaming it, so what we have read of it is all there is.
            return (self.path, 0) if self.follow else None
        size = os.fstat(self._fd).st_size
        if size < self._offset:
            self.losses.append(Loss("truncated", f"{self.path} shrank to {size} bytes at offset {self._offset}"))
            return self.path, 0
        return None

    def final_fragment(self) -> Optional[tuple]:
        """For replay: the unterminated last line of the last file, if any."""
        if self._buf:
            frag = (self._buf, self._offset)
            self._offset += len(self._buf)
            self._buf = b""
            return frag
        return None


class Waiter:
    """Blocks until the log's directory changes (inotify), or a timeout passes.

    The directory is watched rather than the file so one watch sees appends,
    the rename of a rotation and the creation of the new file. Events are only
    wake-ups: the follower re-checks everything itself, so an inotify queue
    overflow costs nothing but a poll.
    """

    def __init__(self, path: str):
        import pyinotify

        self._pyinotify = pyinotify
        self._wm = pyinotify.WatchManager()
        mask = (pyinotify.IN_MODIFY | pyinotify.IN_CREATE | pyinotify.IN_MOVED_FROM
                | pyinotify.IN_MOVED_TO | pyinotify.IN_DELETE | pyinotify.IN_CLOSE_WRITE)
        self._wm.add_watch(os.path.dirname(path) or ".", mask, quiet=True)
        self._fd = self._wm.get_fd()

    def wait(self, timeout: float) -> None:
        r, _, _ = select.select([self._fd], [], [], timeout)
        if r:
            try:
                os.read(self._fd, 65536)  # drain; content does not matter
            except BlockingIOError:
                pass

    def close(self) -> None:
        self._wm.close()
