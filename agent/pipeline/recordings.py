"""Terminal recordings (tlog.recording chunks) after the session join: order, gaps,
the per-session size cap, transfers never kept, and storage for playback.

- Order: tlog numbers a recording's chunks 1, 2, … (``tlog.id``). A chunk whose number
  is past the next expected one means chunks were lost (journald rate limiting, a
  vacuumed journal, a recorder killed mid-write); one below it arrived out of order or
  twice. Either is an agentd.gap event in the session, never a silent hole.
- Size: past ``recording_max_bytes`` of output in one session the chunks keep their
  order keys but lose their text (``process.io.max_bytes_per_process_exceeded``), and
  one gap event says from when output was cut. What is cut is neither spooled in full
  nor stored.
- Transfers: a session whose command is scp/rsync/sftp-server (no terminal) is a file
  transfer, not a terminal session: its chunks are shipped without text and never
  stored. (The sshd ForceCommand wrapper in packaging/tlog keeps tlog out of such
  sessions in the first place; this is the agent's own guard.)
- Tampering: tlog-rec-session is the recorded user's process when it is not installed
  setuid; live, a command executed in a recorded login whose recorder process is gone is
  a gap ("recorder ended while the login went on").
- Storage: each kept chunk goes to the session store (``recording`` table) on commit,
  so `agentd sessions play/export/report` work after the spool shipped and deleted the
  events; the store prunes itself by age and size (session_retention,
  recording_store_max_bytes).
"""

from __future__ import annotations

import os
import time
from typing import Optional

from agent.base.cache import BoundedCache
from agent.base.events import parse_rfc3339
from agent.base.gaps import gap_doc
from agent.pipeline.session_fields import get
from agent.pipeline.session_store import Chunk

DATASET = "tlog.recording"
TRANSFER_COMMANDS = frozenset({"scp", "rsync", "sftp-server", "internal-sftp"})
PRUNE_EVERY = 3600.0
MAX_TRACKED = 4096  # recordings and sessions followed at once (bounded state)


class RecordingStage:
    def __init__(self, host, store=None, live: bool = False, max_session_bytes: int = 8 << 20,
                 keep_seconds: float = 30 * 86400.0, store_max_bytes: int = 512 << 20, now=time.time):
        self.host = host
        self.store = store  # a SessionStore, or None (replay keeps nothing)
        self.live = live
        self.max_session_bytes = max_session_bytes
        self.keep_seconds = keep_seconds
        self.store_max_bytes = store_max_bytes
        self.now = now
        self.recs = BoundedCache(MAX_TRACKED)  # rec -> next expected chunk number
        self.sizes = BoundedCache(MAX_TRACKED)  # session id -> bytes kept
        self.cut = BoundedCache(MAX_TRACKED)  # session id -> True once the cap was hit
        self.transfers = BoundedCache(MAX_TRACKED)  # session id -> True
        self.recorders = BoundedCache(MAX_TRACKED)  # session id -> recorder pid (live tamper check)
        self.gone = BoundedCache(MAX_TRACKED)  # session id -> when its recorder was first seen gone
        self._pending: list = []
        self._pruned_at = 0.0

    # -- the stage -----------------------------------------------------------

    def apply(self, doc: dict) -> list:
        ev = doc.get("event") or {}
        sid = get(doc, "session", "id") or ""
        if ev.get("dataset") != DATASET:
            if ev.get("action") == "exec" and sid:
                return self._executed(doc, sid)
            return []
        tl = doc.get("tlog") or {}
        io = get(doc, "process", "io") or {}
        if sid in self.transfers or self._is_transfer(doc):
            self.transfers.put(sid, True)
            io["text"] = ""
            tl["dropped"] = "transfer session"
            return []
        out = self._order(doc, sid, tl)
        pid = get(doc, "process", "pid")
        if sid and pid:
            self.recorders.put(sid, int(pid))
        size = int(io.get("total_bytes_captured") or len(str(io.get("text", "")).encode("utf-8")))
        kept = self.sizes.get(sid) or 0
        if kept + size > self.max_session_bytes:
            io["text"] = ""
            io["max_bytes_per_process_exceeded"] = True
            io["total_bytes_skipped"] = size
            if not self.cut.get(sid):
                self.cut.put(sid, True)
                out.append(self._gap(doc, "recording-cut", (
                    f"terminal recording {tl.get('rec')} cut at {self.max_session_bytes} bytes "
                    f"(recording_max_bytes): output from chunk {tl.get('id')} on is not kept")))
            return out
        self.sizes.put(sid, kept + size)
        if self.store is not None and sid:  # a recording of no login (no audit session) is shipped only
            ts = parse_rfc3339(doc.get("@timestamp")) or self.now()
            self._pending.append(Chunk(sid, str(tl.get("rec", "")), int(tl.get("id") or 0), int(tl.get("pos") or 0),
                                       ts, str(tl.get("timing", "")), str(io.get("text", "")), size))
        return out

    def commit(self, force: bool = False) -> None:
        if self.store is None:
            return
        if self._pending:
            self.store.save_chunks(self._pending)
            self._pending = []
        now = self.now()
        if force or now - self._pruned_at > PRUNE_EVERY:
            self._pruned_at = now
            self.store.prune(now, self.keep_seconds, self.store_max_bytes)

    # -- pieces --------------------------------------------------------------

    @staticmethod
    def _is_transfer(doc: dict) -> bool:
        # A recorder without a terminal serves a command session; tlog then sees the
        # command's stdin/stdout, which for scp/sftp/rsync is the file itself.
        return not get(doc, "session", "tty") and not get(doc, "tlog", "term")

    def _order(self, doc: dict, sid: str, tl: dict) -> list:
        rec, n = str(tl.get("rec", "")), tl.get("id")
        if not isinstance(n, int):
            return []
        expected = self.recs.get(rec) or 1
        out = []
        if n > expected:
            out.append(self._gap(doc, "recording-chunks-missing", (
                f"terminal recording {rec}: chunks {expected}..{n - 1} missing"), count=n - expected))
        elif n < expected:
            out.append(self._gap(doc, "recording-out-of-order", (
                f"terminal recording {rec}: chunk {n} arrived after chunk {expected - 1}")))
        self.recs.put(rec, max(expected, n + 1))
        return out

    def _executed(self, doc: dict, sid: str) -> list:
        name = get(doc, "process", "name")
        if name in TRANSFER_COMMANDS and not get(doc, "session", "tty"):
            self.transfers.put(sid, True)
        pid = self.recorders.get(sid)
        if not (self.live and pid) or os.path.exists(f"/proc/{pid}"):
            return []
        # Gone. Audit events come seconds late, so a command that ran just before a
        # normal logout can be read after the recorder exited: only a command that
        # started after the agent first saw the recorder gone means the login went on.
        ts = parse_rfc3339(doc.get("@timestamp")) or 0.0
        seen_gone = self.gone.get(sid)
        if seen_gone is None:
            self.gone.put(sid, self.now())
            return []
        if ts <= seen_gone + 1.0:
            return []
        del self.recorders[sid]
        return [self._gap(doc, "recorder-ended", (
            f"terminal recorder (tlog-rec-session pid {pid}) ended while the login went on: "
            f"output from {get(doc, 'process', 'name') or 'this command'} on is not recorded"))]

    def _gap(self, doc: dict, reason: str, detail: str, count: Optional[int] = None) -> dict:
        return gap_doc(self.host, "tlog", reason, detail, count=count,
                       timestamp=parse_rfc3339(doc.get("@timestamp")), session=doc.get("session"))
