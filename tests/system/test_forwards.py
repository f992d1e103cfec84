"""Forwards the bastion's sshd refused or could not open, from its journal lines, in the
right login with its source port and key, and in `agentd sessions show`."""

from __future__ import annotations

import subprocess
import sys
import uuid

import pytest

from tests.stack import forwards
from tests.system.agentd_proc import REPO
from tests.system.test_sessions import fingerprint
from tests.system.test_snapshots import _get, of, start_agent

pytestmark = pytest.mark.stack


def test_refused_and_failed_forwards_in_their_login(stack, tmp_path):
    user = f"fwd{uuid.uuid4().hex[:6]}"
    agent = start_agent(tmp_path)
    try:
        with forwards.restricted_user(user) as keys:
            fp = {k: fingerprint(path + ".pub") for k, path in keys.items()}
            p_refused = forwards.refused_local(user, keys["nofwd"], stack.jump_host, stack.jump_port)
            p_open = forwards.denied_and_failed(user, keys["open"], stack.jump_host, stack.jump_port)

            def ready(evs):
                # Both ends, and the forward lines: journald may deliver them after the audit end.
                ended = {_get(e, ["session", "source", "port"]) for e in of(evs, "session-ended")}
                fwd = [e for e in evs if e["event"].get("dataset") == "sshd.forward"]
                return evs if {p_refused, p_open} <= ended and len(fwd) >= 4 else None

            evs = agent.wait_for(ready, timeout=60)
        mine = [e for e in evs if _get(e, ["session", "user"]) == user]

        (refused,) = of(mine, "forward-refused", session__source__port=p_refused)
        assert refused["event"]["dataset"] == "sshd.forward" and refused["event"]["outcome"] == "failure"
        assert refused["sshd"]["forward"]["type"] == "direct-tcpip" and "ssh-forwarded" in refused["tags"]
        assert refused["destination"] == {"address": "127.0.0.2", "ip": "127.0.0.2", "port": 2222}
        assert refused["session"]["source"]["ip"] == "127.0.0.1"
        assert refused["session"]["auth"]["key_fingerprint"] == fp["nofwd"]

        in_open = [e for e in mine if _get(e, ["session", "source", "port"]) == p_open]
        fwd_open = of(in_open, "forward-refused") + of(in_open, "forward-failed")
        assert len(fwd_open) == 3 and all(e["session"]["auth"]["key_fingerprint"] == fp["open"] for e in fwd_open)
        by_type = {e["sshd"]["forward"]["type"]: e for e in of(in_open, "forward-refused")}
        denied, remote = by_type["direct-tcpip"], by_type["remote-forward"]
        assert (denied["destination"]["ip"], denied["destination"]["port"]) == forwards.DENIED_TARGET
        assert remote["sshd"]["forward"]["listen"]["address"] == "127.0.0.1"
        assert remote["source"] == {"ip": "127.0.0.1", "port": p_open}  # the login's own connection
        (failed,) = of(in_open, "forward-failed")
        assert (failed["destination"]["ip"], failed["destination"]["port"]) == forwards.CLOSED_TARGET
        # a refused forward is not a host reached
        (summary,) = of(in_open, "session-ended")
        assert forwards.DENIED_TARGET[0] not in summary["agentd"]["session"]["hosts"]
    finally:
        agent.stop()

    ses = refused["session"]["id"].rsplit(":", 1)[-1]
    shown = subprocess.run([sys.executable, "-m", "agent.app.cli", "sessions", "show", ses, "-c", agent.conf],
                           cwd=REPO, capture_output=True, text=True, check=True).stdout
    rows = [line for line in shown.splitlines() if " refused " in line]
    assert rows and "forward to 127.0.0.2:2222 refused by sshd" in rows[0], shown
