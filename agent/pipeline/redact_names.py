"""Secret names: which NAME holds a secret, and masking of NAME=VALUE / "NAME": VALUE / Name: value.

The words are data in redact_rules.py; this module applies them to a name (split into parts at
``_ - .`` and camelCase) and finds the value that follows a name in a text.
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Iterable, Optional

from agent.pipeline import redact_rules as R

MASK = "********"
_PARTS = re.compile(r"[A-Z]?[a-z0-9]+|[A-Z]+(?![a-z])")
_VARREF = re.compile(r"\$[A-Za-z_{(]|`|\{\{|%\{|%\(")
PATHLIKE = re.compile(r"(?:~|\.{1,2})?/")
# NAME=VALUE / "NAME": VALUE / Name: value, NAME at a word or list boundary
_NAMED = re.compile(r"""(?:(?<=\\[nt])|(?<=-[DP])|(?<![^\s,;&?'"{(=:/\[]))(\\?["']?)([A-Za-z_][\w.\-]*)\1(=|[ \t]*:[ \t]*|[ \t]+=[ \t]*)""")
_NEXT_KV = re.compile(r"""\s*["']?[A-Za-z_][\w.\-]*["']?\s*[=:]""")
_VALUE_STOP = frozenset(" \t\r\n;&|'\"`<>()}]\\")
_SCHEME = re.compile(r"[A-Za-z][\w-]*[ \t]+(?=\S)")
# substrings without which no text holds a secret name (a cheap gate before the regex)
SECRET_GATES = ("pass", "pwd", "pw", "secret", "token", "key", "auth", "pin", "psk", "sig", "cookie",
                "bearer", "puk", "pat", "cred", "sonar.", "jfrog")


def skip_value(v: str) -> bool:
    """Values that are not a secret literal: empty, a variable or command substitution, a template."""
    return (not v or v == MASK or v in ("-", "$") or v[0] in "%@" or bool(_VARREF.match(v))
            or v.startswith(("file://", "fileb://")))


def _norm(name: str) -> str:
    return name.lower().replace("-", "_").replace(".", "_")


def _name_parts(name: str) -> list:
    return [p.lower() for p in _PARTS.findall(name)] or [name.lower()]


def _line_start(s: str, i: int) -> bool:
    j = i
    while j > 0 and s[j - 1] in " \t":
        j -= 1
    return j == 0 or s[j - 1] in "\n\"'" or s.startswith(("\\n", "\\t"), j - 2)


class SecretNames:
    """The secret-name test of one configuration (with its extra names) and the masking it drives."""

    def __init__(self, extra_names: Iterable[str] = ()):
        self.extra_names = {_norm(n.strip()) for n in extra_names if n.strip()}
        self.gates = SECRET_GATES + tuple(v for n in self.extra_names for v in {n, n.replace("_", "-")})
        self.is_secret_name = lru_cache(maxsize=4096)(self._is_secret_name)

    def _is_secret_name(self, name: str) -> bool:
        low = name.lower().strip("_")
        if self.extra_names and _norm(name).strip("_") in self.extra_names:
            return True
        if low in R.NOT_SECRET_NAMES:
            return False
        if name.lower() in R.SECRET_NAMES or low in R.SECRET_NAMES or low.startswith(R.SECRET_NAME_PREFIXES):
            return True
        parts = _name_parts(name)
        if any(p in R.NEGATING_PARTS for p in parts[:-1]) or parts[0] in ("no", "ask"):
            return False
        last = parts[-1]
        if last in R.NOT_PASS or (last.startswith("no") and last[2:] in ("pass", "passwd", "password")):
            return False
        if last.endswith(R.SECRET_SUFFIXES) or last in R.SECRET_PARTS:
            return True
        if last.endswith("pass") and len(last) > 4:
            return True
        if last == "key" and len(parts) > 1:
            return any(p in R.KEY_PREFIXES for p in parts[:-1])
        return last.endswith("key") and any(last == p + "key" for p in R.COMPOUND_KEY_PREFIXES)

    def mask_named(self, s: str) -> str:
        out = []
        pos = 0
        for m in _NAMED.finditer(s):
            if m.start() < pos:
                continue
            if not self.is_secret_name(m.group(2)) and not (m.group(2) == "passwd" and m.group(3) == "="):
                continue            # passwd: is nsswitch's database; passwd=x is a password
            if s[max(0, m.start() - 2):m.start()] == "${":
                continue            # ${PASSWORD:-default}: a parameter expansion, no literal
            colon = m.group(3) != "=" and "=" not in m.group(3)
            if m.group(3) != "=" and "=" in m.group(3) and not _line_start(s, m.start()):
                continue            # "name = value" only as a line of a config file (ini, heredoc, echo -e)
            opened = s[m.start(2) - 1] if m.start(2) and not m.group(1) else ""
            if opened and opened in "'\"" and s.startswith(opened, m.end()):
                continue            # 'API_KEY=' / "Password: " end a quoted text; no value follows
            span = self._value_span(s, m.end(), colon, m.group(2).lower())
            if span is None:
                continue
            a, b = span
            out.append(s[pos:a])
            out.append(MASK)
            pos = b
        if not out:
            return s
        out.append(s[pos:])
        return "".join(out)

    def _value_span(self, s: str, i: int, colon: bool, name: str) -> Optional[tuple]:
        n = len(s)
        if i >= n:
            return None
        c = s[i]
        if c in "'\"":
            j = i + 1
            while j < n and s[j] != c:
                j += 2 if s[j] == "\\" and c == '"' else 1
            a, b = i + 1, min(j, n)
            if b >= n:
                return None         # no closing quote: the quote closed the text the name was in
        elif s.startswith(('\\"', "\\'"), i):
            j = s.find(s[i:i + 2], i + 2)
            a, b = i + 2, (j if j >= 0 else n)
        else:
            if colon and name.endswith("authorization"):
                m = _SCHEME.match(s, i)
                if m:
                    i = m.end()
            a = b = i
            cookie = colon and name.endswith("cookie")
            braces = 0              # {SSHA}hash: a brace opened inside the value does not end it
            while b < n:
                ch = s[b]
                if cookie:
                    if ch in "'\"\n\\":
                        break
                elif ch in "{[":
                    braces += 1
                elif ch in "}]" and braces:
                    braces -= 1
                elif ch in _VALUE_STOP or (ch == "," and _NEXT_KV.match(s, b + 1)):
                    break
                b += 1
        v = s[a:b]
        if skip_value(v) or v.lower() in R.BOOLISH or v in ("{", "["):
            return None             # {"password": {"user": ...}}: the names inside are checked themselves
        if (colon or name.endswith(R.PATH_MEANS_REFERENCE)) and PATHLIKE.match(v):
            return None
        if ".*" in v or v[0] in "^[":
            return None             # a regular expression (sed 's/password: .*/.../')
        if colon and v.startswith(MASK):
            return None             # user:******** of a URL, masked already
        return a, b
