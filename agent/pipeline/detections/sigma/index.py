"""Which Sigma rules an event can match, from the literals the rules need (evaluate.needs).

Per dataset and field: a dict for "equals", dicts by length for "starts with" and
"ends with" (``Image|endswith: /ls`` is one lookup of the value's last path
component, not a scan for "/ls" anywhere), and one Aho-Corasick automaton for
"contains". An event meets only the rules one of whose literals its values hold;
the values read here are the ones the rules then test (the Event cache).
"""

from __future__ import annotations

from typing import Optional

from agent.base.cache import BoundedCache

MEMO_SIZE = 1024  # per dataset and field
MEMO_MAX_LEN = 256  # longer values (long command lines, raw records) are scanned each time
_NONE: frozenset = frozenset()


class FieldIndex:
    __slots__ = ("eq", "base", "prefix", "suffix", "auto", "memo")

    def __init__(self, needs: list):
        """``needs``: [(how, literal, rule index)] of one field."""
        import ahocorasick

        eq: dict = {}
        base: dict = {}
        prefix: dict = {}
        suffix: dict = {}
        contains: dict = {}
        for how, lit, i in needs:
            table = {"eq": eq, "contains": contains}.get(how)
            if how == "endswith" and lit.startswith("/") and "/" not in lit[1:]:
                table = base  # ends with "/ls": the value's last path component is "ls"
            elif table is None:
                table = (prefix if how == "startswith" else suffix).setdefault(len(lit), {})
            table.setdefault(lit, set()).add(i)
        self.eq = _frozen(eq)
        self.base = _frozen(base)
        self.prefix = tuple((n, _frozen(d)) for n, d in sorted(prefix.items()))
        self.suffix = tuple((n, _frozen(d)) for n, d in sorted(suffix.items()))
        self.auto: Optional[object] = None
        if contains:
            auto = ahocorasick.Automaton()
            for lit, idx in contains.items():
                auto.add_word(lit, frozenset(idx))
            auto.make_automaton()
            self.auto = auto
        self.memo = BoundedCache(MEMO_SIZE)

    def of(self, value) -> frozenset:
        """The rules a value (not lower-cased) may match: remembered, since executables,
        directories and many command lines repeat from event to event."""
        if not isinstance(value, str) or len(value) > MEMO_MAX_LEN:
            out: set = set()
            self.candidates(str(value).lower(), out)
            return frozenset(out)
        got = self.memo.get(value)
        if got is None:
            out = set()
            self.candidates(value.lower(), out)
            got = self.memo.put(value, frozenset(out) if out else _NONE)
        return got

    def candidates(self, low: str, out: set) -> None:
        got = self.eq.get(low)
        if got:
            out |= got
        if self.base:
            got = self.base.get(low[low.rfind("/"):]) if "/" in low else None
            if got:
                out |= got
        n = len(low)
        for k, table in self.suffix:
            if k > n:
                break
            got = table.get(low[n - k:])
            if got:
                out |= got
        for k, table in self.prefix:
            if k > n:
                break
            got = table.get(low[:k])
            if got:
                out |= got
        if self.auto is not None:
            for _, idx in self.auto.iter(low):
                out |= idx


def _frozen(d: dict) -> dict:
    return {k: frozenset(v) for k, v in d.items()}


def build(rules: list, getter) -> dict:
    """{dataset: (rules always evaluated, ((read field, FieldIndex), ...))} for compiled rules
    (each with ``datasets`` and ``needs``); ``getter(field)`` reads a field (None: the raw text)."""
    per: dict = {}
    for i, r in enumerate(rules):
        for ds in r.datasets:
            always, fields = per.setdefault(ds, ([], {}))
            if not r.needs:
                always.append(i)
                continue
            for field, how, lit in r.needs:
                fields.setdefault(field, []).append((how, lit, i))
    return {ds: (tuple(always), tuple((getter(f), FieldIndex(n)) for f, n in fields.items()))
            for ds, (always, fields) in per.items()}
