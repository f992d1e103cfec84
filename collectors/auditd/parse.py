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

__all__ = ["AuditRecord", "ParseError", "parse_line", "MAX_LINE"]

# The kernel caps a record near 8 KiB (MAX_AUDIT_MESSAGE_LENGTH 8970) and ENRICHED adds
# at most a few KiB; anything far beyond is not an audit record and would only cost time.
MAX_LINE = 256 * 1024

_GS = b"\x1d"
# Enriched and user-space values may hold spaces inside {…} or quotes.
_KV_RE = re.compile(r"""([^\s=]+)=(\{[^}]*\}|"[^"]*"|'[^']*'|\S*)|(\S+)""")
# Kernel text: quoted values never hold spaces or quotes (those are hex-encoded).
_SIMPLE_RE = re.compile(r'([^\s=]+)="?([^"\s]*)"?')


class ParseError(ValueError):
    """The line is not an audit record; the message is the reason."""


class AuditRecord:
    __slots__ = ("type", "node", "time", "stamp", "serial", "fields", "enriched", "raw", "offset")

    def __init__(self, type: str, node: str, time: float, stamp: str, serial: int,
                 fields: dict, enriched: dict, raw: bytes, offset: int = -1):
        self.type = type
        self.node = node
        self.time = time
        self.stamp = stamp
        self.serial = serial
        self.fields = fields
        self.enriched = enriched
        self.raw = raw
        self.offset = offset

    def __repr__(self) -> str:  # pragma: no cover - debugging aid
        return f"AuditRecord({self.type} {self.node}{self.stamp} @{self.offset})"


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
    # One C-level findall per line instead of Python work per field: this is the hot path.
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
        raise ParseError("unterminated msg='…' payload")
    head, inner, tail = body[:i], body[i + 5:j], body[j + 1:]
    _parse_kernel_text(head, fields)
    fields["msg"] = inner
    # The outer pid/uid/auid/ses are the kernel's view of the sender; they win.
    _parse_kv_text(inner, fields, True)
    if tail.strip():
        _parse_kv_text(tail, fields, False)


def parse_line(line: bytes, offset: int = -1) -> AuditRecord:
    try:
        return _parse_line(line, offset)
    except ParseError:
        raise
    except Exception as e:  # noqa: BLE001 - the contract: only ParseError escapes
        raise ParseError(f"unparseable line ({type(e).__name__}: {e})") from None


def _parse_line(line: bytes, offset: int) -> AuditRecord:
    if not isinstance(line, (bytes, bytearray, memoryview)):
        raise ParseError(f"expected bytes, got {type(line).__name__}")
    line = bytes(line)
    if line[-1:] == b"\n":
        line = line[:-1]
    if len(line) > MAX_LINE:
        raise ParseError(f"line too long ({len(line)} bytes > {MAX_LINE})")
    if not line:
        raise ParseError("empty line")
    gs = line.find(_GS)
    if gs >= 0:
        main_b, enr_b = line[:gs], line[gs + 1:]
    else:
        main_b, enr_b = line, b""
    if b"\x00" in line:
        raise ParseError("NUL byte in line")
    # Kernel and libaudit text is ASCII; surrogateescape keeps any stray byte reversible.
    text = main_b.decode("utf-8", "surrogateescape")
    node = ""
    if text.startswith("node="):
        sp = text.find(" ")
        if sp < 0:
            raise ParseError("node= without a record after it")
        node = text[5:sp]
        text = text[sp + 1:]
    if not text.startswith("type="):
        raise ParseError("no 'type=' at the start of the record")
    sp = text.find(" msg=audit(", 5)
    if sp < 0:
        raise ParseError("no 'msg=audit(' header")
    rtype = text[5:sp]
    if not rtype or " " in rtype:
        raise ParseError("empty or malformed record type")
    close = text.find("):", sp + 11)
    if close < 0:
        if text.find(")", sp + 11) < 0:
            raise ParseError("truncated audit(…) stamp")
        raise ParseError("audit(…) stamp not followed by ':'")
    stamp = text[sp + 11:close]
    ts, colon, ser = stamp.partition(":")
    sec, dot, msec = ts.partition(".")
    if not (colon and dot and sec.isdigit() and msec.isdigit() and ser.isdigit()
            and sec.isascii() and msec.isascii() and ser.isascii()):
        raise ParseError(f"malformed audit stamp {stamp[:40]!r}")
    fields: dict = {}
    body = text[close + 2:]
    if body:
        _parse_body(body, fields)
    enriched: dict = {}
    if enr_b:
        etext = enr_b.decode("utf-8", "surrogateescape")
        if "{" in etext:
            _parse_kv_text(etext, enriched, False)
        else:
            enriched.update(_SIMPLE_RE.findall(etext))
    return AuditRecord(rtype, node, int(sec) + int(msec) / 1000.0, stamp, int(ser),
                       fields, enriched, line, offset)
