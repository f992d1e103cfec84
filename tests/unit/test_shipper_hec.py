"""splunk_hec shipper against httpx.MockTransport: one test per class of HEC answer."""

from __future__ import annotations

import gzip
import json
import logging

import httpx
import pytest

from agent.base.config import parse_config_text
from agent.base.options import Secret
from shippers import splunk_hec
from shippers.splunk_hec import SplunkHecShipper, epoch

TOKEN = "deadbeef-0000-1111-2222-333344445555"


def events(n: int, start: int = 0) -> list:
    return [{"@timestamp": f"2024-05-01T10:00:{i % 60:02d}.123456Z",
             "event": {"id": f"ev{i}", "dataset": "auditd.process", "action": "executed"},
             "host": {"name": "bastion1"}, "session": {"user": "alice", "id": "h:b:7"},
             "process": {"args": ["ls", "-la"]}} for i in range(start, start + n)]


def conf(**kw) -> dict:
    c = {k: o.default_value() for k, o in SplunkHecShipper.options.items()}
    c.update(url="https://splunk.example:8088", token=Secret(TOKEN))
    c.update(kw)
    return c


class Fake:
    """A scripted HEC: ``answers`` are popped per event POST (the last one repeats)."""

    def __init__(self, *answers, acks=None):
        self.answers = list(answers) or [(200, {"text": "Success", "code": 0})]
        self.acks = acks if acks is not None else {}
        self.posts: list = []  # decoded HEC objects per event POST
        self.requests: list = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        if request.url.path.endswith("/ack"):
            ids = json.loads(request.content)["acks"]
            return httpx.Response(200, json={"acks": {str(i): self.acks.get(i, False) for i in ids}})
        if request.url.path.endswith("/health"):
            return httpx.Response(200, json={"text": "HEC is healthy", "code": 17})
        body = request.content
        if request.headers.get("Content-Encoding") == "gzip":
            body = gzip.decompress(body)
        dec, pos, objs, text = json.JSONDecoder(), 0, [], body.decode()
        while pos < len(text.strip()):
            obj, pos = dec.raw_decode(text, pos)
            objs.append(obj)
            while pos < len(text) and text[pos] in " \n":
                pos += 1
        self.posts.append(objs)
        answer = self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]
        if isinstance(answer, Exception):
            raise answer
        status, js, *headers = answer
        return httpx.Response(status, json=js, headers=headers[0] if headers else None)


def ship(fake, **kw) -> SplunkHecShipper:
    return SplunkHecShipper("hec", conf(**kw), transport=httpx.MockTransport(fake))


def test_wire_format_one_hec_object_per_event_gzip_and_auth():
    fake = Fake()
    r = ship(fake, index="security", indexed_fields=["event.dataset", "session.user", "process.args"]).send(events(2))
    assert r.delivered == [0, 1] and not r.retry and not r.rejected
    req = fake.requests[0]
    assert req.url.path == "/services/collector/event"
    assert req.headers["Authorization"] == f"Splunk {TOKEN}"
    assert req.headers["Content-Encoding"] == "gzip"
    assert "X-Splunk-Request-Channel" not in req.headers
    obj = fake.posts[0][0]
    assert obj["time"] == 1714557600.123 and obj["host"] == "bastion1"
    assert obj["source"] == "agentd" and obj["sourcetype"] == "agentd:ecs" and obj["index"] == "security"
    assert obj["event"]["event"]["id"] == "ev0"
    assert obj["fields"] == {"event.dataset": "auditd.process", "session.user": "alice", "process.args": ["ls", "-la"]}


def test_url_with_collector_path_and_no_gzip():
    fake = Fake()
    ship(fake, url="https://splunk:8088/services/collector/event", gzip=False, index="").send(events(1))
    req = fake.requests[0]
    assert req.url.path == "/services/collector/event" and "Content-Encoding" not in req.headers
    assert "index" not in fake.posts[0][0]


def test_gzip_level_trades_cpu_for_bytes_and_the_events_stay_the_same():
    sizes = {}
    for level in (1, 9):
        fake = Fake()
        evs = events(200)
        ship(fake, gzip_level=level).send(evs)
        sizes[level] = len(fake.requests[0].content)
        assert [o["event"] for o in fake.posts[0]] == evs
    assert sizes[9] < sizes[1]
    for bad in ("0", "10"):
        with pytest.raises(Exception, match="gzip_level"):
            parse_config_text("[agent]\nstate_dir = /tmp/agentd-test\n\n[collector:audit]\ntype = auditd\n\n"
                              "[shipper:hec]\ntype = splunk_hec\nurl = https://s:8088\ntoken = t\n"
                              f"gzip_level = {bad}\n", "agentd.conf")


def test_epoch_parses_offsets_and_rounds_to_ms():
    assert epoch("1970-01-01T00:00:01.123456Z") == 1.123
    assert epoch("1970-01-01T01:00:00+01:00") == 0.0
    assert epoch("garbage") is None and epoch(None) is None


def test_sub_batches_by_events_and_bytes():
    fake = Fake()
    r = ship(fake, batch_max_events=3).send(events(10))
    assert [len(p) for p in fake.posts] == [3, 3, 3, 1] and r.delivered == list(range(10))
    fake = Fake()
    one = len(SplunkHecShipper("x", conf()).encode(events(1)[0]))
    ship(fake, batch_max_bytes=one * 2 + 10).send(events(5))
    assert [len(p) for p in fake.posts] == [2, 2, 1]


@pytest.mark.parametrize("code,text", [(6, "Invalid data format"), (12, "Event field is required"),
                                       (13, "Event field cannot be blank"), (15, "Error in handling indexed fields")])
def test_invalid_event_number_delivers_before_rejects_n_resends_rest(code, text):
    fake = Fake((400, {"text": text, "code": code, "invalid-event-number": 2}), (200, {"text": "Success", "code": 0}))
    r = ship(fake).send(events(5))
    assert sorted(r.delivered) == [0, 1, 3, 4] and not r.retry
    assert r.rejected == [(2, f"HEC 400 code {code}: {text}")]
    assert [o["event"]["event"]["id"] for o in fake.posts[1]] == ["ev3", "ev4"]


def test_400_without_event_number_is_bisected_to_the_bad_event():
    def answer(request):
        objs = gzip.decompress(request.content).decode().split("\n")
        if any('"ev3"' in o for o in objs):
            return httpx.Response(400, json={"text": "Invalid data format", "code": 6})
        return httpx.Response(200, json={"text": "Success", "code": 0})
    s = SplunkHecShipper("hec", conf(), transport=httpx.MockTransport(answer))
    r = s.send(events(8))
    assert sorted(r.delivered) == [0, 1, 2, 4, 5, 6, 7] and [i for i, _ in r.rejected] == [3]


def test_413_splits_and_a_single_event_too_large_is_rejected():
    def answer(request):
        n = len(gzip.decompress(request.content).split(b"\n"))
        return httpx.Response(413, text="Content-Length too large") if n > 2 else \
            httpx.Response(200, json={"text": "Success", "code": 0})
    r = SplunkHecShipper("hec", conf(), transport=httpx.MockTransport(answer)).send(events(8))
    assert sorted(r.delivered) == list(range(8))
    fake = Fake((413, {"text": "too large", "code": 413}))
    r = ship(fake).send(events(1))
    assert r.rejected and r.rejected[0][0] == 0 and not r.retry


@pytest.mark.parametrize("status,body", [(503, {"text": "Server is busy", "code": 9}), (429, {"text": "slow down"}),
                                         (500, {"text": "Internal server error", "code": 8}), (502, {})])
def test_busy_and_server_errors_retry_everything_and_stop(status, body):
    fake = Fake((status, body, {"Retry-After": "7"}))
    r = ship(fake, batch_max_events=2).send(events(6))
    assert sorted(r.retry) == list(range(6)) and not r.delivered and r.retry_after == 7.0
    assert len(fake.posts) == 1, "no further sub-batch is sent to a server that just failed"
    assert str(status) in r.error


@pytest.mark.parametrize("status,code,text", [(401, 2, "Token is required"), (403, 4, "Invalid token"),
                                              (403, 1, "Token disabled"), (400, 10, "Data channel is missing"),
                                              (400, 14, "ACK is disabled")])
def test_misconfiguration_retries_with_an_error_and_never_drops(status, code, text, caplog):
    fake = Fake((status, {"text": text, "code": code}))
    s = ship(fake)
    with caplog.at_level(logging.INFO, logger="agentd.ship"):
        for _ in range(3):
            r = s.send(events(3))
            assert r.retry == [0, 1, 2] and not r.rejected and text in r.error
    assert TOKEN not in r.error and TOKEN not in caplog.text
    assert len([rec for rec in caplog.records if rec.levelno == logging.ERROR]) == 1, "one ERROR per condition"


def test_incorrect_index_delivers_before_n_and_retries_the_rest():
    fake = Fake((400, {"text": "Incorrect index", "code": 7, "invalid-event-number": 1}))
    r = ship(fake).send(events(3))
    assert r.delivered == [0] and r.retry == [1, 2] and "index" in r.error


@pytest.mark.parametrize("exc", [httpx.ConnectError("refused"), httpx.ReadTimeout("slow"),
                                 httpx.RemoteProtocolError("Server disconnected without sending a response.")])
def test_transport_errors_retry(exc):
    r = ship(Fake(exc), batch_max_events=2).send(events(4))
    assert sorted(r.retry) == [0, 1, 2, 3] and r.error.startswith("HEC ")


def test_recovery_logs_info_after_error(caplog):
    fake = Fake((503, {"text": "Server is busy", "code": 9}), (503, {"text": "Server is busy", "code": 9}),
                (200, {"text": "Success", "code": 0}))
    s = ship(fake)
    with caplog.at_level(logging.INFO, logger="agentd.ship"):
        s.send(events(1))
        s.send(events(1))
        assert s.send(events(1)).delivered == [0]
    levels = [r.levelname for r in caplog.records]
    assert levels == ["ERROR", "INFO"]


# -- indexer acknowledgement --------------------------------------------------

def test_acks_delivered_once_ack_is_true_with_channel_header():
    fake = Fake((200, {"text": "Success", "code": 0, "ackId": 0}), acks={0: True})
    s = ship(fake, use_ack=True, channel="0b8f3a5e-6f0c-4f7e-9d5e-2a1b3c4d5e6f")
    r = s.send(events(3))
    assert r.delivered == [0, 1, 2] and not r.retry
    assert fake.requests[0].headers["X-Splunk-Request-Channel"] == "0b8f3a5e-6f0c-4f7e-9d5e-2a1b3c4d5e6f"
    ack_req = [q for q in fake.requests if q.url.path.endswith("/ack")][0]
    assert json.loads(ack_req.content) == {"acks": [0]}


def test_pending_acks_survive_between_sends_without_resending(monkeypatch):
    monkeypatch.setattr(splunk_hec, "ACK_WAIT", 0.05)
    fake = Fake((200, {"text": "Success", "code": 0, "ackId": 5}), acks={})
    s = ship(fake, use_ack=True, ack_timeout=60.0)
    r = s.send(events(3))
    assert r.retry == [0, 1, 2] and not r.delivered and "acknowledgement" in r.error and r.retry_after
    r = s.send(events(3))
    assert r.retry == [0, 1, 2] and len(fake.posts) == 1, "pending events are not re-sent before ack_timeout"
    fake.acks[5] = True
    r = s.send(events(3))
    assert r.delivered == [0, 1, 2] and len(fake.posts) == 1


def test_lost_ack_resends_after_ack_timeout(monkeypatch):
    monkeypatch.setattr(splunk_hec, "ACK_WAIT", 0.05)
    answers = [(200, {"text": "Success", "code": 0, "ackId": 0}), (200, {"text": "Success", "code": 0, "ackId": 1})]
    fake = Fake(*answers, acks={})
    s = ship(fake, use_ack=True, ack_timeout=0.1)
    assert s.send(events(2)).retry == [0, 1]
    import time
    time.sleep(0.15)
    fake.acks[1] = True
    r = s.send(events(2))
    assert r.delivered == [0, 1] and len(fake.posts) == 2 and s.stats["acks_timed_out"] == 1


def test_use_ack_on_a_token_without_acks_counts_200_as_delivered():
    r = ship(Fake(), use_ack=True).send(events(2))
    assert r.delivered == [0, 1]


def test_default_channel_is_a_stable_guid():
    class Ctx:
        class host:
            id = "0123456789abcdef"
    a = SplunkHecShipper("hec", conf(use_ack=True), Ctx(), transport=httpx.MockTransport(Fake()))
    b = SplunkHecShipper("hec", conf(use_ack=True), Ctx(), transport=httpx.MockTransport(Fake()))
    assert a.channel == b.channel and splunk_hec._GUID.match(a.channel)


# -- health and config --------------------------------------------------------

def test_health_checks_endpoint_and_token():
    def good(req):
        if req.url.path.endswith("/health"):
            return httpx.Response(200, json={"text": "HEC is healthy", "code": 17})
        return httpx.Response(400, json={"text": "No data", "code": 5})
    ok, msg = SplunkHecShipper("h", conf(), transport=httpx.MockTransport(good)).health()
    assert ok, msg

    def bad(req):
        if req.url.path.endswith("/health"):
            return httpx.Response(200, json={"text": "HEC is healthy", "code": 17})
        return httpx.Response(403, json={"text": "Invalid token", "code": 4})
    ok, msg = SplunkHecShipper("h", conf(), transport=httpx.MockTransport(bad)).health()
    assert not ok and "Invalid token" in msg and TOKEN not in msg


def test_config_section_with_token_file(tmp_path):
    tok = tmp_path / "hec.token"
    tok.write_text(TOKEN + "\n")
    text = f"""[agent]\nstate_dir = /tmp/agentd-test\n\n[collector:audit]\ntype = auditd\n\n[shipper:splunk]\ntype = splunk_hec\nurl = https://s:8088\ntoken_file = {tok}\nuse_ack = true\nchannel = not-a-guid\n"""
    with pytest.raises(Exception) as ei:
        parse_config_text(text, "agentd.conf")
    assert "channel" in str(ei.value) and TOKEN not in str(ei.value)
    cfg = parse_config_text(text.replace("channel = not-a-guid\n", ""), "agentd.conf")
    sh = cfg.shippers[0].build()
    assert sh.client.headers["Authorization"] == f"Splunk {TOKEN}" and TOKEN not in repr(cfg.shippers[0].conf)


# -- shippers.http helpers ---------------------------------------------------

def test_retry_after_seconds_http_date_and_garbage():
    from shippers.http import parse_retry_after
    assert parse_retry_after("12") == 12.0
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:10 GMT", now=1445412480.0) == 10.0
    assert parse_retry_after("soon") is None and parse_retry_after(None) is None
    assert parse_retry_after("999999") == 3600.0 and parse_retry_after("-5") == 0.0


def test_chunks_keep_order_and_let_a_giant_travel_alone():
    from shippers.http import chunks
    assert chunks([10, 10, 100, 10], 10, 25) == [[0, 1], [2], [3]]
    assert chunks([1] * 5, 2, 1000) == [[0, 1], [2, 3], [4]]
