"""elasticsearch shipper against httpx.MockTransport: request shape and every class of answer."""

from __future__ import annotations

import base64
import gzip
import json
import logging

import httpx
import pytest

from agent.base.options import Secret
from shippers.elasticsearch import ElasticsearchShipper, dataset_name

PASSWORD = "pw-not-in-logs"


def events(n: int, dataset: str = "auditd.process") -> list:
    return [{"@timestamp": "2024-05-01T10:00:00.000001Z", "event": {"id": f"ev{i}", "dataset": dataset},
             "message": f"m{i}"} for i in range(n)]


def conf(**kw) -> dict:
    c = {k: o.default_value() for k, o in ElasticsearchShipper.options.items()}
    c.update(url="https://es.example:9200", username="agentd", password=Secret(PASSWORD))
    c.update(kw)
    return c


def bulk_lines(request: httpx.Request) -> list:
    body = request.content
    if request.headers.get("Content-Encoding") == "gzip":
        body = gzip.decompress(body)
    assert body.endswith(b"\n")
    return [json.loads(x) for x in body.split(b"\n")[:-1]]


def item(status: int, etype: str = "", reason: str = "", op: str = "create") -> dict:
    res = {"_index": ".ds-logs-x-default-2024.05.01-000001", "_id": "x", "status": status}
    if etype:
        res["error"] = {"type": etype, "reason": reason}
    return {op: res}


def bulk_answer(statuses):
    """A _bulk answer whose i-th item has statuses[i] (or what a callable returns for the doc)."""
    def handler(request):
        lines = bulk_lines(request)
        docs = lines[1::2]
        items = []
        for i, d in enumerate(docs):
            st = statuses(d) if callable(statuses) else statuses[i]
            items.append(item(st, *(() if st < 300 else {
                409: ("version_conflict_engine_exception", "document already exists"),
                429: ("es_rejected_execution_exception", "rejected execution"),
                400: ("document_parsing_exception", "failed to parse field [@timestamp] of type [date]"),
                503: ("unavailable_shards_exception", "primary shard is not active"),
            }[st])))
        return httpx.Response(200, json={"errors": True, "took": 1, "items": items},
                              headers={"X-Elastic-Product": "Elasticsearch"})
    return handler


def ship(handler, **kw) -> ElasticsearchShipper:
    return ElasticsearchShipper("es", conf(**kw), transport=httpx.MockTransport(handler))


def test_wire_format_create_into_data_stream_with_event_id():
    seen = []

    def handler(request):
        seen.append(request)
        return bulk_answer(lambda d: 201)(request)
    r = ship(handler).send(events(2) + events(1, dataset="sshd.auth"))
    assert r.delivered == [0, 1, 2]
    req = seen[0]
    assert req.url.path == "/_bulk" and req.headers["Content-Type"] == "application/x-ndjson"
    assert req.headers["Content-Encoding"] == "gzip"
    assert req.headers["Authorization"] == "Basic " + base64.b64encode(f"agentd:{PASSWORD}".encode()).decode()
    lines = bulk_lines(req)
    assert lines[0] == {"create": {"_index": "logs-auditd.process-default", "_id": "ev0"}}
    assert lines[4] == {"create": {"_index": "logs-sshd.auth-default", "_id": "ev0"}}
    assert lines[1]["message"] == "m0"


def test_api_key_header_both_forms():
    enc = base64.b64encode(b"id1:key1").decode()
    for value in (enc, "id1:key1"):
        s = ship(bulk_answer(lambda d: 201), username="", password="", api_key=Secret(value))
        assert s.client.headers["Authorization"] == f"ApiKey {enc}"


def test_dataset_names_are_made_data_stream_safe():
    assert dataset_name("sshd.auth") == "sshd.auth"
    assert dataset_name("My-Set X") == "my_set_x"
    assert dataset_name(None) == "agentd.generic"
    s = ship(bulk_answer(lambda d: 201), data_stream_namespace="prod", data_stream_pattern="logs-{dataset}.x-{namespace}")
    assert s.index_for({"event": {"dataset": "a-b"}}) == "logs-a_b.x-prod"


def test_namespace_and_pattern_options_are_validated():
    opts = ElasticsearchShipper.options
    with pytest.raises(ValueError):
        opts["data_stream_namespace"].parse("bad-ns")
    with pytest.raises(ValueError):
        opts["data_stream_pattern"].parse("logs-{nope}")
    assert ElasticsearchShipper.validate_conf(conf(api_key="k"))  # both auth methods at once


def test_per_item_outcomes():
    r = ship(bulk_answer([201, 409, 429, 503, 400, 200])).send(events(6))
    assert r.delivered == [0, 1, 5]
    assert r.retry == [2, 3]
    assert r.rejected == [(4, "Elasticsearch 400: document_parsing_exception: failed to parse field "
                              "[@timestamp] of type [date]")]
    assert "429" in r.error


def test_fewer_items_than_sent_are_retried():
    def handler(request):
        return httpx.Response(200, json={"errors": False, "items": [item(201)]})
    r = ship(handler).send(events(3))
    assert r.delivered == [0] and r.retry == [1, 2]


def test_unreadable_200_is_retried():
    r = ship(lambda req: httpx.Response(200, text="<html>proxy</html>")).send(events(2))
    assert r.retry == [0, 1] and "unreadable" in r.error


def test_413_halves_until_it_fits_and_rejects_a_lone_giant():
    sizes = []

    def handler(request):
        n = len(bulk_lines(request)) // 2
        sizes.append(n)
        giant = any(d.get("message") == "m5" for d in bulk_lines(request)[1::2])
        if n > 2 or giant:
            return httpx.Response(413)
        return bulk_answer(lambda d: 201)(request)
    s = ship(handler)
    r = s.send(events(8))
    assert sorted(r.delivered) == [0, 1, 2, 3, 4, 6, 7]
    assert [i for i, _ in r.rejected] == [5] and "413" in r.rejected[0][1]
    assert sizes[0] == 8 and s.stats["splits"] >= 3


@pytest.mark.parametrize("status,body", [
    (429, {"error": {"type": "es_rejected_execution_exception", "reason": "rejected"}, "status": 429}),
    (401, {"error": {"type": "security_exception", "reason": "unable to authenticate user [agentd]"}, "status": 401}),
    (403, {"error": {"type": "security_exception", "reason": "action [indices:data/write/bulk] is unauthorized"}}),
    (500, {"error": {"type": "exception", "reason": "boom"}}),
    (503, {}),
    (404, {"error": "no handler found"}),
])
def test_whole_request_failures_retry_with_retry_after(status, body, caplog):
    calls = []

    def handler(request):
        calls.append(1)
        return httpx.Response(status, json=body, headers={"Retry-After": "3"})
    s = ship(handler, batch_max_events=2)
    with caplog.at_level(logging.INFO, logger="agentd.ship"):
        r1 = s.send(events(4))
        r2 = s.send(events(4))
    for r in (r1, r2):
        assert r.retry == [0, 1, 2, 3] and not r.delivered and r.retry_after == 3.0 and str(status) in r.error
    assert len(calls) == 2, "one request per send: the rest of the batch is not tried"
    assert len([x for x in caplog.records if x.levelno == logging.ERROR]) == 1
    assert PASSWORD not in caplog.text and PASSWORD not in r1.error


def test_whole_request_400_isolates_the_bad_event():
    def handler(request):
        if any(d.get("message") == "m2" for d in bulk_lines(request)[1::2]):
            return httpx.Response(400, json={"error": {"type": "x_content_parse_exception", "reason": "bad"}})
        return bulk_answer(lambda d: 201)(request)
    r = ship(handler).send(events(4))
    assert sorted(r.delivered) == [0, 1, 3] and r.rejected == [(2, "Elasticsearch 400: x_content_parse_exception: bad")]


@pytest.mark.parametrize("exc", [httpx.ConnectError("refused"), httpx.WriteTimeout("t"), httpx.ReadError("reset")])
def test_transport_errors_retry(exc):
    def handler(request):
        raise exc
    r = ship(handler, gzip=False).send(events(2))
    assert r.retry == [0, 1] and r.error.startswith("Elasticsearch")


def test_health_wants_the_product_header():
    info = {"cluster_name": "c1", "version": {"number": "8.13.4"}}
    ok, msg = ship(lambda r: httpx.Response(200, json=info, headers={"X-Elastic-Product": "Elasticsearch"})).health()
    assert ok and "8.13.4" in msg
    ok, msg = ship(lambda r: httpx.Response(200, json=info)).health()
    assert not ok and "X-Elastic-Product" in msg
    ok, msg = ship(lambda r: httpx.Response(401, json={"error": {"type": "security_exception", "reason": "nope"}})).health()
    assert not ok and "security_exception" in msg


def test_index_template_matches_the_default_data_stream_names():
    import fnmatch
    import os
    path = os.path.join(os.path.dirname(__file__), "..", "..", "packaging", "elasticsearch",
                        "agentd-index-template.json")
    with open(path) as f:
        tpl = json.load(f)
    assert tpl["data_stream"] == {} and tpl["priority"] > 100
    s = ship(bulk_answer(lambda d: 201))
    for ds in ("auditd.process", "auditd.tty", "sshd.auth", "sshd.sftp", "agentd.session", "agentd.gap",
               "sudo.command", "su.session", "psutil.network"):
        name = s.index_for({"event": {"dataset": ds}})
        assert any(fnmatch.fnmatchcase(name, p) for p in tpl["index_patterns"]), name
    props = tpl["template"]["mappings"]["properties"]
    for obj in ("session", "keystrokes", "transfer", "agentd"):
        assert obj in props
