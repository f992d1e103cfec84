"""Normalizer: datasets and fields of EVENTS.md on real records."""

from __future__ import annotations

from agent.base.events import HostInfo, dumps
from collectors.auditd.normalize import Normalizer
from collectors.auditd.parse import parse_line
from collectors.auditd.reassemble import AuditEvent, Gap, Reassembler

HOST = HostInfo("bastion1", "mid", "boot")
EXEC = [
    b'type=SYSCALL msg=audit(1795806952.338:1275): arch=c000003e syscall=59 success=yes exit=0 a0=1 a1=2 '
    b'a2=3 a3=4 items=2 ppid=9526 pid=9530 auid=1001 uid=1001 gid=1001 euid=1001 suid=1001 fsuid=1001 '
    b'egid=1001 sgid=1001 fsgid=1001 tty=pts1 ses=16 comm="id" exe="/usr/bin/id" key="exec"'
    b'\x1dARCH=x86_64 SYSCALL=execve AUID="alice" UID="alice" GID="alice" EUID="alice" SUID="alice" '
    b'FSUID="alice" EGID="alice" SGID="alice" FSGID="alice"',
    b'type=EXECVE msg=audit(1795806952.338:1275): argc=3 a0="id" a1="-u" a2=FF41',
    b'type=CWD msg=audit(1795806952.338:1275): cwd="/home/alice"',
    b'type=PATH msg=audit(1795806952.338:1275): item=0 name="/usr/bin/id" inode=1 dev=fe:00 mode=0100755 '
    b'ouid=0 ogid=0 rdev=00:00 nametype=NORMAL',
    b'type=PROCTITLE msg=audit(1795806952.338:1275): proctitle=6964002D7500FF41',
]
CONNECT = [
    b'type=SYSCALL msg=audit(1795806953.000:1300): arch=c000003e syscall=42 success=no exit=-115 a0=3 a1=2 '
    b'a2=10 a3=0 items=0 ppid=1 pid=2 auid=1001 uid=1001 gid=1001 euid=1001 suid=1001 fsuid=1001 '
    b'egid=1001 sgid=1001 fsgid=1001 tty=pts1 ses=16 comm="ssh" exe="/usr/bin/ssh" key="net_connect"',
    b'type=SOCKADDR msg=audit(1795806953.000:1300): saddr=020008AE7F0000020000000000000000',
    b'type=PROCTITLE msg=audit(1795806953.000:1300): proctitle="ssh"',
]


def events(lines):
    r = Reassembler()
    out = []
    for i, line in enumerate(lines):
        out += r.push(parse_line(line, i))
    return out + r.flush()


def one(lines, **kw):
    evs = [e for e in events(lines) if isinstance(e, AuditEvent)]
    assert len(evs) == 1
    docs = Normalizer(HOST, **kw).normalize(evs[0])
    assert len(docs) == 1
    dumps(docs[0])  # serializable
    return docs[0]


def test_process_executed():
    d = one(EXEC)
    e = d["event"]
    assert (e["dataset"], e["action"], e["outcome"], e["sequence"]) == ("auditd.process", "exec", "success", 1275)
    assert e["category"] == ["process"] and e["type"] == ["start"] and e["module"] == "auditd"
    p = d["process"]
    assert p["pid"] == 9530 and p["parent"]["pid"] == 9526 and p["executable"] == "/usr/bin/id"
    assert p["name"] == "id" and p["args"] == ["id", "-u", "\\xffA"] and p["args_count"] == 3
    assert d["agentd"]["process"]["args_escaped"] is True and "non-utf8-args" in d["tags"] and "exec" in d["tags"]
    assert p["command_line"] == "id -u \\xffA" and p["working_directory"] == "/home/alice"
    assert p["title"] == "id -u \\xffA" and p["tty"] == {"char_device": {"major": 136, "minor": 1}}
    assert d["agentd"]["process"]["tty"] == {"name": "pts1"}
    u = d["user"]
    assert u["id"] == "1001" and u["name"] == "alice" and u["effective"]["name"] == "alice"
    assert "audit" not in u and d["auditd"]["session"] == "16"
    assert d["agentd"]["user"]["audit"] == {"id": "1001", "name": "alice"}
    assert d["group"] == {"id": "1001", "name": "alice"}
    assert d["related"]["user"] == ["alice"] and d["@timestamp"] == "2026-11-27T19:15:52.338000Z"
    assert "original" not in e


def test_event_id_is_deterministic_and_original_optional():
    a, b = one(EXEC), one(EXEC, keep_original=True)
    assert a["event"]["id"] == b["event"]["id"]
    assert b["event"]["original"] == b"\n".join(EXEC).decode()


def test_network_connected_to():
    d = one(CONNECT)
    assert d["event"]["dataset"] == "auditd.network" and d["event"]["action"] == "connected-to"
    assert d["destination"] == {"ip": "127.0.0.2", "port": 2222}
    assert d["event"]["outcome"] == "unknown"  # EINPROGRESS
    assert d["related"]["ip"] == ["127.0.0.2"] and d["tags"] == ["net_connect"]


def test_auth_login_records():
    d = one([b"type=USER_LOGIN msg=audit(1795806948.182:1251): pid=9452 uid=0 auid=4294967295 "
             b"ses=4294967295 msg='op=login acct=28696E76616C6964207573657229 exe=\"/usr/sbin/sshd\" "
             b"hostname=? addr=127.0.0.1 terminal=sshd res=failed'\x1dUID=\"root\" AUID=\"unset\""])
    assert d["event"]["dataset"] == "auditd.login" and d["event"]["action"] == "login-failed"
    assert d["event"]["outcome"] == "failure" and d["user"]["name"] == "(invalid user)"
    assert d["source"] == {"ip": "127.0.0.1"} and d["process"]["executable"] == "/usr/sbin/sshd"
    assert d["agentd"]["user"]["audit"] == {"id": "4294967295"} and d["auditd"]["session"] == "4294967295"
    assert d["auditd"]["terminal"] == "sshd" and d["process"]["user"] == {"id": "0", "name": "root"}


def test_config_change_with_syscall():
    d = one([b'type=CONFIG_CHANGE msg=audit(1795806287.618:4): auid=4294967295 ses=4294967295 '
             b'op=remove_rule key="exec" list=4 res=1\x1dAUID="unset"',
             b'type=SYSCALL msg=audit(1795806287.618:4): arch=c000003e syscall=44 success=yes exit=1060 '
             b'items=0 ppid=1 pid=3736 auid=4294967295 uid=0 gid=0 euid=0 ses=4294967295 comm="auditctl" '
             b'exe="/usr/sbin/auditctl" key=(null)',
             b'type=PROCTITLE msg=audit(1795806287.618:4): proctitle=617564697463746C002D44'])
    assert d["event"]["dataset"] == "auditd.config" and d["event"]["action"] == "audit-config-changed"
    assert d["auditd"]["data"]["op"] == "remove_rule" and d["process"]["title"] == "auditctl -D"
    assert d["tags"] == ["exec"] and d["event"]["outcome"] == "success"


def test_tty_keystrokes():
    d = one([b'type=TTY msg=audit(1795806687.778:492): tty pid=7173 uid=1002 auid=1002 ses=8 major=136 '
             b'minor=1 comm="bash" data=69640D\x1dUID="bob" AUID="bob"',
             b'type=SYSCALL msg=audit(1795806687.778:492): arch=c000003e syscall=231 success=yes exit=0 '
             b'items=0 ppid=1 pid=7173 auid=1002 uid=1002 gid=1002 euid=1002 ses=8 comm="bash" '
             b'exe="/usr/bin/bash" key=(null)',
             b'type=PROCTITLE msg=audit(1795806687.778:492): proctitle="-bash"'])
    assert d["event"]["dataset"] == "auditd.tty" and d["event"]["action"] == "typed"
    assert d["process"]["pid"] == 7173 and d["process"]["name"] == "bash"
    assert d["user"]["name"] == "bob" and d["auditd"]["session"] == "8"
    assert "keystrokes" in d


def test_unknown_type_is_generic_with_all_fields():
    d = one([b"type=UNKNOWN[1334] msg=audit(1.000:5): prog-id=12 op=LOAD auid=1 ses=2"])
    assert d["event"]["dataset"] == "auditd.other"
    assert d["auditd"]["data"] == {"prog-id": "12", "op": "LOAD", "auid": "1", "ses": "2"}
    assert d["agentd"]["user"]["audit"]["id"] == "1" and d["auditd"]["session"] == "2"


def test_gap_event():
    g = Gap("", "sequence-gap", 11, 14, 4, 1795806952.0, "1795806952.000:15")
    d = Normalizer(HOST).gap(g)
    assert d["event"]["dataset"] == "agentd.gap" and d["event"]["action"] == "events-lost"
    assert d["agentd"]["gap"] == {"source": "auditd", "reason": "sequence-gap", "count": 4,
                                  "first_serial": 11, "last_serial": 14}
    assert Normalizer(HOST).gap(g)["event"]["id"] == d["event"]["id"]


def test_raw_log_resolves_ids_locally():
    raw = [line.split(b"\x1d")[0] for line in EXEC]
    raw[0] = raw[0].replace(b"uid=1001 gid=1001 euid=1001", b"uid=0 gid=0 euid=0")
    d = one(raw)
    assert d["user"]["name"] == "root" and d["group"]["name"] == "root"
    assert "name" not in one(raw, resolve_ids=False)["user"]
