"""Parse one line of auditd's log into an :class:`AuditRecord`.

Line shape (RAW and ENRICHED ``log_format``)::

    [node=NAME ]type=TYPE msg=audit(SEC.MSEC:SERIAL): k=v k="v" msg='k=v …'[\\x1dK=v K="v" …]

* Kernel records quote strings only when they contain nothing that needs escaping
  (no space, quote or control byte); everything else is hex text. So in the kernel part
  a plain ``split(' ')`` finds the fields; only user-space ``msg='…'`` payloads and the
  ENRICHED tail (``SADDR={ saddr_fam=… }``) hold spaces, and only those go through a regex.
* Values are kept as the log wrote them (hex stays hex text, ``(null)``/``?``/``(none)``
  stay literal) except that surrounding quotes are removed: interpreting is decode.py's job.
* Words without ``=`` in a user-space payload (``op=adding user id=1001``) belong to the
  previous value, as the writer meant (libaudit writes ``op`` unescaped); in the kernel part
  they are prefix words (``tty pid=…``, ``avc: denied { read } for …``) and are kept under
  the field ``_words`` so nothing is dropped.

Anything that is not such a line raises :class:`ParseError` (and nothing else), with a
reason for the dead-letter file.
"""

from __future__ import annotations

import re
from typing import Optional

from agent.base.cache import BoundedCache

__all__ = ["AuditRecord", "ParseError", "parse_line", "MAX_LINE"]

# The kernel caps a record near 8 KiB (MAX_AUDIT_MESSAGE_LENGTH 8970) and ENRICHED adds
# at most a few KiB; anything far beyond is not an audit record and would only cost time.
MAX_LINE = 256 * 1024

_GS = b"\x1d"
# Enriched and user-space values may hold spaces inside {…} or quotes.
_KV_RE = re.compile(r"""([^\s=]+)=(\{[^}]*\}|"[^"]*"|'[^']*'|\S*)|(\S+)""")
# Kernel text: quoted values never hold spaces or quotes (those are hex-encoded).
_SIMPLE_RE = re.compile(r'([^\s=]+)="?([^"\s]*)"?')
# Groups: node, type, stamp (SEC.MSEC:SERIAL), SEC.MSEC, SERIAL.
_header_match = re.compile(
    r"(?:node=([^ ]*) )?type=([^ \x1d]+) msg=audit\((([0-9]+\.[0-9]+):([0-9]+))\):(?: |$)",
    re.ASCII).match
# Parse caches (see AuditRecord.fields): bodies up to _CACHE_LEN characters, SYSCALL tails,
# ENRICHED tails.
_CACHE_LEN = 200
_CACHE_MAX = 2048
_fields_cache = BoundedCache(_CACHE_MAX)
_tail_cache = BoundedCache(_CACHE_MAX)
_enriched_cache = BoundedCache(_CACHE_MAX)


class ParseError(ValueError):
    """The line is not an audit record; the message is the reason."""


class AuditRecord:
    """One record. ``fields`` and ``enriched`` are parsed on first access: an exec event
    has seven records and the normalizer reads the fields of only a few of them (this is
    most of the difference to ausearch's speed); parsing them never fails."""

    __slots__ = ("type", "node", "time", "stamp", "serial", "raw", "offset", "_body", "_enr",
                 "_fields", "_enriched")

    # ``_body`` is the body text, or (from parse_line) None while ``_enr`` holds the text
    # after the header uncut (body, 0x1d, ENRICHED tail): _split() cuts it on first use.

    # Every argument has a default only for parse_line's ``AuditRecord.__new__(AuditRecord)``
    # when the module is compiled (setup.py, AGENTD_MYPYC): a compiled class's __new__ runs
    # __init__ too (pure Python's object.__new__ does not); parse_line then sets every slot.
    def __init__(self, type: str = "", node: str = "", time: float = 0.0, stamp: str = "",
                 serial: int = 0, fields: Optional[dict] = None, enriched: Optional[dict] = None,
                 raw: bytes = b"", offset: int = -1, body: Optional[str] = "", enr: str = ""):
        self.type = type
        self.node = node
        self.time = time
        self.stamp = stamp
        self.serial = serial
        self.raw = raw
        self.offset = offset
        self._body = body
        self._enr = enr
        self._fields = fields
        self._enriched = enriched

    def _split(self) -> tuple:
        """(body, ENRICHED text), cut from the text after the header on the first call."""
        if self._body is None:
            rest = self._enr
            gs = rest.find("\x1d")
            if gs >= 0:
                self._body, self._enr = rest[:gs], rest[gs + 1:]
            else:
                self._body, self._enr = rest, ""
        return self._body, self._enr

    @property
    def fields(self) -> dict:
        f = self._fields
        if f is None:
            # Short bodies repeat (CWD, PROCTITLE, PATH …): parsed once.
            f = self._fields = _parsed(self._split()[0], _parse_body, _fields_cache, _CACHE_LEN)
        return f

    @fields.setter
    def fields(self, value: dict) -> None:
        self._fields = value

    def text_after_header(self) -> Optional[str]:
        """The record's text after its header (body and ENRICHED tail, as written) while
        neither ``fields`` nor ``enriched`` has been read or set; None after. Until then
        everything the body says is a function of this text, so it can key a cache of
        values computed from the record (normalize/fastpath.py does)."""
        if self._body is not None or self._fields is not None or self._enriched is not None:
            return None
        return self._enr

    def mentions(self, word: str) -> bool:
        """Whether ``word`` occurs in the line, for a word that cannot occur in the
        header's ``msg=audit(STAMP):`` and holds no space or 0x1d (``lost=``, ``'``): such
        a word lies within the type, the node or the text after the header, so this is
        ``raw.find(word) >= 0`` without bytes.find's cost."""
        if word in self.type or word in self.node:
            return True
        return word in self._enr if self._body is None else word in self._body or word in self._enr

    @property
    def enriched(self) -> dict:
        e = self._enriched
        if e is None:
            # The ENRICHED tail repeats (same user, same syscall): cached like short bodies.
            e = self._enriched = _parsed(self._split()[1], _parse_enriched, _enriched_cache, _CACHE_LEN * 4)
        return e

    @enriched.setter
    def enriched(self, value: dict) -> None:
        self._enriched = value

    def __repr__(self) -> str:  # pragma: no cover - debugging aid
        return f"AuditRecord({self.type} {self.node}{self.stamp} @{self.offset})"


def _parsed(text: str, parse, cache: BoundedCache, limit: int) -> dict:
    """parse(text, fields) into a new dict. Texts up to ``limit`` characters are parsed once
    and handed out as copies, so a caller's change never reaches another record. Never
    fails: on an exception the fields found so far are kept (and not cached)."""
    if not text:
        return {}
    short = len(text) <= limit
    if short:
        hit = cache.get(text)
        if hit is not None:
            return hit.copy()
    out: dict = {}
    try:
        parse(text, out)
    except Exception:  # noqa: BLE001 - never fails; keep what was found
        return out
    if short:
        cache.put(text, out)
        return out.copy()
    return out


def _parse_enriched(text: str, out: dict) -> None:
    if "{" in text:
        _parse_kv_text(text, out, False)
    else:
        out.update(_SIMPLE_RE.findall(text))


def _unquote(v: str) -> str:
    if len(v) >= 2 and v[0] == v[-1] and v[0] in "\"'":
        return v[1:-1]
    return v


def _parse_kv_text(text: str, out: dict, join_words: bool) -> None:
    """Fields from text that may hold spaces inside quotes or braces."""
    last = None
    for m in _KV_RE.finditer(text):
        key = m.group(1)
        if key is None:
            word = m.group(3)
            if join_words and last is not None:
                out[last] = out[last] + " " + word
            else:
                out["_words"] = (out["_words"] + " " + word) if "_words" in out else word
            continue
        val = m.group(2)
        if val[:1] == "{" and val[-1:] == "}":
            val = val[1:-1].strip()
        else:
            val = _unquote(val)
        if key not in out:
            out[key] = val
        last = key


def _parse_kernel_text(text: str, fields: dict) -> None:
    # The hot path. Kernel quoted values hold no quotes or spaces, so when every token is
    # k=v a split is exact and the fastest we found; a token without '=' (prefix words)
    # makes dict() raise and we take the regex.
    if '"' not in text or text.count('"') % 2 == 0:
        i = text.find(" auid=") if len(text) > _CACHE_LEN else -1
        if i > 0:
            # A SYSCALL record: from auid on (ids, tty, ses, comm, exe, key) it repeats
            # from event to event. Split at that space the tokens are the same, so the
            # tail's pairs are cached (False: a token without '=').
            tail = text[i:]
            pairs = _tail_cache.get(tail)
            if pairs is None:
                try:
                    pairs = dict([t.split("=", 1) for t in tail.replace('"', "").split()])  # type: ignore[misc]
                except ValueError:
                    pairs = False
                _tail_cache.put(tail, pairs)
            if pairs is not False:
                try:
                    fields.update([t.split("=", 1) for t in text[:i].replace('"', "").split()])  # type: ignore[misc]
                    fields.update(pairs)  # type: ignore[arg-type]
                    return
                except ValueError:
                    fields.clear()
        else:
            try:
                fields.update([t.split("=", 1) for t in text.replace('"', "").split()])  # type: ignore[misc]
                return
            except ValueError:
                fields.clear()
    fields.update(_SIMPLE_RE.findall(text))
    first = text.lstrip().split(" ", 1)[0]
    if first and "=" not in first:
        # Prefix words (``tty pid=…``, ``avc:  denied  { read } for  pid=…``).
        words = [w for w in text.split() if "=" not in w]
        fields["_words"] = " ".join(words)
    if text.count('"') % 2:
        # A quote that does not close within its token: be exact rather than fast.
        fields.clear()
        _parse_kv_text(text, fields, False)


def _parse_body(body: str, fields: dict) -> None:
    i = body.find("msg='")
    if i < 0:
        _parse_kernel_text(body, fields)
        return
    j = body.rfind("'")
    if j <= i + 4:
        j = len(body)  # truncated payload: keep what is there
    head, inner, tail = body[:i], body[i + 5:j], body[j + 1:]
    _parse_kernel_text(head, fields)
    fields["msg"] = inner
    # The outer pid/uid/auid/ses are the kernel's view of the sender; they win.
    _parse_kv_text(inner, fields, True)
    if tail.strip():
        _parse_kv_text(tail, fields, False)


# ``line: object``: anything else than bytes is a ParseError, never a TypeError (compiled,
# an annotation of bytes would be checked on entry).
def parse_line(line: object, offset: int = -1) -> AuditRecord:
    global _last_stamp
    try:
        if type(line) is not bytes:
            if not isinstance(line, (bytes, bytearray, memoryview)):
                raise ParseError(f"expected bytes, got {type(line).__name__}")
            line = bytes(line)
        if line[-1:] == b"\n":
            line = line[:-1]
        if len(line) > MAX_LINE:
            raise ParseError(f"line too long ({len(line)} bytes > {MAX_LINE})")
        # Kernel and libaudit text is ASCII; surrogateescape keeps any stray byte reversible.
        text = line.decode("utf-8", "surrogateescape")
        # The usual header, ``type=T msg=audit(STAMP): `` without node=, is its first two
        # words: one split, a dict lookup for the type and, for all records of an event
        # but the first, one comparison with the previous stamp (the regex cost three
        # times as much). Anything else takes the regex, which defines what is valid.
        parts = text.split(" ", 2)
        rtype = _types.get(parts[0])
        last = _last_stamp
        if rtype is not None and len(parts) > 1:
            word = parts[1]
            if word != last[0]:
                m = _stamp_word(word)
                if m is not None:
                    # The records of an event follow each other and share the stamp:
                    # convert it once.
                    stamp, sec, ser = m.groups()
                    last = _last_stamp = (word, stamp, float(sec), int(ser))
            if word == last[0]:
                if "\x00" in text:
                    raise ParseError("NUL byte in line")
                # What AuditRecord(...) makes with body=None, without the cost of calling
                # __init__ (a third of this function's).
                rec = _new_record(AuditRecord)
                rec.type = rtype
                rec.node = ""
                rec.stamp = last[1]
                rec.time = last[2]
                rec.serial = last[3]
                rec.raw = line
                rec.offset = offset
                rec._body = rec._fields = rec._enriched = None
                rec._enr = parts[2] if len(parts) > 2 else ""
                return rec
        elif rtype is None and parts[0][:5] == "type=" and "\x1d" not in parts[0] and len(parts[0]) > 5:
            _types.put(parts[0], parts[0][5:])
        m = _header_match(text)
        if m is None:
            raise ParseError(_why_not(text))
        if "\x00" in text:
            raise ParseError("NUL byte in line")
        node, rtype, stamp, sec, ser = m.groups()
        # The records of an event follow each other and share the stamp: convert it once.
        word = f"msg=audit({stamp}):"
        if last[0] == word:
            time, serial = last[2], last[3]
        else:
            time, serial = float(sec), int(ser)
            _last_stamp = (word, stamp, time, serial)
        return AuditRecord(rtype, node or "", time, stamp, serial, None, None, line, offset,
                           None, text[m.end():])
    except ParseError:
        raise
    except Exception as e:  # noqa: BLE001 - the contract: only ParseError escapes
        raise ParseError(f"unparseable line ({type(e).__name__}: {e})") from None


# (``msg=audit(STAMP):``, STAMP, its time, its serial) of the last record parsed (None:
# equal to no word).
_last_stamp: tuple = (None, "", 0.0, 0)
# First word ``type=T`` -> T, for the types seen (a valid T: not empty, no 0x1d).
_types = BoundedCache(256)
# object.__new__ in pure Python; compiled, object.__new__ refuses the class (its own __new__
# is the one to call).
_new_record = AuditRecord.__new__
# The header's second word; groups: stamp (SEC.MSEC:SERIAL), SEC.MSEC, SERIAL.
_stamp_word = re.compile(r"msg=audit\((([0-9]+\.[0-9]+):([0-9]+))\):", re.ASCII).fullmatch


def _why_not(text: str) -> str:
    """The reason a line has no valid header, for the dead-letter file."""
    if not text:
        return "empty line"
    if text.startswith("node="):
        sp = text.find(" ")
        if sp < 0:
            return "node= without a record after it"
        text = text[sp + 1:]
    if not text.startswith("type="):
        return "no 'type=' at the start of the record"
    sp = text.find(" msg=audit(", 5)
    if sp < 0:
        return "no 'msg=audit(' header"
    if sp == 5 or " " in text[5:sp]:
        return "empty or malformed record type"
    close = text.find(")", sp + 11)
    if close < 0:
        return "truncated audit(…) stamp"
    if not re.fullmatch(r"[0-9]+\.[0-9]+:[0-9]+", text[sp + 11:close], re.ASCII):
        return f"malformed audit stamp {text[sp + 11:close][:40]!r}"
    return "audit(…) stamp not followed by ':'"
