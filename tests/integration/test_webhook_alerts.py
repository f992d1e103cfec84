"""The webhook shipper behind the real shipper worker and spool, against a loopback
receiver: a shipper limited to alerts gets only alerts, each once and in order,
through a 503 outage; a 4xx is dead-lettered with the answer; the Slack form is one
line of text; the filter option is validated and documented like any option."""

from __future__ import annotations

import json
import threading
import time

from agent.base.config import parse_config_text
from agent.base.deadletter import DeadLetter
from agent.base.events import Event, HostInfo, base_doc, make_event_id
from agent.pipeline.shipping import ShipperWorker, event_filter
from agent.pipeline.spool import Spool
from shippers.webhook import WebhookShipper
from tests.siem.webhook import WebhookServer

HOST = HostInfo("bastion", "hid")


def doc(i: int, kind: str = "event", dataset: str = "auditd.process") -> dict:
    d = base_doc(host=HOST, timestamp=1_800_000_000 + i, event_id=make_event_id("w", i), module="x",
                 dataset=dataset, kind=kind)
    if kind == "alert":
        d["rule"] = {"id": f"r{i}", "name": "SSH brute force"}
        d["message"] = f"SSH brute force: alert {i}"
        d["session"] = {"id": "hid:b:7", "user": "alice", "source": {"ip": "203.0.113.9"}}
        d["threat"] = {"technique": {"id": ["T1110"]}}
        d["agentd"] = {"alert": {"severity": "high"}}
    return d


def ship(tmp_path, conf: dict, docs: list, until) -> tuple:
    spool = Spool(str(tmp_path / "spool.db"))
    spool.write("c", [Event(d) for d in docs], None)
    stop = threading.Event()
    shipper = WebhookShipper("hook", conf)
    dl = DeadLetter(str(tmp_path / "dead.jsonl"))
    w = ShipperWorker("hook", shipper, spool, dl, stop, max_backoff=0.2)
    w.start()
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and not until():
        time.sleep(0.05)
    stop.set()
    w.join(5)
    spool.close()
    return w, tmp_path / "dead.jsonl"


def conf(url: str, **kw) -> dict:
    base = {k: o.default_value() for k, o in WebhookShipper.options.items()}
    base.update(url=url, events=[], **kw)
    return base


def test_alerts_only_each_once_in_order_through_an_outage(tmp_path):
    docs = [doc(i, "alert" if i % 3 == 0 else "event") for i in range(12)]
    want = [d["event"]["id"] for d in docs if d["event"]["kind"] == "alert"]
    with WebhookServer() as srv:
        srv.answer(503, 503)
        w, _ = ship(tmp_path, conf(srv.url), docs, lambda: len(srv.received) >= len(want))
        got = [body["event"]["id"] for _, _, body in srv.received]
        assert got == want
        assert len(srv.refused) == 2 and w.stats["retries"] >= 1


def test_a_4xx_is_dead_lettered_and_the_rest_goes_on(tmp_path):
    docs = [doc(0, "alert"), doc(3, "alert")]
    with WebhookServer() as srv:
        srv.answer(400)
        _, dead = ship(tmp_path, conf(srv.url), docs, lambda: len(srv.received) >= 1)
        assert [b["event"]["id"] for _, _, b in srv.received] == [docs[1]["event"]["id"]]
        [line] = dead.read_text().splitlines()
        assert "HTTP 400" in json.loads(line)["reason"]


def test_slack_form_and_bearer_token(tmp_path):
    with WebhookServer() as srv:
        ship(tmp_path, conf(srv.url, format="slack", token="s3cret"), [doc(0, "alert")],
             lambda: len(srv.received) >= 1)
        [(_, headers, body)] = srv.received
        assert set(body) == {"text"}
        assert "HIGH SSH brute force on bastion" in body["text"] and "alice from 203.0.113.9" in body["text"]
        assert "T1110" in body["text"]
        assert headers["Authorization"] == "Bearer s3cret"


def test_events_option_is_generic_and_validated():
    f = event_filter(["alerts", "sshd.*"])
    assert f(doc(1, "alert")) and f(doc(2, dataset="sshd.auth")) and not f(doc(3))
    assert event_filter([]) is None and event_filter(["all"]) is None
    assert event_filter([], ("alerts",))(doc(1, "alert")) and not event_filter([], ("alerts",))(doc(2))
    cfg = parse_config_text("[collector:a]\ntype = auditd\n[shipper:f]\ntype = file\npath = /tmp/x\n"
                            "events = alerts, sudo.*\n[shipper:h]\ntype = webhook\nurl = http://127.0.0.1:9/h\n",
                            "/etc/agentd/agentd.conf")
    assert cfg.shippers[0].conf["events"] == ["alerts", "sudo.*"]
    assert cfg.shippers[1].conf["events"] == []
