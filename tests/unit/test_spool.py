"""The spool on a real SQLite file: atomic events + position, per-shipper cursors,
purge, the size cap policies, and recovery from a corrupt database."""

from __future__ import annotations

import threading

from agent.base.events import Event, HostInfo, base_doc, loads, make_event_id
from agent.base.gaps import gap_doc
from agent.pipeline.spool import Spool

HOST = HostInfo("h", "hid")


def ev(i: int, pad: int = 0) -> Event:
    doc = base_doc(host=HOST, timestamp=1700000000 + i, event_id=make_event_id("t", i), module="t", dataset="t.t")
    doc["message"] = "x" * pad
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
    s.write("audit", [ev(i) for i in range(10)], None)
    rows = s.read(s.cursor("a"), 4)
    s.set_cursor("a", rows[-1][0])
    s.set_cursor("b", 0)
    assert s.purge(["a", "b"]) == 0
    s.set_cursor("b", rows[1][0])
    assert s.purge(["a", "b"]) == 2
    assert len(s.read(0, 100)) == 8
    assert s.stats(["a", "b"])["shippers"]["a"]["depth"] == 6


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
