"""Sigma's evaluators (evaluate.build: merged values, loops instead of any/all) answer as the
plain reading of the condition: random compact conditions of and/or/not, keywords, null and
exists over random events, against a direct recursive interpretation."""

from __future__ import annotations

import random
import re

from agent.pipeline.detections.sigma import evaluate as E

WORDS = ["ls", "LS", "nc", "-e", "/bin/sh", "curl", "x y", "", "Ab", "é"]
FIELDS = ["A", "B"]


def plain(test: list, raw) -> bool:
    low = str(raw).lower()
    op = test[0]
    if op == "eq":
        return low == test[1]
    if op == "contains":
        return test[1] in low
    if op == "startswith":
        return low.startswith(test[1])
    if op == "endswith":
        return low.endswith(test[1])
    if op == "re":
        return re.search(test[1], str(raw), test[2]) is not None
    raise AssertionError(op)


def reading(form: list, event: dict) -> bool:
    def values(field):
        raw = event.get(field if field is not None else "T")
        return raw if isinstance(raw, list) else ([] if raw is None else [raw])
    kind = form[0]
    if kind == "and":
        return all(reading(a, event) for a in form[1])
    if kind == "or":
        return any(reading(a, event) for a in form[1])
    if kind == "not":
        return not reading(form[1], event)
    if kind == "field":
        return any(plain(form[2], v) for v in values(form[1]))
    if kind == "kw":
        return any(plain(form[1], v) for v in values(None))
    if kind == "null":
        return not values(form[1])
    if kind == "exists":
        return bool(values(form[1])) == form[2]
    raise AssertionError(kind)


def condition(rnd: random.Random, depth: int = 0) -> list:
    r = rnd.random()
    if depth < 3 and r < 0.45:
        return [rnd.choice(["and", "or"]), [condition(rnd, depth + 1) for _ in range(rnd.randint(1, 4))]]
    if depth < 3 and r < 0.55:
        return ["not", condition(rnd, depth + 1)]
    if r < 0.62:
        return ["null", rnd.choice(FIELDS)]
    if r < 0.68:
        return ["exists", rnd.choice(FIELDS), rnd.random() < 0.5]
    op = rnd.choice(["eq", "contains", "startswith", "endswith", "re"])
    word = rnd.choice(WORDS).lower()
    test = ["re", re.escape(rnd.choice(WORDS)) + rnd.choice(["", "$", ".*s"]), rnd.choice([0, re.I])] \
        if op == "re" else [op, word]
    return ["kw", test] if rnd.random() < 0.2 else ["field", rnd.choice(FIELDS), test]


def event(rnd: random.Random) -> dict:
    def value():
        r = rnd.random()
        if r < 0.2:
            return None
        if r < 0.35:
            return [rnd.choice(WORDS) + rnd.choice(WORDS) for _ in range(rnd.randint(0, 3))]
        if r < 0.4:
            return rnd.randint(0, 9)
        return " ".join(rnd.choice(WORDS) for _ in range(rnd.randint(1, 3)))
    return {"A": value(), "B": value(), "T": value()}


def test_evaluators_answer_as_the_condition_reads():
    rnd = random.Random(15)
    getters = {f: (lambda doc, f=f: doc.get(f)) for f in FIELDS}
    seen = set()
    for _ in range(400):
        form = condition(rnd)
        fn = E.build(form)
        for _ in range(25):
            ev = event(rnd)
            want = reading(form, ev)
            assert fn(E.Event(ev, getters, lambda doc: doc.get("T"))) is want, (form, ev)
            seen.add(want)
    assert seen == {True, False}
