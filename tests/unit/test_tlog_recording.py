"""tlog recordings: the journal entry -> tlog.recording, order/gaps/cap/transfers after the
join, the session store's recording table and its retention, tlog timing -> frames and
asciicast. The journal entries are the shape tlog 12 writes (taken from a real recording
on the test stack), built here so each test says what it feeds."""

from __future__ import annotations

import json

from agent.app.session_report.asciicast import asciicast
from agent.app.session_report.frames import frames, size_of
from agent.base.events import HostInfo, rfc3339
from agent.pipeline.recordings import RecordingStage
from agent.pipeline.redact import Redactor
from agent.pipeline.session_store import Chunk, SessionReader, SessionStore
from agent.pipeline.spool import Spool
from collectors.journald.normalize import Normalizer

HOST = HostInfo("jump", "hostid", "boot")
REC = "0ff9eba7c85b41c280682f59b3257a64-249-6f02c"
SID = "hostid:boot:350"


def entry(n: int, out: str, timing: str, pos: int = 0, ses: str = "350", term: str = "xterm",
          rec: str = REC) -> dict:
    msg = {"ver": "2.3", "host": "vm", "rec": rec, "user": "erin", "term": term, "session": int(ses), "id": n,
           "pos": pos, "time": 1796294745.477 + pos / 1000, "timing": timing, "in_txt": "", "in_bin": [],
           "out_txt": out, "out_bin": []}
    return {"MESSAGE": json.dumps(msg), "SYSLOG_IDENTIFIER": "tlog-rec-session", "_COMM": "tlog-rec-sessio",
            "_PID": "585", "_AUDIT_SESSION": ses, "TLOG_REC": rec, "TLOG_USER": "erin", "TLOG_SESSION": ses,
            "TLOG_ID": str(n), "__REALTIME_TIMESTAMP": str(int((1796294745.477 + pos / 1000) * 1e6)),
            "__CURSOR": f"s=abc;i={n:x};b=boot;m=1;t=1;x=1", "_BOOT_ID": "boot", "_TRANSPORT": "journal"}


def norm(e: dict) -> dict:
    return Normalizer(HOST, ["sshd", "tlog-rec-session"]).normalize(e)


def joined(doc: dict, tty: str = "pts/3") -> dict:
    # What the session join adds (its own tests cover it): session.* by the audit ses.
    doc["session"] = {"id": f"hostid:boot:{doc['auditd']['session']}", "user": "erin", "tty": tty}
    return doc


def test_a_tlog_entry_becomes_a_recording_chunk_keyed_to_the_login():
    doc = norm(entry(1, "\x1b]0;erin@vm: ~\x07erin@vm:~$ ls\r\nfile.txt\r\n", "=120x40+48>30+5>12", pos=0))
    assert doc["event"]["dataset"] == "tlog.recording" and doc["event"]["action"] == "terminal-output"
    assert doc["auditd"]["session"] == "350" and doc["user"]["name"] == "erin"
    assert doc["process"]["io"] == {"type": "tty", "text": "\x1b]0;erin@vm: ~\x07erin@vm:~$ ls\r\nfile.txt\r\n",
                                    "total_bytes_captured": 40}
    assert doc["tlog"]["rec"] == REC and doc["tlog"]["id"] == 1 and doc["tlog"]["timing"] == "=120x40+48>30+5>12"
    assert "out_txt" not in doc["message"]  # the JSON is not shipped twice
    # tlog's own error lines (not JSON) stay readable under tlog.log
    bad = entry(1, "", "")
    bad["MESSAGE"] = "Failed setting up the I/O tap"
    assert norm(bad)["event"]["dataset"] == "tlog.log"


def test_output_text_is_redacted():
    doc = norm(entry(1, "$ cat ~/.aws/credentials\r\naws_secret_access_key = wJalrXUtnFEMI/K7MDENG/bPxRfiCYzEXAMPLEKEY\r\n",
                     "+1>80"))
    Redactor(enabled=True).apply(doc)
    assert "wJalrXUtnFEMI" not in json.dumps(doc) and "redacted" in doc["tags"]


def _stage(tmp_path=None, **kw):
    spool = Spool(str(tmp_path / "spool.db")) if tmp_path else None
    return RecordingStage(HOST, store=SessionStore(spool) if spool else None, **kw), spool


def test_missing_and_out_of_order_chunks_are_gaps_in_that_session():
    stage, _ = _stage()
    assert stage.apply(joined(norm(entry(1, "a", ">1")))) == []
    gaps = stage.apply(joined(norm(entry(4, "d", ">1", pos=30))))
    assert len(gaps) == 1 and gaps[0]["event"]["dataset"] == "agentd.gap"
    assert gaps[0]["agentd"]["gap"]["reason"] == "recording-chunks-missing" and gaps[0]["agentd"]["gap"]["count"] == 2
    assert "chunks 2..3 missing" in gaps[0]["message"] and gaps[0]["session"]["id"] == SID
    late = stage.apply(joined(norm(entry(2, "b", ">1", pos=10))))
    assert [g["agentd"]["gap"]["reason"] for g in late] == ["recording-out-of-order"]
    assert stage.apply(joined(norm(entry(5, "e", ">1", pos=40)))) == []


def test_a_flood_is_cut_at_the_cap_with_one_gap(tmp_path):
    stage, spool = _stage(tmp_path, max_session_bytes=3000)
    out = []
    for n in range(1, 6):
        doc = joined(norm(entry(n, "x" * 1000, ">1000", pos=n * 10)))
        out += stage.apply(doc)
    assert [g["agentd"]["gap"]["reason"] for g in out] == ["recording-cut"]
    assert "cut at 3000 bytes" in out[0]["message"] and "chunk 4 on" in out[0]["message"]
    assert doc["process"]["io"]["text"] == "" and doc["process"]["io"]["max_bytes_per_process_exceeded"]
    stage.commit()
    spool.close()
    with SessionReader(str(tmp_path)) as r:
        assert [c.chunk for c in r.recording(SID)] == [1, 2, 3]


def test_a_recording_without_a_terminal_is_not_kept(tmp_path):
    # scp/sftp/rsync as the session's command: tlog would see the file's bytes
    stage, spool = _stage(tmp_path)
    doc = joined(norm(entry(1, "C0644 1000 up.txt\n", ">18", term="")), tty="")
    assert stage.apply(doc) == []
    assert doc["process"]["io"]["text"] == "" and doc["tlog"]["dropped"]
    stage.commit()
    spool.close()
    with SessionReader(str(tmp_path)) as r:
        assert r.recording(SID) == []


def test_stored_in_order_and_pruned_by_age_and_size(tmp_path):
    spool = Spool(str(tmp_path / "spool.db"))
    store = SessionStore(spool)
    store.save({}, [{"id": "old", "start": 100.0, "end": 200.0}, {"id": "new", "start": 5000.0, "end": 5100.0},
                    {"id": "newer", "start": 6000.0, "end": 6100.0}], [], now=7000.0)
    store.save_chunks([Chunk("new", "r2", 2, 20, 5020.0, ">2", "b2", 2000), Chunk("new", "r2", 1, 0, 5000.0, ">2", "b1", 2000),
                       Chunk("old", "r1", 1, 0, 100.0, ">1", "a", 1), Chunk("newer", "r3", 1, 0, 6000.0, ">1", "c", 5000)])
    with SessionReader(str(tmp_path)) as r:
        assert [c.text for c in r.recording("new")] == ["b1", "b2"]
    store.prune(now=7000.0, keep_seconds=3000.0, max_bytes=6000)
    with SessionReader(str(tmp_path)) as r:
        assert r.find("old") is None and r.recording("old") == []
        assert r.recording("newer") and r.recording("new") == []  # over the size cap: the oldest recording went
        assert r.find("new") is not None  # its summary stays
    spool.close()


def test_timing_to_frames_and_asciicast():
    chunks = [Chunk(SID, REC, 1, 0, 0.0, "=100x30+48>3+1000>2", "ab\ncd", 5),
              Chunk(SID, REC, 2, 2000, 2.0, "+500>4", "ef********", 10)]  # redaction made it longer
    fr = frames(chunks)
    assert size_of(fr) == (100, 30)
    assert [(round(f.t, 3), f.text) for f in fr if f.text] == [(0.048, "ab\n"), (1.048, "cd"), (2.5, "ef**"),
                                                              (2.5, "******")]
    lines = asciicast(fr, start=1796294745.0, title="t").splitlines()
    head = json.loads(lines[0])
    assert head["version"] == 2 and head["width"] == 100 and head["height"] == 30
    assert [json.loads(x) for x in lines[1:3]] == [[0.048, "o", "ab\n"], [1.048, "o", "cd"]]


def test_the_session_join_gives_a_named_gap_to_that_session_only():
    from agent.pipeline.sessions import SessionTracker

    t = SessionTracker(HOST)
    now = 1796294745.0
    for ses in ("350", "351"):
        t.sessions[ses] = {"ses": ses, "id": f"hostid:boot:{ses}", "user": "erin", "start": now - 10, "source": {},
                           "auth": {}, "tty": "pts/1", "commands": 0, "hosts": [], "bytes": 0, "alerts": 0,
                           "last": now}
    stage, _ = _stage()
    stage.apply(joined(norm(entry(1, "a", ">1"))))
    gap = stage.apply(joined(norm(entry(3, "c", ">1", pos=10))))[0]
    gap["@timestamp"] = rfc3339(now)
    t.apply(gap)
    assert t.sessions["350"].get("gaps") and not t.sessions["351"].get("gaps")
