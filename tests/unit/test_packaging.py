"""The .deb carries the code, the unit, the audit rules and the config as conffiles."""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@pytest.mark.skipif(not shutil.which("dpkg-deb"), reason="dpkg-deb not installed")
def test_deb_contents(tmp_path):
    deb = subprocess.run([os.path.join(REPO, "packaging/deb/build.sh"), str(tmp_path)], check=True,
                         capture_output=True, text=True).stdout.strip()
    listing = subprocess.run(["dpkg-deb", "-c", deb], check=True, capture_output=True, text=True).stdout
    for path in ("./usr/bin/agentd", "./etc/agentd/agentd.conf", "./lib/systemd/system/agentd.service",
                 "./etc/audit/rules.d/agentd.rules", "./usr/lib/python3/dist-packages/agent/app/cli.py",
                 "./usr/lib/python3/dist-packages/collectors/auditd/tail.py",
                 "./usr/lib/python3/dist-packages/shippers/file.py"):
        assert path in listing, path
    info = subprocess.run(["dpkg-deb", "-f", deb, "Depends"], check=True, capture_output=True, text=True).stdout
    assert "python3-systemd" in info and "python3-orjson" in info
    conffiles = subprocess.run(["dpkg-deb", "--ctrl-tarfile", deb], check=True, capture_output=True).stdout
    assert b"/etc/agentd/agentd.conf" in conffiles
