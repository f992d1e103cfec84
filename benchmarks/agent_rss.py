"""Agent footprint on the real stack: resident memory and CPU of `agentd run` under a steady
bastion load, next to the CPU auditd itself spends writing that load to audit.log.

    sudo .venv/bin/python benchmarks/agent_rss.py [--seconds 60] [--sessions 3]

Needs root and the test stack (`make stack-up` or `tests/stack/stackctl up`). The agent runs
exactly as in production (`python -m agent.app.cli run -c CONF`, log level info, redaction on,
the `file` shipper with fsync) with a temporary state_dir and output file, following the
real /var/log/audit/audit.log from its end. The load is N interactive ssh sessions through
the jump sshd (127.0.0.1:2222) as alice, bob, carol..., each typing batches of

    for i in $(seq 1 K); do ls /tmp >/dev/null; cat /etc/hostname >/dev/null; done

with a short pause between batches. Every second we sample the agent's RSS and CPU time
(psutil) and auditd's CPU time (/proc/PID/stat utime+stime). After the load we wait for the
agent to catch up (its committed audit.log position past the end of the load, and the
output no longer growing), then stop it with SIGTERM, which must exit 0.

"Cheaper than auditd itself" is a product goal: the ratio agent CPU / auditd CPU is over
the same window (load start to caught up).

The last line printed is `BENCH-RESULT {json}` for benchmarks/run.py.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from typing import Dict, List, Optional, Sequence, Tuple

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

import psutil  # noqa: E402

from tests.stack import stack as _stack  # noqa: E402
from tests.stack.fixtures import audit_bytes_since, audit_position  # noqa: E402
from tests.stack.session import SessionError, SshSession  # noqa: E402

AUDIT_LOG = _stack.AUDIT_LOG
MB = 1024 * 1024
LOAD_USERS = ("alice", "bob", "carol", "dave")
LOOP_CMDS = (("ls", "/tmp"), ("cat", "/etc/hostname"))


# ---------------------------------------------------------------- measuring


def pids_of(comm: str) -> List[int]:
    out = []
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                with open(f"/proc/{d}/comm") as f:
                    if f.read().strip() == comm:
                        out.append(int(d))
            except OSError:
                pass
    return out


def proc_cpu_seconds(pid: int) -> Optional[float]:
    """user + system CPU seconds of one process (all its threads; kauditd too)."""
    try:
        t = psutil.Process(pid).cpu_times()
    except psutil.Error:
        return None
    return t.user + t.system


def auditd_cpu(pids: List[int]) -> float:
    return sum(proc_cpu_seconds(p) or 0.0 for p in pids)


def tree_rss_cpu(proc: psutil.Process) -> Tuple[float, float]:
    """RSS (bytes) and user+system CPU seconds of the agent and any children it has."""
    procs = [proc]
    try:
        procs += proc.children(recursive=True)
    except psutil.Error:
        pass
    rss = cpu = 0.0
    for p in procs:
        try:
            with p.oneshot():
                rss += p.memory_info().rss
                t = p.cpu_times()
                cpu += t.user + t.system
        except psutil.Error:
            pass
    return rss, cpu


class LineCounter:
    """Lines appended to the shipper's output (and its rotations), counted incrementally."""

    def __init__(self, path: str):
        self.path = path
        self._ident: Optional[Tuple[int, int]] = None
        self._offset = 0
        self._rotated_lines = 0
        self.lines = 0

    def update(self) -> int:
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            return self.lines
        ident = (st.st_dev, st.st_ino)
        if self._ident is not None and (ident != self._ident or st.st_size < self._offset):
            # Rotated (max_bytes is set far above what a run writes, but be correct anyway):
            # recount every rotated file from scratch, then the new one from its start.
            self._rotated_lines = sum(_count_lines(f"{self.path}.{n}") for n in range(1, 1001)
                                      if os.path.exists(f"{self.path}.{n}"))
            self._offset = 0
            self.lines = self._rotated_lines
        self._ident = ident
        with open(self.path, "rb") as f:
            f.seek(self._offset)
            while True:
                chunk = f.read(1 << 20)
                if not chunk:
                    break
                self.lines += chunk.count(b"\n")
                self._offset += len(chunk)
        return self.lines


def _count_lines(path: str) -> int:
    n = 0
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            n += chunk.count(b"\n")
    return n


def audit_lost() -> Optional[int]:
    try:
        return int(_stack.audit_status().get("lost", ""))
    except (ValueError, OSError, subprocess.SubprocessError, _stack.StackError):
        return None


# ---------------------------------------------------------------- the agent


class Agent:
    """`agentd run` on a temporary config following the real audit.log from its end. By default
    it ships to a file (`out`); `sections` replaces that with other config sections (shippers,
    [detections], collectors: benchmarks/live_cost.py)."""

    def __init__(self, workdir: str, agent_extra: Sequence[str] = (), sections: Optional[str] = None,
                 repo: str = REPO, env: Optional[Dict[str, str]] = None):
        self.dir = workdir
        self.repo = repo  # the checkout it runs from (A/B against another tree)
        self.env = dict(os.environ, **(env or {}))
        self.state = os.path.join(workdir, "state")
        self.out = os.path.join(workdir, "out", "events.jsonl")
        self.conf = os.path.join(workdir, "agentd.conf")
        self.log = os.path.join(workdir, "agentd.log")
        os.makedirs(os.path.dirname(self.out), exist_ok=True)
        if sections is None:
            sections = f"[shipper:file]\ntype = file\npath = {self.out}\nmax_bytes = 4GiB\n"
        with open(self.conf, "w") as f:
            extra = "".join(f"{kv.partition('=')[0].strip()} = {kv.partition('=')[2].strip()}\n"
                            for kv in agent_extra)
            f.write(f"[agent]\nstate_dir = {self.state}\nlog_level = info\n{extra}\n"
                    f"[collector:auditd]\ntype = auditd\nlog_file = {AUDIT_LOG}\nstart_at = end\n\n"
                    f"{sections}")
        self.proc: Optional[subprocess.Popen] = None

    def start(self, timeout: float = 30.0) -> None:
        with open(self.log, "ab") as logf:
            self.proc = subprocess.Popen([sys.executable, "-m", "agent.app.cli", "run", "-c", self.conf],
                                         stdout=logf, stderr=logf, stdin=subprocess.DEVNULL, cwd=self.repo,
                                         env=self.env)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"agentd exited with {self.proc.returncode} at start")
            if self.position() is not None:
                return
            time.sleep(0.05)
        raise RuntimeError(f"agentd committed no audit.log position within {timeout:.0f}s")

    def _db(self) -> Optional[sqlite3.Connection]:
        path = os.path.join(self.state, "spool.db")
        if not os.path.exists(path):
            return None
        return sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5)

    def position(self) -> Optional[dict]:
        try:
            db = self._db()
            if db is None:
                return None
            try:
                row = db.execute("SELECT position FROM positions WHERE collector='auditd'").fetchone()
            finally:
                db.close()
        except sqlite3.Error:
            return None
        if not row:
            return None
        try:
            return json.loads(row[0])
        except ValueError:
            return {}

    def stop(self, timeout: float = 30.0) -> Optional[int]:
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                return self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
                return None  # did not stop on SIGTERM
        return self.proc.returncode

    def log_tail(self, n: int = 3000) -> str:
        try:
            with open(self.log, errors="replace") as f:
                return f.read()[-n:]
        except OSError:
            return ""


# ---------------------------------------------------------------- the load


class Driver(threading.Thread):
    """One interactive session typing loop batches until told to stop."""

    def __init__(self, session: SshSession, user: str, iterations: int, pause: float,
                 stop: threading.Event):
        super().__init__(name=f"load-{user}", daemon=True)
        self.session, self.user = session, user
        self.iterations, self.pause, self.stop = iterations, pause, stop
        self.batches = 0
        self.error: Optional[BaseException] = None
        self.cmd = (f"for i in $(seq 1 {iterations}); do ls /tmp >/dev/null; "
                    f"cat /etc/hostname >/dev/null; done")

    def run(self) -> None:
        try:
            while not self.stop.is_set():
                self.session.run(self.cmd, timeout=60)
                self.batches += 1
                self.stop.wait(self.pause)
        except BaseException as e:  # reported by the main thread
            self.error = e


def open_sessions(n: int) -> List[Tuple[str, SshSession]]:
    out = []
    for i in range(n):
        user = LOAD_USERS[i % len(LOAD_USERS)]
        spec = _stack.USERS[user]
        key = str(_stack.KEYS_DIR / user) if spec["key"] else None
        out.append((user, SshSession(user, host=_stack.JUMP_HOST, port=_stack.JUMP_PORT, key=key,
                                     password=None if key else spec["password"])))
    return out


def stack_problem() -> Optional[str]:
    if os.geteuid() != 0:
        return "needs root (it reads the audit log and the stack's keys)"
    if not pids_of("auditd"):
        return "auditd is not running"
    if not os.path.exists(AUDIT_LOG):
        return f"no {AUDIT_LOG}"
    try:
        socket.create_connection((_stack.JUMP_HOST, _stack.JUMP_PORT), timeout=2).close()
    except OSError:
        return f"the jump sshd is not listening on {_stack.JUMP_HOST}:{_stack.JUMP_PORT}"
    for user in ("alice", "bob"):
        if not (_stack.KEYS_DIR / user).exists():
            return f"no key for {user} in {_stack.KEYS_DIR}"
    return None


def loop_execs_delivered(path: str, skip_lines: int, users: set) -> int:
    """Executed events of the load's own ls/cat commands in the output after `skip_lines`
    (by name and last argument: the users' bashrc aliases ls to `ls --color=auto`)."""
    want = {(c[0], c[-1]) for c in LOOP_CMDS}
    n = 0
    with open(path, "rb") as f:
        for i, line in enumerate(f):
            if i < skip_lines or b'"exec"' not in line:
                continue
            try:
                ev = json.loads(line)
            except ValueError:
                continue
            args = (ev.get("process") or {}).get("args") or []
            args = (os.path.basename(str(args[0])), args[-1]) if args else ()
            user = ((ev.get("user") or {}).get("audit") or {}).get("name") or (ev.get("user") or {}).get("name")
            if args in want and (user in users or user is None):
                n += 1
    return n


# ---------------------------------------------------------------- main


def measure(args: argparse.Namespace, workdir: str) -> Dict[str, object]:
    agent = Agent(workdir, args.agent_set)
    auditd = pids_of("auditd")
    kauditd = pids_of("kauditd")
    counter = LineCounter(agent.out)
    stop = threading.Event()
    sessions: List[Tuple[str, SshSession]] = []
    drivers: List[Driver] = []
    samples: List[Tuple[float, float, float, float, int]] = []  # t, rss, agent cpu, auditd cpu, lines
    res: Dict[str, object] = {}
    try:
        agent.start()
        p = psutil.Process(agent.proc.pid)
        time.sleep(args.settle)
        rss_start, _ = tree_rss_cpu(p)
        sessions = open_sessions(args.sessions)
        time.sleep(1.0)  # let the login records go through before the window opens
        base_lines = counter.update()
        audit_mark = audit_position()
        lost0 = audit_lost()
        rss0, cpu0 = tree_rss_cpu(p)
        acpu0 = auditd_cpu(auditd)
        kcpu0 = auditd_cpu(kauditd)
        sys0 = p.cpu_times().system
        print(f"agent_rss: agentd pid {agent.proc.pid} up ({rss_start / MB:.1f} MB), "
              f"{len(sessions)} sessions open; load for {args.seconds:.0f}s", flush=True)
        t0 = time.monotonic()
        samples.append((0.0, rss0, cpu0, acpu0, base_lines))
        drivers = [Driver(s, u, args.iterations, args.pause, stop) for u, s in sessions]
        for d in drivers:
            d.start()

        def sample() -> Tuple[float, float, float, float, int]:
            rss, cpu = tree_rss_cpu(p)
            s = (time.monotonic() - t0, rss, cpu, auditd_cpu(auditd), counter.update())
            samples.append(s)
            return s

        next_t = t0 + 1.0
        while time.monotonic() - t0 < args.seconds:
            time.sleep(max(0.0, next_t - time.monotonic()))
            next_t += 1.0
            s = sample()
            if agent.proc.poll() is not None:
                raise RuntimeError(f"agentd exited with {agent.proc.returncode} during the load")
            if args.verbose:
                print(f"  t={s[0]:5.1f}s rss={s[1] / MB:6.1f} MB agent cpu={s[2] - cpu0:6.2f}s "
                      f"auditd cpu={s[3] - acpu0:6.2f}s events={s[4] - base_lines}", flush=True)
            bad = [d for d in drivers if d.error is not None]
            if bad:
                raise RuntimeError(f"load session {bad[0].user} failed: {bad[0].error}")
        stop.set()
        for d in drivers:
            d.join(90)
        load_secs = time.monotonic() - t0
        lines_at_load_end = counter.update()
        end_st = os.stat(AUDIT_LOG)
        end_ident, end_size = (end_st.st_dev, end_st.st_ino), end_st.st_size
        batches = sum(d.batches for d in drivers)

        # Catch up: position past the end of the load and the output quiet for 2 s.
        deadline = time.monotonic() + args.drain_timeout
        last, quiet_since, caught_up = -1, time.monotonic(), False
        while time.monotonic() < deadline:
            s = sample()
            if s[4] != last:
                last, quiet_since = s[4], time.monotonic()
            pos = agent.position() or {}
            cur = os.stat(AUDIT_LOG)
            ident = (pos.get("dev"), pos.get("ino"))
            if ident == end_ident:
                caught_up = pos.get("offset", 0) >= end_size
            else:  # moved on to a newer file after a rotation
                caught_up = ident == (cur.st_dev, cur.st_ino) and end_ident != ident
            if caught_up and time.monotonic() - quiet_since >= 2.0:
                break
            time.sleep(0.5)
        window = time.monotonic() - t0
        s = sample()
        agent_cpu, auditd_cpu_s, delivered = s[2] - cpu0, s[3] - acpu0, s[4] - base_lines
        kauditd_cpu_s = auditd_cpu(kauditd) - kcpu0
        agent_sys = p.cpu_times().system - sys0
        lost1 = audit_lost()
        audit_records = audit_bytes_since(audit_mark).count(b"\n")  # records auditd wrote meanwhile

        warm = args.seconds * 0.25
        steady = [x[1] for x in samples if warm <= x[0] <= load_secs] or [x[1] for x in samples]
        expected_execs = batches * args.iterations * len(LOOP_CMDS)
        res = {
            "agent_set": list(args.agent_set), "seconds": round(load_secs, 1), "sessions": len(sessions), "iterations": args.iterations,
            "pause": args.pause, "batches": batches, "loop_execs_typed": expected_execs,
            "events_delivered": delivered, "events_delivered_during_load": lines_at_load_end - base_lines,
            "events_per_s": round(delivered / load_secs, 1),
            "audit_records": audit_records, "audit_records_per_s": round(audit_records / load_secs, 1),
            "audit_lost": (lost1 - lost0) if lost0 is not None and lost1 is not None else None,
            "catch_up_s": round(window - load_secs, 1), "caught_up": caught_up,
            "rss_start_mb": round(rss_start / MB, 1), "rss_steady_median_mb": round(statistics.median(steady) / MB, 1),
            "rss_max_mb": round(max(x[1] for x in samples) / MB, 1),
            "rss_end_mb": round(s[1] / MB, 1),
            "window_s": round(window, 1),
            "agent_cpu_s": round(agent_cpu, 2), "auditd_cpu_s": round(auditd_cpu_s, 2),
            "agent_cpu_system_s": round(agent_sys, 2),
            "agent_cpu_pct": round(100 * agent_cpu / window, 1),
            "auditd_cpu_pct": round(100 * auditd_cpu_s / window, 1),
            "kauditd_cpu_s": round(kauditd_cpu_s, 2),
            "cpu_ratio_agent_auditd": round(agent_cpu / auditd_cpu_s, 2) if auditd_cpu_s > 0 else None,
            "agent_cpu_ms_per_event": round(1000 * agent_cpu / delivered, 3) if delivered else None,
        }
    finally:
        stop.set()
        for d in drivers:
            d.join(30)
        for _, sess in sessions:
            try:
                sess.close(timeout=10)
            except (OSError, SessionError):
                pass
        was_running = agent.proc is not None and agent.proc.poll() is None
        rc = agent.stop()
        res["agent_exit"] = rc
        if was_running and rc != 0:
            print(f"agent_rss: agentd did not exit 0 on SIGTERM ({rc}); log tail:\n{agent.log_tail()}",
                  file=sys.stderr)
    res["loop_execs_delivered"] = loop_execs_delivered(agent.out, base_lines,
                                                       set(u for u, _ in sessions)) \
        if os.path.exists(agent.out) else 0
    return res


def report(r: Dict[str, object]) -> None:
    ratio = r["cpu_ratio_agent_auditd"]
    print(f"agent_rss: {r['sessions']} ssh sessions x {r['seconds']}s, {r['batches']} batches of "
          f"{r['iterations']} x (ls; cat), {r['audit_records']} audit records "
          f"({r['audit_records_per_s']}/s, lost {r['audit_lost']})")
    print(f"  events delivered   {r['events_delivered']} ({r['events_per_s']} ev/s; "
          f"{r['events_delivered_during_load']} by the end of the load, caught up "
          f"{r['catch_up_s']}s later{'' if r['caught_up'] else ' - NOT caught up'})")
    print(f"  load execs seen    {r['loop_execs_delivered']} of {r['loop_execs_typed']} typed")
    print(f"  RSS                start {r['rss_start_mb']} MB, steady median {r['rss_steady_median_mb']} MB, "
          f"max {r['rss_max_mb']} MB, end {r['rss_end_mb']} MB")
    print(f"  CPU over {r['window_s']}s   agent {r['agent_cpu_s']}s ({r['agent_cpu_system_s']}s system; "
          f"{r['agent_cpu_pct']}% of a core, "
          f"{r['agent_cpu_ms_per_event']} ms/event), auditd {r['auditd_cpu_s']}s ({r['auditd_cpu_pct']}%), "
          f"kernel kauditd thread {r['kauditd_cpu_s']}s")
    print(f"  agent/auditd CPU   {ratio if ratio is not None else 'n/a (auditd used no CPU)'}"
          f"{'  (cheaper than auditd)' if ratio is not None and ratio < 1 else ''}")
    print(f"  agentd exit on SIGTERM: {r['agent_exit']}")


def main(argv: Optional[List[str]] = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seconds", type=float, default=60.0, help="length of the load (default 60)")
    ap.add_argument("--sessions", type=int, default=3, help="concurrent ssh sessions (default 3)")
    ap.add_argument("--iterations", type=int, default=20, help="loop iterations per typed batch (default 20)")
    ap.add_argument("--pause", type=float, default=0.2, help="seconds between a session's batches (default 0.2)")
    ap.add_argument("--settle", type=float, default=2.0, help="idle seconds before the start RSS (default 2)")
    ap.add_argument("--drain-timeout", type=float, default=60.0, help="max wait for the agent to catch up")
    ap.add_argument("--agent-set", metavar="KEY=VALUE", action="append", default=[],
                    help="extra [agent] setting, e.g. redact=false (repeatable)")
    ap.add_argument("--json", metavar="PATH", help="also write the results there")
    ap.add_argument("--keep", action="store_true", help="keep the temp dir (config, log, output)")
    ap.add_argument("-v", "--verbose", action="store_true", help="print every 1 s sample")
    args = ap.parse_args(argv)

    problem = stack_problem()
    if problem:
        print(f"agent_rss: {problem}; bring the stack up with `make stack-up` "
              "(tests/stack/stackctl up) and run as root", file=sys.stderr)
        return 2

    # SIGTERM (run.py's timeout) unwinds through measure()'s cleanup: sessions, agent.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    workdir = tempfile.mkdtemp(prefix="agentd-bench-rss-")
    try:
        try:
            r = measure(args, workdir)
        except (RuntimeError, SessionError) as e:
            print(f"agent_rss: FAILED: {e}", file=sys.stderr)
            try:
                with open(os.path.join(workdir, "agentd.log"), errors="replace") as f:
                    print(f"agentd log tail:\n{f.read()[-3000:]}", file=sys.stderr)
            except OSError:
                pass
            return 1
        report(r)
        if args.json:
            with open(args.json, "w") as f:
                json.dump(r, f, indent=2)
        print("BENCH-RESULT " + json.dumps(r, sort_keys=True), flush=True)
        if r["agent_exit"] != 0:
            return 1
        if not r["events_delivered"]:
            print("agent_rss: FAILED: the agent delivered no events", file=sys.stderr)
            return 1
        return 0
    finally:
        if args.keep:
            print(f"agent_rss: kept {workdir}")
        else:
            import shutil

            shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
