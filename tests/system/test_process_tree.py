"""The process tree on the real stack: a login that goes `sudo -i`, then `su - dave`, then
runs a command; the command's event still names the original SSH login as its entry
leader (the login shell, its source IP and user), its parents are the shells it ran from,
and the live agent fills the session and group leaders from /proc."""

from __future__ import annotations

import pytest

from tests.system.agentd_proc import AgentProc, args_of

pytestmark = pytest.mark.stack


def test_sudo_then_su_keeps_the_login_as_entry_leader(stack, ssh_session, tmp_path):
    agent = AgentProc(tmp_path)
    agent.start()
    s = ssh_session("alice")
    ses = s.run("cat /proc/self/sessionid").strip()
    s.send("sudo -i\r")
    s.read_quiet(0.5)
    s.set_prompt()
    s.send("su - dave\r")  # from root: no password asked
    s.read_quiet(0.5)
    s.set_prompt()
    # alive for a while, so that the agent still finds it (and its leaders) in /proc
    s.run("/bin/sleep 4", timeout=30)
    s.run("exit")
    s.run("exit")
    s.close()

    def ready(evs):
        mine = [e for e in evs if e["event"]["dataset"] == "auditd.process"
                and (e.get("auditd") or {}).get("session") == ses and e["event"]["outcome"] == "success"]
        return mine if any(a == "/bin/sleep" for e in mine for a in args_of(e)[:1]) else None

    execs = agent.wait_for(ready, timeout=60)
    agent.stop()
    (cmd,) = [e for e in execs if args_of(e)[:1] == ["/bin/sleep"]]
    login_shell = [e for e in execs if e["process"]["entry_leader"].get("same_as_process")][0]
    el = cmd["process"]["entry_leader"]

    assert cmd["user"]["name"] == "dave"
    assert login_shell["process"]["args"] == ["-bash"] and login_shell["user"]["name"] == "alice"
    assert el["entity_id"] == login_shell["process"]["entity_id"]
    assert el["pid"] == login_shell["process"]["pid"] and el["args"] == ["-bash"]
    assert el["user"]["name"] == "alice"
    assert el["entry_meta"] == {"type": "sshd", "source": {"ip": "127.0.0.1"}}
    assert cmd["session"]["source"]["ip"] == "127.0.0.1"
    assert all(e["process"]["entry_leader"]["entity_id"] == el["entity_id"] for e in execs)

    # parent chain: sleep <- dave's shell <- su <- root's shell (sudo -i)
    by_eid = {e["process"]["entity_id"]: e for e in execs}
    dave_shell = by_eid[cmd["process"]["parent"]["entity_id"]]
    assert dave_shell["user"]["name"] == "dave" and dave_shell["process"]["name"] == "bash"
    assert cmd["process"]["parent"]["executable"] == dave_shell["process"]["executable"]
    (root_shell,) = [e for e in execs if e["process"]["args"] == ["-bash"] and e["user"]["name"] == "root"]
    su = by_eid[dave_shell["process"]["parent"]["entity_id"]]
    assert su["process"]["args"] == ["su", "-", "dave"]
    assert su["process"]["parent"]["entity_id"] == root_shell["process"]["entity_id"]

    # live: /proc gives the leaders the audit records do not have
    assert cmd["process"]["group_leader"]["same_as_process"] is True
    # sudo -i runs the shell in a new session on its own pty, led by sudo's child process,
    # which never exec'd: the leader is the same process (same id) as the root shell's parent
    sl = cmd["process"]["session_leader"]
    assert sl["pid"] == root_shell["process"]["parent"]["pid"]
    assert sl["entity_id"] == root_shell["process"]["parent"]["entity_id"]
    assert cmd["process"]["interactive"] is True and cmd["process"]["tty"]["char_device"]["major"] >= 136
