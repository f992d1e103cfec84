"""Login sessions on disk, behind one small interface: ``SessionStore`` for the
session join that writes them (in the spool database, so they commit with the
events), ``SessionReader`` for the commands that read them (`agentd sessions`).

Three kinds of data, in tables whose layout is unchanged since the first release:

- the join's working state (open logins, sshd facts not yet matched): one blob in the
  spool's key/value table, under ``sessions.v1``;
- one summary per session (``session_history``): who, from where, with which key,
  counters, gaps; rewritten whenever it changes;
- the timeline (``timeline``): rows of any kind, each (session id, time, kind, text):
  logins and logouts, commands, keystroke lines, connects, transfers, alerts, gaps.
  A stage with something to show in a session adds rows of its own kind; ``sessions
  show`` prints them in time order.

- terminal recordings (``recording``): tlog's chunks of a session, in order, with
  their timing, written by the recordings stage (agent/pipeline/recordings.py).

Retention (``prune``): sessions that ended more than ``session_retention`` ago lose
their summary, timeline and recording; past ``recording_store_max_bytes`` of recorded
text the oldest sessions lose their recording first (their summary and timeline stay).
"""

from __future__ import annotations

import os
import sqlite3
from typing import Iterable, List, NamedTuple, Optional

from agent.base.events import dumps, loads

STATE_KEY = "sessions.v1"

SCHEMA = (
    "CREATE TABLE IF NOT EXISTS session_history (id TEXT PRIMARY KEY, user TEXT, start REAL, end REAL,"
    " summary BLOB NOT NULL)",
    "CREATE TABLE IF NOT EXISTS timeline (session_id TEXT NOT NULL, ts REAL NOT NULL, kind TEXT NOT NULL,"
    " text TEXT NOT NULL)",
    "CREATE INDEX IF NOT EXISTS timeline_session ON timeline (session_id, ts)",
    "CREATE TABLE IF NOT EXISTS recording (session_id TEXT NOT NULL, rec TEXT NOT NULL, chunk INTEGER NOT NULL,"
    " pos INTEGER NOT NULL, ts REAL NOT NULL, timing TEXT NOT NULL, text TEXT NOT NULL, bytes INTEGER NOT NULL)",
    "CREATE INDEX IF NOT EXISTS recording_session ON recording (session_id, rec, chunk)",
)

# By time. Rows are stored as they arrive, and audit stamps are millisecond-coarse:
# the login's row is written when sshd's journal line (which says how the login
# authenticated) arrives, after audit records of the same millisecond. So among rows
# of the same time the login comes first and the logout last, the rest as they came.
TIMELINE_ORDER = "ts, CASE kind WHEN 'session-started' THEN 0 WHEN 'session-ended' THEN 2 ELSE 1 END, rowid"


class TimelineRow(NamedTuple):
    session_id: str
    ts: float
    kind: str  # the event's action (exec, typed, connected-to, events-lost, …)
    text: str


class Chunk(NamedTuple):
    session_id: str
    rec: str  # tlog's recording id
    chunk: int  # tlog's TLOG_ID: 1, 2, … per recording
    pos: int  # ms from the recording's start
    ts: float
    timing: str  # tlog's timing string for ``text``
    text: str  # output text, redacted ("" when cut by the size cap)
    bytes: int


class SessionStore:
    """The writing side, on the spool's connection and in its transactions."""

    def __init__(self, spool):
        self.spool = spool
        spool.transaction([(ddl, (), False) for ddl in SCHEMA])

    def load_state(self) -> Optional[dict]:
        raw = self.spool.kv_get(STATE_KEY)
        if not raw:
            return None
        try:
            return loads(raw)
        except ValueError:  # a state this agent cannot read: start without it, history stays
            return None

    def save(self, state: dict, summaries: Iterable[dict], rows: Iterable[TimelineRow], now: float) -> None:
        """The working state, changed summaries and new timeline rows, in one transaction."""
        history = [(s["id"], s.get("user"), s.get("start"), s.get("end"), dumps(s)) for s in summaries]
        self.spool.transaction([
            ("INSERT OR REPLACE INTO kv VALUES (?, ?, ?)", (STATE_KEY, dumps(state), now), False),
            ("INSERT OR REPLACE INTO session_history VALUES (?, ?, ?, ?, ?)", history, True),
            ("INSERT INTO timeline VALUES (?, ?, ?, ?)", [tuple(r) for r in rows], True),
        ])

    def save_chunks(self, chunks: Iterable[Chunk]) -> None:
        self.spool.transaction([("INSERT INTO recording VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                                 [tuple(c) for c in chunks], True)])

    def prune(self, now: float, keep_seconds: float, max_bytes: int) -> None:
        """Retention: drop sessions ended before now - keep_seconds (and recordings of
        no session older than that), then the oldest recordings past max_bytes."""
        cutoff = now - keep_seconds
        old = "SELECT id FROM session_history WHERE COALESCE(end, start) < ?"
        self.spool.transaction([
            (f"DELETE FROM recording WHERE session_id IN ({old})", (cutoff,), False),
            (f"DELETE FROM timeline WHERE session_id IN ({old})", (cutoff,), False),
            ("DELETE FROM recording WHERE ts < ?", (cutoff,), False),
            ("DELETE FROM session_history WHERE COALESCE(end, start) < ?", (cutoff,), False),
        ])
        rows = self.spool.query("SELECT session_id, SUM(bytes), MIN(ts) FROM recording GROUP BY session_id"
                                " ORDER BY MIN(ts) DESC", ())
        total, drop = 0, []
        for sid, size, _ in rows:
            total += size or 0
            if total > max_bytes:
                drop.append((sid,))
        if drop:
            self.spool.transaction([("DELETE FROM recording WHERE session_id = ?", drop, True)])


class SessionReader:
    """The reading side: read-only, safe while agentd runs (WAL readers never block it)."""

    def __init__(self, state_dir: str):
        path = os.path.join(state_dir, "spool.db")
        if not os.path.exists(path):
            raise FileNotFoundError(path)
        self._db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=10)

    def __enter__(self) -> SessionReader:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        self._db.close()

    def _query(self, sql: str, params: tuple) -> list:
        try:
            return self._db.execute(sql, params).fetchall()
        except sqlite3.OperationalError as e:
            if "no such table" in str(e):  # a spool no session was ever stored in
                return []
            raise

    def sessions(self, since: float = 0.0, user: str = "") -> List[dict]:
        """Summaries of the sessions that started at or after ``since``, oldest first."""
        rows = self._query("SELECT summary FROM session_history WHERE start >= ? ORDER BY start", (since,))
        out = [loads(blob) for (blob,) in rows]
        return [s for s in out if not user or s.get("user") == user]

    def find(self, ident: str) -> Optional[dict]:
        """A session by its full id or by its audit session number (the newest such)."""
        rows = self._query("SELECT summary FROM session_history WHERE id = ? OR id LIKE ? ORDER BY start DESC",
                           (ident, f"%:{ident}"))
        return loads(rows[0][0]) if rows else None

    def recording(self, session_id: str) -> List[Chunk]:
        """The session's recorded chunks, per recording in tlog's order."""
        rows = self._query("SELECT session_id, rec, chunk, pos, ts, timing, text, bytes FROM recording "
                           "WHERE session_id = ? ORDER BY MIN(ts) OVER (PARTITION BY rec), rec, chunk",
                           (session_id,))
        return [Chunk(*r) for r in rows]

    def timeline(self, session_id: str) -> List[TimelineRow]:
        rows = self._query(f"SELECT session_id, ts, kind, text FROM timeline WHERE session_id = ? "
                           f"ORDER BY {TIMELINE_ORDER}", (session_id,))
        return [TimelineRow(*r) for r in rows]
