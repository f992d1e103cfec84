"""Which Sigma rules an event can match, from the literals the rules need (evaluate.needs).

Per dataset and field: a dict for "equals", dicts by length for "starts with" and
"ends with" (``Image|endswith: /ls`` is one lookup of the value's last path
component, not a scan for "/ls" anywhere), and one Aho-Corasick automaton for
"contains". An event meets only the rules one of whose literals its values hold;
the values read here are the ones the rules then test (the Event cache).
"""

from __future__ import annotations

import re
from typing import Optional

from agent.pipeline.detections.literals import automaton

MEMO_SIZE = 1024  # values per dataset and field
# ... and their characters: long values (a parent shell's command line, repeated for each of
# its children) are remembered too, within the memory that 1024 values of 256 were given.
MEMO_CHARS = MEMO_SIZE * 256
SQUEEZE_FROM = 128  # characters: shorter values are scanned as they are
NONE: frozenset = frozenset()


class FieldIndex:
    __slots__ = ("eq", "base", "prefix", "suffix", "prefixes", "suffixes", "auto", "runs", "squeezed", "memo",
                 "chars")

    def __init__(self, needs: list):
        """``needs``: [(how, literal, rule index)] of one field."""
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
        # Every prefix (suffix) at once: one C call rejects most values before the per-length lookups.
        self.prefixes = tuple(lit for d in prefix.values() for lit in d)
        self.suffixes = tuple(lit for d in suffix.values() for lit in d)
        self.auto: Optional[object] = None
        self.runs: Optional[re.Pattern] = None
        self.squeezed = ""
        if contains:
            self.auto = automaton(contains)
            # The automaton reports every occurrence: in a run of one character longer than the
            # longest literal (9,000 "A"s against a buffer-overflow rule's "AAAA…"), one per
            # position. Such a run holds exactly the literals that run cut to that length holds.
            longest = max(map(len, contains))
            self.runs = re.compile(r"(.)\1{%d,}" % longest, re.S)
            self.squeezed = "\\1" * longest
        self.memo: dict = {}
        self.chars = 0  # of the values in memo

    def of(self, value) -> frozenset:
        """The rules a value (not lower-cased) may match: remembered, since executables,
        directories and many command lines repeat from event to event."""
        if not isinstance(value, str):
            out: set = set()
            self.candidates(str(value).lower(), out)
            return frozenset(out)
        got = self.memo.get(value)
        if got is None:
            out = set()
            self.candidates(value.lower(), out)
            got = frozenset(out) if out else NONE
            n = len(value)
            if n <= MEMO_CHARS // 4:  # a huge value alone would empty the memo
                # Full: forget everything (no per-lookup bookkeeping, unlike an LRU; the working
                # set is back after a few events).
                if len(self.memo) >= MEMO_SIZE or self.chars + n > MEMO_CHARS:
                    self.memo.clear()
                    self.chars = 0
                self.memo[value] = got
                self.chars += n
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
        if self.suffixes and low.endswith(self.suffixes):
            for k, table in self.suffix:
                if k > n:
                    break
                got = table.get(low[n - k:])
                if got:
                    out |= got
        if self.prefixes and low.startswith(self.prefixes):
            for k, table in self.prefix:
                if k > n:
                    break
                got = table.get(low[:k])
                if got:
                    out |= got
        if self.auto is not None:
            if n > SQUEEZE_FROM:
                low = self.runs.sub(self.squeezed, low)
            for _, idx in self.auto.iter(low):
                out |= idx


def _frozen(d: dict) -> dict:
    return {k: frozenset(v) for k, v in d.items()}


def build(rules: list, getter, alias: Optional[dict] = None) -> dict:
    """{dataset: (rules always evaluated, ((read field, FieldIndex), ...))} for compiled rules
    (each with ``datasets`` and ``needs``); ``getter(field)`` reads a field (None: the raw text).

    ``alias`` ({field: other}): for events on which ``field`` reads the same value as ``other``,
    ``field``'s literals are indexed under ``other``, so the value is read and looked up once;
    only the datasets this changes are returned."""
    per: dict = {}
    aliased: set = set()
    for i, r in enumerate(rules):
        for ds in r.datasets:
            always, fields = per.setdefault(ds, ([], {}))
            if not r.needs:
                always.append(i)
                continue
            for field, how, lit in r.needs:
                if alias and field in alias:
                    field = alias[field]
                    aliased.add(ds)
                fields.setdefault(field, []).append((how, lit, i))
    return {ds: (tuple(always), tuple((getter(f), FieldIndex(n)) for f, n in fields.items()))
            for ds, (always, fields) in per.items() if alias is None or ds in aliased}
