"""The masking engine: applies the rules of redact_rules.py to a text or an argument vector.

Two passes over a command line:

1. Command pass (needs the words): the text is split into shell words and commands
   (``;``, ``&&``, ``|``...), and each command's argument vector is masked by its tools'
   conventions (redact_argv.py: option values, operands, NAME VALUE pairs, options named like a
   secret, nested command lines, secrets fed on stdin).
2. Text pass (position-free): NAME=VALUE and ``Name: value`` whose NAME is a secret name,
   URL credentials, webhook paths, SQL passwords, private key blocks and token shapes.

A mask replaces the secret by ``********`` and keeps what names it, so the result is stable
(masking twice changes nothing) and the secret's length does not leak.
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Iterable

from agent.pipeline import redact_rules as R
from agent.pipeline.redact_argv import WORD, ArgvConventions, unquote
from agent.pipeline.redact_names import MASK, SecretNames
from agent.pipeline.redact_names import skip_value as _skip_value


class Rules(ArgvConventions):
    """The rule set of one configuration (rules disabled by name, extra secret names)."""

    def __init__(self, disabled: Iterable[str] = (), extra_names: Iterable[str] = ()):
        off = {d.strip() for d in disabled if d.strip()}
        self.disabled = off
        self.tools = [t for t in R.TOOLS if t.name not in off]
        self._progs = [(re.compile(t.progs), t) for t in self.tools]
        # one pattern for "is this any tool at all": most words are not, and this rejects them in
        # one match instead of one per tool
        self._any_prog = re.compile("|".join("(?:%s)" % t.progs for t in self.tools))
        self.text_rules = [(gates, re.compile(rx)) for name, gates, rx in R.TEXT_RULES if name not in off]
        self.named_values = "secret-name" not in off
        self.secret_options = "secret-option" not in off
        self.stdin = "stdin-feed" not in off
        self.names = SecretNames(extra_names)
        self.gates = self.names.gates
        self.is_secret_name = self.names.is_secret_name
        self.tools_for = lru_cache(maxsize=4096)(self._tools_for)
        self._has_rules = lru_cache(maxsize=8192)(self._word_has_rules)
        self._arg_clean = lru_cache(maxsize=8192)(self._one_arg_clean)
        # every gate substring of the text rules and the secret names in one search: a text with
        # none of them (nearly every command line) needs only the command pass's word test
        gates = {g for gs, _ in self.text_rules for g in gs} | set(self.gates)
        self._any_gate = re.compile(_any_of(gates)).search
        # the gates that can span two arguments of a command line joined by spaces
        self._spaced_gates = tuple(g for g in gates if " " in g)

    def _tools_for(self, word: str) -> tuple:
        if "=" in word:
            head, _, rest = word.partition("=")
            if not head.isidentifier():
                return ()
            word = rest
        base = word.rsplit("/", 1)[-1]
        if not self._any_prog.fullmatch(base):
            return ()
        return tuple(t for rx, t in self._progs if rx.fullmatch(base))

    def _word_has_rules(self, word: str) -> bool:
        w = word.strip("'\"()`;&|")
        return w in R.STDIN_FEEDERS or w.startswith("<<<") or any(
            t.name != "plain-programs" for t in self.tools_for(w))

    def _needs_commands(self, s: str, low: str) -> bool:
        """Whether the command pass can find anything: a program with a convention, a feeder
        of stdin, or an option named like a secret (gate words). Keeps clean lines cheap."""
        if not (" " in s or "\t" in s or "\n" in s):
            return False
        return any(g in low for g in self.gates) or any(self._has_rules(w) for w in s.split())

    def _words_have_rules(self, s: str) -> bool:
        """A text of several words, one of which has rules of its own (a single word is
        judged by the callers' own tests: a tool's program or a gate)."""
        return (" " in s or "\t" in s or "\n" in s) and any(self._has_rules(w) for w in s.split())

    def argv_clean(self, argv: list) -> bool:
        """True when neither pass can mask anything in ``argv`` (mask_argv gives nothing and
        mask_text leaves every argument as it is), nor in the arguments joined by spaces (the
        command line they make; see joined_clean): no gate substring in any argument (so no text
        rule, secret name or secret option), no argument that is a tool's program, and no word
        of an argument with rules of its own. One check instead of the walk, for the ~all clean
        command lines; a secret name always holds a gate (tests/unit/test_redact.py checks it).
        A gate holds no NUL, so it cannot span two arguments: the verdict is per argument, and
        cached, since the same arguments (programs, paths, options) come back all the time."""
        arg_clean = self._arg_clean
        for a in argv:
            if a.__class__ is not str or not arg_clean(a):
                return False
        return True

    def clean_line(self, argv: list):
        """The command line ``" ".join(argv)`` of a vector that argv_clean passed, when mask_text
        would leave that line as it is too, else None: the words of the joined line are the
        arguments' words, and a gate can span two arguments only through the space between
        them (the gates holding a space are looked for here)."""
        line = " ".join(argv)
        if self._spaced_gates:
            low = line.lower()
            if any(g in low for g in self._spaced_gates):
                return None
        return line

    def _one_arg_clean(self, a: str) -> bool:
        # every word of the argument, a single word too: the words of the joined command line
        # are exactly the arguments' words, so a clean vector makes a clean command line
        return (self._any_gate(a.lower()) is None and not self.tools_for(a)
                and not any(self._has_rules(w) for w in a.split()))

    # --- text ---------------------------------------------------------------------------------
    def mask_text(self, s: str, depth: int = 0) -> str:
        low = s.lower()
        if self._any_gate(low) is None:
            if self._words_have_rules(s):
                return self._mask_commands(s, depth)
            return s
        if self._needs_commands(s, low):
            s = self._mask_commands(s, depth)
        for gates, rx in self.text_rules:
            for g in gates:
                if g in low:
                    s = rx.sub(_keep_groups, s)
                    break
        if self.named_values and ("=" in s or ":" in s) and any(g in low for g in self.gates):
            s = self.names.mask_named(s)
        return s

    def _mask_commands(self, s: str, depth: int) -> str:
        commands: list = []
        words: list = []
        for m in WORD.finditer(s):
            if m.lastgroup == "w":
                words.append(m)
            else:
                commands.append((words, m.group()))
                words = []
        commands.append((words, ""))
        argvs = [[unquote(w.group()) for w in ws] for ws, _ in commands]
        edits = []
        for k, (ws, sep) in enumerate(commands):
            if not ws:
                continue
            argv = argvs[k]
            masks, nested = self._mask_argv(argv, depth)
            for i, v in nested.items():
                w = ws[i].group()
                if w[0] in "'\"" and w[-1] == w[0] and len(w) > 1 and w.count(w[0]) == 2:
                    masks[i] = v            # one quoted string: re-quoted below
                else:                       # mixed quoting: mask the word's text in place
                    edits.append((ws[i].start(), ws[i].end(), self.mask_text(w, 3)))
            if self.stdin and sep.strip() in ("|", "|&") and k + 1 < len(commands):
                masks.update(self._fed(argv, argvs[k + 1]))
            if self.stdin and any(a.startswith("<<<") for a in argv):
                masks.update(self._here_string(argv))
            for i, v in masks.items():
                w = ws[i].group()
                q = w[0] if w[0] in "'\"" and w[-1] == w[0] and len(w) > 1 else ""
                if not q and v.endswith(MASK):
                    head = v[:-len(MASK)]       # --password="a b" -> --password="********"
                    if (w.startswith(head) and len(w) > len(head) + 1 and w[len(head)] in "'\""
                            and w[-1] == w[len(head)] and w.count(w[-1]) == 2):
                        v = head + w[-1] + MASK
                        q = w[-1]
                        edits.append((ws[i].start(), ws[i].end(), v + q))
                        continue
                edits.append((ws[i].start(), ws[i].end(), q + v + q))
        for start, end, v in sorted(edits, reverse=True):
            s = s[:start] + v + s[end:]
        return s

def _any_of(words: Iterable[str]) -> str:
    """A regex that finds any of ``words``, factored by common prefixes (``p(?:ass|in|w)``): re
    tries the alternatives of a flat ``pass|pin|pw`` one by one at every position, a prefix tree
    only the branch of the character at hand. A word that is a prefix of another stands alone."""
    tree: dict = {}
    for w in words:
        node = tree
        for ch in w:
            node = node.setdefault(ch, {})
        node[""] = {}

    def emit(node: dict) -> str:
        if "" in node:
            return ""
        alts = [re.escape(ch) + emit(sub) for ch, sub in sorted(node.items())]
        return alts[0] if len(alts) == 1 else "(?:" + "|".join(alts) + ")"

    return emit(tree) if tree else "(?!)"


def _keep_groups(m: re.Match) -> str:
    if _skip_value(m.group(2)):
        return m.group()
    return m.group(1) + MASK + m.group(3)
