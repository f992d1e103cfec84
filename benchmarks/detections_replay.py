"""Cost of detection: whole-process `agentd replay` throughput with detections off, with the
built-in rules on, and with the built-in rules plus the shipped SigmaHQ set on.

    .venv/bin/python benchmarks/detections_replay.py [--repeat 3]

Input: the recorded exec storm (benchmarks/data/exec_storm.log.xz, a session running
commands as fast as it can: the worst case for per-event rule cost) followed by the
bastion1 capture (logins, failures, sudo, su, transfers), the storm --copies times (a
retro-hunt reads weeks of logs: start-up, which loads the Sigma rules, is paid once).
Best of --repeat runs each, in CPU seconds of the whole replay process.
Target (issue 15): everything on costs at most 20% of the throughput.

Also the memory the rules hold in the agent (issue 18: RSS <= 50 MB live): a process that
imports the agent and builds its pipeline as `agentd run` does, with the built-in rules
only and with the shipped SigmaHQ set, reports its RSS once the rules are loaded.
"""

from __future__ import annotations

import argparse
import json
import lzma
import os
import resource
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
AGENTD = [sys.executable, "-m", "agent.app.cli"]
CONF = "[agent]\nstate_dir = {d}/state\n[collector:a]\ntype = auditd\n[shipper:f]\ntype = file\npath = {d}/x\n{extra}"
MODES = {
    "off": "[detections]\nenabled = false\n",
    "builtin": "[detections]\nenabled = true\n",
    "all": "[detections]\nenabled = true\nsigma_dirs = " + os.path.join(REPO, "rules", "sigma") + "\n",
}


def run_once(conf: str, logs: list, out: str) -> tuple:
    """(CPU seconds of the replay process, events, alerts). CPU time, not wall time: this
    machine is shared, and the other jobs' load would otherwise swamp the difference."""
    cmd = AGENTD + ["replay", "-c", conf, "-o", out] + [a for p in logs for a in ("--audit-log", p)]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    r = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    elapsed = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    if r.returncode != 0:
        raise SystemExit(f"replay failed: {r.stderr[-2000:]}")
    with open(out, "rb") as f:
        lines = f.read().splitlines()
    alerts = sum(1 for x in lines if b'"kind":"alert"' in x)
    return elapsed, len(lines), alerts


RSS_PROBE = """
import gc, sys
import agent.app.cli  # everything the agent imports anyway
from agent.base.events import HostInfo
from agent.pipeline.pipeline import Pipeline
def rss():
    with open("/proc/self/status") as f:
        return next(int(x.split()[1]) for x in f if x.startswith("VmRSS")) / 1024
before = rss()
p = Pipeline({}, HostInfo("h", "i", "b"), sections={"detections": {"sigma_dirs": sys.argv[1:]}})
gc.collect()
print(before, rss(), len(p.detections.sigma.rules) if p.detections.sigma else 0)
"""


def rules_rss(sigma_dirs: list) -> tuple:
    """(RSS MB of the agent's code, RSS MB once its pipeline and rules are built, Sigma rules)."""
    r = subprocess.run([sys.executable, "-c", RSS_PROBE, *sigma_dirs], cwd=REPO, capture_output=True, text=True,
                       check=True)
    before, after, n = r.stdout.split()
    return float(before), float(after), int(n)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--copies", type=int, default=4)
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory() as d:
        storm = os.path.join(d, "exec_storm.log")
        with lzma.open(os.path.join(HERE, "data", "exec_storm.log.xz")) as src, open(storm, "wb") as dst:
            data = src.read()
            for _ in range(args.copies):
                dst.write(data)
        logs = [storm, os.path.join(REPO, "tests", "captures", "bastion1", "audit.log")]
        result: dict = {}
        runs: dict = {m: [] for m in MODES}
        for _ in range(args.repeat):  # interleaved, so a burst of load hits every mode alike
            for mode, extra in MODES.items():
                conf = os.path.join(d, f"{mode}.conf")
                with open(conf, "w") as f:
                    f.write(CONF.format(d=d, extra=extra))
                runs[mode].append(run_once(conf, logs, os.path.join(d, f"{mode}.jsonl")))
        for mode in MODES:
            elapsed, events, alerts = min(runs[mode])
            result[mode] = {"seconds": round(elapsed, 3), "events": events, "events_per_s": round(events / elapsed),
                            "alerts": alerts}
            print(f"{mode:8} {elapsed:7.3f} CPU s  {events} events  {events / elapsed:9.0f} ev/s  {alerts} alerts")
        b0, b1, _ = rules_rss([])
        s0, s1, n = rules_rss([os.path.join(REPO, "rules", "sigma")])
        result["rss"] = {"agent_mb": round(b0, 1), "builtin_mb": round(b1, 1), "sigma_mb": round(s1, 1),
                         "sigma_rules": n, "sigma_cost_mb": round(s1 - b1, 1)}
        print(f"RSS: agent code {b0:.1f} MB, + pipeline and built-in rules {b1:.1f} MB, + {n} Sigma rules "
              f"{s1:.1f} MB (Sigma: +{s1 - b1:.1f} MB)")
        off = result["off"]["events_per_s"]
        for mode in ("builtin", "all"):
            result[mode]["slowdown_pct"] = round(100.0 * (off - result[mode]["events_per_s"]) / off, 1)
        print(f"slowdown: built-in {result['builtin']['slowdown_pct']}%, built-in + Sigma "
              f"{result['all']['slowdown_pct']}% (target <= 20%)")
        out = {f"{m}_{k}": v for m, r in result.items() for k, v in r.items()}
        out["table"] = [
            {"figure": "- detections: replay slowdown, built-in + SigmaHQ", "value": result["all"]["slowdown_pct"],
             "unit": "%", "target": "value <= 20", "note": "detections: least CPU of --repeat whole replays, "
             "storm x4 + bastion1, against detections off (issue 15)"},
            {"figure": "- detections: RSS with the SigmaHQ set", "value": result["rss"]["sigma_mb"], "unit": "MB",
             "baseline": result["rss"]["builtin_mb"], "baseline_name": "built-in rules only"},
        ]
        print("BENCH-RESULT " + json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
