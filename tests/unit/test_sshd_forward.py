"""sshd's forwarding lines (collectors/journald/sshd_forward.py) over real lines recorded
from this stack (record_journal_lines.py, scenarios forward-*: a user whose keys'
options restrict forwarding), the timeline row they make, and the formats of OpenSSH's
source that the stack does not produce."""

from __future__ import annotations

import pytest

from agent.pipeline.session_fields import timeline_text
from collectors.journald import sshd, sshd_forward
from collectors.journald.normalize import Normalizer
from tests.unit.test_journal_parsers import entries, line


def fwd(message: str) -> dict:
    f = sshd_forward.parse(message)
    assert f is not None, message
    return f


def test_refused_local_forward():
    e = line("forward-refused-local", "refused local port forward")
    f = fwd(e["MESSAGE"])
    assert (f["event"]["dataset"], f["event"]["action"], f["event"]["outcome"]) == \
        ("sshd.forward", "forward-refused", "failure")
    assert f["event"]["type"] == ["connection", "denied"] and f["tags"] == ["ssh-forwarded"]
    assert f["destination"] == {"address": "127.0.0.2", "ip": "127.0.0.2", "port": 2222}
    assert f["sshd"]["forward"]["type"] == "direct-tcpip"
    assert f["sshd"]["forward"]["originator"]["address"] == "127.0.0.1"
    assert isinstance(f["sshd"]["forward"]["originator"]["port"], int)


def test_denied_by_permitopen_and_permitlisten():
    f = fwd(_denied_connect()["MESSAGE"])
    assert f["event"]["action"] == "forward-refused" and f["sshd"]["forward"]["type"] == "direct-tcpip"
    assert (f["destination"]["ip"], f["destination"]["port"]) == ("127.0.0.9", 22)
    r = fwd(_remote()["MESSAGE"])
    assert r["sshd"]["forward"]["type"] == "remote-forward" and "destination" not in r
    assert r["sshd"]["forward"]["listen"]["address"] == "127.0.0.1"
    # "Received request from A port N": the login's own connection, as sshd.auth's source
    login = line("forward-denied-and-failed", "Accepted publickey")
    assert r["source"] == f["source"] == sshd.parse(login["MESSAGE"], login)["source"]


def _denied_connect() -> dict:
    (e,) = [e for e in entries("forward-denied-and-failed") if "to connect to host" in e["MESSAGE"]]
    return e


def _remote() -> dict:
    (e,) = [e for e in entries("forward-denied-and-failed") if "to remote forward" in e["MESSAGE"]]
    return e


def test_failed_target():
    e = line("forward-denied-and-failed", "error: connect_to ")
    f = fwd(e["MESSAGE"])
    assert f["event"]["action"] == "forward-failed" and f["event"]["outcome"] == "failure"
    assert f["destination"] == {"address": "127.0.0.2", "ip": "127.0.0.2", "port": 9}
    assert f["sshd"]["forward"]["error"] == "connection failed"


def test_recorded_lines_become_sshd_forward_events_with_session_keys():
    """The whole entry through the journald normalizer: the sshd.forward document, with
    the audit session journald stamped on it (what the session join keys on)."""
    norm = Normalizer(host=_host(), programs=("sshd", "sshd-session"))
    recorded = entries("forward-denied-and-failed") + entries("forward-refused-local")
    fw = [(e, d) for e, d in ((e, norm.normalize(e)) for e in recorded) if d and d["event"]["dataset"] == "sshd.forward"]
    assert sorted(d["event"]["action"] for _, d in fw) == ["forward-failed", "forward-refused", "forward-refused",
                                                           "forward-refused"]
    for e, d in fw:
        assert d["auditd"]["session"] == e["_AUDIT_SESSION"] and d["message"] == e["MESSAGE"]


def _host():
    from agent.base.events import HostInfo

    return HostInfo(name="bastion1", id="0" * 32)


@pytest.mark.parametrize("message, kind, want", [
    # Formats from OpenSSH 9.2's channels.c / serverloop.c that the stack's scenarios do not produce.
    ("refused streamlocal port forward: originator  port -2, target /run/docker.sock", "direct-streamlocal",
     {"path": "/run/docker.sock"}),
    ("Received request to connect to path /run/docker.sock, but the request was denied.", "direct-streamlocal",
     {"path": "/run/docker.sock"}),
    ('Received request from 10.0.0.7 port 50022 to remote forward to path "/tmp/x.sock", but the request '
     "was denied.", "remote-streamlocal", {"path": "/tmp/x.sock"}),
    ("Received request from 10.0.0.7 port 50022 to remote forward, but the request was denied.",
     "remote-forward", {}),
])
def test_source_formats(message, kind, want):
    f = fwd(message)
    assert f["sshd"]["forward"]["type"] == kind
    for k, v in want.items():
        assert f["sshd"]["forward"][k] == v


def test_unknown_host_and_names():
    f = fwd("connect_to db01.internal: unknown host (Name or service not known)")
    assert f["destination"] == {"address": "db01.internal"}
    assert f["sshd"]["forward"]["error"] == "Name or service not known"
    f = fwd("refused local port forward: originator ::1 port 40000, target db01.internal port 5432")
    assert f["destination"] == {"address": "db01.internal", "port": 5432}


@pytest.mark.parametrize("message", [
    "Accepted publickey for alice from 127.0.0.1 port 5 ssh2: ED25519 SHA256:x",
    "Received disconnect from 127.0.0.1 port 5:11: disconnected by user",
    "Received request to connect to host 10.0.0.1 port 22, but the answer was late.",
    "refused connect from 10.0.0.9 (10.0.0.9)",
])
def test_other_lines_are_not_forwards(message):
    assert sshd_forward.parse(message) is None


def test_auth_parser_leaves_forward_lines_alone():
    for e in entries("forward-denied-and-failed") + entries("forward-refused-local"):
        if sshd_forward.parse(e["MESSAGE"]):
            assert sshd.parse(e["MESSAGE"], e) is None


def test_timeline_rows():
    def row(message):
        f = fwd(message)
        f["event"] = dict(f["event"])
        return timeline_text(f)

    assert row("refused local port forward: originator 127.0.0.1 port 4, target 10.0.0.5 port 5432") == \
        "forward to 10.0.0.5:5432 refused by sshd"
    assert row("Received request from 10.0.0.7 port 5 to remote forward to host 0.0.0.0 port 8080, but the "
               "request was denied.") == "remote forward (-R) on 0.0.0.0:8080 refused by sshd"
    assert row("connect_to 10.0.0.5 port 5432: failed.") == "forward to 10.0.0.5:5432 failed: connection failed"
    assert row("Received request to connect to path /run/docker.sock, but the request was denied.") == \
        "forward to socket /run/docker.sock refused by sshd"
