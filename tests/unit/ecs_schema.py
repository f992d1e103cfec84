"""ECS 9.4.0's field list (tests/unit/data/ecs/, derived from ecs_flat.yml) and a checker:
does a document use ECS field sets only with real ECS fields of a compatible type?"""

from __future__ import annotations

import ipaddress
import os

from agent.base.events import CUSTOM_OBJECTS, parse_rfc3339

HERE = os.path.dirname(os.path.abspath(__file__))
TSV = os.path.join(HERE, "data", "ecs", "ecs_fields.tsv")


def load() -> dict:
    """name -> (type, is_array, allowed values)"""
    out = {}
    with open(TSV, encoding="utf-8") as f:
        for line in f:
            if line.startswith("#"):
                continue
            name, typ, array, allowed = line.rstrip("\n").split("\t")
            out[name] = (typ, array == "array", tuple(allowed.split(",")) if allowed else ())
    return out


FIELDS = load()
FIELD_SETS = {n.split(".", 1)[0] for n in FIELDS}
_OPEN = ("object", "flattened")  # ECS lets anything live below these

_STR = ("keyword", "constant_keyword", "wildcard", "match_only_text", "text")
_INT = ("long", "integer", "short", "byte", "unsigned_long")
_FLOAT = ("float", "double", "scaled_float", "half_float")


def _value_ok(typ: str, v) -> bool:
    if typ in _STR:
        return isinstance(v, str)
    if typ in _INT:
        return isinstance(v, int) and not isinstance(v, bool)
    if typ in _FLOAT:
        return isinstance(v, (int, float)) and not isinstance(v, bool)
    if typ == "boolean":
        return isinstance(v, bool)
    if typ == "date":
        return parse_rfc3339(v) is not None
    if typ == "ip":
        try:
            ipaddress.ip_address(v)
            return True
        except (ValueError, TypeError):
            return False
    if typ in _OPEN or typ == "nested":
        return isinstance(v, dict)
    if typ == "geo_point":
        return isinstance(v, (dict, str, list))
    return False


_PARENTS = {n[:i] for n in FIELDS for i in range(len(n)) if n[i] == "."}


def _has_children(path: str) -> bool:
    """An ECS object with fields listed below it (process.tty) is checked field by field;
    one without (labels) takes any keys."""
    return path in _PARENTS


def problems(doc: dict) -> list:
    """What in doc is not ECS: [(field, reason)]; custom top-level objects are skipped."""
    out: list = []
    for key, v in doc.items():
        if key in CUSTOM_OBJECTS:
            continue
        if key not in FIELD_SETS:
            out.append((key, "neither an ECS field set nor one of agentd's custom objects"))
            continue
        _walk(key, v, out)
    return out


def _walk(path: str, v, out: list) -> None:
    spec = FIELDS.get(path)
    if spec is None:
        if isinstance(v, dict):
            for k, sub in v.items():
                _walk(f"{path}.{k}", sub, out)
        else:
            out.append((path, "not an ECS field"))
        return
    typ, array, allowed = spec
    if typ in _OPEN and (typ == "flattened" or not _has_children(path)):
        if not isinstance(v, dict):
            out.append((path, f"ECS type {typ}, got {type(v).__name__}"))
        return
    values = v if isinstance(v, list) else [v]
    if isinstance(v, list) and not array and typ != "nested":
        out.append((path, "a list where ECS has a single value"))
    for item in values:
        if typ == "nested" or (typ == "object" and isinstance(item, dict)):
            for k, sub in item.items():
                _walk(f"{path}.{k}", sub, out)
        elif not _value_ok(typ, item):
            out.append((path, f"ECS type {typ}, got {type(item).__name__} {item!r:.40}"))
        elif allowed and item not in allowed:
            out.append((path, f"{item!r} is not one of ECS's allowed values"))
