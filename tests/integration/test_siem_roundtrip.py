"""The real shippers against the strict test SIEM over loopback, with faults.

Each test drives ``send`` the way the pipeline's worker does (re-send what came
back as retry, in order, dead-letter what was rejected) while a fault is on until
the shipper has met it (never for a wall-clock window), then compares what the
SIEM holds with what was sent: nothing lost, ES without duplicates, HEC
duplicates only where acks were lost (or a response was lost without acks).
"""

# ruff: noqa: F811  (pytest fixtures imported from tests.siem.fixtures are used as arguments)
from __future__ import annotations

import collections
import json
import subprocess
import sys
import time

import httpx
import pytest

from agent.base.options import Secret
from shippers.elasticsearch import ElasticsearchShipper
from shippers.splunk_hec import SplunkHecShipper
from tests.siem.fixtures import ES_API_KEY, ES_USER, HEC_ACK_TOKEN, HEC_TOKEN, siem, siem_small  # noqa: F401

DATASETS = ("auditd.process", "sshd.auth", "agentd.session")
# No fault here is a slow answer beyond 0.05 s: a timeout would only be the loaded
# machine's, and on HEC without acks it makes a duplicate the tests rightly count.
TIMEOUT = 10.0


def events(n: int, prefix: str = "ev") -> list:
    return [{"@timestamp": f"2024-05-01T10:{i // 60 % 60:02d}:{i % 60:02d}.{i % 1000000:06d}Z",
             "event": {"id": f"{prefix}{i}", "dataset": DATASETS[i % 3], "kind": "event", "action": "executed"},
             "host": {"name": "bastion1", "id": "0123456789abcdef"},
             "session": {"id": "0123:boot:7", "user": "alice", "source": {"ip": "10.0.0.5", "port": 50022}},
             "process": {"pid": 1000 + i, "args": ["ls", "-la", f"/srv/{i}"], "command_line": f"ls -la /srv/{i}"},
             "message": "x" * (i % 200)} for i in range(n)]


def hec(server, **kw) -> SplunkHecShipper:
    conf = {k: o.default_value() for k, o in SplunkHecShipper.options.items()}
    conf.update(url=server.url, token=Secret(HEC_TOKEN), batch_max_events=200, timeout=TIMEOUT)
    conf.update(kw)
    return SplunkHecShipper("hec", conf)


def es(server, **kw) -> ElasticsearchShipper:
    conf = {k: o.default_value() for k, o in ElasticsearchShipper.options.items()}
    conf.update(url=server.url, username=ES_USER[0], password=Secret(ES_USER[1]), batch_max_events=250, timeout=TIMEOUT)
    conf.update(kw)
    return ElasticsearchShipper("es", conf)


def pump(shipper, evs: list, batch: int = 500, deadline: float = 30.0, lift=None) -> tuple:
    """Ship ``evs`` like agent.pipeline.shipping does; returns (rejected [(event id, reason)], send calls).

    ``lift`` = (until, action): ``action()`` runs once, between two sends, as soon as
    ``until(result)`` (called after every send) is true. A fault lasts until the
    shipper has met it, not for a wall-clock window that a loaded machine lets pass
    before the first request is even sent."""
    rejected, calls = [], 0
    stop = time.monotonic() + deadline
    for start in range(0, len(evs), batch):
        pending = evs[start:start + batch]
        while pending:
            assert time.monotonic() < stop, f"not delivered in {deadline}s: {len(pending)} pending"
            r = shipper.send(pending)
            calls += 1
            if lift is not None and lift[0](r):
                lift[1]()
                lift = None
            done = set(r.delivered)
            for i, reason in r.rejected:
                done.add(i)
                rejected.append((pending[i]["event"]["id"], reason))
            pending = [e for i, e in enumerate(pending) if i not in done]
            if pending:
                time.sleep(min(r.retry_after or 0.02, 0.1))
    if lift is not None:
        lift[1]()  # never met: the fault must not outlive the pump
    shipper.close()
    return rejected, calls


def retried(times: int):
    """``until`` for ``pump``: true once ``times`` sends came back (partly) as retry."""
    seen = [0]

    def until(r) -> bool:
        seen[0] += bool(r.retry)
        return seen[0] >= times
    return until


def under_fault(siem, fault: dict, n: int) -> tuple:
    """Puts the SIEM under ``fault``; returns ``n`` events to send meanwhile and the
    ``lift`` for ``pump``. Counted faults (``busy_next``, ``reset_next``,
    ``reset_after_store_next``) end by themselves once used up; ``down`` and
    ``es_item_429_pct`` last until the shipper has met them twice; ``slow`` lasts
    the whole pump."""
    fault = dict(fault)
    lift = None
    if fault.pop("down", None):
        siem.down()
        lift = (retried(2), siem.up)
    elif "es_item_429_pct" in fault:
        lift = (retried(2), siem.clear_faults)
    siem.set_faults(**fault)
    return events(n), lift


def hec_ids(server) -> list:
    return [o["event"]["event"]["id"] for o in server.hec_events]


def es_ids(server) -> list:
    return [d["_id"] for d in server.es_docs]


# -- Splunk HEC ---------------------------------------------------------------

def test_hec_clean_roundtrip_in_order_with_metadata(siem):
    evs = events(1500)
    rejected, _ = pump(hec(siem, index="security"), evs)
    assert not rejected
    assert hec_ids(siem) == [e["event"]["id"] for e in evs]
    got = siem.hec_events[7]
    assert got["event"] == evs[7] and got["index"] == "security" and got["host"] == "bastion1"
    assert got["fields"]["session.user"] == "alice" and got["time"] == pytest.approx(1714557607.000007, abs=1e-3)


@pytest.mark.parametrize("fault", [{"busy_next": 4, "retry_after": "0"}, {"reset_next": 3}, {"down": 0.4},
                                   {"slow": 0.05}])
def test_hec_faults_lose_nothing_and_duplicate_nothing(siem, fault):
    evs, lift = under_fault(siem, fault, 1200)
    rejected, calls = pump(hec(siem), evs, lift=lift)
    assert not rejected
    assert hec_ids(siem) == [e["event"]["id"] for e in evs]
    if "slow" not in fault:
        assert calls > 3, "the fault was hit and retried"
    assert siem.counts["busy"] == fault.get("busy_next", 0) and siem.counts["reset"] == fault.get("reset_next", 0)


def test_hec_response_lost_after_store_duplicates_only_that_batch(siem):
    siem.set_faults(reset_after_store_next=1)
    evs = events(600)
    pump(hec(siem), evs)
    counts = collections.Counter(hec_ids(siem))
    assert set(counts) == {e["event"]["id"] for e in evs}
    assert sum(c - 1 for c in counts.values()) <= 200, "at most the request in flight is duplicated"


def test_hec_bad_event_in_a_batch_is_rejected_with_the_server_text(siem):
    class Poisoning(SplunkHecShipper):
        def encode(self, doc, raw=None):
            return b'{"event": ""}' if doc["event"]["id"] == "ev42" else super().encode(doc, raw)
    conf = hec(siem).conf
    rejected, _ = pump(Poisoning("hec", conf), events(100))
    assert rejected == [("ev42", "HEC 400 code 13: Event field cannot be blank")]
    assert hec_ids(siem) == [f"ev{i}" for i in range(100) if i != 42]


def test_hec_wrong_token_retries_until_fixed(siem):
    s = hec(siem, token=Secret("00000000-0000-0000-0000-000000000000"))
    r = s.send(events(5))
    assert r.retry == [0, 1, 2, 3, 4] and "Invalid token" in r.error and "000000000000" not in r.error
    assert not s.health()[0]
    assert hec(siem).health()[0]


def test_hec_acks_roundtrip(siem):
    siem.set_faults(ack_delay=0.05)
    evs = events(1000)
    rejected, _ = pump(hec(siem, token=Secret(HEC_ACK_TOKEN), use_ack=True), evs)
    assert not rejected and hec_ids(siem) == [e["event"]["id"] for e in evs]


def test_hec_lost_acks_resend_after_timeout_and_duplicate_only_those(siem, monkeypatch):
    from shippers import splunk_hec
    monkeypatch.setattr(splunk_hec, "ACK_WAIT", 0.1)
    siem.set_faults(lost_acks=True)
    evs = events(800)
    s = hec(siem, token=Secret(HEC_ACK_TOKEN), use_ack=True, ack_timeout=0.3)
    # Acks are lost until the shipper has given up on one (not for a fixed 0.5 s).
    rejected, _ = pump(s, evs, lift=(lambda r: s.stats["acks_timed_out"] >= 1, siem.clear_faults))
    counts = collections.Counter(hec_ids(siem))
    assert not rejected and set(counts) == {e["event"]["id"] for e in evs}
    dups = [k for k, c in counts.items() if c > 1]
    assert dups and s.stats["acks_timed_out"] >= 1
    # Only events first sent while acks were being lost come twice: the first batch(es).
    first_dup = min(int(k[2:]) for k in dups)
    assert first_dup == 0 and max(counts.values()) <= 4


def test_hec_acks_with_server_down(siem):
    siem.down()
    evs = events(500)
    rejected, calls = pump(hec(siem, token=Secret(HEC_ACK_TOKEN), use_ack=True), evs, lift=(retried(2), siem.up))
    assert not rejected and hec_ids(siem) == [e["event"]["id"] for e in evs] and calls > 2


# -- Elasticsearch -----------------------------------------------------------

def test_es_clean_roundtrip_into_data_streams(siem):
    evs = events(1500)
    rejected, _ = pump(es(siem), evs)
    assert not rejected
    docs = siem.es_docs
    assert [d["_id"] for d in docs] == [e["event"]["id"] for e in evs]
    assert {d["_index"] for d in docs} == {f"logs-{d}-default" for d in DATASETS}
    assert all(d["op"] == "create" for d in docs) and docs[5]["_source"] == evs[5]
    assert es(siem).health() == (True, "Elasticsearch 8.13.4, cluster agentd-test")


@pytest.mark.parametrize("fault", [{"es_item_429_pct": 30}, {"busy_next": 4, "retry_after": "0"},
                                   {"reset_next": 2}, {"reset_after_store_next": 3}, {"down": 0.4}])
def test_es_faults_lose_nothing_and_store_no_duplicate(siem, fault):
    evs, lift = under_fault(siem, fault, 1200)
    rejected, calls = pump(es(siem, api_key=Secret(f"{ES_API_KEY[0]}:{ES_API_KEY[1]}"), username="", password=""), evs,
                           lift=lift)
    assert not rejected and calls > 3, "the fault was hit and retried"
    ids = es_ids(siem)
    assert len(ids) == len(set(ids)) == len(evs)


def test_es_400_items_are_rejected_with_the_reason(siem):
    evs = events(50)
    evs[10]["@timestamp"] = "yesterday"
    del evs[20]["@timestamp"]
    rejected, _ = pump(es(siem), evs)
    assert [r[0] for r in rejected] == ["ev10", "ev20"]
    assert "document_parsing_exception" in rejected[0][1] and "[@timestamp] of type [date]" in rejected[0][1]
    assert "data stream timestamp field [@timestamp] is missing" in rejected[1][1]
    assert len(siem.es_docs) == 48


def test_es_413_splits_and_rejects_the_lone_giant(siem_small):
    evs = events(400)
    evs[123]["message"] = "y" * 100_000
    s = es(siem_small, batch_max_events=400, batch_max_bytes=10 * 1024 * 1024)
    rejected, _ = pump(s, evs)
    assert [r[0] for r in rejected] == ["ev123"] and "413" in rejected[0][1]
    assert len(siem_small.es_docs) == 399 and s.stats["splits"] > 0


def test_es_bad_credentials_retry_with_an_error(siem):
    s = es(siem, password=Secret("wrong-password"))
    r = s.send(events(3))
    assert r.retry == [0, 1, 2] and "401" in r.error and "security_exception" in r.error
    assert "wrong-password" not in r.error
    assert not s.health()[0]


# -- out of process: the server as its own program, faults over HTTP ----------

def refused(url: str):
    """True: connection refused; False: answered; None: broken while going down."""
    try:
        httpx.get(url + "/", timeout=TIMEOUT)
    except httpx.ConnectError:
        return True
    except httpx.TransportError:
        return None
    return False


def until(cond, deadline: float = 20.0) -> bool:
    stop = time.monotonic() + deadline
    while not cond():
        if time.monotonic() >= stop:
            return False
        time.sleep(0.02)
    return True


def test_standalone_server_with_admin_faults():
    proc = subprocess.Popen([sys.executable, "-m", "tests.siem.server", "--port", "0", "--hec-token", HEC_TOKEN],
                            stdout=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline()
        url = line.split(" on ")[1].split()[0]
        admin = httpx.Client(base_url=url)
        assert admin.post("/_siem/faults", json={"busy_next": 2, "retry_after": "0"}).json()["busy_next"] == 2

        class Srv:
            pass
        srv = Srv()
        srv.url = url
        evs = events(300)
        pump(hec(srv), evs)
        got = admin.get("/_siem/accepted").json()
        assert [o["event"]["event"]["id"] for o in got["hec"]] == [e["event"]["id"] for e in evs]
        assert json.loads(admin.get("/_siem/stats").content)["busy"] == 2
        # Over HTTP `down` needs a duration (the admin endpoint goes down too): the
        # test waits for the refusal and then for the comeback instead of sleeping
        # through fixed windows a loaded machine overruns.
        admin.post("/_siem/faults", json={"down": 1.5})
        assert until(lambda: refused(url) is True), "the server never went down"
        assert until(lambda: refused(url) is False), "the server never came back"
        assert httpx.get(url + "/services/collector/health").json()["code"] == 17
    finally:
        proc.terminate()
        proc.wait(5)
