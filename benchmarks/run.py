"""`make bench`: run every benchmark in benchmarks/ this script knows, each as a subprocess
with a timeout, show its output as it runs, and write a combined summary to
benchmarks/out/results.txt (and results.json).

    .venv/bin/python benchmarks/run.py              # all of them
    .venv/bin/python benchmarks/run.py agent_rss    # some of them, by name
    .venv/bin/python benchmarks/run.py --list

A benchmark whose script is absent is reported as skipped; one that exits non-zero or runs
past its timeout is reported as failed, and then this exits 1. A benchmark may print a line
`BENCH-RESULT {json object}`: its figures then go into the summary as key = value lines,
and its "table" rows (benchmarks/README.md, "The table") into the one table printed last:
figure | value | baseline | ratio | target | met?.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import signal
import subprocess
import sys
import threading
import time
from typing import Dict, List, Optional

import results_table  # benchmarks/ is this script's directory, first on sys.path
from bytecode import compile_tree

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
OUT_DIR = os.path.join(HERE, "out")
RESULT_PREFIX = "BENCH-RESULT "

# Scripts whose main() returns a dict of figures are called through this shim, so their
# figures land in the summary without the script having to print them.
_MAIN_SHIM = (
    "import json, runpy, sys\n"
    "sys.argv = [sys.argv[1]]\n"
    "r = runpy.run_path(sys.argv[0])['main']()\n"
    "if isinstance(r, dict):\n"
    "    print(%r + json.dumps(r, default=str, sort_keys=True), flush=True)\n" % RESULT_PREFIX
)


class Bench:
    def __init__(self, name: str, script: str, timeout: float, what: str, call_main: bool = False,
                 args: Optional[List[str]] = None):
        self.name, self.script, self.timeout, self.what = name, script, timeout, what
        self.call_main, self.args = call_main, args or []

    @property
    def path(self) -> str:
        return os.path.join(HERE, self.script)

    def argv(self) -> List[str]:
        if self.call_main:
            return [sys.executable, "-c", _MAIN_SHIM, self.path]
        return [sys.executable, self.path, *self.args]


BENCHES = [
    Bench("spool", "spool_bench.py", 900, "SQLite spool write / read+purge throughput", call_main=True),
    Bench("redact", "redact_bench.py", 300, "redaction strings/s and events/s (corpus + golden events)"),
    Bench("audit_replay", "audit_replay.py", 1200, "parse + normalize throughput on a recorded audit capture"),
    Bench("ship", "ship.py", 1200, "shipper throughput"),
    Bench("detections", "detections_replay.py", 1200,
          "whole-process replay throughput with detections off / built-in / built-in + SigmaHQ"),
    Bench("agent_rss", "agent_rss.py", 420, "agentd RSS and CPU vs auditd under live ssh load"),
    Bench("idle_rss", "idle_rss.py", 300, "the everything-on agent's memory idle and after reading N journal "
          "lines: RSS split anonymous / files, the journal's mappings, PSS"),
    Bench("live_cost", "live_cost.py", 900, "everything on, HEC shipper: agent CPU vs auditd's, RSS, lag and "
          "HEC latency at 1,000 and 5,000 execs/s in SSH sessions"),
    Bench("catchup", "catchup.py", 2400, "spool drain rate after a 10-minute HEC outage at 1,000 execs/s, "
          "against the live rate"),
    Bench("drain", "drain.py", 900, "spool drain rate offline: a filled spool emptied by agentd run into the test HEC, "
          "and the spool's bytes per event"),
    Bench("fork_exit", "fork_exit_rules.py", 600, "cost of fork/exit audit rules: workload, log bytes, agent CPU"),
    Bench("snapshots", "snapshots_bench.py", 900, "snapshots collector: one snapshot of 500 processes and 1,000 "
          "sockets, the collector at its default interval, memory under churn"),
    Bench("ship_peer", "ship_peer.py", 900, "the capture from an audit log to the test HEC: agentd run vs syslog-ng"),
    Bench("stage_costs", "stage_costs.py", 600, "CPU µs/event of each pipeline stage over the replayed exec storm"),
]


def run_one(b: Bench, timeout_scale: float) -> Dict[str, object]:
    rec: Dict[str, object] = {"name": b.name, "script": b.script, "what": b.what}
    if not os.path.exists(b.path):
        rec.update(status="skipped", reason=f"{b.script} not present")
        print(f"=== {b.name}: skipped ({b.script} not present)", flush=True)
        return rec
    timeout = b.timeout * timeout_scale
    how = f"{b.script} main()" if b.call_main else " ".join([b.script, *b.args])
    print(f"=== {b.name}: {how} (timeout {timeout:.0f}s)", flush=True)
    env = dict(os.environ)
    env["PYTHONPATH"] = REPO + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    env["PYTHONUNBUFFERED"] = "1"
    t0 = time.monotonic()
    # Own process group, so a timeout can stop the benchmark and whatever it started.
    proc = subprocess.Popen(b.argv(), cwd=REPO, env=env, stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
    lines: List[str] = []

    def pump() -> None:
        for raw in proc.stdout:
            line = raw.decode("utf-8", errors="replace").rstrip("\n")
            lines.append(line)
            print(f"  {line}", flush=True)

    reader = threading.Thread(target=pump, daemon=True)
    reader.start()
    timed_out = False
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        timed_out = True
        _stop_group(proc)
    except KeyboardInterrupt:
        _stop_group(proc)
        raise
    reader.join(10)
    secs = time.monotonic() - t0
    results: Dict[str, object] = {}
    for line in lines:
        if line.startswith(RESULT_PREFIX):
            try:
                obj = json.loads(line[len(RESULT_PREFIX):])
            except ValueError:
                continue
            if isinstance(obj, dict):
                results.update(obj)
    ok = not timed_out and proc.returncode == 0
    rec.update(status="ok" if ok else "failed", seconds=round(secs, 1), returncode=proc.returncode,
               results=results, output=[ln for ln in lines if not ln.startswith(RESULT_PREFIX)])
    if timed_out:
        rec["reason"] = f"timed out after {timeout:.0f}s"
    elif not ok:
        rec["reason"] = f"exit status {proc.returncode}"
    print(f"=== {b.name}: {rec['status']} in {secs:.1f}s"
          f"{' (' + str(rec['reason']) + ')' if not ok else ''}", flush=True)
    return rec


def _stop_group(proc: subprocess.Popen) -> None:
    """SIGTERM the benchmark's process group (it cleans up what it started), then SIGKILL."""
    for sig, grace in ((signal.SIGTERM, 20), (signal.SIGKILL, 10)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(grace)
            return
        except subprocess.TimeoutExpired:
            continue


def _git_rev() -> str:
    try:
        rev = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True,
                             text=True, timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=REPO,
                               capture_output=True, text=True, timeout=30).stdout.strip()
        return rev + ("+dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def _fmt(v: object) -> str:
    if isinstance(v, float):
        return f"{v:.1f}" if abs(v) >= 100 else f"{v:.3g}"
    return str(v)


def write_summary(recs: List[Dict[str, object]], started: str, total: float) -> str:
    os.makedirs(OUT_DIR, exist_ok=True)
    out = [f"agentd benchmarks, {started}, {total:.0f}s",
           f"git {_git_rev()}, python {platform.python_version()}, {platform.node()}, "
           f"{platform.platform()}, {os.cpu_count()} CPUs", ""]
    width = max(len(r["name"]) for r in recs)
    for r in recs:
        extra = f" in {r['seconds']}s" if "seconds" in r else ""
        why = f" ({r['reason']})" if r.get("reason") else ""
        out.append(f"{r['name']:<{width}}  {r['status'].upper()}{extra}{why}")
    rows = results_table.collect(recs)
    out += ["", results_table.render(rows).rstrip("\n")]
    for r in recs:
        if r["status"] == "skipped":
            continue
        out += ["", f"--- {r['name']} ({r['script']}): {r['what']}"]
        res = r.get("results") or {}
        for k in sorted(k for k in res if k != "table"):
            out.append(f"  {k} = {_fmt(res[k])}")
        if res:
            out.append("")
        body = r.get("output") or []
        if len(body) > 60:
            body = [f"[... {len(body) - 60} earlier lines]"] + body[-60:]
        out += [f"  | {ln}" for ln in body]
    text = "\n".join(out) + "\n"
    path = os.path.join(OUT_DIR, "results.txt")
    with open(path, "w") as f:
        f.write(text)
    with open(os.path.join(OUT_DIR, "results.json"), "w") as f:
        json.dump({"started": started, "seconds": round(total, 1), "git": _git_rev(), "table": rows,
                   "benchmarks": recs}, f, indent=2, default=str)
    return path


def main(argv: Optional[List[str]] = None) -> int:
    ap = argparse.ArgumentParser(description="Run agentd's benchmarks (make bench).")
    ap.add_argument("names", nargs="*", help="benchmarks to run (default: all); see --list")
    ap.add_argument("--list", action="store_true", help="list the known benchmarks and exit")
    ap.add_argument("--timeout-scale", type=float, default=1.0, help="multiply every timeout (slow machines)")
    args = ap.parse_args(argv)
    if args.list:
        for b in BENCHES:
            state = "present" if os.path.exists(b.path) else "absent"
            print(f"{b.name:<13} {b.script:<16} {state:<8} timeout {b.timeout:>5.0f}s  {b.what}")
        return 0
    known = {b.name: b for b in BENCHES}
    unknown = [n for n in args.names if n not in known]
    if unknown:
        print(f"unknown benchmark(s): {', '.join(unknown)}; known: {', '.join(known)}", file=sys.stderr)
        return 2
    chosen = [known[n] for n in args.names] if args.names else BENCHES
    compile_tree(REPO)  # measured as installed: from bytecode
    started = datetime.datetime.now().astimezone().isoformat(timespec="seconds")
    t0 = time.monotonic()
    recs = [run_one(b, args.timeout_scale) for b in chosen]
    path = write_summary(recs, started, time.monotonic() - t0)
    print()
    with open(path) as f:
        head = f.read().split("\n\n")[1]
    print(head)
    print()
    print(results_table.render(results_table.collect(recs)), end="")
    print(f"\nsummary: {os.path.relpath(path, os.getcwd())}")
    return 1 if any(r["status"] == "failed" for r in recs) else 0


if __name__ == "__main__":
    sys.exit(main())
