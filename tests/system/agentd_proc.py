"""Run the real `agentd run` as a child process with a config of the test's own."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from typing import Optional

from agent.base.events import loads

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
# Every wait below is on a condition, so a longer limit costs nothing when the agent is on
# time; it only keeps a loaded CI machine (2 cores, other jobs) from failing a test whose
# agent was merely slow. AGENTD_TEST_PATIENCE=1 gives the limits the tests name.
PATIENCE = float(os.environ.get("AGENTD_TEST_PATIENCE", "3"))


class AgentProc:
    def __init__(self, workdir, agent_extra: str = "", collector_extra: str = "", shippers: Optional[str] = None,
                 audit_log: str = "/var/log/audit/audit.log", snapshots: Optional[str] = "enabled = false"):
        self.dir = str(workdir)
        self.state = os.path.join(self.dir, "state")
        self.out = os.path.join(self.dir, "out", "events.jsonl")
        self.conf = os.path.join(self.dir, "agentd.conf")
        self.log = os.path.join(self.dir, "agentd.log")
        if shippers is None:
            shippers = f"[shipper:file]\ntype = file\npath = {self.out}\n"
        with open(self.conf, "w") as f:
            f.write(f"[agent]\nstate_dir = {self.state}\nlog_level = debug\n{agent_extra}\n"
                    f"[collector:auditd]\ntype = auditd\nlog_file = {audit_log}\n{collector_extra}\n"
                    # on by default: a test about something else keeps its event volume without it
                    + (f"[collector:snapshots]\ntype = snapshots\n{snapshots}\n" if snapshots is not None else "")
                    + shippers)
        self.proc: Optional[subprocess.Popen] = None
        self._read: dict = {}  # path -> (inode, offset read up to, events parsed so far)

    def start(self, wait_ready: bool = True) -> AgentProc:
        logf = open(self.log, "ab")
        self.proc = subprocess.Popen([sys.executable, "-m", "agent.app.cli", "run", "-c", self.conf],
                                     stdout=logf, stderr=logf, cwd=REPO, stdin=subprocess.DEVNULL)
        logf.close()
        if wait_ready:
            self.wait_position()
        return self

    def wait_position(self, timeout: float = 15.0) -> None:
        """Until the auditd collector has committed a position (its starting point)."""
        import sqlite3

        db = os.path.join(self.state, "spool.db")
        deadline = time.monotonic() + timeout * PATIENCE
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"agentd exited with {self.proc.returncode}:\n{self.log_text()}")
            if os.path.exists(db):
                try:
                    with sqlite3.connect(db, timeout=5) as c:
                        if c.execute("SELECT 1 FROM positions WHERE collector='auditd'").fetchone():
                            return
                except sqlite3.Error:
                    pass
            time.sleep(0.05)
        raise AssertionError(f"agentd never committed a position:\n{self.log_text()}")

    def kill9(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def stop(self, timeout: float = 20.0) -> int:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            return self.proc.wait(timeout)
        return self.proc.returncode if self.proc else 0

    def log_text(self) -> str:
        try:
            with open(self.log, errors="replace") as f:
                return f.read()
        except OSError:
            return ""

    def events(self, path: Optional[str] = None) -> list:
        """Every complete line of the output so far, parsed. Read incrementally: a test that
        polls a growing file must not re-parse thousands of events a few times a second
        on a machine the agent is already short of CPU on."""
        path = path or self.out
        ino, offset, done = self._read.get(path, (None, 0, []))
        try:
            with open(path, "rb") as f:
                st = os.fstat(f.fileno())
                if st.st_ino != ino or st.st_size < offset:
                    offset, done = 0, []  # rotated or truncated: start over
                f.seek(offset)
                chunk = f.read()
        except FileNotFoundError:
            return []
        end = chunk.rfind(b"\n") + 1  # a line without its newline is being written: next time
        done = done + [loads(line) for line in chunk[:end].splitlines() if line.strip()]
        self._read[path] = (st.st_ino, offset + end, done)
        return list(done)

    def until(self, what: str, predicate, timeout: float = 60.0):
        """Polls ``predicate()`` until true (returned); AssertionError with the agent's log
        when ``timeout`` passes or the agent exits. For a test that must wait on what the
        agent did, not sleep a time a loaded machine may not be enough for."""
        deadline = time.monotonic() + timeout * PATIENCE
        while True:
            got = predicate()
            if got:
                return got
            if time.monotonic() > deadline:
                raise AssertionError(f"{what}: not within {timeout * PATIENCE}s; agent log:\n{self.log_text()[-4000:]}")
            if self.proc and self.proc.poll() is not None:
                raise AssertionError(f"agentd exited with {self.proc.returncode}:\n{self.log_text()[-4000:]}")
            time.sleep(0.1)

    def wait_for(self, predicate, timeout: float = 30.0, path: Optional[str] = None):
        deadline = time.monotonic() + timeout * PATIENCE
        while True:
            evs = self.events(path)
            got = predicate(evs)
            if got:
                return got
            if time.monotonic() > deadline:
                raise AssertionError(f"condition not met within {timeout * PATIENCE}s; {len(evs)} events; log:\n"
                                     f"{self.log_text()[-3000:]}")
            if self.proc and self.proc.poll() is not None:
                raise AssertionError(f"agentd exited with {self.proc.returncode}:\n{self.log_text()[-3000:]}")
            time.sleep(0.2)


def args_of(ev: dict) -> list:
    return (ev.get("process") or {}).get("args") or []


def tokens_in(events: list, prefix: str) -> list:
    """Every argument starting with ``prefix`` over all exec events, with repeats."""
    return [a for e in events if e.get("event", {}).get("action") == "exec"
            for a in args_of(e) if isinstance(a, str) and a.startswith(prefix)]
