"""Keystrokes of TTY / USER_TTY records: aureport's rendering and the typed command lines.

The pieces, in the order a record goes through them: keys.py (aureport's table of named
keys), render.py (``render``: the bytes as ``aureport --tty`` prints them), typed_lines.py
(``typed_lines``: the command lines the shell received); ``keystrokes_fields`` here puts
them together into an event's ``keystrokes`` object.

typed_lines(data, history) replays the bytes through a model of readline in emacs mode
(bash's default, with Debian's /etc/inputrc bindings) and returns what the shell was
handed on each CR/LF. What it cannot know (tab completion, keys it does not model, history
older than what it was given) stays visible in the text as a marker like ``<tab>`` and
flags the line ``uncertain`` with the reasons. See TypedLine for the line kinds.

What the kernel logs (pam_tty_audit): the bytes a process *read* from its tty, flushed when
the buffer fills, the reader changes, or the session ends. Input read with ICANON on and
ECHO off (password prompts) is left out unless ``log_passwd`` is set, so passwords typed
at su/sudo/ssh prompts are normally absent. With ISIG on, ^C/^Z/^\\ never reach the reader,
so a line abandoned with ^C at a bash prompt usually shows no ``<^C>``. A record may start
or end in the middle of a line: this package sees one record at a time and cannot tell.
"""

from __future__ import annotations

from typing import Optional

from collectors.auditd.keystrokes.keys import NAMED_KEYS
from collectors.auditd.keystrokes.render import render
from collectors.auditd.keystrokes.typed_lines import TypedLine, typed_lines

__all__ = ["render", "typed_lines", "keystrokes_fields", "TypedLine", "NAMED_KEYS"]


def keystrokes_fields(data: bytes, history: Optional[list] = None) -> dict:
    """The ``keystrokes`` object of an auditd.tty event (EVENTS.md).

    ``text``: render(data). ``lines``: the accepted command lines (end ret/nl), in order.
    ``uncertain``: any line (of any kind) uncertain. ``line_details``: every TypedLine as
    ``{"line", "end", "uncertain", "reasons"?, "escaped"?}``, including cancelled, eof and
    partial lines, which ``lines`` leaves out because the shell never ran them.
    """
    tls = typed_lines(data, history)
    return {
        "text": render(data),
        "lines": [t.text for t in tls if t.accepted],
        "uncertain": any(t.uncertain for t in tls),
        "line_details": [t.to_dict() for t in tls],
    }
