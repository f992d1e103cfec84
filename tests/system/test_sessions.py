"""The session join on the real stack: concurrent logins (key and password), every
command, connection and keystroke record carries the SSH origin and key of its
login, through sudo and su; the target host's own logins never join."""

from __future__ import annotations

import subprocess
import uuid

import pytest

from tests.system.agentd_proc import AgentProc, args_of

pytestmark = pytest.mark.stack

JOURNALD = "[collector:journald]\ntype = journald\n"


def fingerprint(pub_path: str) -> str:
    out = subprocess.check_output(["ssh-keygen", "-lf", pub_path], text=True)
    return out.split()[1]


def client_port(session) -> int:
    # SSH_CLIENT is "<ip> <client port> <server port>" as sshd saw it.
    return int(session.run("echo $SSH_CLIENT").split()[1])


def with_token(events: list, token: str) -> list:
    return [e for e in events if any(token in a for a in args_of(e) if isinstance(a, str))]


def test_concurrent_sessions_carry_origin_key_and_method(stack, ssh_session, tmp_path):
    agent = AgentProc(tmp_path, shippers=None)
    with open(agent.conf, "a") as f:
        f.write(JOURNALD)
    agent.start()
    tok = uuid.uuid4().hex[:8]
    alice = ssh_session("alice")
    carol = ssh_session("carol")
    a_port, c_port = client_port(alice), client_port(carol)
    alice_ses = alice.run("cat /proc/self/sessionid").strip()
    alice.run(f"/bin/echo alice-{tok} >/dev/null")
    carol.run(f"/bin/echo carol-{tok} >/dev/null")
    # sudo -i keeps the login (audit ses) and the login user
    alice.send("sudo -i\r")
    alice.read_quiet(0.5)
    alice.set_prompt()
    alice.run(f"/bin/echo alice-root-{tok} >/dev/null")
    alice.run("exit")
    # su - to another account, with its password typed at the prompt
    carol.send("su - dave\r")
    carol.expect("Password:")
    carol.send("dave-pass-123\r")
    carol.read_quiet(0.5)
    carol.set_prompt()
    carol.run(f"/bin/echo carol-dave-{tok} >/dev/null")
    carol.run("exit")
    # a hop to the internal host: the connect belongs to alice's session; what runs
    # on the target belongs to the target's own login, never to alice's session
    alice.run(f"ssh -p 2222 127.0.0.2 /bin/echo target-{tok}", timeout=30)
    alice.close()
    carol.close()

    alice_fp = fingerprint(stack.users["alice"]["key_path"] + ".pub")

    def ready(evs):
        tty = [e for e in evs if e["event"]["dataset"] == "auditd.tty" and e.get("session")]
        users = {e["session"]["user"] for e in tty}
        ended = {e["session"]["user"] for e in evs if e["event"].get("action") == "session-ended"}
        return evs if ({"alice", "carol"} <= users & ended and with_token(evs, f"carol-dave-{tok}")
                       and any(str((e.get("auditd") or {}).get("session")) == alice_ses for e in tty)) else None

    evs = agent.wait_for(ready, timeout=60)
    alice_cmds = with_token(evs, f"alice-{tok}") + with_token(evs, f"alice-root-{tok}")
    carol_cmds = with_token(evs, f"carol-{tok}") + with_token(evs, f"carol-dave-{tok}")
    assert len(alice_cmds) >= 2 and len(carol_cmds) >= 2
    for e in alice_cmds:
        s = e["session"]
        assert s["user"] == "alice"
        assert s["source"] == {"ip": "127.0.0.1", "port": a_port}
        assert s["auth"]["method"] == "publickey"
        assert s["auth"]["key_fingerprint"] == alice_fp
        assert s["auth"]["key_type"] == "ED25519"
    root_cmd = with_token(evs, f"alice-root-{tok}")[0]
    assert root_cmd["user"]["name"] == "root" and root_cmd["session"]["user"] == "alice"
    for e in carol_cmds:
        s = e["session"]
        assert s["user"] == "carol"
        assert s["source"] == {"ip": "127.0.0.1", "port": c_port}
        assert s["auth"]["method"] == "password"
        assert "key_fingerprint" not in s["auth"]
    dave_cmd = with_token(evs, f"carol-dave-{tok}")[0]
    assert dave_cmd["user"]["name"] == "dave" and dave_cmd["session"]["user"] == "carol"

    # alice's own hop: other tests on this machine may reach the target host meanwhile
    hop = [e for e in evs if e["event"].get("action") == "connected-to"
           and (e.get("destination") or {}).get("ip") == "127.0.0.2"
           and str((e.get("auditd") or {}).get("session")) == alice_ses]
    assert hop and all(e["session"]["user"] == "alice" and e["session"]["source"]["port"] == a_port for e in hop)
    alice_ids = {e["session"]["id"] for e in alice_cmds}
    for e in with_token(evs, f"target-{tok}"):
        if e["process"]["executable"].endswith("echo") and e.get("session"):
            assert e["session"]["id"] not in alice_ids, "the target host's own login joined the jump session"

    # alice's keystrokes carry her login's origin (other alice logins on this machine, of
    # other tests or jobs, are other sessions: picked by her audit session, not her name)
    alice_tty = [e for e in evs if e["event"]["dataset"] == "auditd.tty"
                 and str((e.get("auditd") or {}).get("session")) == alice_ses]
    assert alice_tty
    for e in alice_tty:
        assert e["session"]["user"] == "alice" and e["session"]["source"]["port"] == a_port

    starts = [e for e in evs if e["event"].get("action") == "session-started" and e["session"]["user"] == "alice"]
    ends = [e for e in evs if e["event"].get("action") == "session-ended" and e["session"]["user"] == "alice"
            and e["session"]["id"] in alice_ids]
    assert starts and ends
    assert starts[0]["session"]["auth"]["key_fingerprint"] == alice_fp
    assert starts[0]["session"]["source"]["port"] == a_port
    assert ends[0]["agentd"]["session"]["commands"] >= 2
    assert "127.0.0.2" in ends[0]["agentd"]["session"]["hosts"]
    agent.stop()


def test_failed_logins_yield_one_event_each(stack, tmp_path):
    from tests.stack.session import attempt_login

    agent = AgentProc(tmp_path)
    with open(agent.conf, "a") as f:
        f.write(JOURNALD)
    agent.start()
    assert not attempt_login("carol", "definitely-wrong")
    bogus = f"nosuch{uuid.uuid4().hex[:6]}"
    assert not attempt_login(bogus, "whatever")

    def ready(evs):
        failed = [e for e in evs if e["event"]["dataset"] == "sshd.auth" and e["event"].get("action") == "login-failed"
                  and e["user"]["name"] == "carol"]
        invalid = [e for e in evs if e["event"]["dataset"] == "sshd.auth" and e["event"].get("action") == "invalid-user"
                   and e["user"]["name"] == bogus]
        return (failed, invalid) if failed and invalid else None

    failed, invalid = agent.wait_for(ready, timeout=30)
    assert len(failed) == 1 and len(invalid) == 1
    for e in failed + invalid:
        assert e["source"]["ip"] == "127.0.0.1" and e["source"]["port"] > 0
        assert e["event"]["outcome"] == "failure"
    agent.stop()


def test_sessions_command_lists_logins_and_shows_a_timeline(stack, ssh_session, tmp_path):
    import sys

    from tests.system.agentd_proc import REPO

    agent = AgentProc(tmp_path)
    with open(agent.conf, "a") as f:
        f.write(JOURNALD)
    agent.start()
    tok = uuid.uuid4().hex[:8]
    s = ssh_session("bob")
    port = client_port(s)
    ses = s.run("cat /proc/self/sessionid").strip()
    s.run(f"/bin/echo timeline-{tok} >/dev/null")
    s.close()
    agent.wait_for(lambda evs: [e for e in evs if e["event"].get("action") == "session-ended"
                                and e["session"]["id"].endswith(f":{ses}")], timeout=40)
    assert agent.stop() == 0

    def agentd(*args):
        p = subprocess.run([sys.executable, "-m", "agent.app.cli", *args, "-c", agent.conf], cwd=REPO,
                           capture_output=True, text=True)
        assert p.returncode == 0, p.stderr
        return p.stdout

    listing = agentd("sessions", "--user", "bob")
    row = [line for line in listing.splitlines() if line.split()[0] == ses]
    assert row, listing
    assert f"127.0.0.1:{port}" in row[0] and "publickey SHA256:" in row[0] and "bob" in row[0]
    timeline = agentd("sessions", "show", ses)
    assert timeline.startswith("session ") and f"port {port}" in timeline
    kinds = [line.split()[2] for line in timeline.splitlines() if line.startswith("  ")]
    assert kinds[0] == "login" and kinds[-1] in ("logout", "typed")
    assert any(f"timeline-{tok}" in line and " ran " in line for line in timeline.splitlines())
    assert any(f"timeline-{tok}" in line and " typed " in line for line in timeline.splitlines())
