"""The spool's tables and how a row holds its events (schema 2), and the conversion of
a schema-1 spool (one uncompressed row per event) that an upgraded agent opens.

A row of ``batches`` is up to ROW_EVENTS events of one write: their JSON joined by
newlines (compact JSON never holds a raw newline: orjson escapes it inside strings),
zlib level 1. ``seq`` is the seq of the row's LAST event and ``n`` its count, so the
row holds seq-n+1 .. seq, and "the rows after cursor C" is ``seq > C`` on the primary
key. AUTOINCREMENT keeps sqlite_sequence at the highest seq ever stored: a seq is
never reused after the rows are purged (explicit rowids move it too).
"""

from __future__ import annotations

import sqlite3
import zlib
from collections.abc import Iterable

SCHEMA_VERSION = 2
ROW_EVENTS = 500  # the collectors' default batch: a write is one row, a shipper's read too
LEVEL = 1  # zlib's fastest: ~20x on ECS events; higher levels gain a few % for 2-3x the CPU

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS batches (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    n INTEGER NOT NULL,
    ts REAL NOT NULL,
    body BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS positions (collector TEXT PRIMARY KEY, position TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS cursors (shipper TEXT PRIMARY KEY, seq INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS kv (key TEXT PRIMARY KEY, value BLOB NOT NULL, updated REAL NOT NULL);
"""


def pack(bodies: Iterable[bytes]) -> bytes:
    """The events' JSON, newline-separated, deflated as it comes: neither the list of them
    nor their join is kept (a 500-event batch is 1.3 MB of JSON; ~5% more CPU than a join)."""
    c = zlib.compressobj(LEVEL)
    add = c.compress
    it = iter(bodies)
    out = [add(next(it, b""))]
    for body in it:
        out.append(add(b"\n"))
        out.append(add(body))
    out.append(c.flush())
    return b"".join(out)


def unpack(body: bytes) -> list:
    """The events' JSON, inflated 64 KB at a time: the row's whole text never exists at once
    beside the events split from it."""
    d = zlib.decompressobj()
    parts: list = []
    tail = b""
    data = body
    while not d.eof:
        chunk = d.decompress(data, 65536)
        data = d.unconsumed_tail
        if not chunk and not data and not d.eof:
            raise zlib.error("a spool row ends before its compressed stream does")
        lines = (tail + chunk).split(b"\n")
        tail = lines.pop()
        parts.extend(lines)
    parts.append(tail)
    return parts


def upgrade(conn: sqlite3.Connection) -> int:
    """Schema 1 -> 2 in one transaction: the old rows become packed rows with the same seqs
    (shipper cursors stay valid), the sequence carries over, the old table goes. Returns
    the events converted. A crash before the commit leaves the schema-1 spool as it was."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        row = conn.execute("SELECT seq FROM sqlite_sequence WHERE name='events'").fetchone()
        last = row[0] if row else 0
        after, total = 0, 0
        while True:
            old = conn.execute("SELECT seq, ts, body FROM events WHERE seq > ? ORDER BY seq LIMIT ?",
                               (after, ROW_EVENTS)).fetchall()
            if not old:
                break
            # Purges delete from the front, so the seqs are consecutive; a run ends at any hole anyway.
            start = 0
            for i in range(1, len(old) + 1):
                if i == len(old) or old[i][0] != old[i - 1][0] + 1:
                    run = old[start:i]
                    conn.execute("INSERT INTO batches (seq, n, ts, body) VALUES (?, ?, ?, ?)",
                                 (run[-1][0], len(run), run[0][1], pack([r[2] for r in run])))
                    start = i
            after = old[-1][0]
            total += len(old)
        if conn.execute("UPDATE sqlite_sequence SET seq = MAX(seq, ?) WHERE name='batches'", (last,)).rowcount == 0:
            conn.execute("INSERT INTO sqlite_sequence (name, seq) VALUES ('batches', ?)", (last,))
        # DROP frees the old pages in one step (a DELETE would rewrite every one into the WAL).
        conn.execute("DROP TABLE events")
        conn.execute("UPDATE meta SET value=? WHERE key='schema'", (str(SCHEMA_VERSION),))
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    return total
