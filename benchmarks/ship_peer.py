"""Shipping the recorded capture to the test HEC: `agentd run` against syslog-ng (issue 18, target 3).

    .venv/bin/python benchmarks/ship_peer.py [--runs 3] [--agent-only] [--profile DIR] [--keep] [--baseline TREE]

Both tools read the same file, a temporary copy of data/exec_storm.log.xz decompressed
(120,077 audit records), from its beginning, and deliver it to the same strict test HEC
(python -m tests.siem.server, its own process) at /services/collector/event with the token
header. They run alternated, --runs times each, the SIEM reset between runs:

- agentd: `python -m agent.app.cli run -c CONF` with a temporary config: the auditd
  collector on the copy (start_at = beginning), the splunk_hec shipper (its defaults: gzip,
  500 events per request), the default stages (redaction, session join, process tree,
  detections) on; the snapshots collector off (it reads /proc, not the file).
  Done when the SIEM count stops moving, the spool says the collector has committed the end
  of the file and the shipper's cursor is at the last spooled event.
- syslog-ng (Debian 12's syslog-ng-core + syslog-ng-mod-http, 3.38): file() source ->
  linux-audit-parser() -> http() destination, config in SYSLOG_NG_CONF below. Done when
  the SIEM holds one HEC event per record of the file.

Figures per run: wall seconds from process start to the last event received (SIEM stats
polled every 20 ms), CPU seconds (user+system) of the process until then, peak RSS (the
kernel's VmHWM at the end, and the psutil-sampled maximum). The summary is the median per
tool, the least CPU time, and the agentd/syslog-ng ratios; the last line is
`BENCH-RESULT {json}`. Nothing is installed here: `make bench-deps` installs syslog-ng.
--profile DIR records each agent run with py-spy (if installed) into DIR (it slows it).
"""

from __future__ import annotations

import argparse
import glob
import http.client
import json
import lzma
import os
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from typing import Callable, Dict, List, Optional

import psutil

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CAPTURE = os.path.join(REPO, "benchmarks", "data", "exec_storm.log.xz")
TOKEN = "11111111-2222-3333-4444-555555555555"
MB = 1024 * 1024
POLL = 0.02
QUIET = 1.5  # agentd: the SIEM count unchanged this long (and the spool drained) = done
TIMEOUT = 180.0

# The peer's configuration, a fair one for this 2-core machine:
# - file(): flags(no-parse) because audit lines are not syslog lines; follow-freq(1) is
#   the default polling of a regular file (it only matters once at EOF). log-fetch-limit
#   and log-iw-size let the reader hand the parser batches of 1,000 and keep 10,000 in
#   flight, so the reader never waits on the window at this rate.
# - linux-audit-parser(): the parser the syslog-ng documentation gives for audit logs
#   (key=value pairs, hex-encoded values decoded), under .auditd.
# - http(): one HEC event per record, `event` = the parsed pairs as JSON (--scope none: not
#   the raw line, source and file name as well, which would only add bytes), `time` from the
#   record's receive time; the batching the documentation allows: batch-lines(500)
#   (the agent's own request size), batch-bytes(800KiB) (the agent's byte cap),
#   batch-timeout(200) ms (the agent's batch_linger); workers(2), one per core (a third
#   only competes with the reader and the SIEM). flags(flow-control) on the log path:
#   nothing is dropped when the destination is slower than the file (the agent does not
#   drop either). syslog-ng 3.38's http() has no gzip option (content-compression()
#   arrived in 4.x), so its requests go uncompressed: on loopback that saves it CPU.
SYSLOG_NG_CONF = """@version: 3.38
options {{ stats-freq(0); keep-hostname(yes); chain-hostnames(no); log-fifo-size(20000); }};
source s_audit {{ file("{log}" flags(no-parse) follow-freq(1) log-fetch-limit(1000) log-iw-size(10000)); }};
parser p_audit {{ linux-audit-parser(prefix(".auditd.")); }};
destination d_hec {{
  http(url("{url}/services/collector/event") method("POST")
       headers("Authorization: Splunk {token}", "Content-Type: application/json")
       body('{{"time":${{R_UNIXTIME}},"host":"${{HOST}}","source":"audit.log","sourcetype":"linux_audit",\
"event":$(format-json --scope none --key .auditd.* --shift 8)}}')
       delimiter("\\n") batch-lines(500) batch-bytes(800KiB) batch-timeout(200) workers(2)
       persist-name("hec"));
}};
log {{ source(s_audit); parser(p_audit); destination(d_hec); flags(flow-control); }};
"""

AGENT_CONF = """[agent]
state_dir = {state}
log_level = warning

[collector:auditd]
type = auditd
enabled = true
log_file = {log}
start_at = beginning

# Not part of what is compared: the snapshots collector (on by default) samples this
# machine's processes and sockets, which syslog-ng does not do and the SIEM would count.
[collector:snapshots]
type = snapshots
enabled = false

[shipper:splunk_hec]
type = splunk_hec
enabled = true
url = {url}
token = {token}
"""


def missing_peer() -> List[str]:
    """Debian packages the syslog-ng side needs that are not installed."""
    out = []
    if not shutil.which("syslog-ng"):
        out.append("syslog-ng-core")
    if not glob.glob("/usr/lib/syslog-ng/*/libhttp.so"):
        out.append("syslog-ng-mod-http")
    return out


class Siem:
    """The test SIEM in its own process. ``argv``/``stats``: another server of the same
    admin API (drain.py runs hec_sink.py, which counts events and drops them) and where
    its count is: (path, key)."""

    def __init__(self, argv: Optional[List[str]] = None, stats: tuple = ("/_siem/stats", "hec_events")) -> None:
        self.stats = stats
        argv = argv or [sys.executable, "-m", "tests.siem.server", "--port", "0", "--hec-token", TOKEN]
        self.proc = subprocess.Popen(argv, cwd=REPO, stdout=subprocess.PIPE, text=True)
        self.url = self.proc.stdout.readline().split(" on ")[1].split()[0]
        host, port = self.url.split("//")[1].split(":")
        self.conn = http.client.HTTPConnection(host, int(port), timeout=10)

    def _call(self, method: str, path: str) -> dict:
        self.conn.request(method, path)
        return json.loads(self.conn.getresponse().read())

    def count(self) -> int:
        return self._call("GET", self.stats[0])[self.stats[1]]

    def reset(self) -> None:
        self._call("POST", "/_siem/reset")

    def cpu(self) -> float:
        t = psutil.Process(self.proc.pid).cpu_times()
        return t.user + t.system

    def close(self) -> None:
        self.conn.close()
        self.proc.terminate()
        self.proc.wait(10)


def finish(siem: Siem, tmp: str, keep: bool) -> None:
    """Stop the sink, and remove the scratch directory unless --keep."""
    siem.close()
    if not keep:
        shutil.rmtree(tmp, ignore_errors=True)


def vm_hwm(pid: int) -> Optional[float]:
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024 / MB
    except OSError:
        pass
    return None


def measure(argv: List[str], siem: Siem, done: Callable[[int, float], bool], env: Optional[dict] = None,
            attach: Optional[Callable[[int], subprocess.Popen]] = None, cwd: str = REPO,
            timeout: float = TIMEOUT) -> dict:
    """Run ``argv`` until ``done(count, seconds_since_last_change)``; figures of the run."""
    t0 = time.monotonic()
    proc = subprocess.Popen(argv, cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    ps = psutil.Process(proc.pid)
    spy = attach(proc.pid) if attach else None
    last, last_at, rss_max, cpu, hwm = 0, t0, 0.0, 0.0, None
    first_at = None
    try:
        while True:
            time.sleep(POLL)
            now = time.monotonic()
            n = siem.count()
            if n != last:
                last, last_at = n, now
                first_at = first_at or now
            try:
                mi = ps.memory_info()
                rss_max = max(rss_max, mi.rss / MB)
                t = ps.cpu_times()
                if n == last and last_at == now:
                    cpu = t.user + t.system  # CPU up to the last event received
                hwm = vm_hwm(proc.pid) or hwm
            except psutil.NoSuchProcess:
                pass
            if proc.poll() is not None:
                err = proc.stderr.read().decode(errors="replace")[-2000:]
                raise SystemExit(f"{argv[0]} exited {proc.returncode} before delivering everything:\n{err}")
            if done(last, now - last_at):
                break
            if now - t0 > timeout:
                raise SystemExit(f"{argv[0]}: not done after {timeout:.0f}s ({last} events received)")
    finally:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        if spy is not None:
            spy.wait(60)
    return {"seconds": round(last_at - t0, 3), "cpu": round(cpu, 3), "events": last,
            "first_event_s": round((first_at or last_at) - t0, 3),
            "rss_peak_mb": round(hwm or rss_max, 1), "rss_sampled_mb": round(rss_max, 1)}


def spool_drained(db: str, log_size: int) -> bool:
    """The collector committed the end of the file and the shipper's cursor is at the last event."""
    if not os.path.exists(db):
        return False
    try:
        c = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=1)
        try:
            pos = c.execute("SELECT position FROM positions WHERE collector='auditd'").fetchone()
            # Schema 2 keeps a row per write (seq = its last event's), schema 1 (a --baseline
            # from before d7bc381's successor) a row per event: MAX(seq) is the last event in both.
            table = "batches" if c.execute("SELECT 1 FROM sqlite_master WHERE name='batches'").fetchone() else "events"
            last = c.execute(f"SELECT COALESCE(MAX(seq), 0) FROM {table}").fetchone()[0]
            cur = c.execute("SELECT seq FROM cursors WHERE shipper='splunk_hec'").fetchone()
        finally:
            c.close()
    except sqlite3.Error:
        return False
    return bool(pos and json.loads(pos[0]).get("offset") == log_size and cur and cur[0] >= last)


def py_spy(out: str) -> Callable[[int], subprocess.Popen]:
    """``attach`` for measure(): py-spy records the process (raw stacks per thread, GIL held)
    into ``out``; it ends, writing its file, when the process does."""
    os.makedirs(os.path.dirname(out), exist_ok=True)
    spy = os.path.join(os.path.dirname(sys.executable), "py-spy")

    def attach(pid: int) -> subprocess.Popen:
        return subprocess.Popen([spy if os.path.exists(spy) else "py-spy", "record", "-t", "--gil", "-r", "200", "-f",
                                 "raw", "-o", out, "--pid", str(pid)], stdout=subprocess.DEVNULL)
    return attach


def run_agent(tmp: str, log: str, siem: Siem, i: int, profile: Optional[str], repo: str = REPO,
              tag: str = "agent") -> dict:
    state = os.path.join(tmp, f"{tag}-{i}")
    os.makedirs(state)
    conf = os.path.join(tmp, f"{tag}-{i}.conf")
    with open(os.open(conf, os.O_WRONLY | os.O_CREAT, 0o600), "w") as f:
        f.write(AGENT_CONF.format(state=state, log=log, url=siem.url, token=TOKEN))
    argv = [sys.executable, "-m", "agent.app.cli", "run", "-c", conf]
    attach = py_spy(os.path.join(profile, f"{tag}-{i}.txt")) if profile else None
    size = os.path.getsize(log)
    db = os.path.join(state, "spool.db")
    env = dict(os.environ, PYTHONPATH=repo)
    return measure(argv, siem, lambda n, quiet: n > 0 and quiet >= QUIET and spool_drained(db, size), env=env,
                   attach=attach, cwd=repo)


def run_syslog_ng(tmp: str, log: str, siem: Siem, i: int, records: int) -> dict:
    d = os.path.join(tmp, f"syslog-ng-{i}")
    os.makedirs(d)
    conf = os.path.join(d, "syslog-ng.conf")
    with open(os.open(conf, os.O_WRONLY | os.O_CREAT, 0o600), "w") as f:
        f.write(SYSLOG_NG_CONF.format(log=log, url=siem.url, token=TOKEN))
    # Foreground, its own persist/pid/control files: no system syslog-ng, /dev/log untouched.
    argv = [shutil.which("syslog-ng") or "syslog-ng", "-F", "--no-caps", "-f", conf,
            "-R", os.path.join(d, "persist"), "-p", os.path.join(d, "pid"), "-c", os.path.join(d, "ctl")]
    return measure(argv, siem, lambda n, quiet: n >= records)


def summarize(runs: List[dict]) -> dict:
    return {"seconds": statistics.median(r["seconds"] for r in runs),
            "cpu": statistics.median(r["cpu"] for r in runs), "cpu_min": min(r["cpu"] for r in runs),
            "rss_peak_mb": max(r["rss_peak_mb"] for r in runs), "events": runs[-1]["events"]}


def table(out: dict) -> List[dict]:
    """Rows for `make bench`'s table (benchmarks/README.md, "The table")."""
    peer = "syslog_ng_seconds" in out
    base = (lambda k: out[f"syslog_ng_{k}"]) if peer else (lambda k: None)
    note = (f"{out['records']} audit records from a file to the test HEC; agentd {out['agentd_events']} ECS events "
            f"(gzip), syslog-ng one event per record (no gzip in 3.38); medians of {out['runs']} alternated runs")
    return [
        {"figure": "3 ship: delivery time", "value": out["agentd_seconds"], "unit": "s", "baseline": base("seconds"),
         "baseline_name": "syslog-ng", "target": "ratio <= 0.6", "note": note},
        {"figure": "3 ship: CPU", "value": out["agentd_cpu"], "unit": "s", "baseline": base("cpu"),
         "baseline_name": "syslog-ng"},
        {"figure": "3 ship: peak RSS", "value": out["agentd_rss_peak_mb"], "unit": "MB",
         "baseline": base("rss_peak_mb"), "baseline_name": "syslog-ng", "target": "value <= 50"},
    ]


def main(argv: Optional[List[str]] = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--agent-only", action="store_true", help="skip syslog-ng (e.g. while it is not installed)")
    ap.add_argument("--profile", metavar="DIR", help="py-spy record each agent run into DIR (raw stacks)")
    ap.add_argument("--keep", action="store_true", help="keep the temporary directory")
    ap.add_argument("--baseline", metavar="TREE", help="also run the agent of another source tree (e.g. a git "
                    "worktree of main) as agentd-base, alternated with the others: before/after in one run")
    a = ap.parse_args(argv)
    miss = [] if a.agent_only else missing_peer()
    if miss:
        print(f"ship_peer: the peer is not installed: missing Debian package(s) {' '.join(miss)}; "
              "run `make bench-deps` (as root), or pass --agent-only", file=sys.stderr)
        return 2
    tmp = tempfile.mkdtemp(prefix="agentd-ship-peer-")
    log = os.path.join(tmp, "audit.log")
    with lzma.open(CAPTURE) as src, open(log, "wb") as dst:
        shutil.copyfileobj(src, dst)
    with open(log, "rb") as f:
        records = sum(1 for _ in f)
    print(f"capture: {records} records, {os.path.getsize(log) / MB:.1f} MB; {a.runs} run(s) each, alternated")
    siem = Siem()
    res: Dict[str, List[dict]] = {"agentd": [], "agentd-base": [], "syslog-ng": []}
    siem_cpu: Dict[str, float] = dict.fromkeys(res, 0.0)
    order = ["agentd"] + (["agentd-base"] if a.baseline else []) + ([] if a.agent_only else ["syslog-ng"])
    try:
        for i in range(a.runs):
            # Each run rotates who goes first, so no tool always follows the same one.
            tools = order[i % len(order):] + order[:i % len(order)]
            for tool in tools:
                siem.reset()
                c0 = siem.cpu()
                if tool == "syslog-ng":
                    r = run_syslog_ng(tmp, log, siem, i, records)
                else:
                    base = tool == "agentd-base"
                    r = run_agent(tmp, log, siem, i, a.profile, repo=os.path.abspath(a.baseline) if base else REPO,
                                  tag="base" if base else "agent")
                siem_cpu[tool] += siem.cpu() - c0
                res[tool].append(r)
                print(f"  run {i + 1} {tool:11s} {r['seconds']:6.2f} s  cpu {r['cpu']:5.2f} s  "
                      f"peak RSS {r['rss_peak_mb']:5.1f} MB (sampled {r['rss_sampled_mb']:.1f})  "
                      f"{r['events']} events", flush=True)
    finally:
        finish(siem, tmp, a.keep)
    out: dict = {"records": records, "runs": a.runs}
    for tool, runs in res.items():
        if not runs:
            continue
        s = summarize(runs)
        key = tool.replace("-", "_")
        for k, v in s.items():
            out[f"{key}_{k}"] = v
        out[f"{key}_siem_cpu"] = round(siem_cpu[tool] / len(runs), 2)
        print(f"{tool:11s} median {s['seconds']:.2f} s, CPU median {s['cpu']:.2f} s (least {s['cpu_min']:.2f} s), "
              f"peak RSS {s['rss_peak_mb']:.1f} MB, {s['events']} events delivered; "
              f"test SIEM CPU {out[f'{key}_siem_cpu']:.2f} s per run")
    if res["syslog-ng"]:
        out["ratio_seconds"] = round(out["agentd_seconds"] / out["syslog_ng_seconds"], 3)
        out["ratio_cpu"] = round(out["agentd_cpu"] / out["syslog_ng_cpu"], 3)
        out["target_seconds_ratio"] = 0.6
        out["target_rss_mb"] = 50
        print(f"agentd/syslog-ng: time {out['ratio_seconds']:.2f} (target <= 0.6), CPU {out['ratio_cpu']:.2f}; "
              f"agentd peak RSS {out['agentd_rss_peak_mb']:.1f} MB (target <= 50)")
        if res["agentd-base"]:
            out["base_ratio_seconds"] = round(out["agentd_base_seconds"] / out["syslog_ng_seconds"], 3)
            out["base_ratio_cpu"] = round(out["agentd_base_cpu"] / out["syslog_ng_cpu"], 3)
            print(f"agentd-base/syslog-ng: time {out['base_ratio_seconds']:.2f}, CPU {out['base_ratio_cpu']:.2f}")
    out["table"] = table(out)
    print("BENCH-RESULT " + json.dumps(out, sort_keys=True), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
