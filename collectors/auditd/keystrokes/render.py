"""Keystrokes as ``aureport --tty`` prints them.

render(data) reproduces ``aureport --tty`` (audit 3.0.9, src/ausearch-lookup.c
``print_tty_data`` with the table auparse/tty_named_keys.h) byte for byte: at each position
the named key whose byte sequence matches wins (``<ret>``, ``<backspace>``, ``<up>``, ``<F1>``,
``<^C>`` …); other bytes collect into a double-quoted run in which ``"`` and ``\\`` are
backslash-escaped and bytes outside 0x20..0x7E become three-digit octal (``\\303``); items
are joined with commas. Only bytes 0x01-0x1B, 0x7F, 0x8F and 0x9B can start a key (the C
code's fast path skips the table for all others), and no table entry is a prefix of a
later one, so "longest match" equals aureport's "first match". NUL has no name (the table
is NUL-separated) and prints as ``"\\000"``; so do 0x1C-0x1F. One divergence on purpose:
empty data renders as "" where aureport prints ``conversion error()``; the kernel never
writes an empty TTY record.
"""

from __future__ import annotations

import re

from collectors.auditd.keystrokes.keys import NAMED_KEYS

__all__ = ["render"]

_BY_FIRST: dict = {}
for _seq in sorted(NAMED_KEYS, key=len, reverse=True):
    _BY_FIRST.setdefault(_seq[0], []).append((_seq, "<%s>" % NAMED_KEYS[_seq]))
# Runs of bytes that can never start a named key take the fast path (str.translate).
_PLAIN_RUN = re.compile(b"[^" + re.escape(bytes(sorted(_BY_FIRST))) + b"]+")
_QUOTED = {c: ("\\" + chr(c) if c in (0x22, 0x5C) else chr(c)) if 0x20 <= c <= 0x7E
           else "\\%03o" % c for c in range(256)}


def render(data: bytes) -> str:
    """``data`` as aureport --tty prints its data column (see the module docstring)."""
    items: list = []
    run: list = []      # the quoted run being built, as pieces of text
    i, n = 0, len(data)
    match = _PLAIN_RUN.match
    while i < n:
        m = match(data, i)
        if m is not None:
            run.append(m.group().decode("latin-1").translate(_QUOTED))
            i = m.end()
            continue
        for seq, tag in _BY_FIRST[data[i]]:
            if data.startswith(seq, i):
                if run:
                    items.append('"%s"' % "".join(run))
                    run = []
                items.append(tag)
                i += len(seq)
                break
        else:   # 0x8F / 0x9B not followed by a known sequence: an ordinary quoted byte
            run.append(_QUOTED[data[i]])
            i += 1
    if run:
        items.append('"%s"' % "".join(run))
    return ",".join(items)
