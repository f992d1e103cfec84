"""The test SIEM (tests/siem) as the live benchmarks' HEC, with a receive clock: every event it
accepts is counted and, when it is the audit exec (event.action exec) of the load generator
(an argument starting with the tag prefix), its latency is kept (receive time minus the
event's @timestamp, which is the audit record's own time). The events themselves are then
dropped: a minute at 5,000 exec/s would otherwise keep a few GB of parsed JSON.

    python benchmarks/hec_sink.py --tag lb-        # prints "listening on URL", then serves

Run as its own process, so its CPU (strict JSON parsing of everything shipped) is its own and
is reported apart. Besides tests/siem's admin endpoints (faults, down, stats):

    kill -USR1 PID     -> listen again after a `down` (whose admin endpoint is down too)
    GET /_siem/bench   -> {"events": n, "tagged": n, "actions": {...}, "cpu_s": s,
                           "samples": [[recv_time, latency_s], ...]}  (samples since last GET)
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import signal
import sys
import time
from typing import Dict, List, Optional

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

from tests.siem.fixtures import HEC_TOKEN  # noqa: E402
from tests.siem.hec import Hec, HecToken  # noqa: E402
from tests.siem.server import SiemServer, serve_until_interrupted  # noqa: E402


def _epoch(ts: object) -> Optional[float]:
    if isinstance(ts, (int, float)):
        return float(ts)
    if not isinstance(ts, str):
        return None
    try:
        return datetime.datetime.fromisoformat(ts.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


class ClockedHec(Hec):
    """Hec that stamps what it accepted and forgets it."""

    def __init__(self, tokens: dict, indexes: tuple, faults, tag: str):
        super().__init__(tokens, indexes, faults)
        self.tag = tag
        self.reset()

    def reset(self) -> None:
        super().reset()
        self.total = 0
        self.tagged = 0
        self.actions: Dict[str, int] = {}
        self.samples: List[tuple] = []  # (recv, latency): tuples of floats, which the GC does not track

    def event(self, query: dict, headers, body: Optional[bytes]) -> tuple:
        out = super().event(query, headers, body)
        now = time.time()
        with self.lock:
            got, self.events = self.events, []
            self.total += len(got)
            for obj in got:
                ev = obj.get("event")
                if not isinstance(ev, dict):
                    continue
                action = str((ev.get("event") or {}).get("action"))
                self.actions[action] = self.actions.get(action, 0) + 1
                args = (ev.get("process") or {}).get("args") or []
                # The audit exec only: the snapshots collector reports the same process too
                # (process-started/-ended), which would count it twice.
                if action == "exec" and len(args) > 1 and str(args[1]).startswith(self.tag):
                    self.tagged += 1
                    t = _epoch(ev.get("@timestamp"))
                    if t is not None:
                        self.samples.append((round(now, 3), round(now - t, 4)))
        return out

    def bench(self) -> dict:
        with self.lock:
            samples, self.samples = self.samples, []
            t = os.times()
            return {"events": self.total, "tagged": self.tagged, "actions": dict(self.actions),
                    "cpu_s": round(t.user + t.system, 2), "samples": samples}


class ClockedSiem(SiemServer):
    def __init__(self, tag: str, port: int = 0):
        super().__init__(port=port, hec_tokens={HEC_TOKEN: HecToken()})
        self.hec = ClockedHec(self.hec.tokens, tuple(self.hec.indexes), self.faults, tag)

    def admin(self, method: str, path: str, raw: bytes) -> tuple:
        if path == "/_siem/bench":
            return 200, {"Content-Type": "application/json"}, json.dumps(self.hec.bench()).encode()
        return super().admin(method, path, raw)


def main(argv: Optional[list] = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--tag", default="lb-", help="argument prefix of the load generator's execs")
    ap.add_argument("--port", type=int, default=0)
    a = ap.parse_args(argv)
    server = ClockedSiem(a.tag, a.port).start()
    # SIGUSR1: listen again now (the admin endpoint is down with the rest during an outage).
    signal.signal(signal.SIGUSR1, lambda *_: server.up())
    print(f"listening on {server.url} token {HEC_TOKEN}", flush=True)
    serve_until_interrupted(server)


if __name__ == "__main__":
    main()
