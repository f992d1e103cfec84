"""`agentd run` with AGENTD_TRACEMALLOC: SIGUSR2 logs where the memory is, and the agent runs on."""

from __future__ import annotations

import signal
import time

from tests.system.agentd_proc import AgentProc


def _wait_log(agent: AgentProc, text: str, count: int = 1, timeout: float = 60.0) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        log = agent.log_text()
        if log.count(text) >= count:
            return log
        assert agent.proc.poll() is None, f"agentd exited with {agent.proc.returncode}:\n{log[-3000:]}"
        time.sleep(0.1)
    raise AssertionError(f"{text!r} not logged {count}x within {timeout}s:\n{agent.log_text()[-3000:]}")


def test_sigusr2_logs_the_top_allocations_and_the_agent_keeps_running(stack, tmp_path, monkeypatch):
    monkeypatch.setenv("AGENTD_TRACEMALLOC", "4")
    monkeypatch.setenv("AGENTD_TRACEMALLOC_TOP", "5")
    agent = AgentProc(tmp_path).start()
    try:
        agent.proc.send_signal(signal.SIGUSR2)
        log = _wait_log(agent, "memory top 5: ")
        assert "tracemalloc on (4 frames)" in log
        heap = [ln for ln in log.splitlines() if "memory: RSS " in ln]
        assert heap and "Python heap" in heap[0]
        assert agent.proc.poll() is None  # SIGUSR2's default action would have ended it
    finally:
        assert agent.stop() == 0
    assert agent.log_text().count("memory top 1: ") == 2  # and once more at exit


def test_sigusr2_without_tracemalloc_logs_the_rss_only(stack, tmp_path, monkeypatch):
    monkeypatch.delenv("AGENTD_TRACEMALLOC", raising=False)
    agent = AgentProc(tmp_path).start()
    try:
        agent.proc.send_signal(signal.SIGUSR2)
        log = _wait_log(agent, "AGENTD_TRACEMALLOC not set")
        assert "memory top" not in log
    finally:
        assert agent.stop() == 0
