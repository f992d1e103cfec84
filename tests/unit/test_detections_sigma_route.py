"""The Sigma rule set's routing (per-dataset index, and the exec table that looks an exec's
command line up once for its keywords and its CommandLine) loses no rule and adds none:
on execs generated from every shipped rule's literals, in each field the rule reads, with
and without a message or raw record, match() answers exactly what evaluating every rule of
the event's datasets answers."""

from __future__ import annotations

import os
import random

from agent.base.events import HostInfo, base_doc, make_event_id
from agent.pipeline.detections.sigma import evaluate as E
from agent.pipeline.detections.sigma import fields as F
from agent.pipeline.detections.sigma import index
from agent.pipeline.detections.sigma.ruleset import SigmaRuleSet

HOST = HostInfo("bastion", "hid", "boot")
SHIPPED = os.path.join(os.path.dirname(__file__), "..", "..", "rules", "sigma")
# Where an exec carries what a process_creation field (None: a keyword) reads.
PLACES = {"CommandLine": ("process", "command_line"), None: ("process", "command_line"),
          "Image": ("process", "executable"), "ParentImage": ("parent", "executable"),
          "ParentCommandLine": ("parent", "command_line"), "CurrentDirectory": ("process", "working_directory"),
          "User": ("user", "name")}


def exec_doc(n: int, place=None, value=None, shape: str = "plain") -> dict:
    d = base_doc(host=HOST, timestamp=1_800_000_000 + n, event_id=make_event_id("r", n), module="auditd",
                 dataset="auditd.process", action="exec", outcome="success")
    parent = {"executable": "/usr/bin/bash", "command_line": "bash -c 'make all'"}
    d["process"] = {"executable": "/usr/bin/make", "name": "make", "command_line": "make all", "args": ["make", "all"],
                    "working_directory": "/home/alice", "parent": parent}
    d["user"] = {"name": "alice", "id": "1001"}
    if place is not None:
        where = parent if place[0] == "parent" else d[place[0]]
        where[place[1]] = value
    if shape == "message":  # the raw text is then more than the command line
        d["message"] = "ran /usr/bin/nc -e /bin/sh"
    elif shape == "original":
        d["event"]["original"] = "type=EXECVE msg=audit(1.0:2): argc=2 a0=\"nc\" a1=\"-lvp\""
    elif shape == "no command line":
        del d["process"]["command_line"]
    return d


def every_rule(rs: SigmaRuleSet, doc: dict) -> list:
    """What the rule set must answer: every rule of the event's datasets, evaluated."""
    ev = E.Event(doc, rs.getters, F.raw_text)
    keys = set(rs._keys(doc, doc["event"], doc["event"]["dataset"]))
    return [r.meta.id for r in rs.rules if keys & set(r.datasets) and r.match(ev)]


def generated(rs: SigmaRuleSet) -> list:
    docs = [exec_doc(0, shape=s) for s in ("plain", "message", "original", "no command line")]
    for r in rs.rules:
        if "auditd.process" not in r.datasets:
            continue
        for field, how, lit in r.needs or ():
            place = PLACES.get(field)
            if place is None:
                continue
            values = {"eq": [lit], "startswith": [lit + " -x y"], "endswith": ["/a b/c" + lit],
                      "contains": ["x " + lit + " y"]}[how]
            for v in values + [v.upper() for v in values if v.isascii()]:
                for shape in ("plain", "message", "original"):
                    docs.append(exec_doc(len(docs), place, v, shape))
    return docs


def test_the_exec_table_and_the_index_answer_as_every_rule_evaluated():
    rs = SigmaRuleSet([SHIPPED])
    docs = generated(rs)
    assert len(docs) > 1000
    fired: set = set()
    for doc in docs:
        got = [rid for rid, _ in rs.match(doc)]
        assert got == every_rule(rs, doc), (doc["process"], doc.get("message"), doc["event"].get("original"))
        fired.update(got)
    # Most process_creation rules fire on some generated exec: the comparison is not vacuous.
    assert len(fired) > 30, len(fired)


def test_an_exec_with_a_message_or_raw_record_reads_its_keywords_from_them():
    rs = SigmaRuleSet([SHIPPED])
    assert F.text_is_command_line(exec_doc(1))
    assert not F.text_is_command_line(exec_doc(2, shape="message"))
    assert not F.text_is_command_line(exec_doc(3, shape="original"))
    assert rs.exec_by_dataset["auditd.process"] is not rs.by_dataset["auditd.process"]
    assert rs.exec_by_dataset["auditd.file"] is rs.by_dataset["auditd.file"]  # no keyword rules there


def test_long_runs_are_cut_short_without_losing_a_literal(monkeypatch):
    """A run of one character longer than the longest literal is scanned cut to that length:
    the same rules come out as from the whole text."""
    rnd = random.Random(9)
    rs = SigmaRuleSet([SHIPPED])
    indexes = [fi for _, fields in rs.by_dataset.values() for _, fi in fields if fi.auto is not None]
    assert indexes
    # Literals that are runs themselves, of the longest length and shorter, at a run's ends.
    indexes.append(index.FieldIndex([("contains", "aaaaaa", 0), ("contains", "baaa", 1), ("contains", "aab", 2),
                                     ("contains", "a-", 3), ("contains", "--aa", 4)]))
    checked = 0
    for fi in indexes:
        lits = list(fi.auto.keys())
        chars = "".join({lit[0] for lit in lits} | {lit[-1] for lit in lits}) + "a-/ "
        for _ in range(60):
            parts = []
            for _ in range(rnd.randint(1, 6)):
                parts.append(rnd.choice(chars) * rnd.randint(1, 300))
                parts.append(rnd.choice(lits) if rnd.random() < 0.6 else "")
            low = "".join(parts).lower()
            cut: set = set()
            fi.candidates(low, cut)
            with monkeypatch.context() as m:
                m.setattr(index, "SQUEEZE_FROM", 1 << 30)
                whole: set = set()
                fi.candidates(low, whole)
            assert cut == whole, low[:200]
            checked += bool(whole)
    assert checked > 50
