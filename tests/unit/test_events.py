from __future__ import annotations

import calendar

from agent.base import events
from agent.base.events import (
    Event,
    HostInfo,
    add_related,
    base_doc,
    loads,
    make_event_id,
    parse_rfc3339,
    rfc3339,
)


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


def test_parse_rfc3339_gives_the_same_seconds_with_and_without_its_caches():
    # The exact value from the definition: whole seconds from the fields, plus microseconds.
    def exact(y, mo, d, h, mi, s, us):
        return calendar.timegm((y, mo, d, h, mi, s)) + us / 1e6

    texts = [rfc3339(1700000000 + i * 0.000731) for i in range(3000)]
    texts += [rfc3339(t) for t in (0.0, 1.5, 951782400.999999, 4102444799.000001)]
    hits = 0
    for text in texts:
        want = exact(int(text[:4]), int(text[5:7]), int(text[8:10]), int(text[11:13]), int(text[14:16]),
                     int(text[17:19]), int(text[20:26]))
        hits += text[:19] in events._rfc_secs
        warm = parse_rfc3339(text)  # a text of the same second before: from the cache
        assert warm == parse_rfc3339(text) == events._parse_rfc3339(text) == want, text
    assert hits > 2000
    # Other forms take the full parse, whatever was cached for the same second.
    parse_rfc3339("2023-11-14T22:13:20.000000Z")
    assert parse_rfc3339("2023-11-14T22:13:20.5+01:00") == 1700000000.5 - 3600
    assert parse_rfc3339("2023-11-14 22:13:20Z") == 1700000000
    assert parse_rfc3339("2023-11-14T22:13:20.12345xZ") is None
    assert parse_rfc3339("2023-11-14T22:13:20.123456Z\n") == 1700000000.123456  # as the pattern's $ allows
    for bad in (None, 1700000000, b"2023-11-14T22:13:20.000000Z", "", "yesterday", "2023-11-14T22:13:2x.000000Z"):
        assert parse_rfc3339(bad) is None


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


def test_a_shared_object_is_written_as_the_same_dict_would_be():
    import collections

    parent = events.Shared(pid=7, name="bash", args=["bash", "-c", "echo \udcff\n"], executable="/bin/bash")
    plain = {"pid": 7, "name": "bash", "args": ["bash", "-c", "echo \udcff\n"], "executable": "/bin/bash"}
    docs = [{"z": 1, "process": {"pid": n, "parent": parent}, "a": collections.OrderedDict(b=2, a=1)}
            for n in (1, 2)]
    want = [events.dumps({"z": 1, "process": {"pid": n, "parent": plain}, "a": {"a": 1, "b": 2}}) for n in (1, 2)]
    assert [events.dumps(d) for d in docs] == want  # sorted keys, surrogates escaped, inside and out
    assert b'"echo \\\\xff\\n"' in want[0]
    assert isinstance(parent, dict) and parent["name"] == "bash"  # what later stages read
