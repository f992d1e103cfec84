"""Cost of detection: whole-process `agentd replay` throughput with detections off, with the
built-in rules on, and with the built-in rules plus the shipped SigmaHQ set on (the compiled
rules' cache cold, then warm).

    .venv/bin/python benchmarks/detections_replay.py [--repeat 3] [--copies 4] [--rounds 3]

Input: the recorded exec storm (benchmarks/data/exec_storm.log.xz, a session running
commands as fast as it can: the worst case for per-event rule cost) followed by the
bastion1 capture (logins, failures, sudo, su, transfers), the storm --copies times (a
retro-hunt reads weeks of logs: start-up, which loads the Sigma rules, is paid once).
Least of --repeat runs each, in CPU seconds of the whole replay process, the modes
alternated. "all, cold": the replay's cache directory (XDG_CACHE_HOME) is empty, so the
pySigma child compiles the rules; "all, warm": the compiled form is read from it, as on a
retro-hunt's second run. Target (issue 15): everything on costs at most 20% of the throughput.

Then, in one process, the detection stage per event over the storm's events as they reach
it (least of --rounds): built-in rules, built-in + SigmaHQ, and the Sigma matching alone.

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
SIGMA = os.path.join(REPO, "rules", "sigma")
_ALL = "[detections]\nenabled = true\nsigma_dirs = " + SIGMA + "\n"
MODES = {
    "off": "[detections]\nenabled = false\n",
    "builtin": "[detections]\nenabled = true\n",
    "all_cold": _ALL,
    "all_warm": _ALL,
}


def run_once(conf: str, logs: list, out: str, cache_home: str, tree: str = REPO) -> tuple:
    """(CPU seconds of the replay process, events, alerts). CPU time, not wall time: this
    machine is shared, and the other jobs' load would otherwise swamp the difference."""
    cmd = AGENTD + ["replay", "-c", conf, "-o", out] + [a for p in logs for a in ("--audit-log", p)]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    r = subprocess.run(cmd, cwd=tree, capture_output=True, text=True, env=dict(os.environ, XDG_CACHE_HOME=cache_home))
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


def rules_rss(sigma_dirs: list, tree: str = REPO) -> tuple:
    """(RSS MB of the agent's code, RSS MB once its pipeline and rules are built, Sigma rules)."""
    r = subprocess.run([sys.executable, "-c", RSS_PROBE, *sigma_dirs], cwd=tree, capture_output=True, text=True,
                       check=True)
    before, after, n = r.stdout.split()
    return float(before), float(after), int(n)


STAGE_PROBE = """
import copy, gc, json, lzma, os, shutil, sys, tempfile, time
from agent.base.component import RunContext
from agent.base.config import AGENT_OPTIONS
from agent.pipeline.detections.engine import DetectionStage
from agent.pipeline.pipeline import Pipeline
from collectors.auditd.collector import AuditdCollector
storm, sigma, rounds, cache = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
agent_conf = {k: o.default_value() for k, o in AGENT_OPTIONS.items()}
ctx = RunContext(agent_conf)
sections = {"detections": {"sigma_dirs": [sigma]}}
try:
    pipe = Pipeline(agent_conf, ctx.host, sections=sections, sigma_cache=cache)
except TypeError:  # a --baseline tree from before the replay's rule cache
    pipe = Pipeline(agent_conf, ctx.host, sections=sections)
ctx.agent = pipe.collector_agent_conf(agent_conf)
docs, apply = [], pipe.detections.apply
def keep(doc):  # the events as they reach the detection stage
    docs.append(copy.deepcopy(doc))
    return apply(doc)
pipe.detections.apply = keep
ac = AuditdCollector("bench", {k: o.default_value() for k, o in AuditdCollector.options.items()}, ctx)
ac.replay(storm, lambda evs, pos: pipe.apply(list(evs)))
gc.collect()
gc.freeze()
best = {}
for _ in range(rounds):
    for name, secs in (("builtin", {}), ("all", sections), ("sigma_match", sections)):
        work = [copy.deepcopy(d) for d in docs]
        st = DetectionStage(secs, ctx.host, cache_dir=cache)
        fn = st.sigma.match if name == "sigma_match" else st.apply
        t = time.thread_time()
        for d in work:
            fn(d)
        best[name] = min(best.get(name, 1e9), time.thread_time() - t)
print(json.dumps({"events": len(docs), **{k + "_us": round(v / len(docs) * 1e6, 1) for k, v in best.items()}}))
"""


def stage_costs(storm: str, rounds: int, cache_home: str, tree: str = REPO) -> dict:
    """µs per event of the detection stage (built-in, built-in + SigmaHQ) and of the Sigma
    matching alone, in one process over the storm's events (CPU time of the thread, least of rounds)."""
    r = subprocess.run([sys.executable, "-c", STAGE_PROBE, storm, SIGMA, str(rounds), cache_home], cwd=tree,
                       capture_output=True, text=True, check=True)
    return json.loads(r.stdout.strip().splitlines()[-1])


def main(argv=None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--copies", type=int, default=4)
    ap.add_argument("--rounds", type=int, default=3, help="rounds of the in-process stage timing (0: skip it)")
    ap.add_argument("--baseline", metavar="TREE", help="another source tree (e.g. an export of main before a "
                    "change): its replays alternate with this one's, and its output must be the same")
    args = ap.parse_args(argv)
    trees = [("now", REPO)] + ([("baseline", os.path.abspath(args.baseline))] if args.baseline else [])
    results = _measure(args, trees)
    out = {f"{m}_{k}": v for m, r in results["now"].items() for k, v in r.items()}
    if args.baseline:
        out["baseline"] = {f"{m}_{k}": v for m, r in results["baseline"].items() for k, v in r.items()}
    now = results["now"]
    out["table"] = [
        {"figure": "- detections: replay slowdown, built-in + SigmaHQ", "value": now["all_cold"]["slowdown_pct"],
         "unit": "%", "target": "value <= 20", "note": "detections: least CPU of --repeat whole replays, "
         "storm x4 + bastion1, against detections off, the rules compiled at start (issue 15)"},
        {"figure": "- detections: RSS with the SigmaHQ set", "value": now["rss"]["sigma_mb"], "unit": "MB",
         "baseline": now["rss"]["builtin_mb"], "baseline_name": "built-in rules only"},
    ]
    print("BENCH-RESULT " + json.dumps(out))
    return 0


def _measure(args, trees: list) -> dict:
    """{tree label: {mode: figures, "stage": ..., "rss": ...}}, the trees' replays alternated."""
    with tempfile.TemporaryDirectory() as d:
        storm = os.path.join(d, "exec_storm.log")
        with lzma.open(os.path.join(HERE, "data", "exec_storm.log.xz")) as src, open(storm, "wb") as dst:
            data = src.read()
            for _ in range(args.copies):
                dst.write(data)
        logs = [storm, os.path.join(REPO, "tests", "captures", "bastion1", "audit.log")]
        runs: dict = {(t, m): [] for t, _ in trees for m in MODES}
        outputs: dict = {}
        for i in range(args.repeat):  # interleaved, so a burst of load hits every mode and tree alike
            for label, tree in trees:
                warm = os.path.join(d, f"warm-{label}")
                for mode, extra in MODES.items():
                    conf = os.path.join(d, f"{mode}.conf")
                    with open(conf, "w") as f:
                        f.write(CONF.format(d=d, extra=extra))
                    # cold: an empty cache directory of its own (the first one fills the warm one)
                    cache = os.path.join(d, f"cold-{label}-{i}") if mode == "all_cold" and i else warm
                    out = os.path.join(d, f"{mode}.jsonl")
                    runs[label, mode].append(run_once(conf, logs, out, cache, tree))
                    with open(out, "rb") as f:
                        outputs[label, mode] = f.read()
        for label, _ in trees:
            if outputs[label, "all_cold"] != outputs[label, "all_warm"]:
                raise SystemExit(f"{label}: the replay with a warm rule cache differs from the cold one")
            if outputs[label, "all_cold"] != outputs["now", "all_cold"]:
                raise SystemExit(f"{label}: the replay's output differs from this tree's")
        with lzma.open(os.path.join(HERE, "data", "exec_storm.log.xz")) as src, open(storm, "wb") as dst:
            dst.write(src.read())  # one copy for the in-process timing: the stage's own cost, not start-up
        results: dict = {}
        for label, tree in trees:
            result = results[label] = {}
            print(f"{label} ({tree}):")
            for mode in MODES:
                elapsed, events, alerts = min(runs[label, mode])
                result[mode] = {"seconds": round(elapsed, 3), "events": events,
                                "events_per_s": round(events / elapsed), "alerts": alerts}
                print(f"  {mode:8} {elapsed:7.3f} CPU s  {events} events  {events / elapsed:9.0f} ev/s  {alerts} alerts")
            off = result["off"]["events_per_s"]
            for mode in ("builtin", "all_cold", "all_warm"):
                result[mode]["slowdown_pct"] = round(100.0 * (off - result[mode]["events_per_s"]) / off, 1)
            print(f"  slowdown: built-in {result['builtin']['slowdown_pct']}%, built-in + Sigma "
                  f"{result['all_cold']['slowdown_pct']}% (rule cache cold), {result['all_warm']['slowdown_pct']}% "
                  f"(warm) (target <= 20%)")
            if args.rounds > 0:
                st = result["stage"] = stage_costs(storm, args.rounds, os.path.join(d, f"warm-{label}"), tree)
                print(f"  detection stage per event over the storm ({st['events']} events, in process, least of "
                      f"{args.rounds}): built-in {st['builtin_us']} µs, built-in + SigmaHQ {st['all_us']} µs; "
                      f"Sigma matching alone {st['sigma_match_us']} µs")
            b0, b1, _ = rules_rss([], tree)
            s0, s1, n = rules_rss([os.path.join(REPO, "rules", "sigma")], tree)
            result["rss"] = {"agent_mb": round(b0, 1), "builtin_mb": round(b1, 1), "sigma_mb": round(s1, 1),
                             "sigma_rules": n, "sigma_cost_mb": round(s1 - b1, 1)}
            print(f"  RSS: agent code {b0:.1f} MB, + pipeline and built-in rules {b1:.1f} MB, + {n} Sigma rules "
                  f"{s1:.1f} MB (Sigma: +{s1 - b1:.1f} MB)")
    return results


if __name__ == "__main__":
    sys.exit(main())
