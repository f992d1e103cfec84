"""parse_line on real lines from this machine's audit.log (auditd 3.0.9, ENRICHED)."""

from __future__ import annotations

import pytest

from collectors.auditd.parse import MAX_LINE, ParseError, parse_line

SYSCALL = (b'type=SYSCALL msg=audit(1795806292.510:87): arch=c000003e syscall=59 success=yes exit=0 '
           b'a0=7f37ce1b5031 a1=7ffc810c6020 a2=5575da7bea50 a3=8 items=2 ppid=3934 pid=3936 auid=1001 '
           b'uid=0 gid=0 euid=0 suid=0 fsuid=0 egid=0 sgid=0 fsgid=0 tty=(none) ses=1 comm="sh" '
           b'exe="/usr/bin/dash" key="exec"\x1dARCH=x86_64 SYSCALL=execve AUID="alice" UID="root" '
           b'GID="root" EUID="root"')
USER_LOGIN = (b"type=USER_LOGIN msg=audit(1795806948.182:1251): pid=9452 uid=0 auid=4294967295 "
              b"ses=4294967295 msg='op=login acct=28696E76616C6964207573657229 exe=\"/usr/sbin/sshd\" "
              b"hostname=? addr=127.0.0.1 terminal=sshd res=failed'\x1dUID=\"root\" AUID=\"unset\"")
ADD_USER = (b"type=ADD_USER msg=audit(1795806287.810:35): pid=3751 uid=0 auid=4294967295 ses=4294967295 "
            b"msg='op=adding user id=1001 exe=\"/usr/sbin/useradd\" hostname=? addr=? terminal=? "
            b"res=success'\x1dUID=\"root\" AUID=\"unset\" ID=\"unknown(1001)\"")
SOCKADDR = (b"type=SOCKADDR msg=audit(1795806292.510:84): saddr=01002F6465762F6C6F6700"
            b"\x1dSADDR={ saddr_fam=local path=/dev/log }")
TTY = (b'type=TTY msg=audit(1795806687.778:492): tty pid=7173 uid=1002 auid=1002 ses=8 major=136 '
       b'minor=1 comm="bash" data=69640D\x1dUID="bob" AUID="bob"')


def test_header_and_kernel_fields():
    r = parse_line(SYSCALL, offset=123)
    assert (r.type, r.node, r.stamp, r.serial, r.offset) == ("SYSCALL", "", "1795806292.510:87", 87, 123)
    assert r.time == pytest.approx(1795806292.510)
    assert r.fields["comm"] == "sh" and r.fields["exe"] == "/usr/bin/dash" and r.fields["key"] == "exec"
    assert r.fields["tty"] == "(none)" and r.fields["a0"] == "7f37ce1b5031"
    assert r.enriched == {"ARCH": "x86_64", "SYSCALL": "execve", "AUID": "alice", "UID": "root",
                          "GID": "root", "EUID": "root"}
    assert r.raw == SYSCALL


def test_raw_format_has_no_enriched():
    r = parse_line(SYSCALL.split(b"\x1d")[0] + b"\n")
    assert r.enriched == {} and r.fields["key"] == "exec" and not r.raw.endswith(b"\n")


def test_user_space_msg_flattened_and_kept():
    r = parse_line(USER_LOGIN)
    f = r.fields
    assert f["pid"] == "9452" and f["auid"] == "4294967295"
    assert f["op"] == "login" and f["acct"] == "28696E76616C6964207573657229"  # hex stays hex text
    assert f["exe"] == "/usr/sbin/sshd" and f["hostname"] == "?" and f["res"] == "failed"
    assert f["msg"].startswith("op=login acct=") and f["msg"].endswith("res=failed")


def test_words_without_equals_join_previous_user_value():
    f = parse_line(ADD_USER).fields
    assert f["op"] == "adding user" and f["id"] == "1001"
    assert parse_line(ADD_USER).enriched["ID"] == "unknown(1001)"


def test_braced_enriched_value_and_prefix_words():
    assert parse_line(SOCKADDR).enriched["SADDR"] == "saddr_fam=local path=/dev/log"
    r = parse_line(TTY)
    assert r.fields["_words"] == "tty" and r.fields["data"] == "69640D" and r.fields["pid"] == "7173"


def test_node_prefix_and_unknown_type():
    r = parse_line(b"node=bastion1 type=UNKNOWN[1334] msg=audit(1700000000.001:5): a=b")
    assert r.node == "bastion1" and r.type == "UNKNOWN[1334]" and r.fields == {"a": "b"}
    assert r.time == pytest.approx(1700000000.001)


def test_empty_body():
    assert parse_line(b"type=EOE msg=audit(1700000000.001:5): ").fields == {}


@pytest.mark.parametrize("line,reason", [
    (b"", "empty line"),
    (b"hello world", "no 'type='"),
    (b"type=SYSCALL arch=c000003e", "msg=audit("),
    (b"type=SYSCALL msg=audit(1795806292.510:87", "truncated"),
    (b"type=SYSCALL msg=audit(17958x6292.510:87): a=1", "malformed audit stamp"),
    (b"type=SYSCALL msg=audit(1795806292.510:87) a=1", "not followed by ':'"),
    (b"node=onlynode", "node= without"),
    (b"type= msg=audit(1.2:3): a=1", "record type"),
    (b"type=X msg=audit(1.2:3): a=\x00", "NUL"),
    (b"type=X msg=audit(1.2:3): a=" + b"A" * MAX_LINE, "too long"),
])
def test_malformed_lines_raise_parse_error_with_reason(line, reason):
    with pytest.raises(ParseError) as ei:
        parse_line(line)
    assert reason in str(ei.value)


def test_non_bytes_is_parse_error():
    with pytest.raises(ParseError):
        parse_line("type=X msg=audit(1.2:3): a=1")  # type: ignore[arg-type]


def test_garbage_bytes_in_value_are_kept_reversibly():
    r = parse_line(b'type=X msg=audit(1.2:3): a=\xff\xfe b=1')
    assert r.fields["a"].encode("utf-8", "surrogateescape") == b"\xff\xfe" and r.fields["b"] == "1"


def test_truncated_user_payload_keeps_what_is_there():
    r = parse_line(b"type=USER_CMD msg=audit(1.2:3): pid=1 msg='cwd=\"/\" cmd=6964")
    assert r.fields["cwd"] == "/" and r.fields["cmd"] == "6964"


def _as_regex_reads_it(line: bytes):
    """What the header regex alone makes of ``line`` (the reference the split of the usual
    header must equal): a node= prefix sends parse_line down that path."""
    return parse_line(b"node= " + line)


def _record_view(r):
    return (r.type, r.stamp, r.serial, r.time, r.offset, r.raw, r.text_after_header(),
            r.fields, r.enriched)


@pytest.mark.parametrize("line", [
    SYSCALL, USER_LOGIN, ADD_USER, SOCKADDR, TTY,
    b"type=EOE msg=audit(1700000000.001:5):",            # nothing after the header
    b"type=EOE msg=audit(1700000000.001:5): ",
    b"type=X msg=audit(1.2:3):  a=1",                     # two spaces: the body starts with one
    b"type=X'q msg=audit(1.2:3): a=1",                    # any type without space or 0x1d
    b"type=X msg=audit(1.2:3):\n\n",                      # the regex's $ before a last newline
])
def test_usual_header_split_equals_the_regex(line):
    fast, ref = parse_line(line, offset=7), _as_regex_reads_it(line)
    assert ref.node == "" and fast.node == ""
    assert _record_view(fast)[:4] == _record_view(ref)[:4]
    assert fast.text_after_header() == ref.text_after_header()
    assert (fast.fields, fast.enriched) == (ref.fields, ref.enriched)


def test_stamp_of_the_previous_record_is_reused_only_for_the_same_word():
    a = parse_line(b"type=SYSCALL msg=audit(1700000000.001:5): a=1")
    b = parse_line(b"type=PATH msg=audit(1700000000.001:5): item=0")
    assert (b.stamp, b.serial, b.time) == (a.stamp, a.serial, a.time)
    c = parse_line(b"type=PATH msg=audit(1700000000.001:6): item=0")
    assert (c.stamp, c.serial) == ("1700000000.001:6", 6)
    for bad in (b"type=PATH  msg=audit(1700000000.001:6): x", b"type=PATH msg=audit(1700000000.001:6) x",
                b"type=PATH msg=audit(1700000000.001:6):x"):
        with pytest.raises(ParseError):
            parse_line(bad)  # an empty or malformed second word is no stamp, not the last one


@pytest.mark.parametrize("line", [SYSCALL, USER_LOGIN, TTY, b"node=lost=1 type=X msg=audit(1.2:3): a=1",
                                  b"type=Xlost=1 msg=audit(1.2:3): a=1", b"type=X msg=audit(1.2:3): lost=3"])
def test_mentions_is_a_search_of_the_raw_line(line):
    for word in ("lost=", "'", "auid=", "zzz"):
        r = parse_line(line)
        assert r.mentions(word) == (line.find(word.encode()) >= 0)
        r.fields  # noqa: B018 - once cut into body and ENRICHED text, the same answer
        assert r.mentions(word) == (line.find(word.encode()) >= 0)
