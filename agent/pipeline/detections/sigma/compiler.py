"""pySigma's parsed rules -> a compact, JSON-able form (lists of strings and numbers).

Runs in a short-lived child process (``python -m agent.pipeline.detections.sigma.compile_rules``)
so pySigma and its parsed objects (about 17 MB for the SigmaHQ Linux set) never stay in
the agent: the agent reads only this form and builds its evaluators from it
(evaluate.py). The form of a condition:

    ["and", [c...]]  ["or", [c...]]  ["not", c]
    ["field", name, test]  ["null", name]  ["exists", name, bool]  ["kw", test]

and of a value test, on the lower-cased value unless said otherwise:

    ["eq", s]  ["contains", s]  ["startswith", s]  ["endswith", s]
    ["wild", regex, literal] (full match)  ["search", regex, literal] (keyword, anywhere)
    ["re", pattern, flags] (raw value)  ["cidr", network]  ["cmp", op, number]
"""

from __future__ import annotations

import re

from sigma import conditions as c
from sigma import types as t

from agent.pipeline.detections import attack
from agent.pipeline.detections.sigma import fields as F


class Unsupported(Exception):
    """The rule needs something agentd cannot evaluate; the message says what."""


def _longest_literal(s: t.SigmaString) -> str:
    # A substring test in C before the regex: most texts fail it, and a regex of
    # several wildcards can backtrack for long on a long command line.
    return max((p.lower() for p in s.s if isinstance(p, str)), key=len, default="")


def _wildcard_regex(s: t.SigmaString) -> str:
    out = []
    for p in s.s:
        if isinstance(p, str):
            out.append(re.escape(p.lower()))
        elif p is t.SpecialChars.WILDCARD_MULTI:
            out.append(".*?")
        elif p is t.SpecialChars.WILDCARD_SINGLE:
            out.append(".")
        else:
            raise Unsupported(f"placeholder {p} in a value")
    return "".join(out)


def _keyword_test(s: t.SigmaString) -> list:
    """A keyword matches anywhere in the text (full-text search), wildcards inside it as usual."""
    if not s.contains_special():
        return ["contains", s.to_plain().lower()]
    return ["search", _wildcard_regex(s), _longest_literal(s)]


def _string_test(s: t.SigmaString) -> list:
    parts = list(s.s)
    if not s.contains_special():
        return ["eq", s.to_plain().lower()]
    plain = [p for p in parts if isinstance(p, str)]
    stars = [p for p in parts if p is t.SpecialChars.WILDCARD_MULTI]
    if len(plain) == 1 and len(stars) == len(parts) - 1 and len(parts) <= 3:
        body = plain[0].lower()
        starts, ends = parts[0] is t.SpecialChars.WILDCARD_MULTI, parts[-1] is t.SpecialChars.WILDCARD_MULTI
        if starts and ends and len(parts) == 3:
            return ["contains", body]
        if starts and len(parts) == 2:
            return ["endswith", body]
        if ends and len(parts) == 2:
            return ["startswith", body]
    return ["wild", _wildcard_regex(s), _longest_literal(s)]


_CMP = {"LT": "<", "LTE": "<=", "GT": ">", "GTE": ">="}


def _value_test(value) -> list:
    if isinstance(value, t.SigmaString):
        return _string_test(value)
    if isinstance(value, t.SigmaRegularExpression):
        flags = 0
        for fl in getattr(value, "flags", ()) or ():
            flags |= {"IGNORECASE": re.I, "MULTILINE": re.M, "DOTALL": re.S}.get(getattr(fl, "name", ""), 0)
        pattern = value.regexp.to_plain() if hasattr(value.regexp, "to_plain") else str(value.regexp)
        re.compile(pattern, flags)  # a bad pattern is this rule's error, at load
        return ["re", pattern, flags]
    if isinstance(value, t.SigmaCIDRExpression):
        return ["cidr", str(value.network)]
    if isinstance(value, t.SigmaNumber):
        return ["eq", str(value.number)]
    if isinstance(value, t.SigmaBool):
        return ["eq", "true" if value.boolean else "false"]
    if isinstance(value, t.SigmaCompareExpression):
        return ["cmp", _CMP[value.op.name], value.number.number]
    raise Unsupported(f"value type {type(value).__name__} ({value})")


def condition_form(node, fields, keywords_ok: bool) -> list:
    if isinstance(node, c.ConditionAND):
        return ["and", [condition_form(a, fields, keywords_ok) for a in node.args]]
    if isinstance(node, c.ConditionOR):
        return ["or", [condition_form(a, fields, keywords_ok) for a in node.args]]
    if isinstance(node, c.ConditionNOT):
        return ["not", condition_form(node.args[0], fields, keywords_ok)]
    if isinstance(node, c.ConditionFieldEqualsValueExpression):
        field = node.field
        if field not in fields:
            raise Unsupported(f"field {field!r} is not something agentd's events provide")
        value = node.value
        if isinstance(value, t.SigmaNull):
            return ["null", field]
        if isinstance(value, t.SigmaExists):
            return ["exists", field, bool(value.exists)]
        if isinstance(value, t.SigmaFieldReference):
            raise Unsupported("field references (fieldref modifier)")
        return ["field", field, _value_test(value)]
    if isinstance(node, c.ConditionValueExpression):
        if not keywords_ok:
            raise Unsupported("keywords on a log source without raw text")
        if isinstance(node.value, t.SigmaString):
            return ["kw", _keyword_test(node.value)]
        return ["kw", _value_test(node.value)]
    raise Unsupported(f"condition element {type(node).__name__}")


def _fields_used(node, out: set) -> set:
    field = getattr(node, "field", None)
    if field is not None:
        out.add(field)
    for a in getattr(node, "args", None) or ():
        if not isinstance(a, str):
            _fields_used(a, out)
    return out


def _meta(rule) -> dict:
    techniques, tactics, tags = [], [], []
    for tag in rule.tags or ():
        tags.append(f"{tag.namespace}.{tag.name}")
        if tag.namespace != "attack":
            continue
        name = tag.name.lower()
        if name.startswith("t") and name[1:2].isdigit():
            techniques.append(name.upper())
        elif name in attack.TACTICS:
            tactics.append(name)
    return {"id": str(rule.id or rule.title), "name": rule.title, "description": rule.description or "",
            "level": rule.level.name.lower() if rule.level is not None else "medium", "techniques": techniques,
            "tactics": tactics, "reference": (rule.references or [""])[0], "tags": tags, "author": rule.author or ""}


def compile_rule(rule) -> dict:
    """One rule's compact form: {"meta", "source": [category, service], "cond"}."""
    ls = rule.logsource
    if ls.product not in (None, "linux"):
        raise Unsupported(f"log source product {ls.product!r}: agentd reads Linux only")
    if ls.category is not None and ls.category not in F.CATEGORY_FIELDS:
        raise Unsupported(f"log source category {ls.category!r}: agentd has no such events")
    parsed = [cond.parse() for cond in rule.detection.parsed_condition]
    used: set = set()
    for p in parsed:
        _fields_used(p, used)
    for name in used:
        if F.getter(ls.category, ls.service, name) is None:
            raise Unsupported(f"field {name!r} is not something agentd's events provide")
    keywords_ok = ls.category is None
    forms = [condition_form(p, used, keywords_ok) for p in parsed]
    cond = forms[0] if len(forms) == 1 else ["or", forms]
    return {"meta": _meta(rule), "source": [ls.category, ls.service], "cond": cond}


def compile_file(path: str, loader) -> dict:
    """{"path", "rules": [form], "skipped": [(id, title, reason)], "error": reason or None}."""
    import yaml
    from sigma.collection import SigmaCollection
    from sigma.rule import SigmaRule

    out: dict = {"path": path, "rules": [], "skipped": [], "error": None}
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
        # libyaml's loader: pySigma's own (pure Python) made loading 154 rules take seconds.
        collection = SigmaCollection.from_dicts(list(yaml.load_all(text, Loader=loader)))
    except Exception as e:  # pySigma raises many types for bad YAML/rules
        out["error"] = " ".join(str(e).split())[:300] or type(e).__name__
        return out
    for rule in collection.rules:
        if not isinstance(rule, SigmaRule):
            out["skipped"].append((str(getattr(rule, "id", "") or ""), getattr(rule, "title", ""),
                                   f"{type(rule).__name__}: correlation and filter rules are not evaluated"))
            continue
        try:
            out["rules"].append(compile_rule(rule))
        except Unsupported as e:
            out["skipped"].append((str(rule.id or ""), rule.title, str(e)))
        except Exception as e:
            out["skipped"].append((str(rule.id or ""), rule.title, f"cannot compile: {e}"))
    return out

