"""Which built-in rules a command event (an exec, or typed lines) can match, decided once per event.

Execs are most of what a bastion logs, and the command rules (history wiping, reverse
shells, download-and-run, audit log and PAM tampering) match almost none of them. Each such
rule declares a ``Gate``: the process names and the command-text patterns without which it
cannot match. The stage reads an event's name and command texts once, looks the name up in
one dict, scans the texts once for every gated rule's literals (one Aho-Corasick pass, in C)
and runs only the rules let through, in their configured order. A rule's own code is
unchanged and still decides: a gate only skips events its rule would have let go (the
literals are the ones ``literals.Gated`` tests before its regex; tests/unit/test_detections_gate.py
checks every built-in rule against the events it matches).
"""

from __future__ import annotations

from typing import NamedTuple, Optional

from agent.pipeline.detections.literals import automaton
from agent.pipeline.session_fields import get

# (dataset, action) of the events whose command texts the gates read.
EXEC = ("auditd.process", "exec")
TYPED = ("auditd.tty", "typed")


class Gate(NamedTuple):
    """On a command event, the rule can only match when the exec's ``process.name`` is one of
    ``names``, a command text holds a literal of one of ``patterns`` (``literals.Gated``; one
    without literals lets every event through), or its state's ``watch`` entry is non-empty."""

    names: frozenset = frozenset()
    patterns: tuple = ()
    watch: str = ""


def command_texts(doc: dict) -> list:
    """What was run (an exec's command line) or typed (its lines): the texts the command rules read."""
    ev = doc["event"]
    if ev.get("action") == "exec":
        cmd = get(doc, "process", "command_line")
        return [cmd] if cmd else []
    if ev.get("action") == "typed":
        return [x for x in (get(doc, "keystrokes", "lines") or []) if isinstance(x, str)]
    return []


class CommandRoute:
    """The rules one kind of command event is routed to, and the gate in front of them."""

    __slots__ = ("rules", "always", "by_name", "auto", "watchers", "exec")

    def __init__(self, rules: tuple, is_exec: bool):
        self.rules = tuple(rules)
        self.exec = is_exec
        always: set = set()
        by_name: dict = {}
        by_lit: dict = {}
        watchers = []
        for i, rule in enumerate(self.rules):
            gate: Optional[Gate] = getattr(rule, "gate", None)
            if gate is None or any(p.literals is None for p in gate.patterns):
                always.add(i)  # no gate, or a pattern without a known literal: every event
                continue
            if is_exec:  # typed lines have no process name of their own
                for name in gate.names:
                    by_name.setdefault(name, set()).add(i)
            for p in gate.patterns:
                for lit in p.literals:
                    by_lit.setdefault(lit, set()).add(i)
            if gate.watch:
                watchers.append((i, rule.state, gate.watch))
        self.always = frozenset(always)
        self.by_name = {k: frozenset(v) for k, v in by_name.items()}
        self.watchers = tuple(watchers)
        self.auto = automaton(by_lit) if by_lit else None

    def select(self, doc: dict) -> tuple:
        """The rules this event can match, in order (often none)."""
        chosen = self.always  # a frozenset: nothing is built for an event no gate lets through
        if self.exec:
            proc = doc.get("process")
            name, cmd = (proc.get("name"), proc.get("command_line")) if isinstance(proc, dict) else (None, None)
            if (name is not None and type(name) is not str) or (cmd and type(cmd) is not str):
                return self.rules  # not what a collector makes: let every rule judge it
            if name is not None:
                got = self.by_name.get(name)
                if got:
                    chosen = chosen | got
            texts = (cmd,) if cmd else ()
        else:
            texts = command_texts(doc)
        auto = self.auto
        if auto is not None:
            for text in texts:
                for _, idx in auto.iter(text):
                    chosen = chosen | idx
        for i, state, key in self.watchers:
            if state.get(key):
                chosen = chosen | {i}
        if not chosen:
            return ()
        rules = self.rules
        return tuple(rules[i] for i in sorted(chosen))
