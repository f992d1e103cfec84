"""Compact Sigma conditions (compiler.py's form) -> one evaluator per rule, without pySigma.

Strings compare case-insensitively (Sigma's default) on lower-cased event values,
computed once per event and field. The values of one field under one modifier
(``Image|endswith: [a, b, c]``, an OR of three tests to pySigma) become one test: a
set lookup, one ``endswith``/``startswith`` with a tuple, or one alternation regex, so
a rule of forty values costs about what a rule of one does. ``needs`` derives the
literals one of which any match holds: the rule set indexes rules by them.
"""

from __future__ import annotations

import ipaddress
import operator
import re
from typing import Callable, Optional

from agent.pipeline.detections import literals


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
            raw = self.text(self.doc) if field is None else self.getters[field](self.doc)
            if isinstance(raw, list):
                v = [(x, str(x).lower()) for x in raw]
            else:
                v = [] if raw is None else [(raw, str(raw).lower())]
            self.cache[field] = v
        return v


_CMP = {"<": operator.lt, "<=": operator.le, ">": operator.gt, ">=": operator.ge}
_MERGEABLE = ("eq", "contains", "startswith", "endswith")


def _on_lower(test: list) -> tuple:
    """(f(lower string) -> bool) or (None, f((raw, lower)) -> bool) for one value test."""
    op = test[0]
    if op == "eq":
        want = test[1]
        return (lambda low: low == want), None
    if op == "contains":
        want = test[1]
        return (lambda low: want in low), None
    if op == "startswith":
        want = test[1]
        return (lambda low: low.startswith(want)), None
    if op == "endswith":
        want = test[1]
        return (lambda low: low.endswith(want)), None
    if op in ("wild", "search"):
        rx, need = re.compile(test[1], re.S), test[2]
        m = rx.fullmatch if op == "wild" else rx.search
        return (lambda low: need in low and m(low) is not None), None
    if op == "re":
        rx = re.compile(test[1], test[2])
        return None, (lambda pair: rx.search(str(pair[0])) is not None)
    if op == "cidr":
        net = ipaddress.ip_network(test[1], strict=False)

        def in_net(pair) -> bool:
            try:
                return ipaddress.ip_address(str(pair[0])) in net
            except ValueError:
                return False
        return None, in_net
    if op == "cmp":
        fn, num = _CMP[test[1]], test[2]

        def cmp(pair) -> bool:
            try:
                return fn(float(pair[0]), num)
            except (TypeError, ValueError):
                return False
        return None, cmp
    raise ValueError(f"unknown value test {op!r}")


def _merged(op: str, wants: list) -> Callable:
    """One test on a lower-cased string for several values under one modifier."""
    if len(wants) == 1:
        return _on_lower([op, wants[0]])[0]
    if op == "eq":
        s = frozenset(wants)
        return s.__contains__
    if op == "startswith":
        tup = tuple(wants)
        return lambda low: low.startswith(tup)
    if op == "endswith":
        tup = tuple(wants)
        return lambda low: low.endswith(tup)
    search = re.compile("|".join(re.escape(w) for w in sorted(wants, key=len, reverse=True)), re.S).search
    return lambda low: search(low) is not None


# The evaluators loop instead of calling any()/all() on a generator: the generator's frame
# and its StopIteration cost more than the tests (a rule of two tests on an event: 29 k -> 15 k
# instructions).


def _field_test(field: Optional[str], test: list) -> Callable:
    on_low, on_pair = _on_lower(test)
    if on_low is not None:
        return _values_test(field, [on_low])

    def pair_test(ev) -> bool:
        for p in ev.values(field):
            if on_pair(p):
                return True
        return False
    return pair_test


def _values_test(field: Optional[str], low_tests: list) -> Callable:
    if len(low_tests) == 1:
        f = low_tests[0]

        def one(ev) -> bool:
            for p in ev.values(field):
                if f(p[1]):
                    return True
            return False
        return one

    def several(ev) -> bool:
        for p in ev.values(field):
            low = p[1]
            for f in low_tests:
                if f(low):
                    return True
        return False
    return several


def _until(subs: list, stop: bool) -> Callable:
    """any() (``stop`` True) or all() (False) of the evaluators, in order, ending at the first
    whose answer is ``stop``."""
    if len(subs) == 2:
        a, b = subs
        if stop:
            return lambda ev: True if a(ev) else bool(b(ev))
        return lambda ev: bool(b(ev)) if a(ev) else False

    def until(ev) -> bool:
        for s in subs:
            if bool(s(ev)) is stop:
                return stop
        return not stop
    return until


def _or(forms: list) -> Callable:
    # Group plain string tests by field and modifier into one test each.
    groups: dict = {}
    rest = []
    for f in forms:
        if f[0] in ("field", "kw"):
            field, test = (f[1], f[2]) if f[0] == "field" else (None, f[1])
            if test[0] in _MERGEABLE:
                groups.setdefault(field, {}).setdefault(test[0], []).append(test[1])
                continue
        rest.append(f)
    subs = [_values_test(field, [_merged(op, wants) for op, wants in ops.items()]) for field, ops in groups.items()]
    subs += [build(f) for f in rest]
    if len(subs) == 1:
        return subs[0]
    return _until(subs, True)


def build(form: list) -> Callable:
    """The evaluator ``f(Event) -> bool`` for a compact condition."""
    kind = form[0]
    if kind == "and":
        subs = [build(a) for a in form[1]]
        if len(subs) == 1:
            return subs[0]
        return _until(subs, False)
    if kind == "or":
        return _or(form[1])
    if kind == "not":
        sub = build(form[1])
        return lambda ev: not sub(ev)
    if kind == "field":
        return _field_test(form[1], form[2])
    if kind == "kw":
        return _field_test(None, form[1])
    if kind == "null":
        field = form[1]
        return lambda ev: not ev.values(field)
    if kind == "exists":
        field, want = form[1], form[2]
        return lambda ev: bool(ev.values(field)) == want
    raise ValueError(f"unknown condition {kind!r}")


def uses_text(form: list) -> bool:
    """Whether a condition reads the raw text (keywords)."""
    kind = form[0]
    if kind in ("and", "or"):
        return any(uses_text(a) for a in form[1])
    if kind == "not":
        return uses_text(form[1])
    return kind == "kw"


def fields_used(form: list, out: set) -> set:
    kind = form[0]
    if kind in ("and", "or"):
        for a in form[1]:
            fields_used(a, out)
    elif kind == "not":
        fields_used(form[1], out)
    elif kind in ("field", "null", "exists"):
        out.add(form[1])
    return out


def _need(field: Optional[str], test: list) -> Optional[list]:
    """[(field, how, literal)] one of which a value test needs: the lower-cased value equals,
    starts with, ends with or contains the literal (the raw text, field None: contains)."""
    op = test[0]
    if op in _MERGEABLE and test[1]:
        return [(field, op if field is not None else "contains", test[1])]
    if op in ("wild", "search") and test[2]:
        return [(field, "contains", test[2])]
    if op == "re":
        # The regex runs on the raw value; a literal it needs, lower-cased, is in the lower-cased value.
        lits = literals.required(test[1], test[2], lower=True)
        return [(field, "contains", lit) for lit in sorted(lits)] if lits else None
    return None


def _best(sets: list) -> Optional[list]:
    # Fewest literals first, then the longest shortest literal: the cheapest, most selective test.
    known = [x for x in sets if x]
    if not known:
        return None
    return min(known, key=lambda x: (len(x), -min(len(n[2]) for n in x)))


def needs(form: list) -> Optional[list]:
    """[(field, how, literal)] one of which every match holds (``_need``), or None when no such
    literal is known. The rule set indexes rules by these (index.py), so an event meets only
    rules one of whose literals it holds."""
    kind = form[0]
    if kind == "and":
        return _best([needs(a) for a in form[1]])
    if kind == "or":
        out: list = []
        for a in form[1]:
            got = needs(a)
            if not got:
                return None
            out += got
        return out
    if kind in ("field", "kw"):
        return _need(form[1], form[2]) if kind == "field" else _need(None, form[1])
    return None
