"""render() against the audit project's own reader: aureport --tty, byte for byte.

The oracle test writes an audit log of crafted TTY records (every byte value alone and
between letters, every named key of aureport's table alone and next to text, ESC / CSI /
SS3 followed by every byte, seeded random strings) and compares render() with aureport's
data column for each record. It is skipped only where aureport is not installed.
"""

from __future__ import annotations

import random
import shutil
import subprocess

import pytest

from collectors.auditd.keystrokes import NAMED_KEYS, keystrokes_fields, render
from tests.captures.aureport import tty_rows

AUREPORT = shutil.which("aureport")


def _cases() -> list:
    cases = [bytes(range(256)), bytes(range(255, -1, -1)), b"x" * 4000]
    for b in range(256):
        cases += [bytes((b,)), b"a" + bytes((b,)) + b"b", bytes((b, b))]
    for seq in NAMED_KEYS:
        cases += [seq, seq + b"x", b"x" + seq, seq + seq, seq[:-1] + b"\x00"]
    for lead in (b"\x1b", b"\x1b[", b"\x1bO", b"\x8f", b"\x9b", b"\x1b[1", b"\x1b[1;"):
        cases += [lead + bytes((b,)) for b in range(256)]
    rnd = random.Random(6)
    alphabet = list(range(256)) + [0x1B, 0x5B, 0x4F, 0x7E, 0x31, 0x3B, 0x9B, 0x8F, 0x22, 0x5C] * 12
    for _ in range(400):
        cases.append(bytes(rnd.choice(alphabet) for _ in range(rnd.randint(1, 80))))
    return cases


def _aureport(cases: list, tmp_path) -> dict:
    log = tmp_path / "audit.log"
    with open(log, "w") as f:
        for serial, data in enumerate(cases, 1):
            f.write("type=TTY msg=audit(1700000000.%03d:%d): tty pid=1 uid=0 auid=1000 ses=1 "
                    "major=136 minor=0 comm=\"bash\" data=%s\n" % (serial % 1000, serial, data.hex().upper()))
    out = subprocess.run([AUREPORT, "--tty", "-if", str(log)], capture_output=True, check=True).stdout
    return tty_rows(out)


@pytest.mark.skipif(AUREPORT is None, reason="aureport (auditd package) not installed")
def test_render_equals_aureport_byte_for_byte(tmp_path):
    cases = _cases()
    rows = _aureport(cases, tmp_path)
    assert len(rows) == len(cases)
    bad = [(data, rows[i], render(data)) for i, data in enumerate(cases, 1) if rows[i] != render(data)]
    assert not bad, bad[:5]


@pytest.mark.skipif(AUREPORT is None, reason="aureport (auditd package) not installed")
def test_every_named_key_is_aureports_name(tmp_path):
    seqs = list(NAMED_KEYS)
    rows = _aureport(seqs, tmp_path)
    assert [rows[i] for i in range(1, len(seqs) + 1)] == ["<%s>" % NAMED_KEYS[s] for s in seqs]


def test_table_size_and_no_prefix_shadowing():
    # audit 3.0.9's table (read back from the aureport binary) has 380 distinct sequences.
    assert len(NAMED_KEYS) == 380
    # aureport takes the first match in table order, render the longest; they agree because
    # where one sequence is a prefix of another (ESC, ESC [ [) the longer one is listed
    # first. The oracle test above checks that against aureport; here, without it: every
    # sequence renders as its own name, never as a shorter key plus text.
    for seq, name in NAMED_KEYS.items():
        assert render(seq) == "<%s>" % name


@pytest.mark.parametrize("data,text", [
    (b"whoami\r", '"whoami",<ret>'),
    (b"echo secret\x7f\x7f", '"echo secret",<backspace>,<backspace>'),
    (b"ls\t\n", '"ls",<tab>,<nl>'),
    (b"\x1b[A\x1b[B\x1b[C\x1b[D", "<up>,<down>,<right>,<left>"),
    (b"\x1bOA\x1bOH\x1bOF", "<up>,<home>,<end>"),
    (b"\x1b[3~\x1b[H\x1b[F\x1b[1~\x1b[4~", "<delete>,<home>,<end>,<home>,<end>"),
    (b"\x03\x04\x15\x17\x01\x05\x0b\x12", "<^C>,<^D>,<^U>,<^W>,<^A>,<^E>,<^K>,<^R>"),
    (b"\x08", "<backspace>"),
    (b"\x1b", "<esc>"),
    (b"\x1bx", '<esc>,"x"'),
    (b"\x1b[15~\x1bOP", "<F5>,<F1>"),
    (b'say "hi" \\ there', '"say \\"hi\\" \\\\ there"'),
    ("h\u00e9".encode(), '"h\\303\\251"'),
    (b"\x00\x1c\x1f\x80\x9f\xa0\xff", '"\\000\\034\\037\\200\\237\\240\\377"'),
    (b"\x9b3~\x9b9", '<delete>,"\\2339"'),
    (b"\x8fA\x8fz", '<up>,"\\217z"'),
    (b"", ""),
])
def test_render_examples(data, text):
    assert render(data) == text


def test_keystrokes_fields_shape():
    ks = keystrokes_fields(b"uptimr\x7fe\rcat /etc/os-rel\t\rrm -rf /\x03")
    assert ks["text"] == '"uptimr",<backspace>,"e",<ret>,"cat /etc/os-rel",<tab>,<ret>,"rm -rf /",<^C>'
    assert ks["lines"] == ["uptime", "cat /etc/os-rel<tab>"]
    assert ks["uncertain"] is True
    assert [d["end"] for d in ks["line_details"]] == ["ret", "ret", "cancelled"]
    assert ks["line_details"][1]["reasons"] == ["tab completion: the completed text is not in the keystrokes"]
    assert "reasons" not in ks["line_details"][0]
