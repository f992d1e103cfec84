"""Redaction of auditd's raw forms, handed to the pipeline's redaction stage by event.module.

The stage masks text and argument lists; only auditd knows how its records carry them:
EXECVE arguments and PROCTITLE as hex when they hold a space or a non-printable byte,
USER_CMD's ``cmd=`` likewise, TTY ``data=`` as hex keystrokes, and ``keystrokes.text`` in
aureport's quoting (see keystrokes.render). Here they are decoded, given to the stage's maskers and
encoded again the way auditd writes them. agent.base.registry names this module for "auditd".
"""

from __future__ import annotations

import re
from typing import Callable

from collectors.auditd.keystrokes import render

MASK = "********"
_ARG_RE = re.compile(r'(\ba\d+=)("[^"]*"|[0-9A-F]+)(?=\s|$)')
_PROCTITLE_RE = re.compile(r'(\bproctitle=)("[^"]*"|[0-9A-F]+)(?=\s|$)')
_CMD_RE = re.compile(r'(\bcmd=)("[^"]*"|[0-9A-F]+)(?=\s|$|\x1d)')
_TTY_DATA_RE = re.compile(r"(\bdata=)([0-9A-F]+)(?=\s|$|\x1d)")
_RUN_RE = re.compile(r'"((?:[^"\\]|\\.)*)"')
_OCT_RE = re.compile(r'\\([0-7]{3}|["\\])')
_PLAIN = re.compile(r'[\x21-\x7e]*')


def _decode(v: str) -> str:
    if v.startswith('"'):
        return v[1:-1]
    return bytes.fromhex(v).decode("utf-8", "surrogateescape")


def _encode(v: str) -> str:
    """As auditd writes a value: quoted when printable without spaces or quotes, else hex."""
    if _PLAIN.fullmatch(v) and '"' not in v:
        return '"%s"' % v
    return v.encode("utf-8", "surrogateescape").hex().upper()


class AuditdRawText:
    """The two raw forms of an auditd event: event.original and keystrokes.text."""

    def original(self, s: str, mask_args: Callable, mask_text: Callable, tty_masked: bool) -> str:
        """``s`` with secrets masked inside its encoded values; mask_args(list) -> (list, changed),
        mask_text(str) -> (str, changed); tty_masked: the event's keystrokes had something masked.
        ``s`` is one record or several, one a line; only the record types that carry encoded
        values are decoded (SYSCALL's a0..a3 are numbers, not arguments)."""
        return "\n".join(self._record(r, mask_args, mask_text, tty_masked) for r in s.split("\n"))

    def _record(self, s: str, mask_args: Callable, mask_text: Callable, tty_masked: bool) -> str:
        try:
            if s.startswith("type=EXECVE "):
                args = _ARG_RE.findall(s)
                masked, changed = mask_args([_decode(v) for _, v in args])
                if changed:
                    it = iter(masked)
                    s = _ARG_RE.sub(lambda m: m.group(1) + _encode(next(it)), s)
            elif s.startswith("type=PROCTITLE "):
                m = _PROCTITLE_RE.search(s)
                if m:
                    masked, changed = mask_args(_decode(m.group(2)).split("\0"))
                    if changed:
                        s = s[:m.start(2)] + _encode("\0".join(masked)) + s[m.end(2):]
            elif s.startswith("type=USER_CMD "):
                m = _CMD_RE.search(s)
                if m:
                    text, changed = mask_text(_decode(m.group(2)))
                    if changed:
                        s = s[:m.start(2)] + _encode(text) + s[m.end(2):]
            elif tty_masked and s.startswith(("type=TTY ", "type=USER_TTY ")):
                s = _TTY_DATA_RE.sub(lambda m: m.group(1) + MASK, s)
        except ValueError:      # odd hex (a truncated or corrupt record): the stage masks it as text
            pass
        return s

    def keystrokes_text(self, text: str, mask_runs: Callable) -> str:
        """Mask inside each quoted run of aureport-style text: mask_runs(list of plain runs) ->
        list of masked runs (None where the whole run is secret)."""
        runs = list(_RUN_RE.finditer(text))
        if not runs:
            return text
        plain = [_OCT_RE.sub(lambda o: chr(int(o.group(1), 8)) if len(o.group(1)) == 3 else o.group(1), m.group(1))
                 .encode("latin-1").decode("utf-8", "surrogateescape") for m in runs]
        masked = mask_runs(plain)
        out = []
        pos = 0
        for m, before, after in zip(runs, plain, masked, strict=False):
            if after == before:
                continue
            out.append(text[pos:m.start()])
            out.append('"%s"' % MASK if after is None else render(after.encode("utf-8", "surrogateescape")))
            pos = m.end()
        if not out:
            return text
        out.append(text[pos:])
        return "".join(out)


RAW_TEXT = AuditdRawText()
