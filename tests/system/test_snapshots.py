"""The snapshots collector on the real stack: what goes through the bastion, in the
right login session, with that login's source IP, port and key fingerprint."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
import uuid

import pytest

from tests.stack.forwards import connect_when_up
from tests.system.agentd_proc import AgentProc
from tests.system.test_sessions import client_port, fingerprint

pytestmark = pytest.mark.stack

JOURNALD = "[collector:journald]\ntype = journald\n"
SNAPSHOTS = "interval = 0.5s\nstate_interval = 0"


def ssh_config(path, key: str) -> str:
    with open(path, "w") as f:
        f.write(f"Host jump\n  HostName 127.0.0.1\n  Port 2222\n  User alice\n"
                f"Host target\n  HostName 127.0.0.2\n  Port 2222\n  User alice\n"
                f"Host *\n  IdentityFile {key}\n  IdentitiesOnly yes\n  IdentityAgent none\n"
                f"  StrictHostKeyChecking no\n  UserKnownHostsFile /dev/null\n  LogLevel ERROR\n  BatchMode yes\n")
    return str(path)


def of(evs: list, action: str, **where) -> list:
    out = []
    for e in evs:
        if e["event"].get("action") != action:
            continue
        if all(_get(e, k.split("__")) == v for k, v in where.items()):
            out.append(e)
    return out


def _get(doc, path):
    for p in path:
        doc = doc.get(p) if isinstance(doc, dict) else None
    return doc


def start_agent(tmp_path) -> AgentProc:
    agent = AgentProc(tmp_path, shippers=None, snapshots=SNAPSHOTS)
    with open(agent.conf, "a") as f:
        f.write(JOURNALD)
    return agent.start()


def test_through_the_bastion(stack, ssh_session, tmp_path):
    """ssh -J, ssh -L and a connection through it, an interactive hop, scp and rsync
    to the target, nc -l on the bastion: each in its own login, flagged and counted."""
    tok = uuid.uuid4().hex[:8]
    key = stack.users["alice"]["key_path"]
    fp = fingerprint(key + ".pub")
    cfg = ssh_config(tmp_path / "ssh_config", key)
    agent = start_agent(tmp_path)

    # ProxyJump: no command runs on the bastion; its sshd connects to the target.
    subprocess.run(["ssh", "-F", cfg, "-J", "jump", "target", "sleep 2"], check=True, timeout=60,
                   stdin=subprocess.DEVNULL, capture_output=True)

    # -L: the bastion's sshd connects to the target when a client uses the forward.
    fwd = subprocess.Popen(["ssh", "-F", cfg, "-N", "-L", "15432:127.0.0.2:2222", "jump"],
                           stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        with connect_when_up(15432) as c:
            assert c.recv(64).startswith(b"SSH-2.0")  # the target's banner, through the bastion
            time.sleep(1.5)  # held open across snapshot scans
    finally:
        fwd.terminate()
        fwd.wait(15)

    # An interactive login: a hop, copies to the target, a listener on the bastion.
    alice = ssh_session("alice")
    port = client_port(alice)
    src = f"/tmp/snap-{tok}.bin"
    alice.run(f"head -c 300000 /dev/urandom > {src}")
    alice.run("ssh 127.0.0.2 sleep 2", timeout=40)
    alice.run(f"scp -q {src} 127.0.0.2:/tmp/snap-{tok}-scp.bin", timeout=40)
    alice.run(f"rsync -e ssh {src} 127.0.0.2:/tmp/snap-{tok}-rsync.bin", timeout=40)
    alice.run("nc -l 127.0.0.1 15433 & sleep 1.5; kill %1", timeout=20)
    alice.close()

    def ready(evs):
        ended = [e for e in evs if e["event"].get("action") == "session-ended"
                 and _get(e, ["session", "source", "port"]) == port]
        return evs if ended and of(evs, "listening", destination__port=15433) else None

    try:
        evs = agent.wait_for(ready, timeout=90)
        fwd_conns = [e for e in of(evs, "connection-opened", destination__ip="127.0.0.2", destination__port=2222)
                     if "ssh-forwarded" in (e.get("tags") or [])]
        # one for -J, one for -L; each in a login of its own (no pty), with origin and key
        assert len({e["session"]["id"] for e in fwd_conns}) >= 2, fwd_conns
        for e in fwd_conns:
            assert e["process"]["name"] == "sshd"
            assert e["agentd"]["snapshot"]["forward"] == "direct-tcpip"
            s = e["session"]
            assert s["user"] == "alice" and s["source"]["ip"] == "127.0.0.1"
            assert s["auth"]["key_fingerprint"] == fp
            # the session's port (sshd's Accepted line) is the login's own TCP connection,
            # as the snapshot of sshd's socket saw it
            own = [x for x in of(evs, "connection-opened", network__direction="ingress")
                   if x.get("session", {}).get("id") == s["id"]]
            assert own and own[0]["source"]["port"] == s["source"]["port"]
        # the interactive login: the hop, not flagged, linked to the audit connect
        mine = [e for e in evs if _get(e, ["session", "source", "port"]) == port]
        hop = [e for e in of(mine, "connection-opened", destination__ip="127.0.0.2", process__name="ssh")]
        assert hop and all("ssh-forwarded" not in (e.get("tags") or []) for e in hop)
        assert hop[0]["session"]["auth"]["key_fingerprint"] == fp
        audit_ids = {e["event"]["id"] for e in of(mine, "connected-to", destination__ip="127.0.0.2")}
        linked = [e for e in hop if _get(e, ["agentd", "same_as"]) in audit_ids]
        assert linked or any(_get(e, ["agentd", "same_as"]) in {h["event"]["id"] for h in hop}
                             for e in of(mine, "connected-to")), "audit connect and snapshot never met"
        # transfers: file name and bytes
        for proto, dst in (("scp", f"/tmp/snap-{tok}-scp.bin"), ("rsync", f"/tmp/snap-{tok}-rsync.bin")):
            (t,) = [e for e in of(mine, "file-sent") if e["transfer"]["protocol"] == proto]
            assert t["transfer"]["local_paths"] == [src] and t["transfer"]["remote_paths"] == [dst]
            assert t["transfer"]["remote_host"] == "127.0.0.2" and t["transfer"]["direction"] == "outbound"
            assert t["transfer"]["bytes"] >= 300000, t["transfer"]
            assert t["session"]["source"]["port"] == port
        (lst,) = of(mine, "listening", destination__port=15433)
        assert lst["process"]["name"] == "nc" and lst["session"]["auth"]["key_fingerprint"] == fp
        (summary,) = of(mine, "session-ended")
        s = summary["agentd"]["session"]
        assert "127.0.0.2" in s["hosts"] and s["bytes_out"] >= 600000
    finally:
        agent.stop()
        for p in (src, f"/tmp/snap-{tok}-scp.bin", f"/tmp/snap-{tok}-rsync.bin"):
            try:
                os.unlink(p)
            except OSError:
                pass


def test_process_audit_missed_and_two_logins_of_one_user(stack, ssh_session, tmp_path):
    """A process the audit rules do not log still appears, from the snapshot, in its
    session; two logins of alice at once are never mixed up."""
    tok = uuid.uuid4().hex[:8]
    hidden = f"/tmp/snap-hidden-{tok}"
    shutil.copy("/bin/sleep", hidden)
    os.chmod(hidden, 0o755)
    rule = ["-F", "arch=b64", "-S", "execve", "-F", f"exe={hidden}"]
    agent = start_agent(tmp_path)
    a1, a2 = ssh_session("alice"), ssh_session("alice")
    p1, p2 = client_port(a1), client_port(a2)
    subprocess.run(["auditctl", "-A", "exit,never", *rule], check=True, capture_output=True)
    try:
        a1.run(f"{hidden} 1.1")
        a2.run(f"{hidden} 1.2")
    finally:
        subprocess.run(["auditctl", "-d", "exit,never", *rule], capture_output=True)
    a1.close()
    a2.close()

    def ready(evs):
        got = [e for e in of(evs, "process-started", process__executable=hidden) if e.get("session")]
        return evs if len(got) >= 2 else None

    try:
        evs = agent.wait_for(ready, timeout=60)
        assert not [e for e in of(evs, "exec") + of(evs, "executed") if _get(e, ["process", "executable"]) == hidden]
        by_arg = {e["process"]["args"][1]: e for e in of(evs, "process-started", process__executable=hidden)}
        assert by_arg["1.1"]["session"]["source"]["port"] == p1
        assert by_arg["1.2"]["session"]["source"]["port"] == p2
        assert by_arg["1.1"]["session"]["id"] != by_arg["1.2"]["session"]["id"]
        for e in by_arg.values():
            assert e["agentd"]["snapshot"]["seen_by"] == "snapshot" and e["session"]["user"] == "alice"
        ended = {e["process"]["args"][1]: e for e in of(evs, "process-ended", process__executable=hidden)}
        if "1.1" in ended:
            assert ended["1.1"]["event"]["duration"] >= 1.0e9
            assert ended["1.1"]["session"]["source"]["port"] == p1
    finally:
        agent.stop()
        os.unlink(hidden)


def test_connection_bytes_on_close(stack, ssh_session, tmp_path):
    """A connection through the bastion to the target's sshd carrying a known amount of
    data each way shows it on its connection-closed event (the kernel's tcp_info at
    the socket's release): 2 MB down, 500 kB up, each over SSH's encryption."""
    down, up = 2_000_000, 500_000
    agent = start_agent(tmp_path)
    alice = ssh_session("alice")
    port = client_port(alice)
    # each held open past a few scans (0.5 s): a loopback copy is over before a scan sees it
    alice.run(f"ssh 127.0.0.2 'head -c {down} /dev/zero; sleep 2' | wc -c", timeout=60)
    alice.run(f"(head -c {up} /dev/zero; sleep 2) | ssh 127.0.0.2 'cat > /dev/null'", timeout=60)
    alice.close()

    def closed(evs):
        got = [e for e in of(evs, "connection-closed", destination__ip="127.0.0.2", destination__port=2222)
               if _get(e, ["session", "source", "port"]) == port]
        return got if len(got) >= 2 else None

    try:
        got = agent.wait_for(closed, timeout=90)
        by_cmd = {e["process"]["args"][-1]: e for e in got}
        d = by_cmd[f"head -c {down} /dev/zero; sleep 2"]
        u = by_cmd["cat > /dev/null"]
        for e in (d, u):
            assert e["agentd"]["snapshot"]["bytes_source"] == "tcp_info", e
            assert e["network"]["bytes"] == e["source"]["bytes"] + e["destination"]["bytes"]
            assert e["network"]["direction"] == "egress" and e["process"]["name"] == "ssh"
        # SSH adds its handshake and per-packet overhead (a few kB and a few percent)
        assert down <= d["destination"]["bytes"] <= down * 1.1 + 20000, d
        assert d["source"]["bytes"] < 20000, d
        assert up <= u["source"]["bytes"] <= up * 1.1 + 20000, u
        assert u["destination"]["bytes"] < 20000, u
    finally:
        agent.stop()


def test_udp_sockets_of_a_session(stack, ssh_session, tmp_path):
    """UDP sockets of session processes: a connected one (a DNS-like query to the target)
    is a connection-opened over udp, an unconnected bound one (nc -u -l) is listening;
    both in the login that opened them."""
    agent = start_agent(tmp_path)
    alice = ssh_session("alice")
    port = client_port(alice)
    udp_port = 15000 + os.getpid() % 1000
    alice.run("python3 -c \"import socket, time; s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); "
              "s.connect(('127.0.0.2', 5353)); s.send(b'q'); time.sleep(2)\"", timeout=20)
    alice.run(f"nc -u -l 127.0.0.1 {udp_port} & sleep 2; kill %1", timeout=20)
    alice.close()

    def ready(evs):
        mine = [e for e in evs if _get(e, ["session", "source", "port"]) == port]
        return mine if of(mine, "connection-opened", network__transport="udp") \
            and of(mine, "listening", network__transport="udp") else None

    try:
        mine = agent.wait_for(ready, timeout=60)
        (q,) = of(mine, "connection-opened", network__transport="udp", destination__ip="127.0.0.2")
        assert q["destination"]["port"] == 5353 and q["network"]["direction"] == "egress"
        assert q["process"]["name"].startswith("python3") and q["session"]["user"] == "alice"
        (lst,) = of(mine, "listening", network__transport="udp")
        assert lst["destination"] == {"ip": "127.0.0.1", "port": udp_port} and lst["process"]["name"] == "nc"
        closed = of(mine, "connection-closed", network__transport="udp", destination__ip="127.0.0.2")
        if closed:  # no tcp_info for UDP: a close says so by having no bytes
            assert "bytes" not in (closed[0].get("network") or {})
    finally:
        agent.stop()
