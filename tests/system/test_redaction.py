"""Secrets typed in a real session never reach the spool, the output or the logs,
and the events that carried them say they were redacted."""

from __future__ import annotations

import glob
import os
import uuid

import pytest

from tests.system import spool_bytes
from tests.system.agentd_proc import AgentProc, args_of

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
        tty = [e for e in evs if e["event"]["dataset"] == "auditd.tty" and e.get("agentd", {}).get("user", {})
               .get("audit", {}).get("name") == "alice" and "export API_TOKEN" in e["keystrokes"]["text"]]
        env = [e for e in evs if e["event"].get("action") == "exec"
               and any("API_TOKEN=" in a for a in e["process"].get("args", []))]
        return (tty, env) if tty and env else None

    tty, env = agent.wait_for(ready, timeout=40)
    assert tty[0]["keystrokes"]["redacted"] is True
    assert "redacted" in tty[0]["tags"]
    assert "API_TOKEN=********" in tty[0]["keystrokes"]["text"]
    assert any("mysql -p********" in line for line in tty[0]["keystrokes"]["lines"])
    assert env[0]["process"]["args"][1] == "API_TOKEN=********"
    assert "redacted" in env[0]["tags"]
    execs = [e for e in agent.events() if e["event"].get("action") == "exec"]
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
        if "spool.db" in os.path.basename(path):
            data = spool_bytes.readable(path)  # its rows are compressed: their text too
        else:
            with open(path, "rb") as f:
                data = f.read()
        assert pw.encode() not in data, f"password found in {path}"
        assert token.encode() not in data, f"token found in {path}"
        assert pw.encode().hex().encode() not in data.lower(), f"hex password found in {path}"


def test_ssh_options_typed_in_a_session_are_left_as_typed(stack, ssh_session, tmp_path):
    """`ssh -o StrictHostKeyChecking=no` is an option, not a secret: args, command line, title
    and keystrokes keep it as typed and nothing is tagged redacted, also with keep_original
    (whose raw records carry key="exec" and SYSCALL a0..a3)."""
    agent = AgentProc(tmp_path, agent_extra="keep_original = true").start()
    login = f"nobody{uuid.uuid4().hex[:8]}"
    line = (f"ssh -o StrictHostKeyChecking=no -o PubkeyAuthentication=yes -o BatchMode=yes "
            f"-o ConnectTimeout=5 -p 2222 -l {login} 127.0.0.2 true")
    s = ssh_session("alice")
    s.run(line + "; echo done", timeout=40)
    s.close()

    def ready(evs):
        execs = [e for e in evs if e["event"]["dataset"] == "auditd.process" and login in args_of(e)]
        tty = [e for e in evs if e["event"]["dataset"] == "auditd.tty"
               and login in " ".join((e.get("keystrokes") or {}).get("lines") or [])]
        return (execs, tty) if execs and tty else None

    execs, tty = agent.wait_for(ready, timeout=60)
    ssh = execs[0]
    assert ssh["process"]["args"] == line.split()
    assert ssh["process"]["command_line"] == line
    title = ssh["process"]["title"]      # the kernel's PROCTITLE stops at 128 bytes
    assert "StrictHostKeyChecking=no" in title and line.startswith(title)
    assert "StrictHostKeyChecking=no" in ssh["event"]["original"]
    assert "redacted" not in ssh.get("tags", [])
    assert line + "; echo done" in tty[0]["keystrokes"]["lines"]
    assert tty[0]["keystrokes"]["redacted"] is False
    assert "redacted" not in tty[0].get("tags", [])
    assert agent.stop() == 0
