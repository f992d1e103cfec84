"""Keystrokes of TTY / USER_TTY records: aureport's rendering and the typed command lines.

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
or end in the middle of a line: this module sees one record at a time and cannot tell.
"""

from __future__ import annotations

import re
from typing import Optional

from collectors.auditd.decode import bytes_to_text

__all__ = ["render", "typed_lines", "keystrokes_fields", "TypedLine", "NAMED_KEYS"]

# aureport's named keys after ESC, 0x9B (CSI) and 0x8F (SS3): "name seq seq … |".
_ESC_KEYS = """
A1 Ow | A3 Oy | B2 [218z OE Or Ou [E [G | C1 Op Oq | C3 On Os | F1 [224z [11~ [[A OP p |
F10 [233z [21~ OY Ox [V | F11 [192z [234z [23~ OZ [W | F12 [235z [24~ O[ [X |
F13 [11;2~ [25~ O2P [Y | F14 [12;2~ [26~ O2Q | F15 [13;2~ [28~ O2R [a |
F16 [14;2~ [29~ O2S [b | F17 [15;2~ [198z [31~ | F18 [17;2~ [199z [32~ |
F19 [18;2~ [33~ [e | F2 [225z [12~ [[B OQ [N q | F20 [19;2~ [201z [34~ [f |
F21 [20;2~ [23$ [g | F22 [21;2~ [24$ [h | F23 [23;2~ [11^ [i | F24 [24;2~ [12^ [j |
F25 [11;5~ [13^ O5P [k | F26 [12;5~ [14^ O5Q [l | F27 [13;5~ [15^ O5R [m |
F28 [14;5~ [17^ O5S [n | F29 [15;5~ [18^ [o | F3 [226z [13~ [[C OR [O r |
F30 [17;5~ [19^ [p | F31 [18;5~ [208z [20^ [q | F32 [19;5~ [209z [21^ [r |
F33 [20;5~ [210z [23^ [s | F34 [21;5~ [211z [24^ [t | F35 [23;5~ [212z [25^ [u |
F36 [24;5~ [213z [26^ [v | F37 [11;6~ [28^ O6P [w | F38 [12;6~ [215z [29^ O6Q [x |
F39 [13;6~ [31^ O6R [y | F4 [227z [14~ [[D OS [P s | F40 [14;6~ [217z [32^ O6S [z |
F41 [15;6~ [33^ [@ | F42 [17;6~ [219z [34^ [[ | F43 [18;6~ [23@ [\\ |
F44 [19;6~ [221z [24@ [] | F45 [20;6~ [^ | F46 [21;6~ [_ | F47 [23;6~ [` | F48 [24;6~ [{ |
F49 [11;3~ O3P | F5 [228z [15~ [[E OT Ot [Q t | F50 [12;3~ O3Q | F51 [13;3~ O3R |
F52 [14;3~ O3S | F53 [15;3~ | F54 [17;3~ | F55 [18;3~ | F56 [19;3~ | F57 [20;3~ |
F58 [21;3~ | F59 [23;3~ | F6 [229z [17~ OU [R u | F60 [24;3~ | F61 [11;4~ O4P |
F62 [12;4~ O4Q | F63 [13;4~ O4R | F7 [230z [18~ OV Ov [S v | F8 [231z [19~ OW Ol [T w |
F9 [232z [20~ OX [U | end [220z [4~ [8~ OF [F F | up OA [A A | back-tab [Z | clear J |
copy [197z | delete [3z [3~ [9 P | delete-eol [8^ | down OB [B B | find [200z | help [196z |
home [214z [1~ [7~ OH [H h | insert [2z [2~ [L Q | insert-line [30~ | left OD [D D |
mouse [>M [M | options [194z | page-down [222z [6~ S | page-up [216z [5~ [I T |
resume [193z | right OC [C C | scroll-backward O1;2A [1;2A O2A |
scroll-forward O1;2B [1;2B O2B | send OM | shift-del [3;2~ [3;5~ [3$ |
shift-end [1;2F O5F [8$ | shift-home [1;2H O5H [7$ | shift-insert [2;2~ [2;5~ [2$ 2$ |
shift-left O1;2D [1;2D O2D O5D [d | shift-next [6;2~ [6;5~ [6$ |
shift-previous [5;2~ [5;5~ [5$ | shift-right O1;2C [1;2C O2C O5C [c | undo [195z |
"""
_CSI_KEYS = """
F1 11~ | F10 21~ | F11 23~ | F12 24~ | F13 25~ | F14 26~ | F15 28~ | F16 29~ | F17 31~ |
F18 32~ | F19 33~ | F2 12~ | F20 34~ | F3 13~ | F4 14~ | F5 15~ | F6 17~ | F7 18~ | F8 19~ |
F9 20~ | end 4~ | back-tab Z | delete 3~ | home 1~ | insert 2~ | mouse M | page-down 6~ |
page-up 5~ |
"""
_SS3_KEYS = """
A1 w | A3 u | B2 y | C1 q | C3 s | up A | begin E | down B | left D | right C | send M |
"""


def _build_keys() -> dict:
    keys = {b"\x08": "backspace", b"\t": "tab", b"\n": "nl", b"\r": "ret", b"\x7f": "backspace",
            b"\x1b": "esc", b"\x1b\t": "back-tab"}
    for c in range(1, 0x1B):
        keys.setdefault(bytes((c,)), "^" + chr(0x40 + c))
    for prefix, table in ((b"\x1b", _ESC_KEYS), (b"\x9b", _CSI_KEYS), (b"\x8f", _SS3_KEYS)):
        for entry in table.split("|"):
            words = entry.split()
            for seq in words[1:]:
                keys[prefix + seq.encode()] = words[0]
    return keys


#: Byte sequence -> key name, exactly aureport's table (tests check every entry against it).
NAMED_KEYS: dict = _build_keys()
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
