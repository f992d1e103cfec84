"""Packaging that needs no build: the unit's hardening and syntax, the man pages
generated from the code, the maintainer scripts' syntax, the Splunk add-on's
fields against the events agentd emits. Building and installing the packages is
`make install-test` (packaging/tests/)."""

from __future__ import annotations

import argparse
import configparser
import glob
import json
import os
import re
import shutil
import stat
import subprocess

import pytest

from agent.app import cli, manpage
from agent.base import registry
from agent.base.config import AGENT_OPTIONS

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
UNIT = os.path.join(REPO, "packaging", "systemd", "agentd.service")
TA = os.path.join(REPO, "packaging", "splunk", "TA-agentd", "default")
EXPOSURE_TARGET = 2.5

needs_systemd_analyze = pytest.mark.skipif(not shutil.which("systemd-analyze"), reason="no systemd-analyze")


def unit_settings() -> dict:
    out: dict = {}
    with open(UNIT) as f:
        for line in f:
            if "=" in line and not line.lstrip().startswith(("#", "[")):
                k, _, v = line.strip().partition("=")
                out.setdefault(k, []).append(v)
    return out


# ---------------------------------------------------------------- the unit


@needs_systemd_analyze
def test_unit_exposure_is_at_most_the_target():
    r = subprocess.run(["systemd-analyze", "security", "--offline=true", "--no-pager", UNIT],
                       capture_output=True, text=True)
    m = re.search(r"Overall exposure level for agentd\.service: ([0-9.]+)", r.stdout)
    assert m, r.stdout[-2000:] + r.stderr
    score = float(m.group(1))
    print(f"\nsystemd-analyze security --offline=true agentd.service: exposure {score} (target <= {EXPOSURE_TARGET})")
    print("\n".join(ln for ln in r.stdout.splitlines() if ln.startswith("✗")))
    assert score <= EXPOSURE_TARGET


@needs_systemd_analyze
def test_unit_verifies(tmp_path):
    """systemd-analyze verify on the unit, with its man pages generated from the code.
    /usr/bin/agentd does not exist on a build machine, so the command path points at
    a stand-in executable; everything else is the shipped unit."""
    for section, name in (("8", "agentd.8"), ("5", "agentd.conf.5")):
        d = tmp_path / "man" / f"man{section}"
        d.mkdir(parents=True)
        (d / name).write_text(manpage.render(section))
    stand_in = tmp_path / "agentd"
    stand_in.write_text("#!/bin/sh\n")
    stand_in.chmod(0o755)
    unit = tmp_path / "agentd.service"
    with open(UNIT) as f:
        unit.write_text(f.read().replace("/usr/bin/agentd", str(stand_in)))
    r = subprocess.run(["systemd-analyze", "verify", str(unit)], capture_output=True, text=True,
                       env={**os.environ, "MANPATH": str(tmp_path / "man")})
    assert r.returncode == 0 and not r.stderr.strip(), r.stderr


def test_unit_does_not_restart_after_a_config_error(tmp_path):
    bad = tmp_path / "agentd.conf"
    bad.write_text("[agent]\nlog_level = loud\n")
    code = cli.main(["check-config", "-c", str(bad)])
    u = unit_settings()
    assert u["RestartPreventExitStatus"] == [str(code)] and code == 2
    assert u["Restart"] == ["on-failure"] and u["Type"] == ["notify"] and u["WatchdogSec"]
    assert "auditd.service" in u["After"][0].split()
    assert u["User"] == ["agentd"] and u["UMask"] == ["0027"]


def test_unit_bounds_the_malloc_arenas():
    # the agent's threads share the GIL: two glibc arenas hold less than one per thread
    assert "MALLOC_ARENA_MAX=2" in " ".join(unit_settings().get("Environment", [])).split()


# ---------------------------------------------------------------- man pages


def test_agentd8_documents_every_command_and_option():
    page = manpage.render("8")
    parser = cli.build_parser()
    for name, _help, sub in manpage._subcommands(parser):
        assert f"\\fB{manpage.esc(name)}\\fR" in page, name
        for action in sub._actions:
            if isinstance(action, argparse._HelpAction):
                continue
            for opt in action.option_strings:
                assert manpage.esc(opt) in page, (name, opt)
    assert ".SH EXIT STATUS" in page and "\\fB2\\fR" in page


def test_agentdconf5_documents_every_option_with_its_default():
    page = manpage.render("5")
    schemas = [AGENT_OPTIONS] + [registry.load(kind, t).options for kind in ("collector", "shipper")
                                 for t in registry.all_types(kind)]
    for schema in schemas:
        for key, opt in schema.items():
            assert f"\\fB{manpage.esc(key)}\\fR" in page, key
            if opt.default:
                assert f"Default: {manpage.esc(opt.default)}." in page, (key, opt.default)
    for kind in ("collector", "shipper"):
        for t in registry.all_types(kind):
            assert f"type = {manpage.esc(t)}" in page


@pytest.mark.skipif(not shutil.which("groff"), reason="no groff")
@pytest.mark.parametrize("section", ["8", "5"])
def test_man_pages_render_without_warnings(section):
    r = subprocess.run(["groff", "-man", "-Tutf8", "-ww", "-z"], input=manpage.render(section),
                       capture_output=True, text=True)
    assert r.returncode == 0 and not r.stderr, r.stderr


def test_manpage_escapes_roff_control_characters():
    assert manpage.esc("-c") == "\\-c"
    assert manpage.esc("a\\b") == "a\\eb"
    assert manpage.esc(".dot\n'quote") == "\\&.dot\n\\&'quote"
    assert manpage.esc("path…") == "path\\[u2026]"


# ---------------------------------------------------------------- scripts and spec


@pytest.mark.parametrize("script", ["postinst", "prerm", "postrm"])
def test_maintainer_scripts_are_posix_sh(script):
    path = os.path.join(REPO, "packaging", "deb", script)
    assert os.stat(path).st_mode & stat.S_IXUSR
    with open(path) as f:
        assert f.readline() == "#!/bin/sh\n"
    subprocess.run(["sh", "-n", path], check=True)


@pytest.mark.skipif(not shutil.which("rpmspec"), reason="no rpmspec")
def test_rpm_spec_parses_with_config_noreplace():
    out = subprocess.run(["rpmspec", "-P", "--define", "agentd_version 0.0.0",
                          os.path.join(REPO, "packaging", "rpm", "agentd.spec")],
                         capture_output=True, text=True, check=True).stdout
    assert "%config(noreplace) %attr(0640,root,agentd) /etc/agentd/agentd.conf" in out
    assert "Requires:       python3.11" in out


# ---------------------------------------------------------------- Splunk add-on


def golden_fields() -> tuple:
    """Every field path agentd's golden events carry, and the events themselves."""
    fields: set = set()
    events: list = []

    def walk(obj: dict, prefix: str) -> None:
        for k, v in obj.items():
            path = f"{prefix}{k}"
            fields.add(path)
            if isinstance(v, dict):
                walk(v, path + ".")

    for path in glob.glob(os.path.join(REPO, "tests", "golden", "*.jsonl")):
        with open(path) as f:
            for line in f:
                if line.strip():
                    ev = json.loads(line)
                    events.append(ev)
                    walk(ev, "")
    return fields, events


def _conf(name: str) -> configparser.ConfigParser:
    cp = configparser.ConfigParser(interpolation=None, delimiters=("=",))
    cp.optionxform = str
    cp.read(os.path.join(TA, name))
    return cp


def ta_source_fields() -> dict:
    """field -> where the add-on reads it (aliases, evals, eventtype searches)."""
    used: dict = {}
    props = _conf("props.conf")["agentd:ecs"]
    for key, value in props.items():
        if key.startswith("FIELDALIAS-"):
            pairs = re.findall(r"(\S+)\s+AS\s+(\S+)", value)
            assert pairs, key
            for src, _dst in pairs:
                used.setdefault(src, key)
        elif key.startswith("EVAL-"):
            for src in re.findall(r"'([^']+)'", value):
                used.setdefault(src.removesuffix("{}"), key)
    for name, section in _conf("eventtypes.conf").items():
        if name != "DEFAULT":
            for src in re.findall(r'"([\w.@{}]+)"=', section.get("search", "")):
                used.setdefault(src.removesuffix("{}"), f"eventtype {name}")
    return used


def test_splunk_ta_aliases_only_fields_agentd_emits():
    fields, _ = golden_fields()
    assert len(fields) > 50, "no golden events found"
    used = ta_source_fields()
    assert len(used) >= 20
    missing = {f: where for f, where in used.items() if f not in fields}
    assert not missing, f"the add-on reads fields no golden event carries: {missing}"


def _matches(search: str, ev: dict) -> bool:
    for field, value in re.findall(r'"([\w.@{}]+)"="([^"]*)"', search):
        cur = ev
        for part in field.removesuffix("{}").split("."):
            cur = cur.get(part) if isinstance(cur, dict) else None
        if not (cur == value or (isinstance(cur, list) and value in cur)):
            return False
    return True


def test_splunk_ta_eventtypes_are_tagged_and_find_events():
    _, events = golden_fields()
    eventtypes = {n: s["search"] for n, s in _conf("eventtypes.conf").items() if n != "DEFAULT"}
    tags = _conf("tags.conf")
    cim = {"agentd_authentication": "authentication", "agentd_process": "process",
           "agentd_network": "network", "agentd_alert": "alert"}
    for name, tag in cim.items():
        assert tags[f"eventtype={name}"][tag] == "enabled", name
        assert 'sourcetype="agentd:ecs"' in eventtypes[name]
    for name in ("agentd_authentication", "agentd_process", "agentd_network"):
        assert any(_matches(eventtypes[name], ev) for ev in events), f"{name} matches no golden event"
    props = _conf("props.conf")["agentd:ecs"]
    assert props["KV_MODE"] == "json" and props["TIME_PREFIX"] == '"@timestamp":"'


def test_splunk_ta_timestamp_format_reads_agentd_timestamps():
    import datetime

    _, events = golden_fields()
    fmt = _conf("props.conf")["agentd:ecs"]["TIME_FORMAT"].replace("%6N", "%f")
    for ev in events[:50]:
        datetime.datetime.strptime(ev["@timestamp"], fmt)
