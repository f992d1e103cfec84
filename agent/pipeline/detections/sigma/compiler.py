"""pySigma's parsed condition tree -> one Python closure per rule.

Strings compare case-insensitively (Sigma's default) on lower-cased event values,
computed once per event and field; plain wildcards become startswith/endswith/in
tests, anything else one compiled regular expression. ``anchors`` derives, for a
rule, the literals one of which any match needs (``needs``): the rule set indexes
rules by them so an event meets only the rules that can match it.
"""

from __future__ import annotations

import ipaddress
import re
from typing import Callable, Optional

from sigma import conditions as c
from sigma import types as t


class Unsupported(Exception):
    """The rule needs something agentd cannot evaluate; the message says what."""


class Event:
    """Per-event cache of field values, lower-cased for string comparison."""

    __slots__ = ("doc", "getters", "cache", "text")

    def __init__(self, doc: dict, getters: dict, text: Callable):
        self.doc = doc
        self.getters = getters
        self.cache: dict = {}
        self.text = text

    def values(self, field: Optional[str]) -> list:
        v = self.cache.get(field)
        if v is None:
            if field is None:
                raw = self.text(self.doc)
            else:
                raw = self.getters[field](self.doc)
            items = raw if isinstance(raw, list) else ([] if raw is None else [raw])
            v = self.cache[field] = [(x, str(x).lower()) for x in items]
        return v


def _longest_literal(s: t.SigmaString) -> str:
    # A substring test in C before the regex: most texts fail it, and a regex of
    # several wildcards can backtrack for long on a long command line.
    return max((p.lower() for p in s.s if isinstance(p, str)), key=len, default="")


def _wildcard_regex(s: t.SigmaString) -> re.Pattern:
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
    return re.compile("".join(out), re.S)


def _keyword_test(s: t.SigmaString) -> Callable:
    """A keyword matches anywhere in the text (full-text search), wildcards inside it as usual."""
    if not s.contains_special():
        want = s.to_plain().lower()
        return lambda low: want in low
    rx, need = _wildcard_regex(s), _longest_literal(s)
    return lambda low: need in low and rx.search(low) is not None


def _string_test(s: t.SigmaString) -> Callable:
    parts = list(s.s)
    if not s.contains_special():
        want = s.to_plain().lower()
        return lambda low: low == want
    plain = [p for p in parts if isinstance(p, str)]
    stars = [p for p in parts if p is t.SpecialChars.WILDCARD_MULTI]
    if len(plain) == 1 and len(stars) == len(parts) - 1 and len(parts) <= 3:
        body = plain[0].lower()
        starts, ends = parts[0] is t.SpecialChars.WILDCARD_MULTI, parts[-1] is t.SpecialChars.WILDCARD_MULTI
        if starts and ends and len(parts) == 3:
            return lambda low: body in low
        if starts and len(parts) == 2:
            return lambda low: low.endswith(body)
        if ends and len(parts) == 2:
            return lambda low: low.startswith(body)
    rx, need = _wildcard_regex(s), _longest_literal(s)
    return lambda low: need in low and rx.fullmatch(low) is not None


def _value_test(value) -> tuple:
    """(test on (raw, lower), uses_raw) for one Sigma value."""
    if isinstance(value, t.SigmaString):
        f = _string_test(value)
        return (lambda pair: f(pair[1])), False
    if isinstance(value, t.SigmaRegularExpression):
        flags = 0
        for fl in getattr(value, "flags", ()) or ():
            flags |= {"IGNORECASE": re.I, "MULTILINE": re.M, "DOTALL": re.S}.get(getattr(fl, "name", ""), 0)
        rx = re.compile(value.regexp.to_plain() if hasattr(value.regexp, "to_plain") else str(value.regexp), flags)
        return (lambda pair: rx.search(str(pair[0])) is not None), True
    if isinstance(value, t.SigmaCIDRExpression):
        net = ipaddress.ip_network(str(value.network), strict=False)

        def in_net(pair) -> bool:
            try:
                return ipaddress.ip_address(str(pair[0])) in net
            except ValueError:
                return False
        return in_net, True
    if isinstance(value, t.SigmaNumber):
        want = str(value.number)
        return (lambda pair: pair[1] == want), False
    if isinstance(value, t.SigmaBool):
        want = "true" if value.boolean else "false"
        return (lambda pair: pair[1] == want), False
    if isinstance(value, t.SigmaCompareExpression):
        num, op = value.number.number, value.op

        def cmp(pair) -> bool:
            try:
                x = float(pair[0])
            except (TypeError, ValueError):
                return False
            return {t.SigmaCompareExpression.CompareOperators.LT: x < num,
                    t.SigmaCompareExpression.CompareOperators.LTE: x <= num,
                    t.SigmaCompareExpression.CompareOperators.GT: x > num,
                    t.SigmaCompareExpression.CompareOperators.GTE: x >= num}[op]
        return cmp, True
    raise Unsupported(f"value type {type(value).__name__} ({value})")


def compile_condition(node, fields: dict, keywords_ok: bool) -> Callable:
    """The evaluator ``f(Event) -> bool`` for a parsed condition node."""
    if isinstance(node, c.ConditionAND):
        subs = [compile_condition(a, fields, keywords_ok) for a in node.args]
        return lambda ev: all(s(ev) for s in subs)
    if isinstance(node, c.ConditionOR):
        subs = [compile_condition(a, fields, keywords_ok) for a in node.args]
        return lambda ev: any(s(ev) for s in subs)
    if isinstance(node, c.ConditionNOT):
        sub = compile_condition(node.args[0], fields, keywords_ok)
        return lambda ev: not sub(ev)
    if isinstance(node, c.ConditionFieldEqualsValueExpression):
        field = node.field
        if field not in fields:
            raise Unsupported(f"field {field!r} is not something agentd's events provide")
        value = node.value
        if isinstance(value, t.SigmaNull):
            return lambda ev: not ev.values(field)
        if isinstance(value, t.SigmaExists):
            want = bool(value.exists)
            return lambda ev: bool(ev.values(field)) == want
        if isinstance(value, t.SigmaFieldReference):
            raise Unsupported("field references (fieldref modifier)")
        test, _ = _value_test(value)
        return lambda ev: any(test(p) for p in ev.values(field))
    if isinstance(node, c.ConditionValueExpression):
        if not keywords_ok:
            raise Unsupported("keywords on a log source without raw text")
        if isinstance(node.value, t.SigmaString):
            kw = _keyword_test(node.value)
            return lambda ev: any(kw(p[1]) for p in ev.values(None))
        test, _ = _value_test(node.value)
        return lambda ev: any(test(p) for p in ev.values(None))
    raise Unsupported(f"condition element {type(node).__name__}")


def _best(sets: list) -> Optional[list]:
    # Fewest literals first, then the longest shortest literal: the cheapest, most selective test.
    known = [x for x in sets if x]
    if not known:
        return None
    return min(known, key=lambda x: (len(x), -min(len(lit) for _, lit in x)))


def needs(node) -> Optional[list]:
    """[(field, literal)] one of which every match has in its lower-cased field (None = the
    raw text), or None when no such literal is known. The rule set runs one Aho-Corasick
    pass per field over these, so an event meets only rules one of whose literals it holds."""
    if isinstance(node, c.ConditionAND):
        return _best([needs(a) for a in node.args])
    if isinstance(node, c.ConditionOR):
        out: list = []
        for a in node.args:
            got = needs(a)
            if not got:
                return None
            out += got
        return out
    value = getattr(node, "value", None)
    if isinstance(node, (c.ConditionFieldEqualsValueExpression, c.ConditionValueExpression)) \
            and isinstance(value, t.SigmaString):
        lit = _longest_literal(value)
        if lit:
            return [(getattr(node, "field", None), lit)]
    return None
