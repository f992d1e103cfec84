"""The shipper worker hands the spool's bytes to the shippers that put them on the wire
as they are (splunk_hec, elasticsearch, file): what arrives must be exactly the events
that were spooled, and a rejected event still reaches the dead-letter file whole."""

# ruff: noqa: F811  (pytest fixtures imported from tests.siem.fixtures are used as arguments)
from __future__ import annotations

import json
import threading
import time

from agent.base.deadletter import DeadLetter
from agent.base.events import dumps
from agent.base.options import Secret
from agent.pipeline.shipping import ShipperWorker
from agent.pipeline.spool import Spool
from shippers.file import FileShipper
from tests.integration.test_siem_roundtrip import es, events, hec
from tests.siem.fixtures import HEC_ACK_TOKEN, siem  # noqa: F401


def ship_all(tmp_path, spool: Spool, shippers: dict, deadline: float = 20.0) -> None:
    stop = threading.Event()
    workers = [ShipperWorker(name, sh, spool, DeadLetter(str(tmp_path / f"dl-{name}.jsonl")), stop, batch_max=300)
               for name, sh in shippers.items()]
    for w in workers:
        w.start()
    last = spool.stats([])["last_seq"]
    try:
        end = time.monotonic() + deadline
        while any(spool.cursor(n) < last for n in shippers):
            assert time.monotonic() < end, {n: spool.cursor(n) for n in shippers}
            time.sleep(0.05)
    finally:
        stop.set()
        for w in workers:
            w.join(5)


def test_spooled_bytes_arrive_as_the_events_that_were_spooled(siem, tmp_path):
    evs = events(700)
    evs[3]["process"]["args"] = ["echo", "h\u00e9llo w\u00f6rld \u65e5\u672c", "tab\there", 'quote"d']
    spool = Spool(str(tmp_path / "spool.db"))
    spool.write("test", evs, None)
    out = tmp_path / "events.jsonl"
    file_conf = {k: o.default_value() for k, o in FileShipper.options.items()}
    file_conf.update(path=str(out), fsync=False)
    ship_all(tmp_path, spool, {"hec": hec(siem, index="security"), "es": es(siem), "file": FileShipper("file", file_conf)})
    got = siem.hec_events
    assert [o["event"] for o in got] == evs
    assert got[3]["fields"]["session.user"] == "alice" and got[3]["index"] == "security"
    assert got[3]["host"] == "bastion1" and got[3]["time"] == 1714557603.0
    assert [d["_source"] for d in siem.es_docs] == evs
    assert out.read_bytes() == b"".join(dumps(e) + b"\n" for e in evs)
    spool.close()


def test_an_event_es_rejects_goes_whole_to_the_dead_letter_file(siem, tmp_path):
    evs = events(6)
    evs[4]["process"]["args"] = ["curl", "conflict-me"]
    siem.set_faults(es_mapping_conflict={"field": "process.args", "contains": "conflict-me"})
    spool = Spool(str(tmp_path / "spool.db"))
    spool.write("test", evs, None)
    ship_all(tmp_path, spool, {"es": es(siem)})
    spool.close()
    assert [d["_source"] for d in siem.es_docs] == evs[:4] + evs[5:]
    (line,) = (tmp_path / "dl-es.jsonl").read_text().splitlines()
    assert json.dumps(evs[4], sort_keys=True, separators=(",", ":")) in line or evs[4]["event"]["id"] in line


def test_events_re_sent_after_acks_and_item_429s_are_the_spooled_ones_each_once(siem, tmp_path):
    # The paths where a shipper reads a batch's events more than once or only some of them:
    # HEC with indexer acks (each send reads every event's key, then encodes the ones to
    # post; pending ones come back until their ack turns true) and ES answering 429 for
    # items (the worker re-sends those alone).
    evs = events(700)
    siem.set_faults(ack_delay=0.3, es_item_429_pct=30)
    spool = Spool(str(tmp_path / "spool.db"))
    spool.write("test", evs, None)
    ship_all(tmp_path, spool, {"hec": hec(siem, token=Secret(HEC_ACK_TOKEN), use_ack=True),
                               "es": es(siem)}, deadline=60.0)
    spool.close()
    assert [o["event"] for o in siem.hec_events] == evs, "acked once, never re-sent"
    es_docs = [d["_source"] for d in siem.es_docs]
    assert sorted(es_docs, key=lambda d: d["event"]["id"]) == sorted(evs, key=lambda d: d["event"]["id"])
    assert len(es_docs) == len(evs), "each event stored once"
    assert es_docs != evs, "some items were answered 429 and re-sent after the rest of their batch"
