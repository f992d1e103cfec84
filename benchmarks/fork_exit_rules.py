"""What audit rules for fork and exit would cost (the process tree's `fork` / `end` events).

    .venv/bin/python benchmarks/fork_exit_rules.py [--execs 2000] [--runs 2]

Kibana's Session View reads `fork`, `exec` and `end` events; the recommended rules
(packaging/audit/agentd.rules) record execve only. This runs the same workload (a login-like
process with its own audit session running /bin/true N times from a shell loop) with the
recommended rules as loaded, and with these added for the time of the run:

    -a always,exit -F arch=b64 -S clone,clone3,fork,vfork -F auid!=unset -k fork
    -a always,exit -F arch=b64 -S exit_group -F auid!=unset -k exit

and reports per exec: the workload's wall time (the kernel's cost, paid by every process
of a login), the audit log bytes and records, and the CPU of `agentd replay` over exactly
that workload's records, less the CPU of a replay of nothing (the agent's cost). Root only; the extra rules are removed in a
`finally`, whatever happens. Prints one `BENCH-RESULT {json}` line.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
AUDIT_LOG = "/var/log/audit/audit.log"
EXTRA = [
    ["-a", "always,exit", "-F", "arch=b64", "-S", "clone,clone3,fork,vfork", "-F", "auid!=unset", "-k", "fork"],
    ["-a", "always,exit", "-F", "arch=b64", "-S", "exit_group", "-F", "auid!=unset", "-k", "exit"],
]
# A process of its own audit session (writing loginuid starts one), running the loop.
WORKLOAD = ("echo 1001 > /proc/self/loginuid; cat /proc/self/sessionid; echo; "
            "i=0; while [ $i -lt {n} ]; do /bin/true; i=$((i+1)); done")


def _auditctl(args: list) -> None:
    subprocess.run(["auditctl", *args], check=True, stdout=subprocess.DEVNULL)


def _settled_size() -> int:
    """The audit log's size once auditd stopped writing (it writes asynchronously)."""
    last, stable_since = -1, time.monotonic()
    while True:
        size = os.stat(AUDIT_LOG).st_size
        if size != last:
            last, stable_since = size, time.monotonic()
        elif time.monotonic() - stable_since > 0.5:
            return size
        time.sleep(0.05)


def _read_since(ino: int, start: int, end: int) -> bytes:
    """The log from (inode, offset) on, across one rotation (the shared stack's log rotates often)."""
    if os.stat(AUDIT_LOG).st_ino == ino:
        with open(AUDIT_LOG, "rb") as f:
            f.seek(start)
            return f.read(end - start)
    old = AUDIT_LOG + ".1"
    if os.stat(old).st_ino != ino:
        raise RuntimeError("the audit log rotated more than once during the run; run again")
    with open(old, "rb") as f:
        f.seek(start)
        data = f.read()
    with open(AUDIT_LOG, "rb") as f:
        return data + f.read(end)


def _run_workload(n: int) -> tuple:
    """(wall seconds, the audit lines of the workload's session)."""
    start = _settled_size()
    ino = os.stat(AUDIT_LOG).st_ino
    t = time.perf_counter()
    out = subprocess.run(["sh", "-c", WORKLOAD.format(n=n)], check=True, capture_output=True, text=True).stdout
    wall = time.perf_counter() - t
    end = _settled_size()
    ses = out.split()[0]
    lines = _read_since(ino, start, end).splitlines()
    # the workload's events: SYSCALL/LOGIN lines with its ses, and the records sharing their stamp
    stamps = {m.group(1) for line in lines if re.search(rb" ses=%s( |$)" % ses.encode(), line)
              for m in [re.search(rb"msg=audit\(([0-9.:]+)\)", line)] if m}
    mine = [line for line in lines
            if (m := re.search(rb"msg=audit\(([0-9.:]+)\)", line)) and m.group(1) in stamps]
    return wall, mine


def _replay_cpu(lines: list, tmp: str) -> tuple:
    """(CPU seconds of a whole `agentd replay` process over lines, events written)."""
    log = os.path.join(tmp, "slice.log")
    out = os.path.join(tmp, "out.jsonl")
    with open(log, "wb") as f:
        f.write(b"".join(line + b"\n" for line in lines))
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    subprocess.run([sys.executable, "-m", "agent.app.cli", "replay", "--audit-log", log, "-o", out],
                   cwd=REPO, check=True, stderr=subprocess.DEVNULL)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    with open(out, "rb") as f:
        events = sum(1 for _ in f)
    return (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime), events


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser()
    ap.add_argument("--execs", type=int, default=2000)
    ap.add_argument("--runs", type=int, default=2)
    args = ap.parse_args(argv)
    if os.geteuid() != 0:
        print("needs root (auditctl)", file=sys.stderr)
        sys.exit(2)
    n = args.execs
    walls: dict = {"exec": [], "exec+fork+exit": []}
    slices: dict = {}
    for _ in range(args.runs):
        for mode in ("exec", "exec+fork+exit"):
            if mode != "exec":
                for rule in EXTRA:
                    _auditctl(rule)
            try:
                wall, lines = _run_workload(n)
            finally:
                if mode != "exec":
                    for rule in EXTRA:
                        subprocess.run(["auditctl", "-d", *rule[1:]], stdout=subprocess.DEVNULL,
                                       stderr=subprocess.DEVNULL)
            walls[mode].append(wall)
            slices[mode] = lines
    res: dict = {"execs": n}
    with tempfile.TemporaryDirectory() as tmp:
        startup = min(_replay_cpu([], tmp)[0] for _ in range(3))  # Python and imports, not per exec
        res["agent_startup_cpu_ms"] = round(startup * 1e3)
        for mode, lines in slices.items():
            cpu, events = min(_replay_cpu(lines, tmp) for _ in range(3))
            cpu -= startup
            k = mode.replace("+", "_")
            res[f"{k}_workload_us_per_exec"] = round(min(walls[mode]) / n * 1e6, 1)
            res[f"{k}_audit_bytes_per_exec"] = round(sum(len(x) + 1 for x in lines) / n)
            res[f"{k}_audit_records_per_exec"] = round(len(lines) / n, 2)
            res[f"{k}_events_per_exec"] = round(events / n, 2)
            res[f"{k}_agent_cpu_us_per_exec"] = round(cpu / n * 1e6, 1)
    for what in ("workload_us", "audit_bytes", "agent_cpu_us"):
        a, b = res[f"exec_{what}_per_exec"], res[f"exec_fork_exit_{what}_per_exec"]
        res[f"fork_exit_{what}_ratio"] = round(b / a, 2) if a else None
    for k, v in res.items():
        print(f"{k:45} {v}")
    print("BENCH-RESULT " + json.dumps(res, sort_keys=True))
    return res


if __name__ == "__main__":
    main()
