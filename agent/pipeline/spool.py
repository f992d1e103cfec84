"""The durable spool: SQLite in WAL mode, the agent's durability boundary.

- A collector's events and its source position are committed in ONE transaction
  (``write``), so after a crash the collector resumes exactly after what is
  stored: nothing lost, nothing skipped.
- Each write's events are stored zlib-compressed, a batch per row (``batches``:
  up to ROW_EVENTS events, their JSON newline-separated). Every event still has
  its own ``seq`` (a row holds seq-n+1 .. seq), so cursors and ``read`` are per
  event as before. ECS events repeat most of their neighbours' bytes: level 1
  stores the exec storm's in about a twentieth of their JSON, so the size cap
  holds ~20x more events through an outage and a drain reads ~20x fewer bytes.
- Each shipper has its own cursor (the last ``seq`` it has finished: delivered or
  dead-lettered). Rows every configured shipper has finished are deleted (a row
  stays until all of its events are finished).
- ``synchronous=NORMAL`` in WAL mode survives a process crash (kill -9); on power
  loss the last transactions may roll back, but events and positions roll back
  together and the source is simply re-read.
- The size cap counts the stored (compressed) bytes of the rows; the file itself
  is somewhat larger.
- A spool of the previous format (schema 1: one uncompressed row per event) is
  converted when it is opened, in one transaction (spool_format.py).
"""

from __future__ import annotations

import logging
import os
import sqlite3
import threading
import time
from typing import Callable, Optional

from agent.base.events import Event, dumps, loads
from agent.pipeline.spool_format import ROW_EVENTS, SCHEMA, SCHEMA_VERSION, pack, unpack, upgrade

log = logging.getLogger("agentd.spool")


class SpoolClosed(Exception):
    pass


def _connect(path: str) -> sqlite3.Connection:
    conn = sqlite3.connect(path, timeout=30, isolation_level=None, check_same_thread=False)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    # SQLite's own page cache (2 MB by default) holds pages the kernel's page cache holds too:
    # rows are appended once and read once, compressed, so 256 KB keeps the B-tree's inner
    # pages and the pages in use, and ~1.8 MB less RSS (benchmarks/README, "The journal's files")
    conn.execute("PRAGMA cache_size=-256")
    return conn


class Spool:
    def __init__(self, path: str, max_bytes: int = 1 << 30, policy: str = "block",
                 gap_factory: Optional[Callable[[int, str], dict]] = None):
        self.path = path
        self.max_bytes = max_bytes
        self.policy = policy
        self.gap_factory = gap_factory
        self.recovered: Optional[str] = None  # why the previous database was moved aside
        self.dropped = 0
        self._full_logged = False
        self._closed = False
        self._lock = threading.Lock()
        self._space = threading.Condition(self._lock)
        self._new_data = threading.Condition(threading.Lock())
        # The last row read, unpacked, when the read stopped inside it: the next read goes on from there.
        self._unpacked: tuple = (0, [])
        os.makedirs(os.path.dirname(path) or ".", mode=0o750, exist_ok=True)
        self._db = self._open()
        self._bytes = self._db.execute("SELECT COALESCE(SUM(LENGTH(body)), 0) FROM batches").fetchone()[0]

    # -- opening and recovery ---------------------------------------------

    def _open(self) -> sqlite3.Connection:
        try:
            conn = _connect(self.path)
            ok = conn.execute("PRAGMA quick_check").fetchone()[0]
            if ok != "ok":
                raise sqlite3.DatabaseError(f"quick_check: {ok}")
            conn.executescript(SCHEMA)
            row = conn.execute("SELECT value FROM meta WHERE key='schema'").fetchone()
            if row is None:
                conn.execute("INSERT INTO meta VALUES ('schema', ?)", (str(SCHEMA_VERSION),))
            elif row[0] == "1":
                n = upgrade(conn)
                log.info("spool: converted %d events of the previous format (one row each) to compressed rows", n)
            elif row[0] != str(SCHEMA_VERSION):
                raise sqlite3.DatabaseError(f"schema version {row[0]}, this agent writes {SCHEMA_VERSION}")
            return conn
        except sqlite3.DatabaseError as e:
            # A corrupt state must never stop the agent: keep it for forensics,
            # start empty, and let collectors fall back to their initial position.
            try:
                conn.close()
            except Exception:
                pass
            aside = f"{self.path}.corrupt-{int(time.time())}"
            for suffix in ("", "-wal", "-shm"):
                if os.path.exists(self.path + suffix):
                    os.replace(self.path + suffix, aside + suffix)
            self.recovered = f"{self.path} was unusable ({e}); moved to {aside}"
            log.error("spool: %s; starting with an empty spool", self.recovered)
            conn = _connect(self.path)
            conn.executescript(SCHEMA)
            conn.execute("INSERT INTO meta VALUES ('schema', ?)", (str(SCHEMA_VERSION),))
            return conn

    def close(self) -> None:
        with self._lock:
            self._closed = True
            self._space.notify_all()
            self._db.close()
        with self._new_data:
            self._new_data.notify_all()

    # -- writing -----------------------------------------------------------

    def write(self, collector: str, events: list, position: Optional[dict],
              stop: Optional[threading.Event] = None) -> bool:
        """Store events and the collector's position atomically.

        Returns False when the spool is full under the ``block`` policy and
        ``stop`` was set while waiting: nothing was stored, the position did not
        move, and the source will be re-read from the old position.
        """
        # ts is the spool time: "oldest unshipped" measures how long events wait here.
        now = time.time()
        # Serialized straight into the compressor, outside the lock (shippers read meanwhile):
        # the batch's JSON never exists whole, at the moment the collector holds its events.
        rows = []
        for i in range(0, len(events), ROW_EVENTS):
            chunk = events[i:i + ROW_EVENTS]
            rows.append((len(chunk), pack(e.to_json() if isinstance(e, Event) else dumps(e) for e in chunk)))
        size = sum(len(b) for _, b in rows)
        with self._lock:
            if self._closed:
                raise SpoolClosed()
            if size and self._bytes + size > self.max_bytes:
                if not self._make_room(size, stop):
                    return False
            db = self._db
            db.execute("BEGIN IMMEDIATE")
            try:
                self._insert(rows, now)
                if position is not None:
                    db.execute("INSERT OR REPLACE INTO positions VALUES (?, ?)",
                               (collector, dumps(position).decode()))
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                raise
            self._bytes += size
        if rows:
            with self._new_data:
                self._new_data.notify_all()
        return True

    def _insert(self, rows: list, ts: float) -> None:
        """[(n, packed)] as the next rows; the caller holds the lock, in a transaction."""
        last = self._last_seq()
        for n, body in rows:
            last += n
            self._db.execute("INSERT INTO batches (seq, n, ts, body) VALUES (?, ?, ?, ?)", (last, n, ts, body))

    def _make_room(self, size: int, stop: Optional[threading.Event]) -> bool:
        if not self._full_logged:
            self._full_logged = True
            log.error("spool: full (%d of %d bytes); policy %s", self._bytes, self.max_bytes, self.policy)
        if self.policy == "drop_oldest":
            self._drop_oldest(size)
            return True
        while self._no_room(size):
            if self._closed or (stop is not None and stop.is_set()):
                return False
            self._space.wait(0.5)
        return True

    def _drop_oldest(self, size: int) -> None:
        need = self._bytes + size - self.max_bytes
        freed = dropped = 0
        while freed < need:
            rows = self._db.execute("SELECT seq, n, LENGTH(body) FROM batches ORDER BY seq LIMIT 100").fetchall()
            if not rows:
                break
            cut = None
            for seq, n, nbytes in rows:
                freed += nbytes
                dropped += n
                cut = seq
                if freed >= need:
                    break
            self._db.execute("DELETE FROM batches WHERE seq <= ?", (cut,))
        self._bytes -= freed
        self.dropped += dropped
        if dropped and self.gap_factory:
            detail = f"spool over {self.max_bytes} bytes: dropped the {dropped} oldest unshipped events"
            rows = [(1, pack([dumps(self.gap_factory(dropped, detail))]))]
            self._insert(rows, time.time())
            self._bytes += len(rows[0][1])

    # -- reading -----------------------------------------------------------

    def _no_room(self, size: int) -> bool:
        # An empty spool takes any write: one bigger than the cap would otherwise wait forever.
        return self._bytes + size > self.max_bytes and self._bytes > 0

    def would_block(self, size: int = 1 << 16) -> bool:
        """Whether a write of ``size`` bytes would wait for room (the ``block`` policy, full)."""
        return self.policy != "drop_oldest" and self._no_room(size)

    def position(self, collector: str) -> Optional[dict]:
        with self._lock:
            row = self._db.execute("SELECT position FROM positions WHERE collector=?", (collector,)).fetchone()
        return loads(row[0]) if row else None

    def cursor(self, shipper: str) -> int:
        with self._lock:
            row = self._db.execute("SELECT seq FROM cursors WHERE shipper=?", (shipper,)).fetchone()
            if row:
                return row[0]
            # A new shipper starts with what is still spooled.
            first = self._db.execute("SELECT seq - n FROM batches ORDER BY seq LIMIT 1").fetchone()
            return first[0] if first else self._last_seq()

    def _last_seq(self) -> int:
        row = self._db.execute("SELECT seq FROM sqlite_sequence WHERE name='batches'").fetchone()
        return row[0] if row else 0

    def read(self, after: int, limit: int) -> list:
        """[(seq, body)] after ``after``, in order: at most ``limit`` events, each body its JSON."""
        packed = []
        with self._lock:
            got = 0
            # Row by row (a row is up to ROW_EVENTS events): only the rows this read needs.
            rows = self._db.execute("SELECT seq, n, body FROM batches WHERE seq > ? ORDER BY seq LIMIT ?",
                                    (after, limit))
            try:
                for seq, n, body in rows:
                    packed.append((seq, n, body))
                    got += min(n, seq - after)
                    if got >= limit:
                        break
            finally:
                rows.close()
        out: list = []
        for seq, n, body in packed:
            cached_seq, parts = self._unpacked
            if cached_seq != seq:
                parts = unpack(body)
            first = seq - n + 1
            skip = max(0, after + 1 - first)
            take = parts[skip:skip + limit - len(out)]
            out.extend(zip(range(first + skip, first + skip + len(take)), take, strict=True))
            # Kept only when this read stops inside the row, for the next read to go on from.
            self._unpacked = (seq, parts) if first + skip + len(take) <= seq else (0, [])
        return out

    def wait_for_data(self, after: int, timeout: float) -> None:
        with self._new_data:
            if self._last_seq_unlocked() <= after:
                self._new_data.wait(timeout)

    def _last_seq_unlocked(self) -> int:
        with self._lock:
            return 0 if self._closed else self._last_seq()

    def set_cursor(self, shipper: str, seq: int) -> None:
        with self._lock:
            self._db.execute("INSERT OR REPLACE INTO cursors VALUES (?, ?)", (shipper, seq))

    def purge(self, shippers: list) -> int:
        """Delete rows whose events every configured shipper has finished; returns events deleted."""
        with self._lock:
            if not shippers:
                return 0
            marks = ",".join("?" * len(shippers))
            row = self._db.execute(f"SELECT MIN(seq), COUNT(*) FROM cursors WHERE shipper IN ({marks})",
                                   shippers).fetchone()
            if row[1] < len(shippers) or row[0] is None:
                return 0
            freed, n = self._db.execute(
                "SELECT COALESCE(SUM(LENGTH(body)), 0), COALESCE(SUM(n), 0) FROM batches WHERE seq <= ?",
                (row[0],)).fetchone()
            if n:
                self._db.execute("DELETE FROM batches WHERE seq <= ?", (row[0],))
                self._bytes -= freed
                if self._full_logged and self._bytes < self.max_bytes * 0.9:
                    self._full_logged = False
                    log.info("spool: below its cap again (%d bytes)", self._bytes)
                self._space.notify_all()
            return n

    # -- key/value state and transactions for the stages (sessions: session_store.py) --

    def kv_get(self, key: str) -> Optional[bytes]:
        with self._lock:
            row = self._db.execute("SELECT value FROM kv WHERE key=?", (key,)).fetchone()
        return row[0] if row else None

    def query(self, sql: str, params: tuple) -> list:
        with self._lock:
            return self._db.execute(sql, params).fetchall()

    def transaction(self, statements: list) -> None:
        """[(sql, params, many)] in one transaction (one WAL commit, not one each)."""
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                for sql, params, many in statements:
                    if many:
                        if params:
                            self._db.executemany(sql, params)
                    else:
                        self._db.execute(sql, params)
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise

    def stats(self, shippers: list) -> dict:
        with self._lock:
            last = self._last_seq()
            count, oldest = self._db.execute("SELECT COALESCE(SUM(n), 0), MIN(ts) FROM batches").fetchone()
            out = {"events": count, "bytes": self._bytes, "max_bytes": self.max_bytes,
                   "dropped": self.dropped, "last_seq": last, "shippers": {}}
            for name in shippers:
                row = self._db.execute("SELECT seq FROM cursors WHERE shipper=?", (name,)).fetchone()
                cur = row[0] if row else 0
                depth, ts = self._db.execute("SELECT COALESCE(SUM(MIN(n, seq - ?)), 0), MIN(ts) FROM batches "
                                             "WHERE seq > ?", (cur, cur)).fetchone()
                out["shippers"][name] = {"cursor": cur, "depth": depth,
                                         "oldest_age": (time.time() - ts) if ts else 0.0}
            out["oldest_age"] = (time.time() - oldest) if oldest else 0.0
        return out
