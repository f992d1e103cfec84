"""EXECVE/PROCTITLE/SOCKADDR decoding and the reversible bytes->text escaping."""

from __future__ import annotations

import socket
import struct

from hypothesis import example, given
from hypothesis import strategies as st

from collectors.auditd import decode
from collectors.auditd.parse import parse_line


def rec(body: str, t="EXECVE"):
    return parse_line(f"type={t} msg=audit(1.000:1): {body}".encode())


def test_plain_hex_and_quoted_hex_lookalike():
    args, argc = decode.execve_args([rec('argc=3 a0="echo" a1=68C3A96C6C6F a2="CAFE"')])
    assert argc == 3 and args == [b"echo", "héllo".encode(), b"CAFE"]


def test_split_argument_over_several_records():
    recs = [rec('argc=3 a0="echo" a1_len=6 a1[0]=414243'),
            rec('a1[1]="DEF" a2=FFFE')]
    args, argc = decode.execve_args(recs)
    assert args == [b"echo", b"ABCDEF", b"\xff\xfe"] and argc == 3


def test_missing_argument_is_empty_and_argc_kept():
    args, argc = decode.execve_args([rec('argc=2 a0="x"')])
    assert args == [b"x", b""] and argc == 2


def test_escaping_rules():
    assert decode.bytes_to_text(b"a\\b") == ("a\\b", False)          # valid UTF-8: untouched
    assert decode.bytes_to_text("日本".encode()) == ("日本", False)
    assert decode.bytes_to_text(b"a\\b\xff") == ("a\\\\b\\xff", True)  # escaped: \\ and \xNN
    assert decode.bytes_to_text("é".encode() + b"\x80") == ("é\\x80", True)


@given(st.binary(max_size=64))
def test_escaping_is_reversible(b):
    text, esc = decode.bytes_to_text(b)
    assert decode.text_to_bytes(text, esc) == b


def test_proctitle_hex_and_quoted():
    assert decode.proctitle(rec("proctitle=7368002D630069640000", "PROCTITLE")) == b"sh -c id"
    assert decode.proctitle(rec('proctitle="auditd"', "PROCTITLE")) == b"auditd"


def test_sockaddr_layouts():
    inet = struct.pack("<H", 2) + struct.pack(">H", 2222) + socket.inet_aton("127.0.0.2") + b"\0" * 8
    assert decode.sockaddr(inet.hex().upper()) == {"family": "inet", "ip": "127.0.0.2", "port": 2222}
    inet6 = (struct.pack("<H", 10) + struct.pack(">H", 443) + b"\0" * 4
             + socket.inet_pton(socket.AF_INET6, "2001:db8::1") + b"\0" * 4)
    d = decode.sockaddr(inet6.hex())
    assert d["ip"] == "2001:db8::1" and d["port"] == 443 and d["family"] == "inet6"
    assert decode.sockaddr("01002F6465762F6C6F6700000000") == {"family": "unix", "path": "/dev/log"}
    assert decode.sockaddr("0100006162630000") == {"family": "unix", "abstract": True, "path": "abc"}
    assert decode.sockaddr("100080150000000000000000") == {"family": "netlink", "pid": 0, "groups": 0}
    assert decode.sockaddr("10000000D2040000" "02000000")["pid"] == 1234
    assert decode.sockaddr("zz") is None and decode.sockaddr("") is None
    assert decode.sockaddr("2A00") == {"family": "42"}


def test_value_text_quoted_hex_and_placeholders():
    r = rec('cwd="/home/a" name=2F746D702F612062 key=(null) x=?', "CWD")
    assert decode.value_text(r, "cwd") == "/home/a"
    assert decode.value_text(r, "name") == "/tmp/a b"
    assert decode.value_text(r, "key") is None and decode.value_text(r, "x") is None
    assert decode.value_text(r, "absent") is None


@given(st.sampled_from(["", "node=n ", "node=n\"x ", "node=a'proctitle=\"b "]),
       st.sampled_from(["PROCTITLE", "X'proctitle=\""]),
       st.text(alphabet='0123456789ABCDEFG"\' =a\x1d\t', max_size=12),
       st.sampled_from(["", "\x1dX=\"y\"", " proctitle=\"b\""]))
@example("", "PROCTITLE", '"a b"', "")            # a space inside quotes: the parser stops at it
@example("", "PROCTITLE", '"a\tb"', "")
@example("node=a'proctitle=\"b ", "PROCTITLE", "4142", "")  # was_quoted() fooled by the node
@example("", "X'proctitle=\"", "4142", "")                   # ... or by the type
@example("", "PROCTITLE", '"a"b"', "")
@example("", "PROCTITLE", "", "")
@example("", "PROCTITLE", '""', "")
@example("", "PROCTITLE", "414", "")
@example("", "PROCTITLE", "GG", "")
def test_proctitle_unparsed_equals_the_parsed_fields_way(node, rtype, value, tail):
    """decode.proctitle reads the kernel's plain ``proctitle=`` text without parsing the
    record; the answer must be value_bytes() of the parsed record's field, always."""
    line = f'{node}type={rtype} msg=audit(1.000:1): proctitle={value}{tail}'.encode()
    fresh, parsed = parse_line(line), parse_line(line)
    parsed.fields  # noqa: B018 - parsed first: the general way
    want = decode.value_bytes(parsed, "proctitle")
    want = None if want is None else want.rstrip(b"\x00").replace(b"\x00", b" ")
    assert decode.proctitle(fresh) == want
