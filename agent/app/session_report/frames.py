"""tlog's timing format decoded into frames a player writes.

A chunk's ``timing`` is a run of tokens over its text: ``+MS`` a delay, ``>N`` the next
N characters of output text, ``<N`` input text (not recorded by default), ``]N``/``[N``
N bytes of output/input binary (non-UTF-8 bytes, not stored), ``=WxH`` the window size.
``pos`` is the chunk's start in ms from the recording's start. Redaction can change the
text's length (a secret becomes ``********``): tokens take what is there and a chunk's
leftover text is written at its end, so playback stays in order, never loses text.
"""

from __future__ import annotations

import re
from typing import Iterable, List, NamedTuple, Optional, Tuple

_TOKEN = re.compile(r"([+<>\[\]])(\d+)|=(\d+)x(\d+)")
DEFAULT_SIZE = (80, 24)


class Frame(NamedTuple):
    t: float  # seconds from the recording's start
    text: str  # output to write ("" for a resize)
    size: Optional[Tuple[int, int]] = None  # (cols, rows) on a window change


def frames(chunks: Iterable) -> List[Frame]:
    """Frames of one session's chunks (session_store.Chunk or any object with rec, pos,
    timing, text), recordings one after the other in the order given."""
    out: List[Frame] = []
    offset = 0.0  # a second recording in the session (a re-login) plays after the first
    rec, last = None, 0.0
    for c in chunks:
        if c.rec != rec:
            offset, rec = (last if out else 0.0), c.rec
        t = offset + c.pos / 1000.0
        text, i = c.text or "", 0
        for m in _TOKEN.finditer(c.timing or ""):
            op, n = m.group(1), m.group(2)
            if op is None:
                out.append(Frame(t, "", (int(m.group(3)), int(m.group(4)))))
            elif op == "+":
                t += int(n) / 1000.0
            elif op == ">":
                piece = text[i:i + int(n)]
                i += int(n)
                if piece:
                    out.append(Frame(t, piece))
        if i < len(text):
            out.append(Frame(t, text[i:]))
        last = max(last, t)
    return out


def size_of(fr: List[Frame]) -> Tuple[int, int]:
    for f in fr:
        if f.size:
            return f.size
    return DEFAULT_SIZE


def screen_text(fr: List[Frame]) -> str:
    """All output in order (for a search or a plain-text view)."""
    return "".join(f.text for f in fr)
