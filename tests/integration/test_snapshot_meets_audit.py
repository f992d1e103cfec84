"""One connection, two sources: the audit `connect` and the snapshot of the same
socket are two events with their own ids, the later naming the earlier in
agentd.same_as, and both reach the strict test SIEM (ES `create` answers 409 to a
reused _id, which the shipper would count as delivered: a silent loss)."""

# ruff: noqa: F811  (pytest fixtures imported from tests.siem.fixtures are used as arguments)
from __future__ import annotations

import time

import pytest

from agent.base.events import Event, HostInfo, base_doc, make_event_id
from agent.pipeline.pipeline import Pipeline
from collectors.snapshots import scan
from collectors.snapshots.connections import Conn, ConnectionTracker
from collectors.snapshots.processes import Proc
from tests.integration.test_siem_roundtrip import es, es_ids, hec, hec_ids, pump
from tests.siem.fixtures import siem  # noqa: F401

HOST = HostInfo("bastion1", "0123456789abcdef", "boot1")


def audit_connect(now: float) -> dict:
    # the shape collectors/auditd gives a SYSCALL connect + SOCKADDR (tests/golden has real ones)
    doc = base_doc(host=HOST, timestamp=now, event_id=make_event_id(HOST.id, "audit", now, 4711), module="auditd",
                   dataset="auditd.network", category=["network"], type=["connection", "start"],
                   action="connected-to", outcome="success", sequence=4711)
    doc.update(process={"pid": 2345, "name": "sshd", "executable": "/usr/sbin/sshd"},
               destination={"ip": "10.1.2.3", "port": 5432}, auditd={"session": "42", "syscall": "connect"},
               tags=["net_connect"])
    return doc


def snapshot_connect(now: float) -> dict:
    p = Proc(2345, 42)
    p.comm, p.exe, p.uid, p.auid = "sshd", "/usr/sbin/sshd", 1001, 1001
    sock = scan.Sock("tcp", "ipv4", "10.0.0.9", 40000, "10.1.2.3", 5432, "established")
    return ConnectionTracker(HOST)._doc(99, Conn(sock, p, now, "connection-opened", "egress", "direct-tcpip"),
                                        now, "connection-opened")


@pytest.mark.parametrize("snapshot_first", [False, True])
def test_audit_connect_and_its_snapshot_meet_and_both_ship(siem, snapshot_first):
    now = time.time()
    a, s = audit_connect(now), snapshot_connect(now + 1.5)
    first, later = (s, a) if snapshot_first else (a, s)
    out = [e.doc for e in Pipeline({"redact": True}, HOST).apply([Event(first), Event(later)])]
    assert [d["event"]["id"] for d in out] == [first["event"]["id"], later["event"]["id"]]
    assert a["event"]["id"] != s["event"]["id"]
    assert later["agentd"]["same_as"] == first["event"]["id"] and "same_as" not in first.get("agentd", {})
    assert s["tags"] == ["ssh-forwarded"] and s["agentd"]["snapshot"]["forward"] == "direct-tcpip"

    rejected, _ = pump(es(siem), out)
    assert not rejected and sorted(es_ids(siem)) == sorted(d["event"]["id"] for d in out)
    stored = {d["_id"]: d for d in siem.es_docs}
    assert stored[later["event"]["id"]]["_source"]["agentd"]["same_as"] == first["event"]["id"]

    rejected, _ = pump(hec(siem), out)
    assert not rejected and hec_ids(siem) == [d["event"]["id"] for d in out]
