"""Secrets typed in a real session never reach the spool, the output or the logs,
and the events that carried them say they were redacted."""

from __future__ import annotations

import glob
import os
import uuid

import pytest

from tests.system.agentd_proc import AgentProc

pytestmark = pytest.mark.stack


def test_typed_and_passed_secrets_are_masked_everywhere(stack, ssh_session, tmp_path):
    agent = AgentProc(tmp_path).start()
    pw = f"Hunter2{uuid.uuid4().hex[:6]}"
    token = f"abc123{uuid.uuid4().hex[:6]}"
    s = ssh_session("alice")
    # a stand-in mysql client (the real one is not installed): what matters is
    # that a program named mysql is executed with -p<password>
    s.run("mkdir -p ~/bin && ln -sf /bin/true ~/bin/mysql")
    s.run(f"~/bin/mysql -p{pw} -e 'select 1'")
    s.run(f"sh -c 'true' --password={pw}")
    s.run(f"export API_TOKEN={token}")
    s.run(f"/usr/bin/env API_TOKEN={token} /bin/true")
    s.close()

    def ready(evs):
        tty = [e for e in evs if e["event"]["dataset"] == "auditd.tty" and e.get("user", {}).get("audit", {})
               .get("name") == "alice" and "export API_TOKEN" in e["keystrokes"]["text"]]
        env = [e for e in evs if e["event"].get("action") == "executed"
               and any("API_TOKEN=" in a for a in e["process"].get("args", []))]
        return (tty, env) if tty and env else None

    tty, env = agent.wait_for(ready, timeout=40)
    assert tty[0]["keystrokes"]["redacted"] is True
    assert "redacted" in tty[0]["tags"]
    assert "API_TOKEN=********" in tty[0]["keystrokes"]["text"]
    assert any("mysql -p********" in line for line in tty[0]["keystrokes"]["lines"])
    assert env[0]["process"]["args"][1] == "API_TOKEN=********"
    assert "redacted" in env[0]["tags"]
    execs = [e for e in agent.events() if e["event"].get("action") == "executed"]
    mysql = [e for e in execs if (e["process"].get("args") or [""])[0].endswith("/bin/mysql")]
    assert mysql and mysql[0]["process"]["args"][1] == "-p********"
    assert "-p********" in mysql[0]["process"]["command_line"]
    sh = [e for e in execs if "--password=********" in e["process"].get("args", [])]
    assert sh, "--password=<secret> is masked whatever the program"
    assert agent.stop() == 0

    # grep every byte the agent wrote: spool (and its WAL), outputs, dead letters, its log
    files = [p for p in glob.glob(os.path.join(str(tmp_path), "**", "*"), recursive=True) if os.path.isfile(p)]
    assert any(p.endswith("spool.db") for p in files)
    for path in files:
        with open(path, "rb") as f:
            data = f.read()
        assert pw.encode() not in data, f"password found in {path}"
        assert token.encode() not in data, f"token found in {path}"
        assert pw.encode().hex().encode() not in data.lower(), f"hex password found in {path}"
