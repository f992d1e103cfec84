"""typed_lines(): the lines the shell received, with readline's (emacs mode) editing applied.

Hand-made streams for each edit key, then the keystrokes recorded on the real stack
(tests/captures/bastion1), whose manifest says what was typed and what ran.
"""

from __future__ import annotations

import json
import os
import re

import pytest

from collectors.auditd.keystrokes import keystrokes_fields, typed_lines

CAPTURE = os.path.join(os.path.dirname(__file__), "..", "captures", "bastion1")


def lines(data: bytes, history=None) -> list:
    return [(t.text, t.end, t.uncertain) for t in typed_lines(data, history)]


def texts(data: bytes, history=None) -> list:
    return [t.text for t in typed_lines(data, history) if t.accepted]


@pytest.mark.parametrize("data,want", [
    (b"uptimr\x7fe\r", "uptime"),                           # DEL
    (b"uptimr\x08e\r", "uptime"),                           # ^H
    (b"ab\x7f\x7f\x7fcd\r", "cd"),                           # backspace at column 0 is a no-op
    (b"cat /etc/hostnme\x1b[D\x1b[Da\r", "cat /etc/hostname"),  # left + insert
    (b"cat /etc/hostnme\x1bOD\x1bODa\r", "cat /etc/hostname"),  # SS3 left
    (b"ecoh\x1b[D\x1b[Dh\x1b[C\x1b[C\x7f\r", "echo"),         # right
    (b"abc\x02\x02X\x06Y\r", "aXbYc"),                        # ^B ^F
    (b"ls -l /tmpp\x1b[D\x1b[3~\r", "ls -l /tmp"),            # delete at cursor
    (b"ls -l /tmpp\x1b[D\x04\r", "ls -l /tmp"),               # ^D on a non-empty line = delete
    (b"cho hi\x1b[He\r", "echo hi"),                          # home CSI H
    (b"cho hi\x1b[1~e\r", "echo hi"),                         # home CSI 1~
    (b"cho hi\x1bOHe\r", "echo hi"),                          # home SS3 H
    (b"cho hi\x01e\r", "echo hi"),                            # ^A
    (b"echo h\x01\x1b[Fi\r", "echo hi"),                      # end CSI F
    (b"echo h\x01\x1b[4~i\r", "echo hi"),                     # end CSI 4~
    (b"echo h\x01\x1bOFi\r", "echo hi"),                      # end SS3 F
    (b"echo h\x01\x05i\r", "echo hi"),                        # ^E
    (b"echo typed-then-killed\x15/bin/echo after\r", "/bin/echo after"),  # ^U at end
    (b"XXecho a\x1b[D\x1b[D\x1b[D\x1b[D\x1b[D\x1b[D\x15\x05\r", "echo a"),  # ^U kills before cursor only
    (b"echo a rm -rf /" + b"\x1b[D" * 9 + b"\x0b\r", "echo a"),  # ^K
    (b"ls /etc/ssh/sshd_config\x17/tmp\r", "ls /tmp"),       # ^W: whitespace-delimited word
    (b"ls a  \x17\x17pwd\r", "pwd"),                          # ^W skips trailing blanks first
    (b"echo foo-bar\x1b\x7fbaz\r", "echo foo-baz"),           # M-DEL: alnum word
    (b"one two\x1bbX \r", "one X two"),                       # M-b
    (b"one two\x01\x1bfX\r", "oneX two"),                     # M-f
    (b"one two\x01\x1bd\x05\r", " two"),                      # M-d
    (b"echo one two\x1b[1;5DX\r", "echo one Xtwo"),           # ctrl-left (Debian inputrc)
    (b"echo secret\x17\x19\x19\r", "echo secretsecret"),      # ^Y yanks the ^W kill
    (b"a b c\x17\x17\x19\r", "a b c"),                        # consecutive kills yank together
    (b"sl\x14\r", "ls"),                                      # ^T at end of line
    (b"echo \x16\x03x\r", "echo \x03x"),                      # ^V quotes a control char
    (b"\x0cls\r", "ls"),                                      # ^L redraws only
    (b"ls\n", "ls"),                                          # LF ends a line too
])
def test_edit_keys(data, want):
    got = typed_lines(data)
    assert [t.text for t in got] == [want]
    assert not got[0].uncertain
    assert got[0].accepted


def test_ctrl_c_cancels_and_is_kept_flagged():
    got = typed_lines(b"rm -rf /tmp/agentd-important\x03ls\r")
    assert [(t.text, t.end) for t in got] == [("rm -rf /tmp/agentd-important", "cancelled"), ("ls", "ret")]
    ks = keystrokes_fields(b"rm -rf /tmp/x\x03ls\r")
    assert ks["lines"] == ["ls"]            # never run, so not a command line
    assert ks["line_details"][0]["end"] == "cancelled"


def test_ctrl_d_on_empty_line_is_eof():
    assert lines(b"ls\r\x04") == [("ls", "ret", False), ("", "eof", False)]
    assert lines(b"\x03\x04") == [("", "eof", False)]   # ^C on an empty line: nothing to cancel


def test_empty_lines_are_not_lines():
    assert lines(b"\r\r\nls\r\r") == [("ls", "ret", False)]


def test_partial_line_at_end_of_data():
    assert lines(b"ls\rcat /etc/pass") == [("ls", "ret", False), ("cat /etc/pass", "partial", False)]


def test_up_arrow_recalls_earlier_line_of_the_same_data():
    assert texts(b"cat /etc/hostname\r\x1b[A\r") == ["cat /etc/hostname"] * 2
    assert texts(b"one\rtwo\r\x1b[A\x1b[A\r") == ["one", "two", "one"]
    assert texts(b"one\rtwo\r\x10\x10\x0e\r") == ["one", "two", "two"]          # ^P ^P ^N
    assert texts(b"one\rtwo\r\x1bOA\x1bOA\x1bOB\r") == ["one", "two", "two"]    # SS3 forms
    assert texts(b"one\rtw\x1b[A\x1b[B\x7fo\r") == ["one", "to"]                # down restores the edit
    assert texts(b"ls -l\r\x1b[A /tmp\r") == ["ls -l", "ls -l /tmp"]           # edit a recalled line


def test_up_arrow_uses_history_given_by_caller():
    got = typed_lines(b"\x1b[A\x1b[A\r", history=["uname -a", "whoami"])
    assert [(t.text, t.uncertain) for t in got] == [("uname -a", False)]


def test_up_arrow_beyond_known_history_is_visible_and_uncertain():
    got = typed_lines(b"\x1b[A\r")
    assert got[0].text == "<up>" and got[0].uncertain
    assert got[0].reasons == ["history recall beyond the known history"]


def test_history_controls_ambiguity_is_flagged():
    # " secret" (leading space) is not saved under HISTCONTROL=ignorespace (Debian default):
    # the up arrow then gives "ls"; without HISTCONTROL it would be " secret".
    got = typed_lines(b"ls\r secret\r\x1b[A\r")
    assert got[-1].text == "ls" and got[-1].uncertain
    assert "HISTCONTROL" in got[-1].reasons[0]
    got = typed_lines(b"ls\rls\rpwd\r\x1b[A\x1b[A\r")     # ignoredups or not: "ls" either way
    assert got[-1].text == "ls" and not got[-1].uncertain
    got = typed_lines(b"ls\rls\rpwd\r\x1b[A\x1b[A\x1b[A\r")  # "ls" only without ignoredups
    assert got[-1].text == "<up>" and got[-1].uncertain
    got = typed_lines(b"ls\rpwd\r\x1b[A\x1b[A\r")         # no dup, no space: certain
    assert got[-1].text == "ls" and not got[-1].uncertain


def test_tab_completion_stays_visible():
    got = typed_lines(b"cat /etc/os-rel\t\r")
    assert got[0].text == "cat /etc/os-rel<tab>" and got[0].uncertain
    assert got[0].reasons == ["tab completion: the completed text is not in the keystrokes"]
    # a backspace right after the completion erases text we never saw: kept visible
    assert typed_lines(b"cat /etc/os-rel\t\x7f\r")[0].text == "cat /etc/os-rel<tab><backspace>"
    # ^U after the completion kills it all: what remains is certain again
    got = typed_lines(b"cat /etc/os-rel\t\x15ls\r")
    assert got[0].text == "ls" and not got[0].uncertain
    # moving the cursor across the unknown completion makes the position unknown
    got = typed_lines(b"cat /etc/os-rel\t\x1b[D\x1b[Dx\r")
    assert got[0].uncertain and "cursor moved" in got[0].reasons[0]


def test_reverse_search_resolves_from_known_history():
    got = typed_lines(b"ssh db1\rls\r\x12db\r")
    assert [(t.text, t.uncertain) for t in got][-1] == ("ssh db1", False)
    got = typed_lines(b"\x12db\r")
    assert got[0].text == "<^R>db" and got[0].uncertain
    # ^G abandons the search and restores the line
    assert texts(b"ssh db1\recho \x12db\x07x\r")[-1] == "echo x"


def test_unknown_keys_are_kept_and_flagged():
    got = typed_lines(b"ls\x1b[15~\r")            # F5 is not bound in readline
    assert got[0].text == "ls<F5>" and got[0].uncertain
    got = typed_lines(b"ls\x1b.\r")               # M-. yank-last-arg: not replayed
    assert got[0].text == "ls<esc>." and got[0].uncertain
    got = typed_lines(b"ls\x18\x05\r")            # ^X^E: edit in $EDITOR
    assert got[0].text == "ls<^X><^E>" and got[0].uncertain
    got = typed_lines(b"\x19\r")                  # ^Y with nothing killed in this data
    assert got[0].text == "<^Y>" and got[0].uncertain


def test_bracketed_paste_is_inserted_literally():
    assert texts(b"\x1b[200~echo a\x1b[D\x1b[201~\r") == ["echo a\x1b[D"]


def test_non_utf8_bytes_are_escaped_and_flagged():
    got = typed_lines(b"echo \xff\\x\r")
    assert got[0].text == "echo \\xff\\\\x" and got[0].escaped
    assert typed_lines("echo h\u00e9llo\x7f\x7f\x7f\x7fi\r".encode())[0].text == "echo hi"  # é is one char


def _manifest():
    with open(os.path.join(CAPTURE, "manifest.json")) as f:
        return json.load(f)


@pytest.mark.skipif(not os.path.exists(os.path.join(CAPTURE, "manifest.json")), reason="no bastion1 capture")
def test_captured_edit_keys_give_the_effective_line():
    # Each "keystrokes" step of the manifest: the keys sent, the line bash ran.
    for step in _manifest()["steps"]:
        keys = step.get("keys")
        if step.get("kind") != "keystrokes" or "\\r + " in keys:
            continue
        got = [t for t in typed_lines(keys.encode("utf-8"), history=["cat /etc/hostname"]) if t.accepted]
        if step["effective"] is None:
            assert got == [], step
            continue
        assert len(got) == 1, step
        pattern = "".join(".*" if re.fullmatch(r"<[^>]+>", p) else re.escape(p)
                          for p in re.split(r"(<[^>]+>)", got[0].text))
        assert re.fullmatch(pattern, step["effective"]), (got[0], step)
        assert got[0].uncertain == ("\t" in keys), step


def test_up_arrow_in_a_later_record_recalls_the_same_sessions_line():
    """pam_tty_audit flushes per reader and buffer: <up> may be in a later record
    than the line it recalls. The normalizer keeps each audit session's lines."""
    from agent.base.events import HostInfo
    from collectors.auditd.normalize import Normalizer
    from collectors.auditd.parse import parse_line
    from collectors.auditd.reassemble import Reassembler

    def tty(serial: int, ses: int, data: bytes) -> bytes:
        return (b"type=TTY msg=audit(1700000000.%03d:%d): tty pid=1 uid=1001 auid=1001 ses=%d major=136 "
                b"minor=0 comm=\"bash\" data=%s" % (serial, serial, ses, data.hex().upper().encode()))

    norm = Normalizer(HostInfo("h", "hid"), resolve_ids=False)
    reasm = Reassembler(timeout=2.0)
    docs = []
    for line in (tty(1, 7, b"ls /tmp\r"), tty(2, 8, b"id\r"), tty(3, 7, b"\x1b[A\r"), tty(4, 9, b"\x1b[A\r")):
        for ev in reasm.push(parse_line(line)):
            docs += norm.normalize(ev)
    for ev in reasm.flush():
        docs += norm.normalize(ev)
    by_seq = {d["event"]["sequence"]: d["keystrokes"] for d in docs}
    assert by_seq[3]["lines"] == ["ls /tmp"] and not by_seq[3]["uncertain"]
    # another session's history is never used: there the recall stays unknown
    assert by_seq[4]["uncertain"]
