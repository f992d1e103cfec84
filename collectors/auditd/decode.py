"""Interpret raw audit values: hex strings, EXECVE argv, PROCTITLE, SOCKADDR.

Bytes to text (args, titles, paths, comm …). Audit hands us bytes; ECS wants strings; a
SIEM user must be able to get the exact bytes back. The rule, :func:`bytes_to_text`:

* bytes that are valid UTF-8 are decoded as-is, nothing escaped (not even ``\\``);
* otherwise the value is *escaped*: every backslash becomes ``\\\\`` and every byte that
  is not part of a valid UTF-8 sequence becomes ``\\xNN`` (two lower-case hex digits);
  valid multi-byte sequences stay as characters. The caller flags the event
  (``agentd.process.args_escaped: true`` and the tag ``non-utf8-args``), which says the value must
  be read back with :func:`text_to_bytes` (``\\\\`` -> ``\\``, ``\\xNN`` -> byte).

That is unambiguous because escaping is all-or-nothing per value and flagged.

Quoted or hex? The kernel writes a string quoted when it is plain printable ASCII and as
bare hex otherwise, and parse.py removes the quotes, so ``a1="CAFE"`` and ``a1=CAFE``
both arrive as ``CAFE``. Whether a value was quoted is read back from the raw line
(:func:`was_quoted`); only the few fields that can be hex pay for that.
"""

from __future__ import annotations

import binascii
import ipaddress
import re
import struct
from functools import lru_cache
from typing import Optional

from agent.base.cache import BoundedCache
from collectors.auditd.parse import AuditRecord

__all__ = [
    "bytes_to_text", "text_to_bytes", "was_quoted", "unhex", "value_bytes", "value_text",
    "execve_args", "proctitle", "sockaddr", "NO_VALUE",
]

# Placeholders the kernel and libaudit write for "nothing here".
NO_VALUE = frozenset(("(null)", "?", "(none)", ""))
_ARG_RE = re.compile(rb'(?:^|\s)(argc|a\d+(?:\[\d+\])?)=("[^"]*"|\S*)')
_UNESC_RE = re.compile(r"\\(\\|x[0-9a-f]{2})")
_unhexlify = binascii.unhexlify


def bytes_to_text(data: bytes) -> tuple:
    """(text, escaped) per the module docstring."""
    try:
        return data.decode("utf-8"), False
    except UnicodeDecodeError:
        pass
    s = data.decode("utf-8", "surrogateescape").replace("\\", "\\\\")
    out = []
    for ch in s:
        o = ord(ch)
        if 0xDC80 <= o <= 0xDCFF:
            out.append("\\x%02x" % (o - 0xDC00))
        else:
            out.append(ch)
    return "".join(out), True


def text_to_bytes(text: str, escaped: bool) -> bytes:
    """Inverse of :func:`bytes_to_text`."""
    if not escaped:
        return text.encode("utf-8")

    def one(m: re.Match) -> str:
        g = m.group(1)
        return "\\" if g == "\\" else chr(0xDC00 + int(g[1:], 16))

    return _UNESC_RE.sub(one, text).encode("utf-8", "surrogateescape")


def unhex(v: str) -> Optional[bytes]:
    if len(v) % 2:
        return None
    try:
        return binascii.unhexlify(v)
    except (binascii.Error, ValueError):
        return None


@lru_cache(maxsize=4096)
def _quote_marks(name: str) -> tuple:
    """The byte strings that show ``name`` was written quoted."""
    n = name.encode("ascii", "replace")
    return (b" " + n + b'="', b"'" + n + b'="')


def was_quoted(rec: AuditRecord, name: str) -> bool:
    raw = rec.raw
    a, b = _quote_marks(name)
    # find(), not `in`: bytes.__contains__ first tries the needle as an int (and fails).
    return raw.find(a) >= 0 or raw.find(b) >= 0


def value_bytes(rec: AuditRecord, name: str) -> Optional[bytes]:
    """A string field's bytes: quoted text as-is, bare hex decoded; None when absent."""
    v = rec.fields.get(name)
    if v is None:
        return None
    if was_quoted(rec, name):
        return v.encode("utf-8", "surrogateescape")
    if v in NO_VALUE:
        return None
    b = unhex(v)
    return b if b is not None else v.encode("utf-8", "surrogateescape")


def value_text(rec: AuditRecord, name: str) -> Optional[str]:
    v = rec.fields.get(name)
    if v is not None and v.isascii() and was_quoted(rec, name):
        return v  # quoted ASCII: its bytes decode back to the same text
    b = value_bytes(rec, name)
    return None if b is None else bytes_to_text(b)[0]


# ``tuple``, not tuple[int, int]: compiled, that would be unboxed and the ``is`` below fail.
_ARGC: tuple = (-1, -1)
# ``argc`` -> _ARGC, ``aN`` -> (N, None), ``aN[i]`` -> (N, i): few distinct names.
_arg_keys = BoundedCache(4096)


def _arg_key(name: bytes) -> tuple:
    k: tuple
    if name == b"argc":
        k = _ARGC
    else:
        br = name.find(b"[")
        k = (int(name[1:]), None) if br < 0 else (int(name[1:br]), int(name[br + 1:-1]))
    return _arg_keys.put(name, k)


def execve_args(records: list) -> tuple:
    """(args as list of bytes, argc) from the EXECVE records of one event, in order.

    Handles quoted and hex ``aN``, the ``aN_len`` + ``aN[i]`` pieces of arguments longer
    than the kernel's chunk size, and argv continued over several EXECVE records (argc is
    only in the first). An argument the kernel did not log becomes ``b""``.
    """
    argc = None
    whole: dict = {}
    pieces: dict = {}
    findall = _ARG_RE.findall
    keys = _arg_keys
    for rec in records:
        # Only the raw part (before ENRICHED's 0x1d) holds arguments.
        raw = rec.raw.partition(b"\x1d")[0]
        start = raw.find(b"): ")
        for name, val in findall(raw, start + 2 if start >= 0 else 0):
            k = keys.get(name)
            if k is None:
                k = _arg_key(name)
            if k is _ARGC:
                if argc is None and val.isdigit():
                    argc = int(val)
                continue
            # Quoted text as-is, (null) empty, hex decoded.
            if val[:1] == b'"':
                val = val[1:-1] if val[-1:] == b'"' and len(val) >= 2 else val[1:]
            elif val == b"(null)":
                val = b""
            else:
                try:
                    val = _unhexlify(val)
                except (binascii.Error, ValueError):
                    pass  # not hex after all: keep what was written
            i, sub = k
            if sub is None:
                whole[i] = val
            else:
                pieces.setdefault(i, {})[sub] = val
    if argc is not None:
        n = argc
    elif whole or pieces:
        n = max(list(whole) + list(pieces)) + 1
    else:
        n = 0
    args = None
    if not pieces:
        try:
            args = list(map(whole.__getitem__, range(n)))  # the usual case: every argument whole
        except KeyError:
            pass
    if args is None:
        args = []
        for i in range(n):
            if i in whole:
                args.append(whole[i])
            elif i in pieces:
                p = pieces[i]
                args.append(b"".join(p[k] for k in sorted(p)))
            else:
                args.append(b"")
    return args, (argc if argc is not None else n)


def proctitle(rec: AuditRecord) -> Optional[bytes]:
    """The command line as NUL-separated bytes -> space-joined bytes (kernel caps it at 128)."""
    b = _bare_proctitle(rec)
    if b is None:
        b = value_bytes(rec, "proctitle")
        if b is None:
            return None
    return b.rstrip(b"\x00").replace(b"\x00", b" ")


def _bare_proctitle(rec: AuditRecord) -> Optional[bytes]:
    """value_bytes(rec, "proctitle") without parsing the record, when its whole text after
    the header is the kernel's ``proctitle=HEX`` (ASCII letters and digits) or
    ``proctitle="WORD"`` (printable ASCII, no space or quote); None when it is not (or
    the record is parsed already). For such a text the parser's one field is that value
    (quotes removed), and was_quoted() is true exactly for the quoted form: with no quote
    in the type or the node and no space in the body, ``[ ']proctitle="`` can only be its
    start."""
    rest = rec.text_after_header()
    if rest is None or rest[:10] != "proctitle=" or rec.mentions("'"):
        return None
    v = rest[10:]
    if v.isascii():
        if v.isalnum():
            b = unhex(v)
            return b if b is not None else v.encode()
        if len(v) >= 2 and v[0] == '"' and v[-1] == '"':
            w = v[1:-1]
            if w.isprintable() and " " not in w and '"' not in w:
                return w.encode()
    return None


_AF = {1: "unix", 2: "inet", 10: "inet6", 16: "netlink", 17: "packet"}


def sockaddr(hexstr: str) -> Optional[dict]:
    """struct sockaddr (host byte order family, network order port) -> a dict.

    inet: {family, ip, port}; inet6: + flowinfo/scope_id; unix: {family, path} or
    {family, abstract: True, path} (abstract names start with NUL); netlink: {family,
    pid, groups}; anything else: {family: number}.
    """
    b = unhex(hexstr)
    if b is None or len(b) < 2:
        return None
    fam = struct.unpack_from("<H", b, 0)[0]
    name = _AF.get(fam)
    d: dict = {"family": name or str(fam)}
    if fam == 2 and len(b) >= 8:
        d["port"] = struct.unpack_from(">H", b, 2)[0]
        d["ip"] = str(ipaddress.IPv4Address(b[4:8]))
    elif fam == 10 and len(b) >= 24:
        d["port"] = struct.unpack_from(">H", b, 2)[0]
        d["flowinfo"] = struct.unpack_from(">I", b, 4)[0]
        d["ip"] = ipaddress.IPv6Address(b[8:24]).compressed
        if len(b) >= 28:
            d["scope_id"] = struct.unpack_from("<I", b, 24)[0]
    elif fam == 1:
        path = b[2:]
        if path[:1] == b"\x00":
            d["abstract"] = True
            path = path[1:].rstrip(b"\x00")
        else:
            path = path.split(b"\x00", 1)[0]
        text, esc = bytes_to_text(path)
        d["path"] = text
        if esc:
            d["path_escaped"] = True
    elif fam == 16 and len(b) >= 12:
        d["pid"], d["groups"] = struct.unpack_from("<II", b, 4)
    return d
