"""Where the live agent's memory goes, without a load that floods the shared audit log:
the everything-on agent of live_cost.py (auditd + journald + snapshots, redaction,
built-in + SigmaHQ detections, HEC shipper to the test SIEM) idle, then after reading N
journal lines it was sent (systemd-cat, a program name of the run's own added to the
collector's `programs`).

    sudo .venv/bin/python benchmarks/idle_rss.py [--lines 3000] [--settle 15] [--tree DIR] [--env K=V]

At each point: VmRSS and its split (RssAnon, RssFile from /proc/PID/status), PSS
(smaps_rollup: the journal and library pages shared with journald and other processes
counted in part), the journal files' share of the RSS and the largest file mappings
(/proc/PID/smaps). `--tree DIR` runs the agent from another checkout (A/B: main against
a branch); `--env MALLOC_ARENA_MAX=2` sets the agent's environment.

The last line printed is `BENCH-RESULT {json}` for benchmarks/run.py.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import signal
import subprocess
import sys
import tempfile
import time
from typing import Dict, Optional

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
sys.path.insert(0, HERE)
sys.path.insert(0, REPO)

from agent_rss import Agent, pids_of  # noqa: E402
from live_cost import Sink, agent_sections, agent_status  # noqa: E402

from collectors.journald.collector import JournaldCollector  # noqa: E402

MB = 1024.0


def status_kb(pid: int) -> Dict[str, int]:
    out = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            k, _, v = line.partition(":")
            if k in ("VmRSS", "VmHWM", "RssAnon", "RssFile", "RssShmem"):
                out[k] = int(v.split()[0])
    with open(f"/proc/{pid}/smaps_rollup") as f:
        for line in f:
            k, _, v = line.partition(":")
            if k in ("Pss", "Pss_Anon", "Pss_File"):
                out[k] = int(v.split()[0])
    return out


def file_mappings_kb(pid: int) -> Dict[str, int]:
    """Rss per mapped file (kB), anonymous and special mappings left out."""
    out: Dict[str, int] = {}
    path = None
    with open(f"/proc/{pid}/smaps") as f:
        for line in f:
            head = line.split(None, 5)
            if len(head) >= 5 and "-" in head[0] and not line[0].isupper():
                path = head[5].strip() if len(head) == 6 and head[5].startswith("/") else None
            elif line.startswith("Rss:") and path:
                out[path] = out.get(path, 0) + int(line.split()[1])
    return out


def snapshot(pid: int, label: str, top: int) -> Dict[str, object]:
    st = status_kb(pid)
    maps = file_mappings_kb(pid)
    journal = {p: kb for p, kb in maps.items() if p.endswith((".journal", ".journal~"))}
    others = sorted(((kb, p) for p, kb in maps.items() if p not in journal), reverse=True)[:top]
    rec = {k: round(v / MB, 1) for k, v in st.items()}
    rec.update({"journal_files": len(journal), "journal_mb": round(sum(journal.values()) / MB, 1),
                "top_files": [[os.path.basename(p), round(kb / MB, 1)] for kb, p in others]})
    print(f"{label:>7}: RSS {rec['VmRSS']} MB = anon {rec['RssAnon']} + file {rec['RssFile']}"
          f" (journal {rec['journal_mb']} MB in {len(journal)} files); PSS {rec['Pss']} "
          f"(anon {rec['Pss_Anon']}, file {rec['Pss_File']}); peak {rec['VmHWM']}", flush=True)
    print("         largest file mappings: " + ", ".join(f"{n} {mb}" for n, mb in rec["top_files"]), flush=True)
    return rec


def table_rows(res: Dict[str, object]) -> list:
    rows = []
    for key, what in (("idle", "idle"), ("after_lines", f"after {res['lines']} journal lines")):
        rec = res.get(key)
        if isinstance(rec, dict):
            rows.append({"figure": f"- memory: agent RSS {what}", "value": rec["VmRSS"], "unit": "MB",
                         "note": f"{what}: anonymous {rec['RssAnon']} MB, files {rec['RssFile']} MB "
                                 f"(journal {rec['journal_mb']} MB), PSS {rec['Pss']} MB"})
    return rows


def print_memtrace(agent: Agent, pid: int) -> None:
    """The agent's own memory report (agent/app/memtrace.py) after a SIGUSR2."""
    with open(agent.log, errors="replace") as f:
        f.seek(0, 2)
        at = f.tell()
    os.kill(pid, signal.SIGUSR2)
    deadline = time.monotonic() + 30
    lines: list = []
    while time.monotonic() < deadline:
        with open(agent.log, errors="replace") as f:
            f.seek(at)
            lines = [ln.rstrip() for ln in f if "agentd.memtrace" in ln]
        if lines and (len(lines) > 1 or "not set" in lines[0]):
            time.sleep(0.5)  # the rest of the report
            with open(agent.log, errors="replace") as f:
                f.seek(at)
                lines = [ln.rstrip() for ln in f if "agentd.memtrace" in ln]
            break
        time.sleep(0.2)
    for ln in lines:
        print("         " + ln.split("agentd.memtrace: ", 1)[-1], flush=True)


def journald_events(agent: Agent) -> Optional[int]:
    return ((agent_status(agent).get("collectors") or {}).get("journald") or {}).get("events")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--lines", type=int, default=3000, help="journal lines to send the agent")
    ap.add_argument("--settle", type=float, default=15.0, help="seconds idle after start before measuring")
    ap.add_argument("--tree", default=REPO, help="checkout to run the agent from (default: this one)")
    ap.add_argument("--env", action="append", default=[], help="K=V in the agent's environment; repeatable")
    ap.add_argument("--top", type=int, default=6, help="file mappings listed")
    ap.add_argument("--keep", action="store_true", help="keep the temp dir (config, agent log)")
    ap.add_argument("--usr2", action="store_true",
                    help="SIGUSR2 the agent at each point: with --env AGENTD_TRACEMALLOC=N its log gets the "
                         "Python heap and top allocations (printed)")
    args = ap.parse_args()
    if os.geteuid() != 0 or not pids_of("auditd"):
        print("idle_rss: needs root and the test stack (auditd, journald)", file=sys.stderr)
        return 2

    tag = "agentd-rss-" + secrets.token_hex(3)
    programs = JournaldCollector.options["programs"].default
    workdir = tempfile.mkdtemp(prefix="agentd-idle-rss-")
    sink = Sink("none-")
    sections = agent_sections(sink.url).replace("type = journald\n", f"type = journald\nprograms = {programs}, {tag}\n")
    agent = Agent(workdir, sections=sections, repo=os.path.abspath(args.tree),
                  env=dict(kv.split("=", 1) for kv in args.env))
    res: Dict[str, object] = {"tree": agent.repo, "env": args.env, "lines": args.lines}
    try:
        agent.start(timeout=120)
        pid = agent.proc.pid
        time.sleep(args.settle)
        res["idle"] = snapshot(pid, "idle", args.top)
        if args.usr2:
            print_memtrace(agent, pid)
        base = journald_events(agent) or 0
        t0 = time.monotonic()
        body = "".join(f"{tag} line {i} of {args.lines}\n" for i in range(args.lines)).encode()
        subprocess.run(["systemd-cat", "-t", tag], input=body, check=True, timeout=120)
        while (journald_events(agent) or 0) < base + args.lines:
            if agent.proc.poll() is not None or time.monotonic() - t0 > 120:
                raise RuntimeError(f"the agent read {(journald_events(agent) or 0) - base} of {args.lines} lines")
            time.sleep(0.5)
        res["read_s"] = round(time.monotonic() - t0, 1)
        res["after_lines"] = snapshot(pid, "lines", args.top)
        if args.usr2:
            print_memtrace(agent, pid)
        res["journald"] = (agent_status(agent).get("collectors") or {}).get("journald")
        print(f"journald collector: {res['journald']}", flush=True)
    finally:
        rc = agent.stop()
        sink.close()
        res["agent_exit"] = rc
        if args.keep:
            print(f"kept {workdir}")
        else:
            subprocess.run(["rm", "-rf", workdir], check=False)
    res["table"] = table_rows(res)
    print("BENCH-RESULT " + json.dumps(res), flush=True)
    return 0 if rc == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
