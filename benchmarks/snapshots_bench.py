"""CPU and memory of the snapshots collector (collectors/snapshots).

Creates a login session of its own (writes /proc/self/loginuid in a child, as
pam_loginuid does, so the kernel gives it a new audit session), with 500 processes
and 1,000 loopback TCP sockets in it (500 connections, both ends), then measures:

- one snapshot (Snapshotter.scan) when everything is new (500 process-started and
  1,000 connection-opened events built) and when nothing changed (the steady state);
- the collector at its default interval: the collector thread's own CPU over a run of
  60 s (its first, all-new scan included), as a share of one core (target < 1%), with
  periodic scans only and as shipped (the proc connector also wakes it for every exec
  on the host: that part is given per exec, from the difference of the two runs);
- memory under churn: processes and connections replaced continuously; the tracked
  tables and the Python heap must stay bounded. 30 s here; `--soak` (or AGENTD_SOAK=1)
  runs it for 10 minutes.

Needs root (loginuid, the proc connector). Loopback only.

    .venv/bin/python benchmarks/snapshots_bench.py [--procs 500] [--soak] [--churn-seconds N]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import signal
import socket
import sys
import threading
import time
import tracemalloc

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from agent.base.component import RunContext  # noqa: E402
from agent.base.events import HostInfo  # noqa: E402
from collectors.snapshots import scan  # noqa: E402
from collectors.snapshots.collector import SnapshotsCollector  # noqa: E402
from collectors.snapshots.snapshot import Snapshotter  # noqa: E402


def thread_cpu() -> float:
    return time.clock_gettime(time.CLOCK_THREAD_CPUTIME_ID)


def session_leader(n: int, ready_w: int, churn: bool) -> None:
    """The child: a login session of n processes, each with one loopback connection."""
    with open("/proc/self/loginuid", "w") as f:
        f.write("65534")
    resource.setrlimit(resource.RLIMIT_NOFILE, (4096, 4096))
    lst = socket.socket()
    lst.bind(("127.0.0.1", 0))
    lst.listen(1024)
    port = lst.getsockname()[1]
    servers: dict = {}

    def child() -> int:
        pid = os.fork()
        if pid == 0:
            lst.close()
            for s in servers.values():
                s.close()
            c = socket.create_connection(("127.0.0.1", port))
            signal.pause()
            c.close()
            os._exit(0)
        servers[pid], _ = lst.accept()
        return pid

    kids = [child() for _ in range(n - 1)]
    os.write(ready_w, b"r")
    while churn:
        # replace ~20 processes (and their connections) a second
        time.sleep(0.05)
        old = kids.pop(0)
        os.kill(old, signal.SIGTERM)
        os.waitpid(old, 0)
        servers.pop(old).close()
        kids.append(child())
    signal.pause()


def start_session(n: int, churn: bool = False) -> int:
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(r)
        try:
            session_leader(n, w, churn)
        finally:
            os._exit(0)
    os.close(w)
    os.read(r, 1)
    os.close(r)
    return pid


def stop_session(pid: int) -> None:
    """Every process of the benchmark's session, the leader first (it forks while churning)."""
    ses = scan.session_of(pid)
    os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)
    for _ in range(50):
        left = [p for p in scan.pids() if scan.session_of(p) == ses]
        if not left:
            return
        for p in left:
            try:
                os.kill(p, signal.SIGKILL)
            except OSError:
                pass
        time.sleep(0.1)


def one_snapshot(host: HostInfo) -> dict:
    snap = Snapshotter(host, ["scp", "sftp", "rsync"], ["/var/log/audit"])
    t = thread_cpu()
    first = snap.scan(time.time())
    cold = thread_cpu() - t
    steady = []
    for _ in range(20):
        t = thread_cpu()
        snap.scan(time.time())
        steady.append(thread_cpu() - t)
    return {"cold_ms": cold * 1e3, "cold_events": len(first),
            "steady_ms": sorted(steady)[len(steady) // 2] * 1e3, "session_procs": len(snap.procs),
            "sockets": len(snap.conns.known)}


def run_collector(seconds: float, conf_extra: dict, heap: bool = False) -> dict:
    """The collector's own thread CPU over ``seconds`` (its first, all-new scan included);
    ``heap``: trace the Python heap too (tracemalloc slows allocation: not for CPU figures)."""
    conf = {k: o.default_value() for k, o in SnapshotsCollector.options.items()}
    conf.update(conf_extra)
    ctx = RunContext({"state_dir": "/tmp", "host_name": ""})
    c = SnapshotsCollector("snapshots", conf, ctx)
    stop = threading.Event()
    n = [0]
    cpu = [0.0]
    samples: list = []

    def emit(events, position):
        n[0] += len(events)

    def body():
        t = thread_cpu()
        c.run(emit, stop)
        cpu[0] = thread_cpu() - t

    th = threading.Thread(target=body)
    if heap:
        tracemalloc.start()
    t0 = time.monotonic()
    th.start()
    while time.monotonic() - t0 < seconds:
        time.sleep(min(5.0, seconds / 6))
        if heap:
            samples.append(tracemalloc.get_traced_memory()[0])
    stop.set()
    th.join(10)
    if heap:
        tracemalloc.stop()
    wall = time.monotonic() - t0
    return {"cpu_pct_of_core": 100.0 * cpu[0] / wall, "events": n[0], "seconds": round(wall, 1),
            "heap_kib": [s // 1024 for s in samples], "stats": c.stats}


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--procs", type=int, default=500)
    ap.add_argument("--seconds", type=float, default=60.0, help="collector run at its default interval")
    ap.add_argument("--churn-seconds", type=float, default=30.0)
    ap.add_argument("--soak", action="store_true", help="churn for 10 minutes")
    args = ap.parse_args()
    if os.environ.get("AGENTD_SOAK") == "1" or args.soak:
        args.churn_seconds = 600.0
    if os.geteuid() != 0:
        print("snapshots_bench: needs root (loginuid, proc connector)", file=sys.stderr)
        return 2
    host = HostInfo.local()
    res: dict = {}
    leader = start_session(args.procs)
    try:
        res["one_snapshot"] = one_snapshot(host)
        print(f"one snapshot, {res['one_snapshot']['session_procs']} session processes, "
              f"{res['one_snapshot']['sockets']} sockets: all new {res['one_snapshot']['cold_ms']:.1f} ms CPU "
              f"({res['one_snapshot']['cold_events']} events), unchanged {res['one_snapshot']['steady_ms']:.1f} ms CPU",
              flush=True)
        # Scans alone (proc connector off), then as shipped: the proc connector also wakes
        # the collector for every exec on the host, so that part is the host's exec rate.
        for key, extra in (("default_interval_scans_only", {"proc_events": False}), ("default_interval", {})):
            r = run_collector(args.seconds, extra)
            res[key] = r
            execs = r["stats"].get("exec_notices", 0)
            print(f"collector at its default interval ({SnapshotsCollector.options['interval'].default}), "
                  f"proc_events {'off' if extra else 'on'}, {r['seconds']} s: {r['cpu_pct_of_core']:.2f}% of one core "
                  f"({execs} execs on the host = {execs / r['seconds']:.1f}/s)", flush=True)
    finally:
        stop_session(leader)
    leader = start_session(args.procs // 5, churn=True)
    try:
        r = run_collector(args.churn_seconds, {}, heap=True)
        res["churn"] = r
        heap = r["heap_kib"]
        print(f"churn ({args.procs // 5} processes, ~20 replaced/s) for {r['seconds']} s: "
              f"{r['cpu_pct_of_core']:.2f}% of one core, {r['events']} events, heap KiB over time {heap}", flush=True)
    finally:
        stop_session(leader)
    # in-flight events (of the host's other logins too) make single samples jump: the least
    # sample of each quarter is what the collector keeps; growth = last quarter's - second's
    q = max(1, len(heap) // 4)
    floors = [min(heap[i * q:(i + 1) * q]) for i in range(4)] if len(heap) >= 4 else heap
    grew = floors[-1] - floors[1] if len(floors) == 4 else 0
    res["churn_heap_growth_second_half_kib"] = grew
    one, scans, shipped = res["one_snapshot"], res["default_interval_scans_only"], res["default_interval"]
    interval = SnapshotsCollector.options["interval"].default_value()
    execs = shipped["stats"].get("exec_notices", 0)
    # CPU seconds the exec notices added, per notice (the two runs are side by side)
    extra = (shipped["cpu_pct_of_core"] * shipped["seconds"] - scans["cpu_pct_of_core"] * scans["seconds"]) / 100
    per_exec_us = round(max(0.0, extra) / execs * 1e6, 1) if execs else None
    summary = {"snapshot_cold_ms": round(one["cold_ms"], 1),
               "snapshot_steady_ms": round(one["steady_ms"], 1),
               "collector_default_cpu_pct": round(shipped["cpu_pct_of_core"], 3),
               "collector_scans_only_cpu_pct": round(scans["cpu_pct_of_core"], 3),
               "host_execs_per_s": round(execs / shipped["seconds"], 1), "per_exec_notice_us": per_exec_us,
               "churn_cpu_pct": round(res["churn"]["cpu_pct_of_core"], 3),
               "churn_heap_kib_end": heap[-1] if heap else None, "churn_heap_growth_2nd_half_kib": grew,
               "churn_heap_floor_per_quarter_kib": floors}
    where = f"{one['session_procs']} processes, {one['sockets']} sockets"
    summary["table"] = [
        {"figure": "6 snapshots: one snapshot, steady", "value": round(100 * one["steady_ms"] / 1e3 / interval, 2),
         "unit": "%", "target": "value < 1",
         "note": f"snapshots: one snapshot of {where} every {interval:g} s = {one['steady_ms']:.1f} ms CPU; "
                 f"the first (all new, {one['cold_events']} events) {one['cold_ms']:.0f} ms"},
        {"figure": "6 snapshots: collector, default interval", "value": round(scans["cpu_pct_of_core"], 2),
         "unit": "%", "target": "value < 1",
         "note": f"snapshots: collector thread CPU over {scans['seconds']:.0f} s with {where}, first scan included, "
                 f"scans only; as shipped {shipped['cpu_pct_of_core']:.2f}% with the host's "
                 f"{execs / shipped['seconds']:.0f} exec/s ({per_exec_us} us per exec notice)"},
        {"figure": "- snapshots: churn heap, 2nd half growth", "value": grew, "unit": "KiB",
         "note": f"snapshots: {r['seconds']:.0f} s of churn (~20 processes and connections replaced/s), "
                 f"least Python heap per quarter {floors} KiB"},
    ]
    print("BENCH-RESULT " + json.dumps(summary, sort_keys=True), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
