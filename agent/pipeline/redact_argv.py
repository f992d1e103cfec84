"""Tool conventions on argument vectors: the command pass of redaction (see redact_engine.py).

In one command's arguments, the program words (anywhere: behind sudo, env, ``docker exec``,
``ssh host``) select their tools' conventions, which mask option values, operands and NAME VALUE
pairs; options named like a secret (``--db-password X``) are masked for any program; a quoted
argument holding a command (``su -c '...'``) is masked recursively; a literal ``echo X |`` /
``<<< X`` feeding a program that reads a secret on stdin is masked. ArgvConventions is a part
of redact_engine.Rules, kept apart for its size: it uses the rule set's tools, names and
switches (``self.tools_for``, ``self.stdin``...) and its ``mask_text`` for nested commands.
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Optional

from agent.pipeline import redact_rules as R
from agent.pipeline.redact_names import MASK, PATHLIKE
from agent.pipeline.redact_names import skip_value as _skip_value

WORD = re.compile(r"""(?P<sep>[;&|\n\r()]+)|(?P<w>(?:'[^']*'|"(?:\\.|[^"\\])*"|\\.|[^\s;&|()'"\\])+)""")
_UNQUOTE = re.compile(r"""'([^']*)'|"((?:\\.|[^"\\])*)"|\\(.)""")
_OPT = re.compile(r"(--?)([A-Za-z][\w.\-]*)(?:=(.*))?$", re.S)
_SLASH_CREDS = re.compile(r"((?:(?:userid|target|auxiliary|catalog)=)?[^/@\s=:]+/)([^@\s]+)(@.*)?$", re.I)
_USERHOST = re.compile(r"([^\s:@/-][^\s:@]*:)([^@\s]+)(@[\w.\-\[\]:]+)$")
_HEREDOC = re.compile(r"<<-?\s*['\"]?(\w+)['\"]?")
_REDIRECT = re.compile(r"\d*(?:[<>]+&?|&>)")
_KV_WORD = re.compile(r"[A-Za-z_][\w.\-]*=(?!=)")


def unquote(word: str) -> str:
    if "'" not in word and '"' not in word and "\\" not in word:
        return word
    return _UNQUOTE.sub(lambda m: m.group(1) if m.group(1) is not None else (
        re.sub(r"\\(.)", r"\1", m.group(2)) if m.group(2) is not None else m.group(3)), word)


class ArgvConventions:
    """The argument-vector half of redact_engine.Rules."""

    def mask_argv(self, argv: list, depth: int = 0) -> dict:
        """index -> masked value for one command's arguments."""
        out, nested = self._mask_argv(argv, depth)
        out.update(nested)
        return out

    def _mask_argv(self, argv: list, depth: int) -> tuple:
        """({index: masked value}, {index: masked value of an argument that is itself a command line})."""
        out: dict = {}
        nested: dict = {}
        tools: tuple = ()
        start = 0
        pending = None
        for i, a in enumerate(argv):
            if not isinstance(a, str) or not a:
                pending = None
                continue
            if pending is not None:
                v = _masked_value(a, pending)
                pending = None
                if v is not None and v != a:
                    out[i] = v
                    continue
                if not (depth < 3 and (" " in a or "\t" in a)):
                    continue        # else: a value that holds a command, $(openssl passwd X)
            if a[0] != "-" or len(a) == 1:
                ts = self._program(argv, i, tools)
                if ts:
                    if tools:
                        self._operands(argv, start, i, tools, out)
                    tools, start = ts, i
                    continue
            elif len(a) > 1:
                done, pending = self._tool_option(tools, argv, start, i, a, out)
                if done:
                    continue
                if self.secret_options and not any(a.split("=", 1)[0] in t.nogeneric for t in tools):
                    pending = self._secret_option(a, i, out)
                    if pending is not None or i in out:
                        continue
            if depth < 3 and (" " in a or "\t" in a or "\n" in a):
                new = self.mask_text(a, depth + 1)
                if new != a:
                    nested[i] = new
        if tools:
            self._operands(argv, start, len(argv), tools, out)
        return {i: v for i, v in out.items() if v != argv[i]}, {i: v for i, v in nested.items() if i not in out}

    def _program(self, argv: list, i: int, tools: tuple) -> tuple:
        """The tools of argv[i] when it starts a (nested) command: not a subcommand word of the
        current tools (``openssl passwd``), not a path operand (``htpasswd -b /etc/x/passwd``)."""
        a = argv[i]
        ts = self.tools_for(a)
        if ts and i > 0:
            ts = tuple(t for t in ts if not t.first_word_only)
        if not ts:
            return ()
        if tools and a.lower() in _subcommands(tools):
            return ()
        if "/" in a and i > 0 and "=" not in a and not self.tools_for(argv[i - 1]):
            return ()
        return ts

    def _tool_option(self, tools: tuple, argv: list, start: int, i: int, a: str, out: dict) -> tuple:
        for t in tools:
            opts = t.value
            for word, extra in t.value_after.items():
                if word in argv[start + 1:i]:
                    opts = opts + extra
            for word, extra in t.value_when.items():
                if word in argv[start + 1:]:
                    opts = opts + extra
            for opt in opts:
                if a == opt:
                    return True, ("all", t.keep_values)
                if len(opt) == 2 and a.startswith(opt) and t.short_attached:
                    v = _masked_value(a[2:], ("all", t.keep_values))
                    if v is not None:
                        out[i] = opt + v
                    return True, None
                if a.startswith(opt + "="):
                    if not _skip_value(a[len(opt) + 1:]):
                        out[i] = opt + "=" + MASK
                    return True, None
            for opt in t.attached:
                if a == opt:
                    return True, None
                if a.startswith(opt) and (len(opt) == 2 or opt == "-hp" or a[len(opt)] == "="):
                    head = opt + ("=" if len(opt) > 3 else "")
                    if not _skip_value(a[len(head):]):
                        out[i] = head + MASK
                    return True, None
            for opt, sep in t.userpass.items():
                if a == opt:
                    return True, ("up", sep)
                if a.startswith(opt + "=") or (len(opt) == 2 and a.startswith(opt)):
                    head = opt + "=" if a.startswith(opt + "=") else opt
                    v = _masked_value(a[len(head):], ("up", sep))
                    if v is not None:
                        out[i] = head + v
                    return True, None
            for opt in t.value_if_eq:
                if a == opt:
                    return True, ("eq",)
                if a.startswith(opt + "="):
                    if "=" in a[len(opt) + 1:]:
                        out[i] = opt + "=" + MASK
                    return True, None
            if a in t.nogeneric:
                return True, None
        return False, None

    def _secret_option(self, a: str, i: int, out: dict):
        m = _OPT.match(a)
        if not m or (m.group(1) == "-" and len(m.group(2)) < 3):
            return None
        name = m.group(2)
        # --passwd is a password; --secret alone names a stored secret (docker, podman, gcloud);
        # --signature, --cookie of other programs than curl name files
        if not (self.is_secret_name(name) or name == "passwd") or name.lower() in R.NOT_SECRET_OPTIONS:
            return None
        if m.group(3) is None:
            return ("opt",)
        v = m.group(3)
        if not (_skip_value(v) or v.lower() in R.BOOLISH or PATHLIKE.match(v)):
            out[i] = a[:m.start(3)] + MASK
        return None

    def _operands(self, argv: list, start: int, end: int, tools: tuple, out: dict) -> None:
        ops: list = []
        flags = ""
        skip = False
        for j in range(start + 1, end):
            a = argv[j]
            if skip or not isinstance(a, str):
                skip = False
                continue
            if _REDIRECT.match(a):
                skip = _REDIRECT.fullmatch(a) is not None   # "<" alone: its target is next
                continue
            if a.startswith("-") and len(a) > 1:
                if any(a in t.takes for t in tools):
                    skip = True
                elif a[1] != "-" and a[1:].isalpha():
                    flags += a[1:]
                continue
            if _KV_WORD.match(a):
                continue
            ops.append(j)
        words = [argv[j].lower() for j in ops]
        for t in tools:
            for after, positions in t.positional:
                if t.positional_if_flag and t.positional_if_flag not in flags:
                    continue
                if t.first_operand and not (words and re.match(t.first_operand, argv[ops[0]])):
                    continue
                p = _find(words, after)
                if p is None:
                    continue
                rest = ops[p + len(after):]
                if positions == "all":
                    chosen = rest
                elif positions == "last":
                    chosen = rest[-1:] if len(rest) >= 2 else []
                else:
                    chosen = [rest[k] for k in positions if k < len(rest)]
                for j in chosen:
                    v = _masked_value(argv[j], ("all", t.keep_values))
                    if v is not None:
                        out.setdefault(j, v)
            for after in t.pairs_after:
                p = _find(words, after)
                if p is None:
                    continue
                rest = ops[p + len(after):]
                for k in range(len(rest) - 1):
                    v = _masked_value(argv[rest[k + 1]], ("all", t.keep_values))
                    if v is not None and self.is_secret_name(argv[rest[k]]):
                        out.setdefault(rest[k + 1], v)
            for word, prefixes in t.prefixed_after.items():
                p = _find(words, (word,))
                for j in (range(ops[p] + 1, end) if p is not None else ()):
                    a = argv[j]
                    for prefix in prefixes:
                        if a.startswith(prefix) and len(a) > len(prefix) and not _skip_value(a[len(prefix):]):
                            out.setdefault(j, prefix + MASK)
            if not (t.slash_creds or t.userhost_operands or t.prefixed):
                continue
            for j in range(start + 1, end):
                a = argv[j]
                if j in out or not isinstance(a, str):
                    continue
                m = None
                if t.slash_creds:
                    m = _SLASH_CREDS.match(a)
                if m is None and t.userhost_operands:
                    m = _USERHOST.match(a)
                if m is not None and not _skip_value(m.group(2)):
                    out[j] = m.group(1) + MASK + (m.group(3) or "")
                for prefix in t.prefixed:
                    if a.startswith(prefix) and len(a) > len(prefix):
                        out[j] = prefix + MASK

    def _fed(self, feeder: list, reader: list) -> dict:
        """``echo X | reader``: X when the reader takes a secret on stdin."""
        if not feeder or feeder[0] not in R.STDIN_FEEDERS:
            return {}
        sep = self._stdin_sep(reader)
        if sep is None:
            return {}
        ops = [i for i, a in enumerate(feeder) if i and not (a.startswith("-") and a[1:].isalpha())]
        if feeder[0] == "printf" and len(ops) > 1:
            ops = ops[1:]
        return {i: v for i in ops if (v := _masked_value(feeder[i], ("up", sep) if sep else ("all", ()))) is not None}

    def _here_string(self, argv: list) -> dict:
        """``reader <<< X``: X when the reader takes a secret on stdin."""
        sep = self._stdin_sep(argv)
        if sep is None:
            return {}
        kind = ("up", sep) if sep else ("all", ())
        out = {}
        for i, a in enumerate(argv):
            if a == "<<<" and i + 1 < len(argv):
                v = _masked_value(argv[i + 1], kind)
                if v is not None:
                    out[i + 1] = v
            elif a.startswith("<<<") and len(a) > 3:
                v = _masked_value(a[3:], kind)
                if v is not None:
                    out[i] = "<<<" + v
        return out

    def heredoc_secret(self, line: str) -> Optional[tuple]:
        """(delimiter, separator) when ``line`` starts a here-document fed to a program that reads
        a secret on stdin (``chpasswd <<EOF``): its lines up to the delimiter are secrets."""
        m = _HEREDOC.search(line)
        if not m or not self.stdin:
            return None
        sep = self._stdin_sep([unquote(w.group()) for w in WORD.finditer(line[:m.start()]) if w.lastgroup == "w"])
        return None if sep is None else (m.group(1), sep)

    def _stdin_sep(self, argv: list) -> Optional[str]:
        for t in (t for a in argv if isinstance(a, str) and a for t in self.tools_for(a)):
            if t.stdin and any(f == "" or f in argv for f in t.stdin):
                return t.stdin_sep
        return None


@lru_cache(maxsize=256)
def _subcommands(tools: tuple) -> frozenset:
    return frozenset(w for t in tools for after, _ in t.positional for w in after) | frozenset(
        w for t in tools for after in t.pairs_after for w in after)


def _find(words: list, after: tuple) -> Optional[int]:
    n = len(after)
    if not n:
        return 0
    for p in range(len(words) - n + 1):
        if tuple(words[p:p + n]) == after:
            return p
    return None


def _masked_value(a: str, kind: tuple) -> Optional[str]:
    if _skip_value(a) or (a.startswith("-") and len(a) > 1):
        return None
    if kind[0] == "all":
        if a in kind[1]:
            return None
        if len(a) > 2 and a[0] in "'\"" and a[-1] == a[0]:
            return a[0] + MASK + a[0]   # quotes that belong to the value (wpa_cli psk '"pw"')
        return MASK
    if kind[0] == "eq":
        return MASK if "=" in a else None
    if kind[0] == "opt":
        if a.lower() in R.BOOLISH or PATHLIKE.match(a) or a[0] in "<>|":
            return None
        return MASK
    sep = kind[1]
    if sep not in a:
        return None
    user, _, rest = a.partition(sep)
    if not rest or _skip_value(rest):
        return None
    at = rest.rfind("@")
    return user + sep + MASK + (rest[at:] if at > 0 else "")
