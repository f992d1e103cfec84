"""ECS conformance: every field of every golden and replayed event under an ECS field set is
an ECS 9.4.0 field with a compatible type (and an allowed value where ECS lists them);
everything else lives under agentd's documented custom objects (CUSTOM_OBJECTS)."""

from __future__ import annotations

import glob
import json
import os

from tests.captures.replay import REPO
from tests.unit import ecs_schema


def _golden() -> list:
    docs = []
    for path in sorted(glob.glob(os.path.join(REPO, "tests", "golden", "*.jsonl"))):
        with open(path, "rb") as f:
            docs += [json.loads(line) for line in f if line.strip()]
    return docs


def _report(docs: list) -> dict:
    found: dict = {}
    for d in docs:
        for field, why in ecs_schema.problems(d):
            found.setdefault((field, why.split(",")[0]), d["event"]["id"])
    return found


def test_the_checker_catches_what_is_not_ecs():
    bad = {"@timestamp": "2026-01-01T00:00:00.000000Z", "ecs": {"version": "9.4.0"},
           "event": {"kind": "evnt", "category": ["process"], "type": ["start"], "sequence": "12"},
           "user": {"audit": {"id": "1000"}}, "process": {"pid": "12", "args": "ls", "tty": {"name": "pts1"},
                                                       "parent": {"pid": 3, "entity_id": "x"}},
           "source": {"ip": "not-an-ip"}, "sessionz": {}, "session": {"anything": 1}}
    fields = {f for f, _ in ecs_schema.problems(bad)}
    assert fields == {"event.kind", "event.sequence", "user.audit.id", "process.pid",
                      "process.tty.name", "source.ip", "sessionz"}


def test_golden_events_are_ecs():
    docs = _golden()
    assert len(docs) > 500
    assert _report(docs) == {}


def test_replayed_events_are_ecs(replayed):
    assert len(replayed) > 800
    assert _report(replayed) == {}


def test_every_event_carries_the_ecs_version(replayed):
    for d in _golden() + replayed:
        assert d.get("ecs", {}).get("version", "").startswith("9."), d["event"]["id"]
