"""Sigma on the agent: SigmaHQ's Linux rules load offline (supported or skipped with a
reason), modifiers and conditions evaluate as the specification says, the auditd
service's raw field names and keywords map onto agentd's events, bad files are
reported and a reload keeps a file's previous good version."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import textwrap

import pytest

from agent.base.events import Event, HostInfo, base_doc, make_event_id
from agent.pipeline.detections.sigma.ruleset import SigmaRuleSet
from agent.pipeline.pipeline import Pipeline

SIGMAHQ = os.path.join(os.path.dirname(__file__), "..", "..", "..", "shared", "sigma")
SHIPPED = os.path.join(os.path.dirname(__file__), "..", "..", "rules", "sigma")
HOST = HostInfo("bastion", "hid", "boot")


@pytest.fixture
def no_network(monkeypatch):
    def refuse(*a, **k):
        raise AssertionError("a Sigma load tried to reach the network")
    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)


def exec_doc(n, exe, cmd, args=None, **extra):
    d = base_doc(host=HOST, timestamp=1_800_000_000 + n, event_id=make_event_id("s", n), module="auditd",
                 dataset="auditd.process", action="exec", outcome="success")
    d["process"] = {"executable": exe, "name": exe.rsplit("/", 1)[-1], "command_line": cmd,
                    "args": args or cmd.split(), "working_directory": "/tmp"}
    d["user"] = {"name": "alice", "id": "1001"}
    d.update(extra)
    return d


def write(tmp_path, name, text):
    p = tmp_path / name
    p.write_text(textwrap.dedent(text))
    return p


RULE = """\
title: Test all modifiers
id: 11111111-2222-3333-4444-555555555555
status: test
description: modifiers and conditions
author: agentd tests
tags:
    - attack.execution
    - attack.t1059.004
logsource:
    product: linux
    category: process_creation
detection:
    sel_img:
        Image|endswith: '/curl'
    sel_all:
        CommandLine|contains|all:
            - ' -k '
            - 'http'
    sel_re:
        CommandLine|re: 'https?://10\\.\\d+'
    filter:
        CurrentDirectory|startswith: '/home/'
    condition: sel_img and 1 of sel_* and not filter
level: high
"""


def test_sigmahq_linux_rules_load_offline_each_supported_or_skipped_with_a_reason(no_network):
    if not os.path.isdir(SIGMAHQ):
        pytest.skip("../shared/sigma not present")
    rs = SigmaRuleSet([SIGMAHQ])
    total = sum(1 for _, _, fs in os.walk(SIGMAHQ) for f in fs if f.endswith(".yml"))
    assert rs.errors == []
    assert len(rs.rules) + len(rs.skipped) == total
    assert len(rs.rules) >= 150
    assert all(reason for _, _, _, reason in rs.skipped)


def test_shipped_rules_all_load(no_network):
    rs = SigmaRuleSet([SHIPPED])
    assert rs.errors == [] and rs.skipped == [] and len(rs.rules) >= 150


def test_modifiers_and_conditions(tmp_path):
    write(tmp_path, "r.yml", RULE)
    p = Pipeline({}, HOST, sections={"detections": {"sigma_dirs": [str(tmp_path)]}})
    hit = exec_doc(1, "/usr/bin/curl", "curl -k https://10.1.2.3/x")
    miss_dir = exec_doc(2, "/usr/bin/curl", "curl -k https://10.1.2.3/x")
    miss_dir["process"]["working_directory"] = "/home/alice"
    miss_img = exec_doc(3, "/usr/bin/wget", "wget -k https://10.1.2.3/x")
    out = [e.doc for e in p.apply([Event(d) for d in (hit, miss_dir, miss_img)])]
    [a] = [d for d in out if d["event"]["kind"] == "alert"]
    assert a["rule"]["id"] == "11111111-2222-3333-4444-555555555555" and a["rule"]["ruleset"] == "sigma"
    assert a["rule"]["name"] == "Test all modifiers"
    assert a["event"]["severity"] == 73 and a["agentd"]["alert"]["level"] == "high"
    assert a["threat"]["technique"]["id"] == ["T1059"]
    assert a["threat"]["technique"]["subtechnique"]["id"] == ["T1059.004"]
    assert a["threat"]["tactic"]["name"] == ["Execution"]
    assert a["agentd"]["alert"]["evidence"] == [hit["event"]["id"]]


def test_auditd_raw_fields_keywords_and_cidr(tmp_path):
    write(tmp_path, "auditd.yml", """\
        title: raw auditd fields
        id: aaaaaaaa-0000-0000-0000-000000000001
        logsource: {product: linux, service: auditd}
        detection:
            sel: {type: EXECVE, a0: nc, a1|contains: '-l', key: exec}
            condition: sel
        level: medium
        """)
    write(tmp_path, "kw.yml", """\
        title: keywords in what was typed
        id: aaaaaaaa-0000-0000-0000-000000000002
        logsource: {product: linux}
        detection:
            keywords: ['chmod 4777 *', 'iptables -F']
            condition: keywords
        level: low
        """)
    write(tmp_path, "net.yml", """\
        title: cidr
        id: aaaaaaaa-0000-0000-0000-000000000003
        logsource: {product: linux, category: network_connection}
        detection:
            sel: {DestinationIp|cidr: 192.0.2.0/24, Initiated: 'true'}
            condition: sel
        level: critical
        """)
    rs = SigmaRuleSet([str(tmp_path)])
    assert rs.skipped == [] and len(rs.rules) == 3
    nc = exec_doc(1, "/usr/bin/nc", "nc -lvp 4444", tags=["exec"])
    typed = base_doc(host=HOST, timestamp=1_800_000_001, event_id="t1", module="auditd", dataset="auditd.tty",
                     action="typed")
    typed["keystrokes"] = {"lines": ["ls", "chmod 4777 /tmp/x"]}
    conn = base_doc(host=HOST, timestamp=1_800_000_002, event_id="c1", module="auditd", dataset="auditd.network",
                    action="connected-to")
    conn["destination"] = {"ip": "192.0.2.44", "port": 443}
    assert [h[0] for h in rs.match(nc)] == ["aaaaaaaa-0000-0000-0000-000000000001"]
    assert [h[0] for h in rs.match(typed)] == ["aaaaaaaa-0000-0000-0000-000000000002"]
    assert [h[0] for h in rs.match(conn)] == ["aaaaaaaa-0000-0000-0000-000000000003"]
    conn["destination"]["ip"] = "198.51.100.1"
    assert rs.match(conn) == []


def test_unsupported_and_broken_rules_are_reported_and_reload_keeps_the_old_version(tmp_path):
    write(tmp_path, "win.yml", "title: w\nid: bbbbbbbb-0000-0000-0000-000000000001\nlogsource: {product: windows, category: process_creation}\n"
          "detection: {sel: {Image: x}, condition: sel}\n")
    write(tmp_path, "hash.yml", "title: h\nid: bbbbbbbb-0000-0000-0000-000000000002\nlogsource: {product: linux, category: process_creation}\n"
          "detection: {sel: {Hashes|contains: abc}, condition: sel}\n")
    good = write(tmp_path, "good.yml", RULE)
    rs = SigmaRuleSet([str(tmp_path)])
    reasons = {rid: reason for _, rid, _, reason in rs.skipped}
    assert "windows" in reasons["bbbbbbbb-0000-0000-0000-000000000001"]
    assert "Hashes" in reasons["bbbbbbbb-0000-0000-0000-000000000002"]
    assert len(rs.rules) == 1
    good.write_text("title: [unclosed\n")
    rs2 = SigmaRuleSet([str(tmp_path)])
    assert [r.meta.id for r in rs2.rules] == ["11111111-2222-3333-4444-555555555555"]
    assert any("previous version stays loaded" in reason for _, reason in rs2.errors)
    bad = write(tmp_path, "never-good.yml", "detection: [\n")
    rs3 = SigmaRuleSet([str(tmp_path)])
    assert any(p == str(bad) and "does not parse" in r for p, r in rs3.errors)


def test_the_agent_never_holds_pysigma(tmp_path):
    """pySigma parses in a child process: the agent keeps only the compiled form (issue 18: RSS)."""
    write(tmp_path, "r.yml", RULE)
    code = ("import sys; from agent.pipeline.detections.sigma.ruleset import SigmaRuleSet; "
            f"rs = SigmaRuleSet([{str(tmp_path)!r}]); assert len(rs.rules) == 1, rs.errors; "
            "print(sorted(m for m in sys.modules if m == 'sigma' or m.startswith('sigma.')))")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                       cwd=os.path.join(os.path.dirname(__file__), "..", ".."))
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "[]"


LISTS = """\
title: value lists under one modifier
id: cccccccc-0000-0000-0000-000000000001
logsource: {product: linux, category: process_creation}
detection:
    sel_img:
        Image|endswith: ['/ls', '/bin/nc.openbsd', 'cat']
    sel_cmd:
        CommandLine|contains: [' -la ', '--all']
    sel_dir:
        CurrentDirectory|startswith: ['/srv/', '/tmp/x']
    sel_user:
        User: [ROOT, admin]
    condition: sel_img and (sel_cmd or sel_dir or sel_user)
level: low
"""


@pytest.mark.parametrize("exe,cmd,cwd,user,hit", [
    ("/bin/ls", "ls -la /", "/", "bob", True),
    ("/usr/bin/lsblk", "lsblk -la x", "/", "bob", False),  # ends with "ls"... not "/ls"
    ("/usr/bin/LS", "ls --all", "/", "bob", True),  # case-insensitive, Sigma's default
    ("/bin/nc.openbsd", "nc x", "/srv/a", "bob", True),
    ("/usr/bin/zcat", "zcat f", "/tmp/xy", "bob", True),  # 'cat' without a slash: a plain suffix
    ("/usr/bin/zcat", "zcat f", "/tmp/", "bob", False),
    ("/bin/ls", "ls", "/", "root", True),
    ("/bin/ls", "ls", "/", "rooted", False),
])
def test_value_lists_merge_into_one_test_each(tmp_path, exe, cmd, cwd, user, hit):
    write(tmp_path, "l.yml", LISTS)
    rs = SigmaRuleSet([str(tmp_path)])
    d = exec_doc(1, exe, cmd)
    d["process"]["working_directory"] = cwd
    d["user"]["name"] = user
    assert bool(rs.match(d)) is hit


def test_auditd_keywords_search_the_raw_records_though_keep_original_is_off(tmp_path):
    """A keyword of a rule for auditd's log finds what only the raw record says (the EXECVE
    record's a1="..." field); keep_original is off, so no event keeps event.original."""
    rules = tmp_path / "rules"
    rules.mkdir()
    write(rules, "kw.yml", """\
        title: raw EXECVE field
        id: dddddddd-0000-0000-0000-000000000001
        logsource: {product: linux, service: auditd}
        detection:
            keywords: ['a1="--lsbsysinit"']
            condition: keywords
        level: low
        """)
    conf = tmp_path / "agentd.conf"
    conf.write_text(f"[agent]\nstate_dir = {tmp_path}/state\n[collector:a]\ntype = auditd\n"
                    f"[shipper:f]\ntype = file\npath = {tmp_path}/x\n[detections]\nsigma_dirs = {rules}\n")
    out = tmp_path / "out.jsonl"
    repo = os.path.join(os.path.dirname(__file__), "..", "..")
    r = subprocess.run([sys.executable, "-m", "agent.app.cli", "replay", "-c", str(conf), "-o", str(out),
                        "--audit-log", os.path.join(repo, "tests", "captures", "bastion1", "audit.log")],
                       cwd=repo, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    docs = [json.loads(x) for x in out.read_text().splitlines()]
    alerts = [d for d in docs if d["event"].get("kind") == "alert" and d["rule"]["ruleset"] == "sigma"]
    assert alerts and {a["rule"]["id"] for a in alerts} == {"dddddddd-0000-0000-0000-000000000001"}
    [ev] = [d for d in docs if d["event"]["id"] == alerts[0]["agentd"]["alert"]["evidence"][0]]
    assert ev["process"]["command_line"].startswith("run-parts --lsbsysinit")
    assert not [d for d in docs if "original" in d["event"]]


def test_compiled_rules_are_kept_in_the_state_directory_until_a_rule_file_changes(tmp_path, monkeypatch):
    from agent.pipeline.detections.sigma import cache, ruleset

    rules, state = tmp_path / "rules", tmp_path / "state"
    rules.mkdir()
    state.mkdir()
    good = write(rules, "r.yml", RULE)
    first = SigmaRuleSet([str(rules)], cache_dir=str(state))
    assert [str(p) for p in state.iterdir()] == [cache.cache_file(str(state), [str(rules)])]

    def no_child(paths):
        raise AssertionError("compiled again although nothing changed")
    monkeypatch.setattr(ruleset, "compile_files", no_child)
    again = SigmaRuleSet([str(rules)], cache_dir=str(state))
    assert [r.meta.id for r in again.rules] == [r.meta.id for r in first.rules] == [
        "11111111-2222-3333-4444-555555555555"]
    assert again.match(exec_doc(1, "/usr/bin/curl", "curl -k https://10.1.2.3/x"))
    monkeypatch.undo()
    good.write_text(RULE.replace("level: high", "level: low"))
    changed = SigmaRuleSet([str(rules)], cache_dir=str(state))
    assert changed.rules[0].meta.level == "low"
