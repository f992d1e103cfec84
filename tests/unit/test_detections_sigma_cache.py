"""The compiled Sigma rules kept on disk (sigma/cache.py): used only when everything they
depend on is unchanged and the file is intact and the user's own; otherwise compiled
again, never wrong rules. `agentd replay` keeps them in the user's cache directory.
And the rule index (sigma/index.py) never loses a rule whose literal a value holds."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from agent.pipeline.detections.sigma import cache, index, ruleset
from agent.pipeline.detections.sigma.ruleset import SigmaRuleSet
from tests.unit.test_detections_sigma import RULE, exec_doc, write

REPO = os.path.join(os.path.dirname(__file__), "..", "..")
SHIPPED = os.path.join(REPO, "rules", "sigma")
RID = "11111111-2222-3333-4444-555555555555"
CURL = ("/usr/bin/curl", "curl -k https://10.1.2.3/x")


_ANSWERS: dict = {}  # (file name, content) ... -> the child's answer: each distinct rule set compiled once


@pytest.fixture
def counted(monkeypatch):
    """Counts the compiles asked for; the real child answers (once per distinct content)."""
    calls = []
    real = ruleset.compile_files

    def compile_files(paths):
        calls.append(list(paths))
        key = tuple((os.path.basename(p), open(p).read()) for p in paths)
        if key not in _ANSWERS:
            _ANSWERS[key] = (paths, real(paths))
        seen, answers = _ANSWERS[key]
        return json.loads(json.dumps(answers).replace(json.dumps(os.path.dirname(seen[0]))[1:-1],
                                                      json.dumps(os.path.dirname(paths[0]))[1:-1]))
    monkeypatch.setattr(ruleset, "compile_files", compile_files)
    return calls


def _load(rules, cache_dir):
    rs = SigmaRuleSet([str(rules)], cache_dir=str(cache_dir))
    return rs, [(r.meta.id, r.meta.level) for r in rs.rules]


def test_a_warm_cache_skips_the_compile_and_gives_the_same_rules(tmp_path, counted):
    rules = tmp_path / "rules"
    rules.mkdir()
    write(rules, "r.yml", RULE)
    cold, first = _load(rules, tmp_path / "c")
    warm, again = _load(rules, tmp_path / "c")
    assert len(counted) == 1 and first == again == [(RID, "high")]
    assert warm.match(exec_doc(1, *CURL)) and cold.match(exec_doc(1, *CURL))
    assert not warm.match(exec_doc(2, "/usr/bin/wget", "wget -k https://10.1.2.3/x"))
    [f] = os.listdir(tmp_path / "c")
    assert os.stat(tmp_path / "c" / f).st_mode & 0o077 == 0  # the user's own


def test_a_changed_rule_file_is_compiled_again(tmp_path, counted):
    rules = tmp_path / "rules"
    rules.mkdir()
    good = write(rules, "r.yml", RULE)
    _load(rules, tmp_path / "c")
    good.write_text(RULE.replace("level: high", "level: low"))
    _, got = _load(rules, tmp_path / "c")
    assert len(counted) == 2 and got == [(RID, "low")]
    write(rules, "s.yml", RULE.replace(RID, RID[:-1] + "6"))  # a new file
    _, got = _load(rules, tmp_path / "c")
    assert len(counted) == 3 and len(got) == 2


def test_a_stale_key_is_compiled_again(tmp_path, counted, monkeypatch):
    rules = tmp_path / "rules"
    rules.mkdir()
    write(rules, "r.yml", RULE)
    _load(rules, tmp_path / "c")
    monkeypatch.setattr(cache, "__version__", "99.0")  # another agentd (or pySigma, or compiler)
    _, got = _load(rules, tmp_path / "c")
    assert len(counted) == 2 and got == [(RID, "high")]


@pytest.mark.parametrize("damage", ["truncated", "flipped", "not json", "empty", "other rules", "group writable"])
def test_a_damaged_or_foreign_cache_file_is_never_used(tmp_path, counted, damage):
    rules = tmp_path / "rules"
    rules.mkdir()
    write(rules, "r.yml", RULE)
    _load(rules, tmp_path / "c")
    [name] = os.listdir(tmp_path / "c")
    path = tmp_path / "c" / name
    data = path.read_bytes()
    header, body = data.split(b"\n", 1)
    if damage == "truncated":
        path.write_bytes(data[: len(data) // 2])
    elif damage == "flipped":  # valid JSON, a rule that matches nothing: the digest says no
        path.write_bytes(header + b"\n" + body.replace(b"/curl", b"/nope"))
    elif damage == "not json":
        path.write_bytes(b"\x00\xff garbage")
    elif damage == "empty":
        path.write_bytes(b"")
    elif damage == "other rules":  # a consistent file, but for other rule files
        answers = json.loads(body)
        answers[0]["path"] = "/elsewhere.yml"
        cache.save(str(path), json.loads(header)["key"], answers)
    else:
        os.chmod(path, 0o666)
    rs, got = _load(rules, tmp_path / "c")
    assert len(counted) == 2 and got == [(RID, "high")]
    assert rs.match(exec_doc(1, *CURL))
    _, again = _load(rules, tmp_path / "c")  # rewritten: good again
    assert len(counted) == 2 and again == got


def test_an_unwritable_cache_directory_only_costs_the_compile(tmp_path, counted):
    rules = tmp_path / "rules"
    rules.mkdir()
    write(rules, "r.yml", RULE)
    blocker = tmp_path / "file"
    blocker.write_text("x")
    for _ in range(2):
        _, got = _load(rules, blocker / "sub")
        assert got == [(RID, "high")]
    assert len(counted) == 2


def test_user_cache_dir_follows_xdg(monkeypatch, tmp_path):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert cache.user_cache_dir() == str(tmp_path / "agentd")
    monkeypatch.setenv("XDG_CACHE_HOME", "relative/dir")  # ignored, as the XDG spec says
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert cache.user_cache_dir() == str(tmp_path / "home" / ".cache" / "agentd")


def test_replay_keeps_the_compiled_rules_in_the_user_cache(tmp_path):
    rules = tmp_path / "rules"
    rules.mkdir()
    write(rules, "r.yml", RULE)
    conf = tmp_path / "agentd.conf"
    conf.write_text(f"[agent]\nstate_dir = {tmp_path}/no-such-state\n[collector:a]\ntype = auditd\n"
                    f"[shipper:f]\ntype = file\npath = {tmp_path}/x\n[detections]\nsigma_dirs = {rules}\n")
    env = dict(os.environ, XDG_CACHE_HOME=str(tmp_path / "xdg"))
    outs = []
    for n in range(2):
        out = tmp_path / f"out{n}.jsonl"
        r = subprocess.run([sys.executable, "-m", "agent.app.cli", "replay", "-c", str(conf), "-o", str(out),
                            "--audit-log", os.path.join(REPO, "tests", "captures", "bastion1", "audit.log")],
                           cwd=REPO, capture_output=True, text=True, env=env)
        assert r.returncode == 0, r.stderr
        outs.append(out.read_bytes())
        [name] = os.listdir(tmp_path / "xdg" / "agentd")
        if n == 0:
            written = os.stat(tmp_path / "xdg" / "agentd" / name).st_mtime_ns
    assert os.stat(tmp_path / "xdg" / "agentd" / name).st_mtime_ns == written  # read, not compiled again
    assert outs[0] == outs[1] and b'"kind":"alert"' in outs[0]


def test_every_literal_of_every_shipped_rule_makes_its_rule_a_candidate():
    """The index's prefilters (prefix/suffix tuples, the automaton, the memo) lose no rule: a
    value holding one literal a rule needs (in any case) always brings that rule."""
    rs = SigmaRuleSet([SHIPPED])
    built = index.build(rs.rules, lambda f: f)  # field names instead of readers
    checked = 0
    for ds, (_, fields) in built.items():
        for field, fi in fields:
            for i, r in enumerate(rs.rules):
                for f, how, lit in r.needs or ():
                    if f != field or ds not in r.datasets:
                        continue
                    values = {"eq": [lit], "startswith": [lit, lit + "/x y"], "endswith": [lit, "/a b/c" + lit],
                              "contains": [lit, "x " + lit + " y"]}[how]
                    for v in values:
                        for text in (v, v.upper(), v.title()) if v.isascii() else (v,):
                            assert i in fi.of(text) and i in fi.of(text), (ds, field, how, lit, text)
                            checked += 1
    assert checked > 500
