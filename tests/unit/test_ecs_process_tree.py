"""The process tree stage (agent/pipeline/process_tree.py): ECS RFC 0030's Linux event model.

Over the real capture (tests/captures/bastion1, replayed as `agentd replay` does) and over
small hand-made event sequences for what the capture does not hold (pid reuse, restarts,
the bound on the state)."""

from __future__ import annotations

import collections
import json

from agent.base.events import HostInfo, tty_device
from agent.pipeline import process_tree
from agent.pipeline.process_tree import ProcessTree
from tests.captures.replay import replay as _replay


def _is_exec(e) -> bool:
    return e["event"]["dataset"] == "auditd.process" and e["event"]["outcome"] == "success"


def test_every_process_event_of_a_login_has_the_linux_event_model(replayed, manifest):
    ssh_logins = {str(s["ses"]) for s in manifest["sessions"]}
    leaders = collections.defaultdict(set)
    checked = 0
    for e in replayed:
        if e["event"]["dataset"] != "auditd.process" or not e.get("session"):
            continue
        p = e["process"]
        el = p["entry_leader"]
        leaders[e["session"]["id"]].add(el["entity_id"])
        assert p["entity_id"] and p["parent"]["pid"] and p["start"]
        if e["auditd"]["session"] in ssh_logins:
            assert el["entry_meta"] == {"type": "sshd", "source": {"ip": e["session"]["source"]["ip"]}}
            assert el["user"]["name"] == e["session"]["user"]
            checked += 1
    assert checked > 150
    assert all(len(ids) == 1 for ids in leaders.values())  # one entry leader per login…
    assert len({next(iter(ids)) for ids in leaders.values()}) == len(leaders)  # …and none shared
    assert {sid.rsplit(":", 1)[1] for sid in leaders} >= ssh_logins


def test_the_entry_leader_is_the_login_shell_or_the_remote_command(replayed):
    firsts = {}
    for e in replayed:
        if _is_exec(e) and e.get("session") and e["process"]["entry_leader"].get("same_as_process"):
            firsts.setdefault(e["session"]["id"], e)
    shells = [e for e in firsts.values() if e["session"].get("tty")]
    commands = [e for e in firsts.values() if e["session"].get("source") and not e["session"].get("tty")]
    assert shells and commands
    for e in shells:
        p = e["process"]
        assert p["args"] == ["-bash"] and p["entity_id"] == p["entry_leader"]["entity_id"]
        assert p["entry_leader"]["interactive"] is True and p["entry_leader"]["tty"]["char_device"]["major"] == 136
    for e in commands:
        assert e["process"]["args"][:2] == ["bash", "-c"]  # sshd runs `ssh host cmd` through the shell
    # pam_motd's commands (run by sshd during the login) are not the entry leader.
    motd = [e for e in replayed if _is_exec(e) and "update-motd" in e["process"].get("command_line", "")]
    assert motd and not any(e["process"]["entry_leader"].get("same_as_process") for e in motd)


def test_a_command_names_its_shell_as_parent(replayed):
    seen = {}
    linked = 0
    for e in replayed:
        if not _is_exec(e):
            continue
        p = e["process"]
        key = (e["auditd"]["session"], p["parent"]["pid"])
        if key in seen:
            parent = seen[key]["process"]
            assert p["parent"]["entity_id"] == parent["entity_id"]
            assert p["parent"]["executable"] == parent["executable"]
            linked += 1
        seen[(e["auditd"]["session"], p["pid"])] = e
    assert linked > 100


def test_sudo_i_and_su_keep_the_login_as_entry_leader(replayed):
    # alice's commands as root after `sudo -i` (pam_motd's, run by sshd as root before her
    # shell existed, have no entry leader pid yet)
    root = [e for e in replayed if _is_exec(e) and e.get("session") and e["user"]["name"] == "root"
            and e["session"]["user"] == "alice" and e["session"].get("source")
            and "pid" in e["process"]["entry_leader"]]
    assert len(root) > 20
    for e in root:
        el = e["process"]["entry_leader"]
        assert el["user"]["name"] == "alice" and el["args"] == ["-bash"]


def test_a_reexec_keeps_the_id_and_events_carry_it(replayed):
    by_pid = collections.defaultdict(set)
    for e in replayed:
        if _is_exec(e):
            by_pid[(e["auditd"]["session"], e["process"]["pid"])].add(e["process"]["entity_id"])
    assert all(len(ids) == 1 for ids in by_pid.values())  # env -> bash in one pid: one process
    tty = [e for e in replayed if e["event"]["dataset"] == "auditd.tty" and e.get("session")]
    assert tty and all(e["process"]["entity_id"] and e["process"]["entry_leader"]["entity_id"] for e in tty)


def test_replays_give_the_same_ids(replayed, tmp_path):
    again = _replay(tmp_path / "again.jsonl")
    assert [e.get("process") for e in again] == [e.get("process") for e in replayed]


# -- hand-made sequences -------------------------------------------------------------------

HOST = HostInfo("h", "hostid", "bootid")


class _Sessions:
    def login_of(self, ses):
        return {"sshd_pid": 100, "auid": "1000"} if ses == "7" else None


class _Store:
    def __init__(self):
        self.kv = {}

    def kv_get(self, key):
        return self.kv.get(key)

    def transaction(self, statements):
        for _sql, (key, value, _ts), _many in statements:
            self.kv[key] = value


def _ev(pid, ppid, ses="7", t=1, exe="/bin/x", ok=True, dataset="auditd.process", login=True):
    doc = {"@timestamp": f"2026-01-01T00:00:{t:02d}.000000Z",
           "event": {"dataset": dataset, "module": "auditd", "outcome": "success" if ok else "failure"},
           "process": {"pid": pid, "parent": {"pid": ppid}, "executable": exe, "args": [exe]},
           "auditd": {"session": ses}}
    if login and ses == "7":
        doc["session"] = {"id": "hostid:bootid:7", "user": "alice", "source": {"ip": "10.0.0.9"},
                          "start": "2026-01-01T00:00:00.000000Z", "tty": "pts/1"}
    return doc


def _run(tree, *docs):
    for d in docs:
        tree.apply(d)
    return [d["process"] for d in docs]


def test_pid_reuse_is_a_new_process():
    t = ProcessTree(HOST, _Sessions())
    shell, first, again, other_parent, other_ses = _run(
        t, _ev(200, 150, t=1, exe="/bin/bash"), _ev(300, 200, t=2), _ev(300, 200, t=3, exe="/bin/y"),
        _ev(300, 201, t=4), _ev(300, 200, ses="8", t=5))
    assert first["entity_id"] == again["entity_id"]  # exec again from the same parent: the same process
    assert len({first["entity_id"], other_parent["entity_id"], other_ses["entity_id"]}) == 3
    assert first["parent"]["entity_id"] == shell["entity_id"] == shell["entry_leader"]["entity_id"]
    assert first["parent"]["executable"] == "/bin/bash"
    assert "entry_leader" not in other_ses  # ses 8 is no login the tracker knows


def test_sshd_work_before_the_shell_is_not_the_entry_leader():
    t = ProcessTree(HOST, _Sessions())
    motd, motd_child, shell, cmd = _run(t, _ev(110, 100, t=1, exe="/bin/sh"), _ev(111, 110, t=1),
                                        _ev(120, 119, t=2, exe="/bin/bash"), _ev(121, 120, t=3))
    assert motd["entry_leader"]["entity_id"] == shell["entity_id"] == cmd["entry_leader"]["entity_id"]
    assert "pid" not in motd["entry_leader"] and shell["entry_leader"]["pid"] == 120
    assert shell["entry_leader"]["same_as_process"] and not cmd["entry_leader"]["same_as_process"]
    assert shell["entry_leader"]["entry_meta"] == {"type": "sshd", "source": {"ip": "10.0.0.9"}}
    assert shell["entry_leader"]["user"] == {"id": "1000", "name": "alice"}
    late = ProcessTree(HOST, _Sessions())  # a shell first seen long after the login is not guessed at
    (p,) = _run(late, _ev(130, 129, t=59))
    assert "pid" not in p["entry_leader"] and p["entry_leader"]["entity_id"] == shell["entity_id"]


def test_the_tree_survives_a_restart():
    store = _Store()
    t = ProcessTree(HOST, _Sessions(), store=store)
    shell, cmd = _run(t, _ev(200, 150, t=1, exe="/bin/bash"), _ev(300, 200, t=2))
    t.commit(force=True)
    t2 = ProcessTree(HOST, _Sessions(), store=store)
    (later,) = _run(t2, _ev(301, 200, t=9))
    assert later["parent"]["entity_id"] == shell["entity_id"] and later["parent"]["executable"] == "/bin/bash"
    assert later["entry_leader"] == cmd["entry_leader"]
    (child,) = _run(t2, _ev(400, 300, t=9))  # cmd had no child before the restart: its exec facts too
    assert child["parent"] == {"pid": 300, "entity_id": cmd["entity_id"], "start": cmd["start"],
                               "executable": "/bin/x", "args": ["/bin/x"]}
    # thousands of short-lived commands later, the saved state keeps the shell, not them all
    for pid in range(1000, 4000):
        _run(t2, _ev(pid, 200, t=10))
    t2.commit(force=True)
    saved = json.loads(store.kv[process_tree.KV_KEY])["procs"]
    assert "200" in saved and len(saved) <= process_tree.KEEP_RECENT + 2


def test_the_state_is_bounded(monkeypatch):
    monkeypatch.setattr(process_tree, "MAX_PROCS", 64)
    t = ProcessTree(HOST, _Sessions())
    (shell,) = _run(t, _ev(200, 150, t=1, exe="/bin/bash"))
    for pid in range(1000, 1500):
        (p,) = _run(t, _ev(pid, 200, t=2))  # the shell is used as a parent each time: it stays
        assert p["parent"]["entity_id"] == shell["entity_id"]
    assert len(t.procs) <= 64 and 1000 not in t.procs


def test_tty_devices():
    assert tty_device("pts1") == {"char_device": {"major": 136, "minor": 1}}
    assert tty_device("pts/300") == {"char_device": {"major": 137, "minor": 44}}
    assert tty_device("tty2") == {"char_device": {"major": 4, "minor": 2}}
    assert tty_device("ttyS0") == {"char_device": {"major": 4, "minor": 64}}
    assert tty_device("(none)") is None and tty_device("") is None


def test_entity_ids_are_make_event_id_of_host_boot_pid_start():
    from agent.base.events import make_event_id

    (p,) = _run(ProcessTree(HOST, _Sessions()), _ev(300, 200, ses="9", t=2))
    assert p["entity_id"] == make_event_id("hostid", "bootid", "process", 300, "2026-01-01T00:00:02.000000Z")
