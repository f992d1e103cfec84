"""Replaying the real capture (audit log + journal) rebuilds the sessions that were
recorded live: who, from which port, with which method and key, on every command."""

from __future__ import annotations


def test_every_recorded_session_is_rebuilt(replayed, manifest):
    ended = {e["session"]["id"].rsplit(":", 1)[1]: e for e in replayed
             if e["event"].get("action") == "session-ended"}
    for s in manifest["sessions"]:
        e = ended[str(s["ses"])]
        assert e["session"]["user"] == s["user"]
        assert e["session"]["source"] == {"ip": "127.0.0.1", "port": s["client_port"]}
        assert e["session"]["auth"]["method"] == s["auth"]
        if s["auth"] == "publickey":
            assert e["session"]["auth"]["key_fingerprint"].startswith("SHA256:")
        assert e["agentd"]["session"]["commands"] > 0


def test_each_login_is_announced_once_with_its_method(replayed, manifest):
    started = [e for e in replayed if e["event"].get("action") == "session-started"]
    ids = [e["session"]["id"] for e in started]
    assert len(ids) == len(set(ids))
    recorded = {str(s["ses"]): s for s in manifest["sessions"]}
    for e in started:
        s = recorded.get(e["session"]["id"].rsplit(":", 1)[1])
        if s:
            assert e["session"]["auth"]["method"] == s["auth"]
            assert e["session"]["source"]["port"] == s["client_port"]
            assert e["@timestamp"] == e["session"]["start"]


def test_every_command_of_a_session_carries_its_origin(replayed, manifest):
    by_ses = {str(s["ses"]): s for s in manifest["sessions"]}
    checked = 0
    for e in replayed:
        ses = str((e.get("auditd") or {}).get("session"))
        if e["event"].get("action") in ("exec", "exec-failed", "connected-to", "typed") and ses in by_ses:
            assert e["session"]["source"]["port"] == by_ses[ses]["client_port"], e["event"]["id"]
            assert e["session"]["user"] == by_ses[ses]["user"]
            checked += 1
    assert checked > 100


def test_sudo_and_su_keep_the_login_user(replayed):
    sudo = [e for e in replayed if e["event"]["dataset"] == "sudo.command" and e["event"]["outcome"] == "success"]
    su = [e for e in replayed if e["event"]["dataset"] == "su.session" and e["event"].get("action") == "su"]
    assert sudo and su
    for e in sudo + su:
        assert e["session"]["user"] in ("alice", "bob", "carol")
        assert e["session"]["source"]["ip"] == "127.0.0.1"
    root_cmds = [e for e in replayed if e["event"].get("action") == "exec" and e["user"]["name"] == "root"
                 and e.get("session")]
    assert root_cmds and all(e["session"]["user"] == "alice" for e in root_cmds
                             if e["session"]["user"] in ("alice", "bob") and e["agentd"]["user"]["audit"]["name"] == "alice")


def test_sftp_transfers_are_attributed(replayed):
    xfers = [e for e in replayed if e["event"].get("action") in ("file-uploaded", "file-downloaded")]
    assert {e["event"]["action"] for e in xfers} == {"file-uploaded", "file-downloaded"}
    for e in xfers:
        assert e["transfer"]["bytes"] > 0 and e["file"]["path"]
        assert e["session"]["user"] == "bob" and e["session"]["auth"]["method"] == "publickey"
