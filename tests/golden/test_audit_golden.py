"""Golden tests over the real capture tests/captures/bastion1 (see tests/captures/record.py).

* every document the pipeline makes equals tests/golden/auditd_bastion1.jsonl; rewrite
  it with ``AGENTD_UPDATE_GOLDEN=1 pytest tests/golden`` and review the diff;
* every execve's process.args equals libauparse's interpretation (auparse.json, made by
  tests/captures/oracles.py), byte for byte, including the >8 KiB split argument and
  non-ASCII arguments; where auparse's binding could not hand over non-UTF-8 bytes we
  check our escaped text decodes back to the bytes in the log;
* every record of the capture ends up in exactly one event.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from agent.base.events import HostInfo, dumps, loads
from collectors.auditd import decode
from collectors.auditd.normalize import Normalizer
from collectors.auditd.parse import parse_line
from collectors.auditd.reassemble import AuditEvent, Gap, Reassembler

ROOT = Path(__file__).resolve().parents[1]
CAPTURE = ROOT / "captures" / "bastion1"
EXPECTED = Path(__file__).with_name("auditd_bastion1.jsonl")
UPDATE = os.environ.get("AGENTD_UPDATE_GOLDEN") == "1"

pytestmark = pytest.mark.skipif(not (CAPTURE / "audit.log").exists(), reason="capture not present")


@pytest.fixture(scope="module")
def run():
    data = (CAPTURE / "audit.log").read_bytes()
    r = Reassembler()
    items = []
    offsets = []
    off = 0
    for line in data.split(b"\n"):
        if line:
            offsets.append(off)
            items += r.push(parse_line(line, off))
        off += len(line) + 1
    items += r.flush()
    norm = Normalizer(HostInfo("bastion1", "golden-host-id"), resolve_ids=False)
    docs = []
    for it in items:
        docs += [norm.gap(it)] if isinstance(it, Gap) else norm.normalize(it)
    return items, docs, offsets


def test_every_record_accounted_for(run):
    items, _, offsets = run
    used = [r.offset for e in items if isinstance(e, AuditEvent) for r in e.records]
    assert len(used) == len(offsets)
    assert sorted(used) == offsets


def test_no_false_loss_on_a_contiguous_capture(run):
    assert not [e for e in run[0] if isinstance(e, Gap)]


def test_execve_args_match_libauparse(run):
    items, _, _ = run
    oracle = {}
    for line in (CAPTURE / "auparse.json").read_text(encoding="utf-8", errors="surrogateescape").splitlines():
        line = line.rstrip(",")
        if line.startswith('{"serial"'):
            ev = json.loads(line)
            if "execve_argv" in ev:
                oracle[ev["serial"]] = ev["execve_argv"]
    checked = split = nonascii = escaped = 0
    for ev in items:
        ex = [r for r in getattr(ev, "records", []) if r.type == "EXECVE"]
        if not ex:
            continue
        raw_args, argc = decode.execve_args(ex)
        want = oracle[ev.serial]
        assert argc == len(want)
        for b, w in zip(raw_args, want, strict=False):
            text, esc = decode.bytes_to_text(b)
            if w is None:                       # auparse could not decode it (not UTF-8)
                assert esc and decode.text_to_bytes(text, esc) == b
                escaped += 1
            else:
                assert not esc and text == w
                nonascii += any(ord(c) > 127 for c in w)
        split += any(b"[" in r.raw for r in ex)
        checked += 1
    assert checked == len(oracle) > 100
    assert split and nonascii and escaped  # the capture has all the hard cases


def test_documents_match_golden(run):
    _, docs, _ = run
    got = [dumps(d).decode("utf-8") for d in docs]
    if UPDATE or not EXPECTED.exists():
        EXPECTED.write_text("\n".join(got) + "\n", encoding="utf-8")
        if not UPDATE:
            pytest.skip("golden file created; review and commit it")
    want = EXPECTED.read_text(encoding="utf-8").splitlines()
    assert len(got) == len(want)
    for g, w in zip(got, want, strict=True):
        if g != w:
            assert loads(g) == loads(w)  # pytest shows the differing keys
    assert len({d["event"]["id"] for d in docs}) == len(docs)
