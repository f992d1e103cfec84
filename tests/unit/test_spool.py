"""The spool on a real SQLite file: atomic events + position, per-shipper cursors,
purge, the size cap policies, recovery from a corrupt database, and a spool of the
previous format (one uncompressed row per event) opened by this agent."""

from __future__ import annotations

import base64
import os
import sqlite3
import threading
import zlib

import pytest

from agent.base.events import Event, HostInfo, base_doc, loads, make_event_id
from agent.base.gaps import gap_doc
from agent.pipeline.spool import Spool
from agent.pipeline.spool_format import ROW_EVENTS, pack, unpack
from tests.system import spool_bytes

HOST = HostInfo("h", "hid")


def ev(i: int, pad: int = 0) -> Event:
    doc = base_doc(host=HOST, timestamp=1700000000 + i, event_id=make_event_id("t", i), module="t", dataset="t.t")
    # Random padding: the spool compresses, and repeated bytes would take no room at all.
    doc["message"] = base64.b64encode(os.urandom(pad * 3 // 4)).decode()
    return Event(doc)


def ids(rows):
    return [loads(b)["event"]["id"] for _, b in rows]


def test_events_and_position_commit_together_and_survive_reopen(tmp_path):
    p = str(tmp_path / "spool.db")
    s = Spool(p)
    s.write("audit", [ev(1), ev(2)], {"dev": 1, "ino": 2, "offset": 300})
    s.close()
    s = Spool(p)
    assert s.position("audit") == {"dev": 1, "ino": 2, "offset": 300}
    assert ids(s.read(0, 10)) == [make_event_id("t", 1), make_event_id("t", 2)]


def test_cursors_are_per_shipper_and_purge_waits_for_all(tmp_path):
    s = Spool(str(tmp_path / "spool.db"))
    for i in range(10):
        s.write("audit", [ev(i)], None)  # a row per write
    rows = s.read(s.cursor("a"), 4)
    s.set_cursor("a", rows[-1][0])
    s.set_cursor("b", 0)
    assert s.purge(["a", "b"]) == 0
    s.set_cursor("b", rows[1][0])
    assert s.purge(["a", "b"]) == 2
    assert len(s.read(0, 100)) == 8
    assert s.stats(["a", "b"])["shippers"]["a"]["depth"] == 6


def test_reads_start_and_end_inside_a_write_and_its_row_stays_until_all_is_shipped(tmp_path):
    s = Spool(str(tmp_path / "spool.db"))
    s.write("audit", [ev(i) for i in range(7)], None)
    s.write("audit", [ev(i) for i in range(7, 12)], None)
    cur, got = s.cursor("a"), []
    while rows := s.read(cur, 3):
        assert len(rows) <= 3
        got += rows
        cur = rows[-1][0]
    assert [seq for seq, _ in got] == list(range(1, 13))
    assert ids(got) == [make_event_id("t", i) for i in range(12)]
    s.set_cursor("a", 9)  # inside the second write
    assert s.stats(["a"])["shippers"]["a"]["depth"] == 3
    assert s.purge(["a"]) == 7, "the first write's events are all shipped"
    assert ids(s.read(9, 100)) == [make_event_id("t", i) for i in range(9, 12)]
    assert s.stats([])["events"] == 5, "the second write stays whole until its last event is shipped"


def test_a_big_write_is_stored_compressed_in_rows_of_at_most_row_events(tmp_path):
    s = Spool(str(tmp_path / "spool.db"))
    evs = [ev(i) for i in range(ROW_EVENTS * 2 + 1)]
    s.write("audit", evs, None)
    raw = sum(len(e.to_json()) for e in evs)
    with sqlite3.connect(str(tmp_path / "spool.db")) as c:
        assert c.execute("SELECT n FROM batches ORDER BY seq").fetchall() == [(ROW_EVENTS,), (ROW_EVENTS,), (1,)]
    assert s.stats([])["bytes"] < raw / 5
    assert [b for _, b in s.read(0, 10_000)] == [e.to_json() for e in evs]


def test_seq_never_reused_after_everything_is_purged(tmp_path):
    s = Spool(str(tmp_path / "spool.db"))
    s.write("audit", [ev(1)], None)
    (seq, _), = s.read(0, 10)
    s.set_cursor("a", seq)
    s.purge(["a"])
    s.write("audit", [ev(2)], None)
    assert ids(s.read(s.cursor("a"), 10)) == [make_event_id("t", 2)]


def test_drop_oldest_keeps_the_cap_and_records_a_gap(tmp_path):
    s = Spool(str(tmp_path / "spool.db"), max_bytes=2_000_000, policy="drop_oldest",
              gap_factory=lambda n, d: gap_doc(HOST, "spool", "spool-full", d, count=n))
    for i in range(30):
        s.write("audit", [ev(i, pad=100_000)], None)
    st = s.stats([])
    assert st["bytes"] <= 2_000_000
    assert s.dropped > 0
    docs = [loads(b) for _, b in s.read(0, 1000)]
    gaps = [d for d in docs if d["event"]["dataset"] == "agentd.gap"]
    assert gaps and sum(g["agentd"]["gap"]["count"] for g in gaps) == s.dropped
    # the newest event is always kept
    assert docs[-1]["event"]["id"] == make_event_id("t", 29) or docs[-1]["event"]["dataset"] == "agentd.gap"


def test_block_policy_waits_for_room_and_gives_up_on_stop(tmp_path):
    s = Spool(str(tmp_path / "spool.db"), max_bytes=1_100_000, policy="block")
    assert s.write("audit", [ev(1, pad=1_000_000)], {"offset": 1})
    stop = threading.Event()
    result = {}
    t = threading.Thread(target=lambda: result.setdefault("ok", s.write("audit", [ev(2, pad=500_000)],
                                                                         {"offset": 2}, stop)))
    t.start()
    t.join(1.0)
    assert t.is_alive(), "write should block while the spool is full"
    stop.set()
    t.join(2.0)
    assert result == {"ok": False}
    assert s.position("audit") == {"offset": 1}, "a refused write must not move the position"


def test_corrupt_database_is_moved_aside(tmp_path):
    p = tmp_path / "spool.db"
    p.write_bytes(b"this is not a sqlite database" * 100)
    s = Spool(str(p))
    assert s.recovered and "moved to" in s.recovered
    assert list(tmp_path.glob("spool.db.corrupt-*"))
    s.write("audit", [ev(1)], {"offset": 5})
    assert s.position("audit") == {"offset": 5}


# The previous format, as agents before schema 2 wrote it (agent/pipeline/spool.py at d7bc381).
SCHEMA_1 = """
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE events (seq INTEGER PRIMARY KEY AUTOINCREMENT, ts REAL NOT NULL, body BLOB NOT NULL);
CREATE TABLE positions (collector TEXT PRIMARY KEY, position TEXT NOT NULL);
CREATE TABLE cursors (shipper TEXT PRIMARY KEY, seq INTEGER NOT NULL);
CREATE TABLE kv (key TEXT PRIMARY KEY, value BLOB NOT NULL, updated REAL NOT NULL);
INSERT INTO meta VALUES ('schema', '1');
"""


def schema_1_spool(path: str, n: int, shipped: int) -> list:
    """A schema-1 spool that stored ``n`` events and purged the first ``shipped``."""
    c = sqlite3.connect(path, isolation_level=None)
    c.execute("PRAGMA journal_mode=WAL")
    c.executescript(SCHEMA_1)
    bodies = [ev(i).to_json() for i in range(n)]
    c.executemany("INSERT INTO events (ts, body) VALUES (?, ?)", [(1700000000.0 + i, b) for i, b in enumerate(bodies)])
    c.execute("INSERT INTO positions VALUES ('audit', '{\"offset\":77}')")
    c.execute("INSERT INTO cursors VALUES ('hec', ?)", (shipped,))
    c.execute("INSERT INTO kv VALUES ('sessions', x'01', 1.0)")
    c.execute("DELETE FROM events WHERE seq <= ?", (shipped,))
    c.close()
    return bodies


def test_a_spool_of_the_previous_format_is_converted_and_its_events_still_shipped(tmp_path):
    p = str(tmp_path / "spool.db")
    bodies = schema_1_spool(p, 1203, shipped=100)
    s = Spool(p)
    assert not s.recovered
    assert s.position("audit") == {"offset": 77} and s.kv_get("sessions") == b"\x01"
    cur = s.cursor("hec")
    assert cur == 100
    got = []
    while rows := s.read(cur, 500):
        got += rows
        cur = rows[-1][0]
    assert got == list(zip(range(101, 1204), bodies[100:], strict=True)), "the same events, the same seqs"
    assert s.stats(["hec"])["shippers"]["hec"]["depth"] == 1103
    s.write("audit", [ev(5000)], None)
    assert s.read(1203, 10) == [(1204, ev(5000).to_json())], "new events come after the old ones"
    s.set_cursor("hec", 1204)
    assert s.purge(["hec"]) == 1104 and s.stats([])["bytes"] == 0
    s.close()
    with sqlite3.connect(p) as c:
        assert c.execute("SELECT value FROM meta WHERE key='schema'").fetchone() == ("2",)
        assert not c.execute("SELECT 1 FROM sqlite_master WHERE name='events'").fetchone()


def test_an_empty_spool_of_the_previous_format_does_not_reuse_its_seqs(tmp_path):
    p = str(tmp_path / "spool.db")
    schema_1_spool(p, 40, shipped=40)
    s = Spool(p)
    assert s.cursor("hec") == 40 and s.read(40, 10) == []
    s.write("audit", [ev(1)], None)
    assert [seq for seq, _ in s.read(s.cursor("hec"), 10)] == [41]
    assert s.cursor("new-shipper") == 40, "a new shipper starts with what is still spooled"


def test_a_secret_in_the_spool_is_found_by_the_system_tests_grep(tmp_path):
    """tests/system/spool_bytes.readable: what the no-secret greps search in a compressed spool."""
    p = str(tmp_path / "spool.db")
    s = Spool(p)
    doc = base_doc(host=HOST, timestamp=1700000000, event_id="e1", module="t", dataset="t.t")
    doc["message"] = "password=hunter2-canary"
    s.write("audit", [ev(0), Event(doc), ev(2)], None)
    s.close()
    with open(p, "rb") as f:
        assert b"hunter2-canary" not in f.read(), "compressed: a plain grep cannot see it"
    assert b"hunter2-canary" in spool_bytes.readable(p)


def test_an_empty_spool_takes_a_write_bigger_than_its_cap(tmp_path):
    s = Spool(str(tmp_path / "spool.db"), max_bytes=100_000, policy="block")
    assert s.write("audit", [ev(1, pad=300_000)], {"offset": 1}, threading.Event())
    assert s.stats([])["bytes"] > 100_000 and s.position("audit") == {"offset": 1}


def test_rows_unpack_whatever_their_events_sizes_and_a_truncated_row_is_an_error(tmp_path):
    bodies = [b"a" * 300_000, b"", b"b" * 5, b"c" * 200_000]  # events across the 64 KB steps
    assert unpack(pack(bodies)) == bodies and unpack(pack([b"x"])) == [b"x"]
    with pytest.raises(zlib.error):
        unpack(pack(bodies)[:500])
