"""The literal text every match of a regular expression contains: a prefilter before the regex.

Python's ``re`` tries a pattern at every position of the text, and a pattern of
alternatives led by ``\\b`` (the built-in rules' command patterns, Sigma's ``re``
values) costs microseconds even on a short command line that cannot match. Almost
every text holds none of the literals that each match must contain; testing those
with ``in`` (C, memchr-fast) first skips the regex for such texts, with the same
result. The analysis reads the pattern's parse tree (``re._parser``); whatever it
does not understand counts as "no literal known", so it can only ever give fewer
literals (a weaker filter), never a wrong one.
"""

from __future__ import annotations

import re
from typing import Optional

try:  # CPython's own parser for re (3.11+); without it, no prefilter (the regex always runs)
    from re import _constants as C
    from re import _parser as P
except ImportError:  # pragma: no cover
    P = C = None

MAX_SET = 24  # more alternative literals than this is no cheap test: no prefilter
_I = re.IGNORECASE
# Under IGNORECASE these letters also match non-ASCII letters (ſ, K, ı, İ) that lower() keeps apart.
_FOLD_UNSAFE = frozenset("iksIKS")
_NOTHING: tuple = (None, None)


def required(pattern: str, flags: int = 0, lower: bool = False) -> Optional[frozenset]:
    """Strings one of which every match of ``pattern`` contains, or None when none is known.

    ``lower``: the literals are lower-cased, to test against the lower-cased text (Sigma's
    values); a case-insensitive pattern is then analysed too. Without it the literals are as
    written, to test against the text itself, and a case-insensitive pattern gives None.
    """
    if P is None or not isinstance(pattern, str):
        return None
    try:
        tree = P.parse(pattern, flags)
    except (re.error, RecursionError, OverflowError):
        return None
    icase = bool(tree.state.flags & _I)
    if icase and not lower:
        return None
    try:
        got = _Analysis(lower).seq(list(tree), icase)[1]
    except RecursionError:
        return None
    return _minimal(got) if got else None


def _minimal(strings) -> frozenset:
    """Without the strings that contain another one: "nc" in a text already says "ncat" may be."""
    kept: list = []
    for s in sorted(strings, key=len):
        if not any(k in s for k in kept):
            kept.append(s)
    return frozenset(kept)


class _Analysis:
    """Per node: (exact, required). ``exact``: the finite set of strings the node matches
    (None: not finite or too many); ``required``: strings one of which every match of the
    node contains (None: unknown)."""

    def __init__(self, lower: bool):
        self.lower = lower

    def char(self, code: int, icase: bool) -> Optional[str]:
        ch = chr(code)
        if not self.lower:
            return None if icase else ch  # (?i:...) inside: the text's case is unknown
        if not ch.isascii() or (icase and ch in _FOLD_UNSAFE):
            return None  # str.lower() of non-ASCII text is not a per-character map (final sigma)
        return ch.lower()

    def seq(self, items: list, icase: bool) -> tuple:
        found: list = []  # required sets met along the sequence
        run: Optional[set] = {""}  # the exact strings of the consecutive run so far
        whole = True  # every item had an exact set: the sequence has one too
        for op, av in items:
            ex, rq = self.node(op, av, icase)
            if ex is not None and len(run) * len(ex) <= MAX_SET:
                run = {a + b for a in run for b in ex}
                continue
            whole = False
            found.append(run)
            if rq:
                found.append(rq)
            run = set(ex) if ex is not None else {""}
        found.append(run)
        return (frozenset(run) if whole else None), _best(found)

    def node(self, op, av, icase: bool) -> tuple:
        if op is C.LITERAL:
            ch = self.char(av, icase)
            return _NOTHING if ch is None else ({ch}, {ch})
        if op is C.IN:
            if len(av) > 8 or any(o is not C.LITERAL for o, _ in av):
                return _NOTHING  # ranges, categories, negation: any of many characters
            chars = {self.char(v, icase) for _, v in av}
            return _NOTHING if None in chars else (chars, chars)
        if op in (C.AT, C.ASSERT, C.ASSERT_NOT):
            return {""}, None  # consumes nothing: the strings around it stay adjacent
        if op is C.SUBPATTERN:
            _, add, dele, sub = av
            return self.seq(list(sub), bool((icase or add & _I) and not dele & _I))
        if op is C.ATOMIC_GROUP:
            return self.seq(list(av), icase)
        if op is C.BRANCH:
            return self.branch(av[1], icase)
        if op in (C.MAX_REPEAT, C.MIN_REPEAT, C.POSSESSIVE_REPEAT):
            lo, hi, sub = av
            if hi == 0:
                return {""}, None
            ex, rq = self.seq(list(sub), icase)
            if ex is not None and hi <= 4 and len(ex) ** hi <= MAX_SET:
                out, power = set(), {""}  # "(?:ba)?sh": {"sh", "bash"}
                for k in range(hi + 1):
                    if k >= lo:
                        out |= power
                    power = {a + b for a in power for b in ex}
                return out, _useful(out)
            return (None, rq) if lo > 0 else _NOTHING
        return _NOTHING  # ANY, NOT_LITERAL, CATEGORY, group references, ...

    def branch(self, alts: list, icase: bool) -> tuple:
        exact: Optional[set] = set()
        req: Optional[set] = set()
        for alt in alts:
            ex, rq = self.seq(list(alt), icase)
            exact = exact | ex if exact is not None and ex is not None else None
            req = req | rq if req is not None and rq else None
        if exact is not None and len(exact) > MAX_SET:
            exact = None
        if req is not None and len(req) > MAX_SET:
            req = None
        return exact, req


def _useful(strings) -> Optional[set]:
    """A set of alternatives is a test only when none of them is empty (always contained)."""
    return set(strings) if strings and "" not in strings else None


def _best(sets: list) -> Optional[set]:
    # The most selective: the longest shortest literal, then the fewest alternatives.
    ok = [s for s in (_useful(x) for x in sets if x) if s]
    if not ok:
        return None
    return max(ok, key=lambda s: (min(map(len, s)), -len(s)))


def automaton(found: dict):
    """An Aho-Corasick automaton over the literals of ``found`` ({literal: ids}): one pass in C
    over a text reports each literal it holds, with the frozenset of that literal's ids."""
    import ahocorasick

    auto = ahocorasick.Automaton()
    for lit, ids in found.items():
        auto.add_word(lit, frozenset(ids))
    auto.make_automaton()
    return auto


class Gated:
    """A compiled pattern whose ``search`` first asks whether the text holds one of the literals
    every match contains, and runs the regex only then: same result, most texts never reach it."""

    __slots__ = ("rx", "literals", "pattern")

    def __init__(self, rx: re.Pattern):
        self.rx = rx
        self.pattern = rx.pattern
        got = required(rx.pattern, rx.flags)
        # Longest first: the rarest literal is tried first.
        self.literals = tuple(sorted(got, key=len, reverse=True)) if got else None

    def search(self, text: str):
        lits = self.literals
        if lits is not None:
            for lit in lits:
                if lit in text:
                    break
            else:
                return None
        return self.rx.search(text)
