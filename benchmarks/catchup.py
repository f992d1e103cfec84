"""Catch-up after a HEC outage (issue 18, target 5): how fast the spool drains once the
SIEM is back, against the rate it filled at.

    sudo .venv/bin/python benchmarks/catchup.py [--outage-seconds 600] [--rate 1000]
    sudo .venv/bin/python benchmarks/catchup.py --quick      # a 60 s outage, for development
                                                  # (also with AGENTD_BENCH_QUICK=1, e.g. for make bench)

The agent is benchmarks/live_cost.py's (everything on, HEC shipper with its defaults, test
SIEM in its own process). benchmarks/loadgen.py runs `--rate` execs/s in SSH sessions for
--warmup seconds with the SIEM up, then the SIEM goes down (connection refused) for
--outage-seconds while the load goes on, then the load stops and the SIEM comes back.

- live rate: the load's execs/s (one event each), the ratio's baseline; the fill rate,
  events that entered the spool per second during the outage (spool last_seq, from the
  agent's status.json), is lower when the collector does not keep up live
- drain rate: events the SIEM received from its first delivery after the outage until it has
  the whole backlog the spool held when the SIEM came back (the spool is FIFO: what the
  collector adds meanwhile comes after it), per second of that time
- retry wait: from the SIEM being back to that first delivery (the shipper's backoff,
  retry_max_backoff, default 60 s)

The load stops when the SIEM comes back so that the drain is the spool's, not a race with
new load the agent may not keep up with live (live_cost.py measures that).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from typing import Dict, List, Optional

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

from agent_rss import Agent  # noqa: E402
from live_cost import Sink, agent_gaps, agent_sections, agent_status, load_options, ready  # noqa: E402
from loadgen import ExecLoad, sessions_for  # noqa: E402

from tests.stack.session import SessionError  # noqa: E402


def spool_seq(agent: Agent) -> Optional[int]:
    return (agent_status(agent).get("spool") or {}).get("last_seq")


def measure(args: argparse.Namespace, workdir: str) -> Dict[str, object]:
    tag = f"lbc{int(time.time()) % 100000}-"
    sink = Sink(tag)
    agent = Agent(workdir, args.agent_set, sections=agent_sections(sink.url))
    load: Optional[ExecLoad] = None
    try:
        agent.start(timeout=120)
        load = ExecLoad(args.rate, args.warmup + args.outage_seconds, sessions_for(args.rate), tag, args.program)
        load.start()
        time.sleep(args.warmup)
        live = sink.bench()["events"]
        seq0, t_down = spool_seq(agent), time.monotonic()
        print(f"catchup: SIEM down for {args.outage_seconds:g}s at {args.rate:g} execs/s "
              f"({live} events delivered while up)", flush=True)
        sink.down(args.outage_seconds + 3600)  # back when we say (up below), not on a timer
        gen = load.wait(grace=180)
        outage = time.monotonic() - t_down
        time.sleep(2.5)  # one more status.json after the load
        st = agent_status(agent)
        seq1 = (st.get("spool") or {}).get("last_seq")
        depth = ((st.get("shippers") or {}).get("hec") or {}).get("depth")
        sink.up()
        t_up = time.monotonic()
        # The backlog at return is spooled before anything the collector still adds (FIFO):
        # drained once the SIEM has `depth` more events than before the first delivery.
        t_first = t_done = None
        deadline = t_up + args.drain_timeout
        before = n_first = sink.bench()["events"]
        while time.monotonic() < deadline:
            n = sink.bench()["events"]
            now = time.monotonic()
            if t_first is None and n > before:
                t_first, n_first = now, n
            if t_first is not None and depth is not None and n - before >= depth:
                t_done = now
                break
            time.sleep(0.05)
        drained = t_done is not None
        drain_s = t_done - t_first if drained and t_done > t_first else None
        delivered = n - n_first if drained else 0
        b = sink.bench()
        gaps = agent_gaps(agent)
    finally:
        if load is not None:
            load.close()
        rc = agent.stop()
        sink.close()
    filled = (seq1 - seq0) if seq0 is not None and seq1 is not None else None
    fill_rate = filled / outage if filled else None
    drain_rate = delivered / drain_s if drain_s else None
    live_rate = gen["execs"] / gen["seconds"] if gen["seconds"] else None  # one event per exec
    return {
        "rate_asked": args.rate, "rate_achieved": gen["rate_achieved"], "outage_s": round(outage, 1),
        "spooled_during_outage": filled, "spool_depth_at_return": depth,
        "fill_rate_ev_s": round(fill_rate, 1) if fill_rate else None,
        "retry_wait_s": round(t_first - t_up, 1) if t_first is not None else None,
        "drain_s": round(drain_s, 1) if drain_s is not None else None, "drain_events": delivered,
        "drain_rate_ev_s": round(drain_rate, 1) if drain_rate else None,
        "live_rate_ev_s": round(live_rate, 1) if live_rate else None,
        "catchup_ratio": round(drain_rate / live_rate, 2) if drain_rate and live_rate else None,
        "drained": drained, "execs": gen["execs"], "execs_in_siem": b["tagged"], "audit_gaps": gaps,
        "agent_exit": rc,
    }


def main(argv: Optional[List[str]] = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--outage-seconds", type=float, default=600.0, help="HEC outage (default 600, issue 18)")
    ap.add_argument("--quick", action="store_true", help="a 60 s outage and 10 s warm-up (development)")
    ap.add_argument("--rate", type=float, default=1000.0)
    ap.add_argument("--warmup", type=float, default=20.0, help="seconds of load with the SIEM up first")
    ap.add_argument("--drain-timeout", type=float, default=900.0)
    load_options(ap)
    args = ap.parse_args(argv)
    if args.quick or os.environ.get("AGENTD_BENCH_QUICK"):
        args.outage_seconds, args.warmup = 60.0, 10.0
    if not ready("catchup"):
        return 2
    workdir = tempfile.mkdtemp(prefix="agentd-bench-catchup-")
    try:
        r = measure(args, workdir)
    except (RuntimeError, SessionError, OSError) as e:
        print(f"catchup: FAILED: {e}", file=sys.stderr)
        return 1
    finally:
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)
    print(f"catchup: {r['outage_s']}s outage at {r['rate_achieved']} execs/s: {r['spooled_during_outage']} events "
          f"spooled ({r['fill_rate_ev_s']}/s), {r['spool_depth_at_return']} waiting when the SIEM came back")
    print(f"  retry wait {r['retry_wait_s']}s, then {r['drain_events']} events in {r['drain_s']}s = "
          f"{r['drain_rate_ev_s']}/s: {r['catchup_ratio']}x the live rate ({r['live_rate_ev_s']}/s)"
          f"{'' if r['drained'] else ' (NOT drained within the timeout)'}; audit gaps {r['audit_gaps']}; "
          f"execs in the SIEM {r['execs_in_siem']} of {r['execs']}")
    r["table"] = [
        {"figure": "5 catch-up: spool drain rate", "value": r["drain_rate_ev_s"], "unit": "ev/s",
         "baseline": r["live_rate_ev_s"], "baseline_name": "live rate: load execs/s", "target": "ratio >= 10",
         "note": f"after a {r['outage_s']:g}s HEC outage at {r['rate_asked']:g} execs/s; the spool filled at "
                 f"{r['fill_rate_ev_s']}/s; retry wait {r['retry_wait_s']}s before the drain (not counted); "
                 f"audit gaps {r['audit_gaps']}"},
    ]
    print("BENCH-RESULT " + json.dumps(r, sort_keys=True), flush=True)
    return 0 if r["agent_exit"] == 0 and r["drained"] else 1


if __name__ == "__main__":
    sys.exit(main())
