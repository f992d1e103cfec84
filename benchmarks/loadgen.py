"""Exec load at a fixed rate inside real SSH sessions, for the live benchmarks (issue 18).

    sudo .venv/bin/python benchmarks/loadgen.py --rate 1000 --seconds 10     # alone: achieved rate

Each session (through the jump sshd, driven through a pty by agent_rss.open_sessions, so every
exec carries the login's auid and is audited) types one line that starts a small Python loop:
every 10 ms tick it spawns and reaps as many execs as the rate says are due by then (behind
schedule it runs flat out and catches up, so the achieved rate says whether the machine kept
the pace). Each exec is `PROGRAM <tag><session>-<n>`: the tag lets the test HEC recognise the
load's own events and time them (benchmarks/hec_sink.py).

PROGRAM is, by default, a 9 KB static binary that only calls exit (built here with gcc):
/bin/true costs ~1 ms of CPU per exec on this VM (dynamic loading), three times the static
one, and 5,000/s of it would not fit on 2 cores beside auditd and the agent. The audit
records are the same either way (SYSCALL, EXECVE, CWD, PATH x2, PROCTITLE). `--program
/bin/true` runs the plainer load. At the end each loop prints its count and its own CPU time
(user+system, its own and its reaped children's, which is where the exec cost lands).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from typing import Dict, List, Optional, Tuple

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from agent_rss import open_sessions, stack_problem  # noqa: E402

from tests.stack.session import SessionError, SshSession  # noqa: E402

DONE = "LOADGEN-DONE"
_TINY_C = 'void _start(void){ __asm__ volatile("mov $60,%eax\\n xor %edi,%edi\\n syscall"); }\n'
# The loop each session runs (python3 of the host; no agentd import). argv: program rate
# seconds tag. Prints DONE {json} at the end.
_CHILD = '''import json, os, sys, time
prog, rate, secs, tag = sys.argv[1], float(sys.argv[2]), float(sys.argv[3]), sys.argv[4]
spawn, reap, clock, sleep = os.posix_spawn, os.waitpid, time.monotonic, time.sleep
n = 0
behind = 0
t0 = clock()
end = t0 + secs
while True:
    now = clock()
    if now >= end:
        break
    due = int((now - t0) * rate)
    behind = max(behind, due - n)
    while n < due:
        reap(spawn(prog, [prog, tag + str(n)], {}), 0)
        n += 1
        if n % 32 == 0 and clock() >= end:
            break
    sleep(max(0.0, 0.01 - (clock() - now)))
wall = clock() - t0
t = os.times()
print("%s " % ("LOADGEN-" + "DONE") + json.dumps({"execs": n, "seconds": round(wall, 3),
      "cpu_self_s": round(t.user + t.system, 3),
      "cpu_children_s": round(t.children_user + t.children_system, 3),
      "max_behind": behind}), flush=True)
'''


def build_program(workdir: str) -> str:
    """The static exit-only binary (gcc is in the project's apt packages), else /bin/true."""
    src, exe = os.path.join(workdir, "tiny.c"), os.path.join(workdir, "tiny")
    with open(src, "w") as f:
        f.write(_TINY_C)
    gcc = shutil.which("gcc")
    if gcc and subprocess.run([gcc, "-static", "-nostdlib", "-O2", "-o", exe, src],
                              capture_output=True, timeout=120).returncode == 0:
        os.chmod(exe, 0o755)
        return exe
    return "/bin/true"


class ExecLoad:
    """`rate` execs/s in total, split over `sessions` SSH sessions, for `seconds`."""

    def __init__(self, rate: float, seconds: float, sessions: int, tag: str, program: Optional[str] = None):
        self.rate, self.seconds, self.tag = rate, seconds, tag
        self.dir = tempfile.mkdtemp(prefix="agentd-loadgen-")
        os.chmod(self.dir, 0o755)  # the load users run what is in it
        self.program = program or build_program(self.dir)
        self.child = os.path.join(self.dir, "loop.py")
        with open(self.child, "w") as f:
            f.write(_CHILD)
        os.chmod(self.child, 0o644)
        self.sessions: List[Tuple[str, SshSession]] = open_sessions(sessions)
        self.results: List[Dict[str, float]] = []

    def start(self) -> None:
        per = self.rate / len(self.sessions)
        for i, (_, s) in enumerate(self.sessions):
            s.send(f"python3 {self.child} {self.program} {per:g} {self.seconds:g} {self.tag}{i}-\r")

    def wait(self, grace: float = 120.0) -> Dict[str, float]:
        """Each loop's DONE line; totals and the achieved rate."""
        self.results = []
        for _, s in self.sessions:
            # (the text before a match, not the match: expect() consumes its buffer in place)
            s.expect("LOADGEN-DONE ", self.seconds + grace)
            self.results.append(json.loads(s.expect(b"\r?\n", 10)))
            s.wait_prompt(30)
        execs = sum(r["execs"] for r in self.results)
        wall = max(r["seconds"] for r in self.results)
        return {"execs": execs, "seconds": round(wall, 2), "rate_asked": self.rate,
                "rate_achieved": round(execs / wall, 1) if wall else 0.0,
                "cpu_self_s": round(sum(r["cpu_self_s"] for r in self.results), 2),
                "cpu_children_s": round(sum(r["cpu_children_s"] for r in self.results), 2),
                "max_behind": max(r["max_behind"] for r in self.results),
                "program": self.program}

    def close(self) -> None:
        for _, s in self.sessions:
            try:
                s.send(b"\x03")  # a loop still running (stopped early) ends, the shell reads exit
                s.close(timeout=10)
            except (OSError, SessionError):
                pass
        shutil.rmtree(self.dir, ignore_errors=True)


def main(argv: Optional[List[str]] = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rate", type=float, default=1000.0)
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--sessions", type=int, default=0, help="default: one per 500 execs/s, at most 4")
    ap.add_argument("--program", help="what to exec (default: the static exit-only binary)")
    a = ap.parse_args(argv)
    problem = stack_problem()
    if problem:
        print(f"loadgen: {problem}", file=sys.stderr)
        return 2
    load = ExecLoad(a.rate, a.seconds, a.sessions or sessions_for(a.rate), "lbgen-", a.program)
    try:
        load.start()
        print(json.dumps(load.wait()))
    finally:
        load.close()
    return 0


def sessions_for(rate: float) -> int:
    return max(1, min(4, int(-(-rate // 500))))


if __name__ == "__main__":
    sys.exit(main())
