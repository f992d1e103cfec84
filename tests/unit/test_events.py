from __future__ import annotations

from agent.base.events import Event, HostInfo, add_related, base_doc, loads, make_event_id, rfc3339


def test_event_id_is_deterministic_and_distinguishes_records():
    a = make_event_id("mid", "auditd", "", "1700000000.123:456", 0)
    assert a == make_event_id("mid", "auditd", "", "1700000000.123:456", 0)
    assert a != make_event_id("mid", "auditd", "", "1700000000.123:457", 0)
    assert a != make_event_id("mid", "auditd", "", "1700000000.123:456", 1)
    # parts are separated, so shifting a character between parts changes the id
    assert make_event_id("ab", "c") != make_event_id("a", "bc")
    assert len(a) == 32


def test_timestamp_is_rfc3339_utc_with_microseconds():
    assert rfc3339(1700000000.123456) == "2023-11-14T22:13:20.123456Z"
    assert rfc3339(0) == "1970-01-01T00:00:00.000000Z"


def test_base_doc_and_serialization_roundtrip():
    host = HostInfo("bastion1", "abc123", "boot1")
    doc = base_doc(host=host, timestamp=1700000000.5, event_id="x", module="auditd", dataset="auditd.process",
                   category=["process"], type=["start"], action="exec", outcome="success", sequence=42)
    add_related(doc, users=("alice", "root", "alice", ""), ips=("127.0.0.1",))
    ev = Event(doc, {"dev": 1, "ino": 2, "offset": 3})
    back = loads(ev.to_json())
    assert back["event"] == {"id": "x", "kind": "event", "module": "auditd", "dataset": "auditd.process",
                             "category": ["process"], "type": ["start"], "action": "exec",
                             "outcome": "success", "sequence": 42}
    assert back["host"] == {"name": "bastion1", "id": "abc123"}
    assert back["agent"]["type"] == "agentd" and back["ecs"] == {"version": "9.4.0"}
    assert back["related"] == {"user": ["alice", "root"], "ip": ["127.0.0.1"]}
    assert ev.id == "x" and ev.dataset == "auditd.process"


def test_local_host_info_reads_machine_identity():
    h = HostInfo.local()
    assert h.name and h.id and h.id != ""
