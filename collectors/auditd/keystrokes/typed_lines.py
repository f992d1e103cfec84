"""typed_lines(data, history): the command lines a shell received, rebuilt from the
bytes pam_tty_audit logged, by replaying them through a model of readline in emacs mode
(bash's default, with Debian's /etc/inputrc bindings). What cannot be known (tab
completion, keys it does not model, history older than what it was given) stays visible
in the text as a marker like ``<tab>`` and flags the line ``uncertain`` with the reasons.
Kept apart from render.py (aureport's rendering) because the two share nothing but input.
"""

from __future__ import annotations

import re
from typing import Optional

from collectors.auditd.decode import bytes_to_text
from collectors.auditd.keystrokes.keys import NAMED_KEYS


class TypedLine:
    """One line of input as the shell received it.

    ``end`` says how it ended: ``ret`` / ``nl`` (accepted with CR / LF: a command line),
    ``cancelled`` (^C: discarded, never run), ``eof`` (^D on an empty line: the shell
    exits; text is empty) or ``partial`` (the data stopped mid-line: continued in a later
    record, or never finished). ``uncertain`` with ``reasons`` when the text holds markers
    for what could not be replayed. ``escaped`` when the text is not valid UTF-8 and was
    escaped the way decode.bytes_to_text does for arguments.
    """

    __slots__ = ("text", "end", "uncertain", "reasons", "escaped")

    def __init__(self, text: str, end: str, reasons: list, escaped: bool = False):
        self.text = text
        self.end = end
        self.reasons = reasons
        self.uncertain = bool(reasons)
        self.escaped = escaped

    @property
    def accepted(self) -> bool:
        return self.end in ("ret", "nl")

    def to_dict(self) -> dict:
        d = {"line": self.text, "end": self.end, "uncertain": self.uncertain}
        if self.reasons:
            d["reasons"] = list(self.reasons)
        if self.escaped:
            d["escaped"] = True
        return d

    def __repr__(self) -> str:  # pragma: no cover - debugging aid
        return "TypedLine(%r, %s%s)" % (self.text, self.end, ", uncertain" if self.uncertain else "")

    def __eq__(self, other) -> bool:
        return isinstance(other, TypedLine) and self.to_dict() == other.to_dict()


def typed_lines(data: bytes, history: Optional[list] = None) -> list:
    """The lines typed in ``data``; ``history``: earlier lines of the session, oldest first."""
    return _Editor(history or []).feed(data)


def _line_text(chars: list) -> tuple:
    """(text, escaped) of an edited buffer; surrogate escapes stand for non-UTF-8 bytes."""
    s = "".join(chars)
    try:
        s.encode("utf-8")
        return s, False
    except UnicodeEncodeError:
        return bytes_to_text(s.encode("utf-8", "surrogateescape"))


# --- the readline (emacs mode) replay behind typed_lines -----------------------------------

_CSI_RE = re.compile(r"\[[0-?]*[ -/]*[@-~]")
_PASTE_START, _PASTE_END = "\x1b[200~", "\x1b[201~"
_UP, _DOWN, _LEFT, _RIGHT, _HOME, _END, _DEL = "up", "down", "left", "right", "home", "end", "del"
# What follows ESC -> action; bindings of readline's defaults plus Debian's /etc/inputrc.
_ESC_ACTIONS = {
    "[A": _UP, "OA": _UP, "[B": _DOWN, "OB": _DOWN, "[C": _RIGHT, "OC": _RIGHT,
    "[D": _LEFT, "OD": _LEFT, "[H": _HOME, "OH": _HOME, "[1~": _HOME, "[7~": _HOME,
    "[F": _END, "OF": _END, "[4~": _END, "[8~": _END, "[3~": _DEL, "[2~": "quote",
    "[1;5C": "fword", "[5C": "fword", "\x1b[C": "fword", "f": "fword",
    "[1;5D": "bword", "[5D": "bword", "\x1b[D": "bword", "b": "bword",
    "d": "kill_fword", "\x7f": "kill_bword", "\x08": "kill_bword",
}
_CTL_ACTIONS = {
    "\x01": _HOME, "\x02": _LEFT, "\x03": "cancel", "\x04": "eof", "\x05": _END, "\x06": _RIGHT,
    "\x07": "noop", "\x08": "bs", "\t": "tab", "\n": "nl", "\x0b": "kill_end", "\x0c": "noop",
    "\r": "ret", "\x0e": _DOWN, "\x10": _UP, "\x12": "search", "\x14": "transpose",
    "\x15": "kill_start", "\x16": "quote", "\x17": "kill_ws_word", "\x18": "prefix_x",
    "\x19": "yank", "\x7f": "bs",
}
_MARKER_REASONS = {
    "<tab>": "tab completion: the completed text is not in the keystrokes",
    "<up>": "history recall beyond the known history",
    "<^R>": "reverse-i-search with no match in the known history",
    "<^Y>": "yank of text killed before this data",
}


def _tokens(s: str):
    """(kind, text): ("char", c), ("ctl", c), ("esc", what follows ESC) or ("paste", text)."""
    i, n = 0, len(s)
    while i < n:
        c = s[i]
        if c != "\x1b":
            yield ("ctl" if c < " " or c == "\x7f" else "char"), c
            i += 1
            continue
        if s.startswith(_PASTE_START, i):
            end = s.find(_PASTE_END, i + 6)
            end = n if end < 0 else end
            yield "paste", s[i + 6:end].replace("\r", "\n")
            i = end + 6
            continue
        j = i + 1
        lead = ""
        if s.startswith("\x1b[", j) or s.startswith("\x1bO", j):
            lead, j = "\x1b", j + 1     # ESC ESC [ C: Debian's alternative word motion
        if j >= n:
            seq = ""
        elif s[j] == "[":
            m = _CSI_RE.match(s, j)
            seq = m.group() if m else "["
        elif s[j] == "O" and j + 1 < n:
            seq = s[j:j + 2]
        else:
            seq = s[j]
        yield "esc", lead + seq
        i = j + len(seq)


def _key_name(kind: str, text: str) -> str:
    raw = ("\x1b" + text if kind == "esc" else text).encode("utf-8", "surrogateescape")
    if raw in NAMED_KEYS:
        return "<%s>" % NAMED_KEYS[raw]
    if kind == "ctl":
        return "<^%s>" % chr(0x40 ^ ord(text))
    return "<esc>" + text


def _is_marker(e: str) -> bool:
    return len(e) > 1


def _alnum(e: str) -> bool:
    return len(e) == 1 and e.isalnum()


class _Editor:
    """State of one readline session: the line buffer, kill ring and known history."""

    def __init__(self, history: list):
        self.hall: list = []    # every accepted line (HISTCONTROL unset)
        self.hdeb: list = []    # Debian's default ~/.bashrc: HISTCONTROL=ignoreboth
        for h in history:
            self._remember(list(h))
        self.out: list = []
        self.kill: Optional[list] = None
        self._new_line()

    def _new_line(self) -> None:
        self.buf: list = []
        self.pos = 0
        self.why: list = []
        self.back = 0           # steps back in history; 0 is the line being edited
        self.saved: list = []
        self.last_kill = False
        self.search: Optional[list] = None

    def _why(self, reason: str) -> None:
        if reason not in self.why:
            self.why.append(reason)

    def _remember(self, elems: list) -> None:
        self.hall.append(elems)
        if elems[:1] != [" "] and (not self.hdeb or self.hdeb[-1] != elems):
            self.hdeb.append(elems)

    def _emit(self, end: str) -> None:
        reasons = list(self.why)
        for e in self.buf:
            if _is_marker(e):
                tag = e[:e.index(">") + 1] if ">" in e else e
                r = _MARKER_REASONS.get(tag, "key not replayed: " + tag)
                if r not in reasons:
                    reasons.append(r)
        text, escaped = _line_text(self.buf)
        self.out.append(TypedLine(text, end, reasons, escaped))
        if end in ("ret", "nl"):
            self._remember(list(self.buf))
        self._new_line()

    def feed(self, data: bytes) -> list:
        s = data.decode("utf-8", "surrogateescape")
        toks = _tokens(s)
        for kind, text in toks:
            if self.search is not None and self._searching(kind, text):
                continue
            act = _ESC_ACTIONS.get(text) if kind == "esc" else _CTL_ACTIONS.get(text) if kind == "ctl" else None
            was_kill, self.last_kill = self.last_kill, False
            if kind in ("char", "paste"):
                self._insert(list(text))
            elif act in ("ret", "nl"):
                if self.buf:
                    self._emit(act)
                else:
                    self._new_line()
            elif act == "quote" or act == "prefix_x":
                nxt = next(toks, None)
                if nxt is None:
                    self._insert([_key_name(kind, text)])
                elif act == "quote":
                    self._insert(list(("\x1b" if nxt[0] == "esc" else "") + nxt[1]))
                else:
                    self._insert([_key_name(kind, text) + _key_name(*nxt)])
            elif act is None or act == "tab":
                self._insert([_key_name(kind, text)])
            else:
                self.last_kill = was_kill
                getattr(self, "_do_" + act)()
        if self.search is not None:
            self._end_search()
        if self.buf:
            self._emit("partial")
        return self.out

    # editing primitives
    def _insert(self, elems: list) -> None:
        self.buf[self.pos:self.pos] = elems
        self.pos += len(elems)

    def _move(self, to: int) -> None:
        lo, hi = sorted((self.pos, to))
        if any(_is_marker(e) for e in self.buf[lo:hi]) and abs(to - self.pos) and to not in (0, len(self.buf)):
            self._why("cursor moved across text that is not in the keystrokes")
        self.pos = to

    def _cut(self, lo: int, hi: int, backward: bool) -> None:
        piece = self.buf[lo:hi]
        del self.buf[lo:hi]
        self.pos = lo
        if self.last_kill and self.kill is not None:
            self.kill = piece + self.kill if backward else self.kill + piece
        else:
            self.kill = piece
        self.last_kill = True

    def _erase(self, at: int, name: str) -> None:
        if _is_marker(self.buf[at]):   # the char erased is inside text we do not know
            self.buf[at] += name
        else:
            del self.buf[at]
            if at < self.pos:
                self.pos -= 1

    def _do_bs(self) -> None:
        if self.pos:
            self._erase(self.pos - 1, "<backspace>")

    def _do_del(self) -> None:
        if self.pos < len(self.buf):
            self._erase(self.pos, "<delete>")

    def _do_eof(self) -> None:
        if self.buf:
            self._do_del()
        else:
            self._emit("eof")

    def _do_cancel(self) -> None:
        if self.buf:
            self._emit("cancelled")
        else:
            self._new_line()

    def _do_noop(self) -> None:
        pass

    def _do_left(self) -> None:
        self._move(max(self.pos - 1, 0))

    def _do_right(self) -> None:
        self._move(min(self.pos + 1, len(self.buf)))

    def _do_home(self) -> None:
        self.pos = 0

    def _do_end(self) -> None:
        self.pos = len(self.buf)

    def _word_back(self) -> int:
        p = self.pos
        while p and not _alnum(self.buf[p - 1]):
            p -= 1
        while p and _alnum(self.buf[p - 1]):
            p -= 1
        return p

    def _word_fwd(self) -> int:
        p, n = self.pos, len(self.buf)
        while p < n and not _alnum(self.buf[p]):
            p += 1
        while p < n and _alnum(self.buf[p]):
            p += 1
        return p

    def _do_bword(self) -> None:
        self._move(self._word_back())

    def _do_fword(self) -> None:
        self._move(self._word_fwd())

    def _do_kill_bword(self) -> None:
        self._cut(self._word_back(), self.pos, True)

    def _do_kill_fword(self) -> None:
        self._cut(self.pos, self._word_fwd(), False)

    def _do_kill_ws_word(self) -> None:
        # unix-word-rubout: the word boundary is whitespace only (so "/etc/x" goes whole)
        p = self.pos
        while p and self.buf[p - 1].isspace():
            p -= 1
        while p and not self.buf[p - 1].isspace():
            p -= 1
        self._cut(p, self.pos, True)

    def _do_kill_start(self) -> None:
        self._cut(0, self.pos, True)

    def _do_kill_end(self) -> None:
        self._cut(self.pos, len(self.buf), False)

    def _do_yank(self) -> None:
        self._insert(list(self.kill) if self.kill is not None else ["<^Y>"])

    def _do_transpose(self) -> None:
        b, p = self.buf, self.pos
        if p == 0 or len(b) < 2:
            return
        if p == len(b):
            p -= 1
        b[p - 1], b[p] = b[p], b[p - 1]
        self.pos = p + 1

    # history
    def _entry(self, hist: list) -> Optional[list]:
        return hist[len(hist) - self.back] if self.back <= len(hist) else None

    def _load(self) -> None:
        if self.back == 0:
            self.buf = list(self.saved)
        else:
            deb, every = self._entry(self.hdeb), self._entry(self.hall)
            if deb != every:
                self._why("history recall depends on HISTCONTROL; assumed Debian's ignoreboth")
            self.buf = list(deb) if deb is not None else ["<up>" * (self.back - len(self.hdeb))]
        self.pos = len(self.buf)

    def _do_up(self) -> None:
        if self.back == 0:
            self.saved = list(self.buf)
        self.back += 1
        self._load()

    def _do_down(self) -> None:
        if self.back:
            self.back -= 1
            self._load()

    # reverse-i-search (^R): the query is typed after ^R; the match becomes the line
    def _do_search(self) -> None:
        self.search = [[], 1, list(self.buf), self.pos]
        self._find()

    def _find(self) -> None:
        query, nth = "".join(self.search[0]), self.search[1]
        if not query:
            self.buf, self.pos = list(self.search[2]), self.search[3]
            return
        found = []
        for hist in (self.hdeb, self.hall):
            hits = [h for h in reversed(hist) if query in "".join(h)]
            found.append(hits[nth - 1] if len(hits) >= nth else None)
        if found[0] != found[1]:
            self._why("history search depends on HISTCONTROL; assumed Debian's ignoreboth")
        if found[0] is None:
            self.buf, self.pos = ["<^R>" + query], 1
        else:
            self.buf = list(found[0])
            self.pos = "".join(found[0]).rfind(query) if query else len(self.buf)

    def _searching(self, kind: str, text: str) -> bool:
        """Handle one token while ^R is active; False when it ends the search unconsumed."""
        if kind == "char":
            self.search[0].append(text)
            self.search[1] = 1
        elif text == "\x12":
            self.search[1] += 1
        elif text in ("\x7f", "\x08"):
            if self.search[0]:
                self.search[0].pop()
        elif text == "\x07":                   # ^G: abandon the search, restore the line
            self.buf, self.pos = self.search[2], self.search[3]
            self.search = None
            return True
        else:
            self._end_search()
            return kind == "esc" and text == "" or text == "\n"
        self._find()
        return True

    def _end_search(self) -> None:
        self.search = None
        self.pos = min(max(self.pos, 0), len(self.buf))
