"""SIGHUP and the /metrics endpoint: it keeps answering from the new runtime (it
used to serve the stopped one's closed spool: sqlite3.ProgrammingError), and a
changed status_listen moves it."""

from __future__ import annotations

import signal
import socket
import time
import urllib.error
import urllib.request

import pytest

from tests.system.agentd_proc import AgentProc

pytestmark = pytest.mark.stack


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _metrics(port: int, timeout: float = 20.0) -> str:
    """/metrics once it answers: the reload finishes (and the endpoint moves) a moment
    after the new runtime logs its start. The bug this test is about never answered."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as r:
                assert r.status == 200
                return r.read().decode()
        except (urllib.error.URLError, ConnectionError):
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def _reload(agent: AgentProc, timeout: float = 30.0) -> None:
    """SIGHUP, then wait until the new runtime has started (a second 'agentd started')."""
    before = agent.log_text().count("agentd started")
    agent.proc.send_signal(signal.SIGHUP)
    deadline = time.monotonic() + timeout
    while agent.log_text().count("agentd started") <= before:
        assert agent.proc.poll() is None, agent.log_text()[-3000:]
        assert time.monotonic() < deadline, f"no reload within {timeout}s:\n" + agent.log_text()[-3000:]
        time.sleep(0.1)


def test_metrics_after_sighup_and_a_moved_status_listen(stack, tmp_path):
    port = _free_port()
    agent = AgentProc(tmp_path, agent_extra=f"status_listen = 127.0.0.1:{port}\n").start()
    try:
        assert "agentd_spool_bytes" in _metrics(port)
        _reload(agent)
        assert "agentd_spool_bytes" in _metrics(port)  # was: HTTP 500, ProgrammingError in the log
        assert "ProgrammingError" not in agent.log_text()

        moved = _free_port()
        conf = open(agent.conf).read().replace(f"127.0.0.1:{port}", f"127.0.0.1:{moved}")
        with open(agent.conf, "w") as f:
            f.write(conf)
        _reload(agent)
        assert "agentd_collector_events_total" in _metrics(moved)
        with pytest.raises(urllib.error.URLError):
            _metrics(port, timeout=0)
    finally:
        assert agent.stop() == 0
