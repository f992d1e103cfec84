"""The Elasticsearch index template (packaging/elasticsearch/) maps what agentd sends with
ECS's types: every ECS field the golden and replayed events carry, and every ECS field it
names at all; agentd's custom objects are mapped too. (The data stream names are checked
against the shipper in test_shipper_es.py.)"""

from __future__ import annotations

import glob
import json
import os

import pytest

from agent.base.events import CUSTOM_OBJECTS
from tests.captures.replay import REPO, replay
from tests.unit import ecs_schema

TEMPLATE = os.path.join(REPO, "packaging", "elasticsearch", "agentd-index-template.json")
# Mapping types that hold what ECS's type holds (nanoseconds are kept, ECS says date).
_SAME = {"date": ("date", "date_nanos")}


@pytest.fixture(scope="module")
def mappings():
    with open(TEMPLATE) as f:
        tpl = json.load(f)
    out: dict = {}

    def walk(props, pre=""):
        for k, v in props.items():
            out[pre + k] = v
            if "properties" in v:
                walk(v["properties"], pre + k + ".")

    walk(tpl["template"]["mappings"]["properties"])
    return out


def _carried(docs) -> set:
    found = set()

    def walk(v, path):
        if isinstance(v, list):
            for item in v:
                walk(item, path)
        elif isinstance(v, dict) and (path not in ecs_schema.FIELDS or ecs_schema._has_children(path)):
            for k, sub in v.items():
                walk(sub, f"{path}.{k}" if path else k)
        elif path in ecs_schema.FIELDS:
            found.add(path)

    for d in docs:
        walk({k: v for k, v in d.items() if k not in CUSTOM_OBJECTS}, "")
    return found


def _type_ok(field: str, mapping: dict) -> bool:
    want = ecs_schema.FIELDS[field][0]
    if want == "object":
        return mapping.get("type", "object") == "object"
    return mapping.get("type") in _SAME.get(want, (want,))


def test_every_ecs_field_the_events_carry_is_mapped_with_its_ecs_type(mappings, tmp_path):
    docs = []
    for path in glob.glob(os.path.join(REPO, "tests", "golden", "*.jsonl")):
        with open(path, "rb") as f:
            docs += [json.loads(line) for line in f if line.strip()]
    docs += replay(tmp_path / "events.jsonl")
    carried = _carried(docs)
    assert {"process.entry_leader.entity_id", "process.parent.command_line", "ecs.version"} <= carried
    missing = sorted(f for f in carried if f not in mappings)
    wrong = sorted(f for f in carried if f in mappings and not _type_ok(f, mappings[f]))
    assert (missing, wrong) == ([], [])


def test_every_ecs_field_the_template_names_has_its_ecs_type(mappings):
    wrong = sorted((f, m.get("type"), ecs_schema.FIELDS[f][0]) for f, m in mappings.items()
                   if f in ecs_schema.FIELDS and not _type_ok(f, m))
    assert wrong == []
    # an object with properties is never also given a leaf type (ES would refuse the template)
    assert [f for f, m in mappings.items() if "properties" in m and m.get("type", "object") != "object"] == []


def test_custom_objects_are_mapped_and_nothing_else_is_invented(mappings):
    top = {f for f in mappings if "." not in f}
    assert CUSTOM_OBJECTS <= top
    assert top - CUSTOM_OBJECTS - ecs_schema.FIELD_SETS == set()
    # what moved out of ECS's field sets (README, "Migration") is mapped where it went
    assert {"agentd.user.audit.name", "agentd.process.tty.name", "agentd.process.args_escaped"} <= set(mappings)
    invented = [f for f, m in mappings.items() if f.split(".")[0] in ecs_schema.FIELD_SETS
                and f not in ecs_schema.FIELDS and "type" in m]
    assert invented == []  # e.g. user.audit.*, which ECS does not define
