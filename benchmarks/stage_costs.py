"""Cost of each pipeline stage per event, in one process, on the replayed benchmark capture.

    .venv/bin/python benchmarks/stage_costs.py [--capture FILE] [--rounds 3] [--profile STAGE]

The capture is read and normalized by the auditd collector exactly as `agentd replay` does
(default settings, detections as configured by default), and its batches are kept. Then,
``--rounds`` times over a fresh Pipeline, the batches go through ``Pipeline.apply`` with
each stage's ``apply`` wrapped by a CPU-time timer (the thread's, so time spent waiting for the
shared machine is not counted); the per-stage time is divided by the number of
events the capture gives. The least time of the rounds is reported (the machine is
shared; the least is the steadiest figure), after subtracting the timer's own cost
(measured on an empty stage). The collector (read + parse + normalize) and the JSON
serialization are shown beside the stages for scale.

``--profile redaction`` (a stage's name, see the table) runs cProfile on that stage only;
``--without process_tree`` leaves a stage out, to see what it costs the stages after it
and the serialization (bigger events).
Prints one ``BENCH-RESULT {json}`` line for benchmarks/run.py.
"""

from __future__ import annotations

import argparse
import copy
import cProfile
import gc
import json
import lzma
import os
import pstats
import shutil
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from agent.base.component import RunContext  # noqa: E402
from agent.base.config import AGENT_OPTIONS  # noqa: E402
from agent.pipeline.pipeline import Pipeline  # noqa: E402
from collectors.auditd.collector import AuditdCollector  # noqa: E402

DEFAULT_CAPTURE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data", "exec_storm.log.xz")
NAMES = {"RedactionStage": "redaction", "SameFact": "same_fact", "SessionTracker": "sessions",
         "ProcessTree": "process_tree", "RecordingStage": "recordings", "DetectionStage": "detections"}


class _Timed:
    """Wraps a stage's apply and adds up the time spent in it."""

    def __init__(self, fn, clock=time.thread_time):
        self.fn, self.clock, self.seconds, self.calls = fn, clock, 0.0, 0

    def __call__(self, doc):
        c = self.clock
        t = c()
        r = self.fn(doc)
        self.seconds += c() - t
        self.calls += 1
        return r


def _timer_cost() -> float:
    """Seconds one _Timed call adds around a no-op, to subtract from every stage."""
    t = _Timed(lambda doc: ())
    n = 200_000
    best = float("inf")
    for _ in range(3):
        t.seconds = 0.0
        for _ in range(n):
            t(None)
        best = min(best, t.seconds / n)
    return best


def _collect(capture: str, agent_conf: dict, ctx) -> tuple:
    """(batches of events, seconds the collector took) for the capture."""
    batches: list = []
    conf = {k: o.default_value() for k, o in AuditdCollector.options.items()}
    ac = AuditdCollector("bench", conf, ctx)
    t = time.process_time()
    ac.replay(capture, lambda evs, pos: batches.append(list(evs)))
    return batches, time.process_time() - t


def _round(batches: list, agent_conf: dict, ctx, profile: str = "", without: str = "") -> tuple:
    """({stage: seconds}, events out, seconds serializing) of one pass over fresh copies of the batches."""
    work = [[type(e)(copy.deepcopy(e.doc)) for e in b] for b in batches]
    # the whole capture is in memory here, unlike in a replay that writes batch by batch: keep
    # the garbage collector from walking it again and again (its cost would land on the stages)
    gc.collect()
    gc.freeze()
    pipe = Pipeline(agent_conf, ctx.host)
    pipe.stages = [st for st in pipe.stages if NAMES.get(type(st).__name__) != without]
    timers = {}
    prof = cProfile.Profile() if profile else None
    for stage in pipe.stages:
        name = NAMES.get(type(stage).__name__, type(stage).__name__)
        fn = stage.apply
        if prof is not None and name == profile:
            fn = _profiled(prof, fn)
        timers[name] = stage.apply = _Timed(fn)
    out = 0
    ser = 0.0
    size = 0
    for b in work:
        evs = pipe.apply(b)
        t = time.thread_time()
        for e in evs:
            size += len(e.to_json())
        ser += time.thread_time() - t
        out += len(evs)
    gc.unfreeze()
    if prof is not None:
        pstats.Stats(prof).sort_stats("tottime").print_stats(25)
    return {n: (t.seconds, t.calls) for n, t in timers.items()}, out, ser, size


def _profiled(prof, fn):
    def call(doc):
        prof.enable()
        try:
            return fn(doc)
        finally:
            prof.disable()
    return call


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--capture", default=DEFAULT_CAPTURE, help="audit log, .xz allowed")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--profile", default="", help="cProfile this stage (e.g. redaction, sessions)")
    ap.add_argument("--without", default="", help="leave this stage out (what it costs the others and JSON)")
    a = ap.parse_args(argv)
    agent_conf = {k: o.default_value() for k, o in AGENT_OPTIONS.items()}
    ctx = RunContext(agent_conf)
    with tempfile.TemporaryDirectory(prefix="stage_costs-") as tmp:
        capture = a.capture
        if capture.endswith(".xz"):
            capture = os.path.join(tmp, "audit.log")
            with lzma.open(a.capture, "rb") as src, open(capture, "wb") as dst:
                shutil.copyfileobj(src, dst)
        batches, collect_s = _collect(capture, agent_conf, ctx)
    events = sum(len(b) for b in batches)
    overhead = _timer_cost()
    best: dict = {}
    out = 0
    ser_best = float("inf")
    for i in range(max(1, a.rounds)):
        stages, out, ser, size = _round(batches, agent_conf, ctx, a.profile if i == 0 else "", a.without)
        ser_best = min(ser_best, ser)
        for name, (sec, calls) in stages.items():
            net = max(0.0, sec - calls * overhead)
            best[name] = min(best.get(name, float("inf")), net)
    us = {n: s / events * 1e6 for n, s in best.items()}
    print(f"capture {a.capture}: {events} events in, {out} out; least of {a.rounds} rounds; "
          f"timer cost {overhead * 1e9:.0f} ns/call subtracted")
    print(f"{'stage':<14} {'µs/event':>9} {'s total':>8}")
    print(f"{'(collector)':<14} {collect_s / events * 1e6:9.1f} {collect_s:8.3f}   read+parse+normalize, for scale")
    for n, v in us.items():
        print(f"{n:<14} {v:9.1f} {best[n]:8.3f}")
    total = sum(best.values())
    print(f"{'all stages':<14} {total / events * 1e6:9.1f} {total:8.3f}")
    print(f"{'(to_json)':<14} {ser_best / events * 1e6:9.1f} {ser_best:8.3f}   serialization, for scale "
          f"({size / out:,.0f} bytes/event)")
    res = {"events": events, "events_out": out, "collector_us": round(collect_s / events * 1e6, 2),
           "to_json_us": round(ser_best / events * 1e6, 2), "bytes_per_event": round(size / out), "stages_us": round(total / events * 1e6, 2)}
    res.update({f"{n}_us": round(v, 2) for n, v in us.items()})
    print("BENCH-RESULT " + json.dumps(res, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
