"""The session store: what the join writes, the commands read back, in the same
tables as before the store existed (a spool written by an older agentd still reads)."""

from __future__ import annotations

import sqlite3

from agent.pipeline.session_store import SessionReader, SessionStore, TimelineRow
from agent.pipeline.spool import Spool

ID = "host:boot:16"


def _summary(ses: str, start: float, user: str = "alice", **kw) -> dict:
    return {"id": f"host:boot:{ses}", "ses": ses, "user": user, "start": start, "end": start + 60, **kw}


def test_written_then_read_back(tmp_path):
    spool = Spool(str(tmp_path / "spool.db"))
    store = SessionStore(spool)
    assert store.load_state() is None
    store.save({"sessions": {"16": {"ses": "16"}}}, [_summary("16", 100.0), _summary("17", 200.0, "bob")],
               [TimelineRow(ID, 100.0, "session-started", "alice from 127.0.0.1"),
                TimelineRow(ID, 100.5, "executed", "id")], now=300.0)
    store.save({"sessions": {}}, [_summary("16", 100.0, commands=1)],
               [TimelineRow(ID, 100.0, "connected-to", "/dev/log (sshd)"),  # same time as the login, later
                TimelineRow(ID, 160.0, "session-ended", "alice")], now=301.0)
    assert store.load_state() == {"sessions": {}}
    spool.close()
    with SessionReader(str(tmp_path)) as r:
        assert [s["ses"] for s in r.sessions()] == ["16", "17"]
        assert [s["ses"] for s in r.sessions(since=150.0)] == ["17"]
        assert [s["ses"] for s in r.sessions(user="alice")] == ["16"]
        assert r.find("16")["commands"] == 1 and r.find(ID)["ses"] == "16" and r.find("99") is None
        assert [row.kind for row in r.timeline(ID)] == ["session-started", "connected-to", "executed",
                                                        "session-ended"]


def test_the_tables_keep_their_layout(tmp_path):
    spool = Spool(str(tmp_path / "spool.db"))
    SessionStore(spool)
    spool.close()
    db = sqlite3.connect(tmp_path / "spool.db")
    cols = {t: [c[1] for c in db.execute(f"PRAGMA table_info({t})")] for t in ("session_history", "timeline")}
    assert cols == {"session_history": ["id", "user", "start", "end", "summary"],
                    "timeline": ["session_id", "ts", "kind", "text"]}
    assert db.execute("SELECT COUNT(*) FROM kv").fetchone() == (0,)  # the state blob lives in the spool's kv


def test_a_spool_without_sessions_reads_as_empty(tmp_path):
    Spool(str(tmp_path / "spool.db")).close()  # no session store ever opened on it
    with SessionReader(str(tmp_path)) as r:
        assert r.sessions() == [] and r.find("1") is None and r.timeline(ID) == []
