"""Every dataset agentd emits lands in a data stream the shipped Elasticsearch index
template matches (a stream no template matches is mapped dynamically: IPs and dates
become strings, keystrokes text). The datasets are taken from what the agent really
emits for the recorded capture, from the dataset names written in the code, and from
the journald collector's per-program fallback, so a new one cannot be forgotten."""

from __future__ import annotations

import fnmatch
import json
import re
from pathlib import Path

from collectors.journald.collector import JournaldCollector
from collectors.journald.common import generic
from shippers.elasticsearch import ElasticsearchShipper
from tests.captures.replay import replay

REPO = Path(__file__).resolve().parents[2]
TEMPLATE = REPO / "packaging" / "elasticsearch" / "agentd-index-template.json"
# dataset="x.y", "dataset": "x.y", and the auditd builders' positional "auditd.x" names
LITERAL = re.compile(r"""(?:dataset\s*[=:]\s*|["']dataset["']\s*:\s*)["']([a-z_]+\.[a-z_]+)["']|["'](auditd\.[a-z_]+)["']""")


def _emitted_by_the_capture(tmp_path) -> set:
    return {e["event"]["dataset"] for e in replay(tmp_path / "events.jsonl")}


def _named_in_the_code() -> set:
    found = set()
    for d in ("agent", "collectors", "shippers"):
        for f in (REPO / d).rglob("*.py"):
            for m in LITERAL.finditer(f.read_text()):
                found.add(m.group(1) or m.group(2))
    return found


def _default_program_fallbacks() -> set:
    programs = JournaldCollector.options["programs"].default_value()
    return {generic(p)["event"]["dataset"] for p in programs}


def test_every_emitted_dataset_has_a_template_pattern(tmp_path):
    tpl = json.loads(TEMPLATE.read_text())
    emitted = _emitted_by_the_capture(tmp_path)
    assert {"sftp.log", "sshd.sftp", "auditd.tty", "agentd.session"} <= emitted  # the capture has them all
    datasets = emitted | _named_in_the_code() | _default_program_fallbacks()
    conf = {k: o.default_value() for k, o in ElasticsearchShipper.options.items()}
    conf.update(url="http://127.0.0.1:9200")
    shipper = ElasticsearchShipper("es", conf)
    names = {ds: shipper.index_for({"event": {"dataset": ds}}) for ds in sorted(datasets)}
    unmatched = {ds: n for ds, n in names.items() if not any(fnmatch.fnmatchcase(n, p) for p in tpl["index_patterns"])}
    assert not unmatched, f"data streams no pattern of {TEMPLATE.name} matches: {unmatched}"
