"""agentd check-config: the shipped config passes, every kind of mistake gets one
`Error: <file> [<section>] <key>: …` line and a non-zero exit."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from agent.app import defaultconf
from agent.base.config import ConfigError, load_config

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SHIPPED = os.path.join(REPO, "agentd.conf")
AGENTD = [sys.executable, "-m", "agent.app.cli"]

MINIMAL = """\
[agent]
state_dir = /tmp/agentd-test

[collector:audit]
type = auditd

[shipper:out]
type = file
path = /tmp/agentd-test/events.jsonl
"""


def check_config(tmp_path, text: str):
    path = tmp_path / "agentd.conf"
    path.write_text(text)
    proc = subprocess.run(AGENTD + ["check-config", "-c", str(path)], capture_output=True, text=True, cwd=REPO)
    return proc, str(path)


def test_shipped_config_is_valid():
    proc = subprocess.run(AGENTD + ["check-config", "-c", SHIPPED], capture_output=True, text=True, cwd=REPO)
    assert proc.returncode == 0, proc.stderr
    assert "OK" in proc.stdout


def test_shipped_config_lists_every_option_at_its_default():
    with open(SHIPPED) as f:
        assert f.read() == defaultconf.render(), "agentd.conf differs from the schema: run `agentd default-config > agentd.conf`"


def test_shipped_config_defaults_parse_to_schema_defaults():
    cfg = load_config(SHIPPED)
    assert cfg.agent["state_dir"] == "/var/lib/agentd"
    assert cfg.agent["spool_max_bytes"] == 1024**3
    audit, journal, snapshots = cfg.enabled("collector")
    assert snapshots.type_name == "snapshots" and snapshots.conf["interval"] == 2.0
    assert audit.conf["log_file"] == "/var/log/audit/audit.log"
    assert journal.type_name == "journald" and "sshd" in journal.conf["programs"]
    (out,) = cfg.enabled("shipper")
    assert out.conf["path"] == "/var/log/agentd/events.jsonl"


def test_absent_section_of_a_default_on_component_runs_with_its_defaults():
    """An agentd.conf written before the snapshots collector existed still runs it;
    a section of its type, enabled or not, is the config's own say."""
    from agent.base.config import parse_config_text

    old = parse_config_text(MINIMAL, "old.conf")
    (snap,) = [c for c in old.enabled("collector") if c.type_name == "snapshots"]
    assert snap.section == "collector:snapshots" and snap.conf["state_interval"] == 60.0
    off = parse_config_text(MINIMAL + "[collector:snapshots]\ntype = snapshots\nenabled = false\n", "off.conf")
    assert [c.type_name for c in off.enabled("collector")] == ["auditd"]
    renamed = parse_config_text(MINIMAL + "[collector:ps]\ntype = snapshots\ninterval = 5s\n", "ps.conf")
    (ps,) = [c for c in renamed.enabled("collector") if c.type_name == "snapshots"]
    assert ps.name == "ps" and ps.conf["interval"] == 5.0


def test_minimal_config_is_valid(tmp_path):
    proc, _ = check_config(tmp_path, MINIMAL)
    assert proc.returncode == 0, proc.stderr


@pytest.mark.parametrize(
    "edit, expected",
    [
        (("[agent]\n", "[agent]\nlog_levle = debug\n"), "[agent] log_levle: unknown option; allowed here:"),
        (("[agent]\n", "[agnet]\nx = 1\n[agent]\n"), "[agnet]: unknown section; allowed: [agent], [collector:NAME], [shipper:NAME]"),
        (("type = file\n", "type = file\nmax_bytes = lots\n"), "[shipper:out] max_bytes: 'lots' is not a size"),
        (("type = file\n", "type = file\nfsync = maybe\n"), "[shipper:out] fsync: 'maybe' is not a boolean; use true or false"),
        (("type = file\n", "type = file\nkeep_files = -1\n"), "[shipper:out] keep_files: -1 is below the minimum 0"),
        (("type = auditd\n", "type = auditd\nstart_at = middle\n"), "[collector:audit] start_at: 'middle' is not allowed; use one of: end, beginning"),
        (("type = auditd\n", ""), "[collector:audit] type: missing; set type = one of:"),
        (("type = file\n", "type = fiel\n"), "[shipper:out] type: unknown shipper type 'fiel'; known types:"),
        (("path = /tmp/agentd-test/events.jsonl", "path = events.jsonl"), "[shipper:out] path: 'events.jsonl' is not an absolute path"),
        (("state_dir = /tmp/agentd-test", "retry_max_backoff = soon"), "[agent] retry_max_backoff: 'soon' is not a duration"),
        (("state_dir = /tmp/agentd-test", "status_listen = 9977"), "[agent] status_listen: '9977' is not host:port"),
    ],
)
def test_each_kind_of_mistake_is_one_error_line(tmp_path, edit, expected):
    old, new = edit
    assert old in MINIMAL
    proc, path = check_config(tmp_path, MINIMAL.replace(old, new, 1))
    assert proc.returncode != 0
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith(f"Error: {path} ")
    assert expected in lines[0]


def test_all_problems_reported_at_once(tmp_path):
    text = MINIMAL.replace("[agent]\n", "[agent]\nbogus = 1\nlog_level = loud\n").replace(
        "type = file\n", "type = file\nfsync = 3\n")
    proc, path = check_config(tmp_path, text)
    assert proc.returncode != 0
    lines = proc.stderr.strip().splitlines()
    assert sorted(line.split(": ")[1] for line in lines) == sorted(
        [f"{path} [agent] bogus", f"{path} [agent] log_level", f"{path} [shipper:out] fsync"])


def test_unreadable_file_is_an_error(tmp_path):
    missing = str(tmp_path / "nope.conf")
    proc = subprocess.run(AGENTD + ["check-config", "-c", missing], capture_output=True, text=True, cwd=REPO)
    assert proc.returncode != 0
    assert proc.stderr.strip() == f"Error: {missing}: cannot read the config file: No such file or directory"


def test_duplicate_key_is_a_syntax_error(tmp_path):
    proc, path = check_config(tmp_path, MINIMAL.replace("[agent]\n", "[agent]\nlog_level = info\nlog_level = debug\n"))
    assert proc.returncode != 0
    assert proc.stderr.startswith(f"Error: {path}: ")
    assert "log_level" in proc.stderr and "already exists" in proc.stderr


def test_default_section_is_not_silently_shared(tmp_path):
    proc, path = check_config(tmp_path, "[DEFAULT]\nenabled = false\n" + MINIMAL)
    assert proc.returncode != 0
    assert f"Error: {path} [DEFAULT]: unknown section" in proc.stderr


def test_nothing_enabled_is_an_error(tmp_path):
    # snapshots is on by default even without a section: turned off here too
    proc, path = check_config(tmp_path, MINIMAL.replace("type = auditd\n", "type = auditd\nenabled = false\n")
                              + "[collector:snapshots]\ntype = snapshots\nenabled = false\n")
    assert proc.returncode != 0
    assert f"Error: {path}: no enabled [collector:NAME] section" in proc.stderr


def test_config_error_object_carries_lines(tmp_path):
    p = tmp_path / "a.conf"
    p.write_text("[agent]\nlog_level = loud\n")
    with pytest.raises(ConfigError) as e:
        load_config(str(p))
    assert e.value.lines[0].startswith(f"Error: {p} [agent] log_level:")
