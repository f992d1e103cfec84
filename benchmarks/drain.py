"""Spool drain, offline (issue 18, target 5 without the live flood): how fast `agentd run`
empties a full spool into the test HEC, and how many bytes the spool holds per event.

    .venv/bin/python benchmarks/drain.py [--events 100000] [--runs 3] [--baseline TREE] [--profile DIR] [--keep]

catchup.py measures the same drain live, after a real outage at 1,000 execs/s, which
floods the shared audit log. Here the backlog is made without auditd:

1. events: `agentd replay` of data/exec_storm.log.xz (14,288 ECS events, ~2.6 KB of JSON
   each, the default stages on), repeated up to --events;
2. fill: a fresh spool written through the tree's own `Spool.write`, 500 events and a
   position per transaction as the collector writes them (so each tree writes its own
   format); the fill's seconds and CPU, and the spool's bytes per event (its cap counts
   these; the file size beside them);
3. drain: `python -m agent.app.cli run` of that tree on the filled state directory, its
   only collector auditd on an empty file, the splunk_hec shipper with its defaults (gzip, 500 events per request) to
   benchmarks/hec_sink.py (its own process: the strict HEC parses every event, then drops
   it). Drain rate = events from the first received to the last / that time, as catchup.py
   counts it (the start-up before the first delivery is not drain); the agent's CPU and peak
   RSS (VmHWM) over the whole run.

--baseline TREE also runs another source tree (a `git worktree` or `git archive` of main) as
`base`, alternated: a change's before and after from one run. The baseline of target 5 is
the live rate, 1,000 events/s (the load catchup.py runs): ratio = drain rate / 1,000.
--profile DIR records each drain with py-spy (`--gil`, raw per thread; slows it).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from typing import Dict, List, Optional

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from ship_peer import AGENT_CONF, CAPTURE, REPO, TOKEN, Siem, finish, measure, py_spy  # noqa: E402

LIVE_RATE = 1000.0  # events/s: catchup.py's load, target 5's baseline

# Runs inside the tree under test (PYTHONPATH=tree): its Spool, its format.
FILL = """
import os, sys, time
from agent.base.events import loads
from agent.pipeline.spool import Spool
db, src, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
with open(src, "rb") as f:
    lines = [line for line in f.read().split(b"\\n") if line]
spool = Spool(db, max_bytes=64 << 30)
c0, t0 = time.process_time(), time.perf_counter()
i = 0
while i < n:
    k = min(500, n - i)
    spool.write("auditd", [loads(lines[(i + j) % len(lines)]) for j in range(k)], {"offset": i + k})
    i += k
wall, cpu = time.perf_counter() - t0, time.process_time() - c0
st = spool.stats([])
spool.close()
print(st["bytes"], os.path.getsize(db), round(wall, 3), round(cpu, 3))
"""

def make_sink() -> Siem:
    """benchmarks/hec_sink.py: the strict test HEC that counts what it accepts, then drops it."""
    return Siem([sys.executable, os.path.join(REPO, "benchmarks", "hec_sink.py")], ("/_siem/bench", "events"))


def make_events(tmp: str) -> str:
    log, out = os.path.join(tmp, "storm.log"), os.path.join(tmp, "storm.jsonl")
    subprocess.run(f"xz -dc {CAPTURE} > {log}", shell=True, check=True)
    subprocess.run([sys.executable, "-m", "agent.app.cli", "replay", "--audit-log", log, "-o", out], cwd=REPO,
                   check=True, stderr=subprocess.DEVNULL)
    return out


def fill(tree: str, state: str, events: str, n: int) -> dict:
    os.makedirs(state)
    db = os.path.join(state, "spool.db")
    r = subprocess.run([sys.executable, "-c", FILL, db, events, str(n)], cwd=tree, env=dict(os.environ, PYTHONPATH=tree),
                       check=True, capture_output=True, text=True)
    stored, size, wall, cpu = r.stdout.split()
    return {"bytes_per_event": round(int(stored) / n, 1), "file_bytes_per_event": round(int(size) / n, 1),
            "fill_seconds": float(wall), "fill_cpu": float(cpu), "fill_eps": round(n / float(wall))}


def drain(tree: str, state: str, sink: Siem, n: int, profile: Optional[str], tag: str) -> dict:
    conf = state + ".conf"
    with open(os.open(conf, os.O_WRONLY | os.O_CREAT, 0o600), "w") as f:
        # ship_peer's agent (auditd collector, splunk_hec with its defaults) on an empty audit
        # log: the agent wants a collector, this one adds nothing to the drain.
        f.write(AGENT_CONF.format(state=state, url=sink.url, token=TOKEN, log=state + ".empty.log"))
    open(state + ".empty.log", "wb").close()
    sink.reset()
    s0 = sink.cpu()
    r = measure([sys.executable, "-m", "agent.app.cli", "run", "-c", conf], sink, lambda got, quiet: got >= n,
                env=dict(os.environ, PYTHONPATH=tree), cwd=tree, timeout=900,
                attach=py_spy(os.path.join(profile, f"{tag}.txt")) if profile else None)
    # From the first event received to the last, as catchup.py counts: start-up is not drain.
    return {"drain_eps": round(n / max(r["seconds"] - r["first_event_s"], 1e-3)), "seconds": r["seconds"],
            "to_first": r["first_event_s"], "cpu": r["cpu"], "cpu_us_per_event": round(r["cpu"] / n * 1e6, 1),
            "rss_peak_mb": r["rss_peak_mb"], "sink_cpu": round(sink.cpu() - s0, 2)}


def main(argv: Optional[List[str]] = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--events", type=int, default=100_000, help="backlog size (default 100,000: 100 s at 1,000/s)")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--baseline", metavar="TREE", help="also run another source tree, alternated, as `base`")
    ap.add_argument("--profile", metavar="DIR", help="py-spy record each drain into DIR")
    ap.add_argument("--keep", action="store_true", help="keep the temporary directory")
    a = ap.parse_args(argv)
    tmp = tempfile.mkdtemp(prefix="agentd-drain-")
    trees = {"agentd": REPO}
    if a.baseline:
        trees["base"] = os.path.abspath(a.baseline)
    res: Dict[str, List[dict]] = {k: [] for k in trees}
    sink = make_sink()
    try:
        events = make_events(tmp)
        print(f"drain: {a.events} events of the exec storm's ECS, {a.runs} run(s) per tree, alternated", flush=True)
        for i in range(a.runs):
            names = list(trees)
            for name in names[i % len(names):] + names[:i % len(names)]:
                state = os.path.join(tmp, f"{name}-{i}")
                r = fill(trees[name], state, events, a.events)
                r.update(drain(trees[name], state, sink, a.events, a.profile, f"{name}-{i}"))
                shutil.rmtree(state, ignore_errors=True)
                res[name].append(r)
                print(f"  run {i + 1} {name:6s} spool {r['bytes_per_event']:7.1f} B/event (file "
                      f"{r['file_bytes_per_event']:.0f}), fill {r['fill_eps']:6d} ev/s; drain {r['drain_eps']:6d} ev/s, "
                      f"agent CPU {r['cpu']:.2f} s ({r['cpu_us_per_event']:.0f} us/event), peak RSS "
                      f"{r['rss_peak_mb']:.1f} MB, sink CPU {r['sink_cpu']:.2f} s", flush=True)
    finally:
        finish(sink, tmp, a.keep)
    out: dict = {"events": a.events, "runs": a.runs, "live_rate": LIVE_RATE}
    for name, runs in res.items():
        med = {k: statistics.median(r[k] for r in runs) for k in runs[0]}
        med["cpu_min"] = min(r["cpu"] for r in runs)
        for k, v in med.items():
            out[f"{name}_{k}"] = v
        print(f"{name:6s} median: drain {med['drain_eps']:.0f} ev/s = {med['drain_eps'] / LIVE_RATE:.2f}x the live rate; "
              f"CPU {med['cpu']:.2f} s (least {med['cpu_min']:.2f}); spool {med['bytes_per_event']:.0f} B/event; "
              f"fill {med['fill_eps']:.0f} ev/s; peak RSS {med['rss_peak_mb']:.1f} MB")
    note = (f"offline: a {a.events}-event spool of the exec storm's ECS drained by agentd run to the test HEC "
            f"(gzip, 500/request); median of {a.runs}; catchup.py measures it live")
    out["table"] = [
        {"figure": "5 catch-up: offline drain rate", "value": out["agentd_drain_eps"], "unit": "ev/s",
         "baseline": LIVE_RATE, "baseline_name": "live rate, 1,000 execs/s", "target": "ratio >= 10", "note": note},
        {"figure": "- spool: bytes per event", "value": out["agentd_bytes_per_event"], "unit": "B"},
    ]
    print("BENCH-RESULT " + json.dumps(out, sort_keys=True), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
