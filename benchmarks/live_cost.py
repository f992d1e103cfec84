"""Live cost, lag and latency of the whole agent on the real stack (issue 18, targets 2 and 4).

    sudo .venv/bin/python benchmarks/live_cost.py [--rates 1000,5000] [--seconds 60] [-v]

For each rate: a fresh `agentd run` with everything on (auditd and journald collectors,
snapshots at their defaults, redaction, built-in detections plus the SigmaHQ set in
rules/sigma, the splunk_hec shipper with its defaults) ships to the test SIEM
(benchmarks/hec_sink.py, its own process), while benchmarks/loadgen.py runs `rate` execs/s
inside SSH sessions for `--seconds`. Every second it samples the agent's CPU and RSS,
auditd's and the kernel kauditd thread's CPU (/proc), and the SIEM's receive clock.

- CPU window: load start until every exec of the load has reached the SIEM (or --drain-timeout),
  the same window for the agent and for auditd. The table compares CPU per exec: the agent's
  per exec it delivered, auditd's per exec it wrote (the plain ratio of CPU seconds flatters
  an agent that did not get through the load).
- lag: per second of receive time, the median of (received - audit record time) of the load's
  execs; "keeps up" = the lag's least-squares slope over the load after its first 10 s is
  under 0.05 s per s (3 s per minute), every exec arrived and the auditd collector reported
  no gap (audit.log rotated away before it was read: auditd.conf keeps 5 x 8 MB here).
- latency (target 4): p50/p99 of (received - audit record time) over the execs of a run at a
  steady --latency-rate (100/s, 30 s, first): pipeline latency (batch linger, spool, HEC), not
  the backlog of a rate the agent cannot hold (each rate's own p50/p99 are in its results).
- the load generator's CPU (its loops and their execs) and the audit `lost` counter, since at
  5,000/s on 2 cores the generator competes with everything else.

Ends with `BENCH-RESULT {json}` whose "table" rows go into `make bench`'s table.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from typing import Dict, List, Optional

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
sys.path.insert(0, HERE)
sys.path.insert(0, REPO)

import psutil  # noqa: E402
from agent_rss import MB, Agent, audit_lost, auditd_cpu, pids_of, stack_problem, tree_rss_cpu  # noqa: E402
from loadgen import ExecLoad, sessions_for  # noqa: E402

from tests.siem.fixtures import HEC_TOKEN  # noqa: E402
from tests.stack.session import SessionError  # noqa: E402

SIGMA_DIR = os.path.join(REPO, "rules", "sigma")


class Sink:
    """benchmarks/hec_sink.py as a subprocess, and its admin endpoints."""

    def __init__(self, tag: str):
        self.proc = subprocess.Popen([sys.executable, os.path.join(HERE, "hec_sink.py"), "--tag", tag],
                                     stdout=subprocess.PIPE, stdin=subprocess.DEVNULL, cwd=REPO, text=True)
        line = self.proc.stdout.readline()
        if not line.startswith("listening on "):
            raise RuntimeError(f"hec_sink did not start: {line!r}")
        self.url = line.split()[2]

    def _call(self, path: str, body: Optional[dict] = None, timeout: float = 30) -> dict:
        data = json.dumps(body).encode() if body is not None else None
        with urllib.request.urlopen(urllib.request.Request(self.url + path, data=data), timeout=timeout) as r:
            return json.loads(r.read())

    def bench(self) -> dict:
        return self._call("/_siem/bench")

    def down(self, seconds: float) -> None:
        """Connection refused from now until up() (or `seconds`)."""
        self._call("/_siem/faults", {"down": seconds})
        time.sleep(0.2)  # the SIEM goes down just after answering

    def up(self) -> None:
        self.proc.send_signal(signal.SIGUSR1)
        for _ in range(100):
            try:
                self.bench()
                return
            except OSError:
                time.sleep(0.1)
        raise RuntimeError("the test SIEM did not come back up")

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()


def agent_sections(sink_url: str) -> str:
    """Everything on: journald beside auditd, snapshots (on when absent), detections with the
    SigmaHQ set, the HEC shipper with its defaults (gzip, 500-event batches, no acks)."""
    return ("[collector:journald]\ntype = journald\n\n"
            f"[detections]\nsigma_dirs = {SIGMA_DIR}\n\n"
            f"[shipper:hec]\ntype = splunk_hec\nurl = {sink_url}\ntoken = {HEC_TOKEN}\ntls_verify = false\n")


def agent_status(agent: Agent) -> dict:
    """The agent's status.json (written every 2 s, and once more when it stops)."""
    try:
        with open(os.path.join(agent.state, "status.json")) as f:
            return json.load(f)
    except (OSError, ValueError):
        return {}


def agent_gaps(agent: Agent) -> Optional[int]:
    """Gaps the auditd collector reported: audit.log data rotated away before it was read,
    i.e. events lost because the agent fell behind auditd's rotation."""
    return ((agent_status(agent).get("collectors") or {}).get("auditd") or {}).get("gaps")


def runqueue_wait_s(pid: int) -> float:
    """Seconds the process's threads spent runnable but waiting for a CPU (/proc schedstat):
    on a shared machine, what tells a starved agent from a slow one."""
    total = 0
    try:
        for tid in os.listdir(f"/proc/{pid}/task"):
            try:
                with open(f"/proc/{pid}/task/{tid}/schedstat") as f:
                    total += int(f.read().split()[1])
            except (OSError, IndexError, ValueError):
                pass
    except OSError:
        pass
    return total / 1e9


def pct(xs: List[float], q: float) -> Optional[float]:
    if not xs:
        return None
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(q * len(xs)))]


def slope(points: List[tuple]) -> Optional[float]:
    """Least-squares slope of y over x."""
    if len(points) < 3:
        return None
    mx = statistics.fmean(p[0] for p in points)
    my = statistics.fmean(p[1] for p in points)
    den = sum((p[0] - mx) ** 2 for p in points)
    return sum((p[0] - mx) * (p[1] - my) for p in points) / den if den else None


class Samples:
    """Every-second samples of the agent, auditd, kauditd, the SIEM; latencies by receive time."""

    def __init__(self, agent_pid: int, sink: Sink):
        self.p = psutil.Process(agent_pid)
        self.sink = sink
        self.auditd, self.kauditd = pids_of("auditd"), pids_of("kauditd")
        self.rows: List[Dict[str, float]] = []
        self.lat: List[List[float]] = []  # [recv epoch, latency s]

    def take(self, t0: float) -> Dict[str, float]:
        rss, cpu = tree_rss_cpu(self.p)
        b = self.sink.bench()
        self.lat += b["samples"]
        row = {"t": time.monotonic() - t0, "rss": rss, "cpu": cpu, "auditd": auditd_cpu(self.auditd),
               "wait": runqueue_wait_s(self.p.pid),
               "kauditd": auditd_cpu(self.kauditd), "events": b["events"], "tagged": b["tagged"],
               "sink_cpu": b["cpu_s"]}
        self.rows.append(row)
        return row


def run_rate(rate: float, seconds: float, args: argparse.Namespace, run_id: str) -> Dict[str, object]:
    tag = f"lb{run_id}r{int(rate)}-"
    workdir = tempfile.mkdtemp(prefix="agentd-bench-live-")
    sink = Sink(tag)
    agent = Agent(workdir, args.agent_set, sections=agent_sections(sink.url))
    load: Optional[ExecLoad] = None
    try:
        agent.start(timeout=120)  # the SigmaHQ set takes a while to compile on a loaded machine
        smp = Samples(agent.proc.pid, sink)
        time.sleep(args.settle)
        load = ExecLoad(rate, seconds, args.sessions or sessions_for(rate), tag, args.program)
        time.sleep(1.0)  # the logins' own records go through before the window opens
        lost0 = audit_lost()
        t0 = time.monotonic()
        first = smp.take(t0)
        load.start()
        wall0 = time.time()
        next_t = t0 + 1.0
        while time.monotonic() - t0 < seconds:
            time.sleep(max(0.0, next_t - time.monotonic()))
            next_t += 1.0
            r = smp.take(t0)
            if agent.proc.poll() is not None:
                raise RuntimeError(f"agentd exited with {agent.proc.returncode} during the load; its log "
                                   f"ends:\n{agent.log_tail()}")
            if args.verbose:
                lat = [x[1] for x in smp.lat if x[0] >= time.time() - 1.0]
                print(f"  t={r['t']:5.1f}s rss={r['rss'] / MB:5.1f} MB agent={r['cpu'] - first['cpu']:6.2f}s "
                      f"auditd={r['auditd'] - first['auditd']:6.2f}s execs in SIEM={r['tagged']} "
                      f"lag={statistics.median(lat) if lat else float('nan'):.2f}s", flush=True)
        gen = load.wait()
        load_end = time.monotonic()
        # Drain: every exec of the load in the SIEM (or the timeout).
        deadline = time.monotonic() + args.drain_timeout
        while True:
            r = smp.take(t0)
            if r["tagged"] >= gen["execs"] or time.monotonic() > deadline:
                break
            time.sleep(0.5)
        window = r["t"]
        drain_s = time.monotonic() - load_end
        lost1 = audit_lost()
    finally:
        if load is not None:
            load.close()
        rc = agent.stop()
        sink.close()
        gaps = agent_gaps(agent)
        if not args.keep:
            import shutil

            shutil.rmtree(workdir, ignore_errors=True)
    lat_all = [x[1] for x in smp.lat]
    # Lag over the load by receive second, after a 10 s warm-up.
    by_sec: Dict[int, List[float]] = {}
    for recv, lat in smp.lat:
        by_sec.setdefault(int(recv - wall0), []).append(lat)
    lag = [(s, statistics.median(v)) for s, v in sorted(by_sec.items()) if 10 <= s < seconds]
    lag_slope = slope(lag)
    rows = [x for x in smp.rows if x["t"] <= seconds]
    agent_cpu = r["cpu"] - first["cpu"]
    auditd_s = r["auditd"] - first["auditd"]
    complete = r["tagged"] >= gen["execs"]
    steady = [x["rss"] for x in rows if x["t"] >= seconds * 0.25] or [x["rss"] for x in rows]
    return {
        "rate_asked": rate, "rate_achieved": gen["rate_achieved"], "execs": gen["execs"],
        "execs_in_siem": r["tagged"], "events_in_siem": r["events"] - first["events"],
        "complete": complete, "drain_s": round(drain_s, 1) if complete else None,
        "window_s": round(window, 1),
        "agent_cpu_s": round(agent_cpu, 2), "auditd_cpu_s": round(auditd_s, 2),
        "cpu_ratio_agent_auditd": round(agent_cpu / auditd_s, 3) if auditd_s > 0 else None,
        "agent_cpu_pct": round(100 * agent_cpu / window, 1), "auditd_cpu_pct": round(100 * auditd_s / window, 1),
        "kauditd_cpu_s": round(r["kauditd"] - first["kauditd"], 2),
        "agent_runqueue_wait_s": round(r["wait"] - first["wait"], 2),
        "generator_cpu_s": round(gen["cpu_self_s"] + gen["cpu_children_s"], 2),
        "generator_cpu_self_s": gen["cpu_self_s"], "siem_cpu_s": round(r["sink_cpu"] - first["sink_cpu"], 2),
        # Per exec the agent delivered (it may deliver fewer than auditd wrote: starved, or
        # audit.log rotated away unread) against auditd's per exec written: the CPU ratio
        # that stays fair when the agent does not get through the whole load.
        "agent_us_per_exec": round(1e6 * agent_cpu / r["tagged"], 1) if r["tagged"] else None,
        "auditd_us_per_exec": round(1e6 * auditd_s / gen["execs"], 1) if gen["execs"] else None,
        "rss_max_mb": round(max(x["rss"] for x in smp.rows) / MB, 1),
        "rss_steady_median_mb": round(statistics.median(steady) / MB, 1),
        "audit_lost": (lost1 - lost0) if lost0 is not None and lost1 is not None else None,
        "lag_first_s": round(lag[0][1], 2) if lag else None, "lag_last_s": round(lag[-1][1], 2) if lag else None,
        "lag_slope_s_per_s": round(lag_slope, 4) if lag_slope is not None else None,
        "audit_gaps": gaps,
        "keeps_up": complete and not gaps and lag_slope is not None and lag_slope < 0.05,
        "latency_p50_s": round(pct(lat_all, 0.5), 3) if lat_all else None,
        "latency_p99_s": round(pct(lat_all, 0.99), 3) if lat_all else None,
        "latency_max_s": round(max(lat_all), 3) if lat_all else None,
        "agent_exit": rc, "program": os.path.basename(gen["program"]),
    }


def table(runs: List[Dict[str, object]], lat: Optional[Dict[str, object]]) -> List[Dict[str, object]]:
    out: List[Dict[str, object]] = []
    for i, r in enumerate(runs):
        at = f"{r['rate_asked']:g}/s"
        load = (f"asked {at}, achieved {r['rate_achieved']}/s; agent CPU {r['agent_cpu_s']}s, auditd "
                f"{r['auditd_cpu_s']}s; agent waited {r['agent_runqueue_wait_s']}s for a CPU; generator CPU "
                f"{r['generator_cpu_s']}s, "
                f"kauditd {r['kauditd_cpu_s']}s, audit lost {r['audit_lost']}, audit.log gaps {r['audit_gaps']}, "
                f"{r['execs_in_siem']} of {r['execs']} execs in the SIEM, SIEM CPU {r['siem_cpu_s']}s")
        cpu = {"figure": f"2 live {at}: CPU per exec", "value": r["agent_us_per_exec"], "unit": "us",
               "baseline": r["auditd_us_per_exec"], "baseline_name": "auditd", "note": load}
        keeps = {"figure": f"2 live {at}: lag slope", "value": r["lag_slope_s_per_s"], "unit": "s/s",
                 "target": "keeps up (slope < 0.05, all execs delivered, no gap)", "met": r["keeps_up"]}
        if i == 0:
            out += [dict(cpu, target="ratio <= 1"), keeps,
                    {"figure": f"2 live {at}: agent RSS max", "value": r["rss_max_mb"], "unit": "MB",
                     "target": "value <= 50"}]
        else:
            out += [cpu, keeps]
    if lat is not None:
        at = f"{lat['rate_asked']:g}/s"
        out += [
            {"figure": "4 latency: p50", "value": lat["latency_p50_s"], "unit": "s",
             "note": f"audit record time -> received by the test HEC, at a steady {at} (achieved "
                     f"{lat['rate_achieved']}/s, kept up: {lat['keeps_up']}), default settings"},
            {"figure": "4 latency: p99", "value": lat["latency_p99_s"], "unit": "s", "target": "value <= 2"},
        ]
    return out


def report(r: Dict[str, object]) -> None:
    print(f"live_cost {r['rate_asked']:g}/s asked, {r['rate_achieved']}/s achieved ({r['execs']} execs of "
          f"{r['program']}); {r['execs_in_siem']} in the SIEM ({r['events_in_siem']} events in all)"
          f"{'' if r['complete'] else ' - INCOMPLETE'}, drained {r['drain_s']}s after the load")
    print(f"  CPU over {r['window_s']}s: agent {r['agent_cpu_s']}s ({r['agent_cpu_pct']}%, "
          f"{r['agent_us_per_exec']} us per exec delivered), auditd {r['auditd_cpu_s']}s ({r['auditd_cpu_pct']}%, "
          f"{r['auditd_us_per_exec']} us per exec), "
          f"ratio {r['cpu_ratio_agent_auditd']}; kauditd {r['kauditd_cpu_s']}s; generator "
          f"{r['generator_cpu_s']}s ({r['generator_cpu_self_s']}s its loops); SIEM {r['siem_cpu_s']}s; "
          f"agent threads waited {r['agent_runqueue_wait_s']}s for a CPU (machine load {os.getloadavg()[0]:.1f})")
    print(f"  RSS max {r['rss_max_mb']} MB, steady median {r['rss_steady_median_mb']} MB; audit lost "
          f"{r['audit_lost']}; audit.log gaps (rotated away unread) {r['audit_gaps']}")
    print(f"  lag {r['lag_first_s']}s at 10s -> {r['lag_last_s']}s at the end, slope "
          f"{r['lag_slope_s_per_s']} s/s: {'keeps up' if r['keeps_up'] else 'DOES NOT keep up'}")
    print(f"  latency p50 {r['latency_p50_s']}s p99 {r['latency_p99_s']}s max {r['latency_max_s']}s; "
          f"agentd exit {r['agent_exit']}", flush=True)



def load_options(ap: argparse.ArgumentParser) -> None:
    """The options every live benchmark shares."""
    ap.add_argument("--program", help="what the load execs (default: loadgen's static exit-only binary)")
    ap.add_argument("--agent-set", metavar="KEY=VALUE", action="append", default=[])
    ap.add_argument("--keep", action="store_true", help="keep the temp dirs (config, agent log)")


def ready(name: str) -> bool:
    """False (said on stderr) when the stack is not up; else True, with SIGTERM made an exit(143) so the
    benchmark's finally blocks stop its agent and SIEM."""
    problem = stack_problem()
    if problem:
        print(f"{name}: {problem}", file=sys.stderr)
        return False
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    return True

def main(argv: Optional[List[str]] = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rates", default="1000,5000", help="exec/s, comma-separated (default 1000,5000)")
    ap.add_argument("--seconds", type=float, default=60.0)
    ap.add_argument("--latency-rate", type=float, default=100.0,
                    help="steady exec/s of the latency run, first (default 100; 0: latency of the first rate)")
    ap.add_argument("--latency-seconds", type=float, default=30.0)
    ap.add_argument("--sessions", type=int, default=0, help="load sessions (default: one per 500/s, max 4)")
    load_options(ap)
    ap.add_argument("--settle", type=float, default=3.0, help="idle seconds after the agent starts")
    ap.add_argument("--drain-timeout", type=float, default=120.0)
    ap.add_argument("-v", "--verbose", action="store_true")
    ap.add_argument("--quick", action="store_true", help="20 s per rate (development; or AGENTD_BENCH_QUICK=1)")
    args = ap.parse_args(argv)
    if args.quick or os.environ.get("AGENTD_BENCH_QUICK"):
        args.seconds, args.latency_seconds = 20.0, 15.0
    if not ready("live_cost"):
        return 2
    run_id = str(int(time.time()) % 100000)
    runs = []
    plan = [(float(x), args.seconds) for x in args.rates.split(",") if x.strip()]
    if args.latency_rate:
        plan.insert(0, (args.latency_rate, args.latency_seconds))
    for rate, seconds in plan:
        try:
            r = run_rate(rate, seconds, args, run_id)
        except (RuntimeError, SessionError) as e:
            print(f"live_cost: FAILED at {rate:g}/s: {e}", file=sys.stderr)
            return 1
        report(r)
        runs.append(r)
    lat = runs.pop(0) if args.latency_rate else (runs[0] if runs else None)
    print("BENCH-RESULT " + json.dumps({"runs": runs, "latency_run": lat, "table": table(runs, lat)},
                                       sort_keys=True), flush=True)
    return 0 if all(r["agent_exit"] == 0 and r["execs_in_siem"] for r in runs + [lat] if r) else 1


if __name__ == "__main__":
    sys.exit(main())
