"""One thread per shipper: read the spool after its cursor, send, advance.

The cursor moves past a batch only once every event of it is delivered or
dead-lettered; events to retry are re-sent alone, in their original order, after
an exponential backoff with full jitter (capped, at least any Retry-After). A
kill -9 therefore re-sends at most the batch in flight.
"""

from __future__ import annotations

import fnmatch
import logging
import random
import re
import threading
from collections.abc import Sequence
from typing import Callable, Optional

from agent.base.conditions import ConditionLog
from agent.base.deadletter import DeadLetter
from agent.base.events import loads

log = logging.getLogger("agentd.ship")


def event_filter(names, default=()) -> Optional[Callable]:
    """A test for the `events =` option of a shipper: None means every event.

    ``alerts`` and ``sessions`` name kinds of events; anything else is an event.dataset
    (wildcards allowed). Events a shipper does not take are passed over, not sent:
    its cursor moves past them as if delivered.
    """
    names = list(names or default)
    if not names or "all" in names:
        return None
    want_alerts = "alerts" in names
    datasets = [n for n in names if n not in ("alerts", "sessions")] + (["agentd.session"] if "sessions" in names
                                                                       else [])
    rx = re.compile("|".join(fnmatch.translate(d) for d in datasets)) if datasets else None

    def wants(doc: dict) -> bool:
        ev = doc.get("event") or {}
        if want_alerts and ev.get("kind") == "alert":
            return True
        return rx is not None and rx.match(ev.get("dataset") or "") is not None
    return wants


def backoff(attempt: int, cap: float, base: float = 0.5, retry_after: Optional[float] = None) -> float:
    delay = random.uniform(0, min(cap, base * (2 ** min(attempt, 30))))
    if retry_after:
        delay = max(delay, min(retry_after, cap))
    return delay


class LazyDocs(Sequence):
    """A batch's events as dicts, each parsed from its spooled JSON when a shipper asks.

    Shippers that take ``raw`` read a few fields of each event (HEC: time, host, indexed
    fields; ES: index and id) or none (file). Parsing one event at a time keeps a whole
    parsed batch (megabytes of dicts for 500 ECS events) out of the agent's peak memory.
    Each access parses again: a shipper that needs an event twice keeps it itself.
    """

    __slots__ = ("raw",)

    def __init__(self, raw: list):
        self.raw = raw

    def __len__(self) -> int:
        return len(self.raw)

    def __getitem__(self, i):  # type: ignore[override]  # ints only: shippers index one event
        return loads(self.raw[i])


class ShipperWorker(threading.Thread):
    def __init__(self, name: str, shipper, spool, dead_letter: DeadLetter, stop: threading.Event,
                 batch_max: int = 500, max_backoff: float = 60.0, linger: float = 0.0):
        super().__init__(name=f"ship-{name}", daemon=True)
        self.shipper_name = name
        self.shipper = shipper
        self.spool = spool
        self.dead_letter = dead_letter
        self.stop_event = stop
        self.batch_max = batch_max
        self.max_backoff = max_backoff
        self.linger = linger
        self.condition = ConditionLog(f"shipper:{name}")
        # HEC and ES log their own conditions with more detail; logging the same
        # outage again here would make two ERROR lines of one change.
        self.quiet = bool(getattr(shipper, "logs_conditions", False))
        self.stats = {"shipped": 0, "rejected": 0, "retries": 0, "batches": 0, "last_error": ""}
        conf = getattr(shipper, "conf", None) or {}
        self.wants = event_filter(conf.get("events"), getattr(shipper, "default_events", ()))

    def run(self) -> None:
        try:
            self._loop()
        except Exception:
            log.exception("shipper:%s crashed; its events stay in the spool", self.shipper_name)
            self.stats["last_error"] = "crashed; see the agent log"
        finally:
            self.shipper.close()

    def _loop(self) -> None:
        cursor = self.spool.cursor(self.shipper_name)
        while not self.stop_event.is_set():
            rows = self.spool.read(cursor, self.batch_max)
            if not rows:
                self.spool.wait_for_data(cursor, 1.0)
                continue
            if len(rows) < self.batch_max and self.linger:
                # A partial batch waits a moment for company: one request and
                # one fsync for many events rather than one per trickle.
                self.stop_event.wait(self.linger)
                rows = self.spool.read(cursor, self.batch_max)
            if not self._deliver(rows):
                return  # stopping with the batch unfinished: it is re-sent next start
            cursor = rows[-1][0]
            self.spool.set_cursor(self.shipper_name, cursor)
            self.stats["batches"] += 1

    def _deliver(self, rows: list) -> bool:
        pending = rows  # [(seq, spooled JSON)]
        if self.wants is not None:
            pending = [p for p in pending if self.wants(loads(p[1]))]
        takes_raw = getattr(self.shipper, "takes_raw", False)
        attempt = 0
        while pending:
            if self.stop_event.is_set():
                return False
            bodies = [p[1] for p in pending]
            result = (self.shipper.send(LazyDocs(bodies), raw=bodies) if takes_raw
                      else self.shipper.send([loads(b) for b in bodies]))
            done = set(result.delivered)
            for i, reason in result.rejected:
                seq, doc = pending[i][0], loads(pending[i][1])
                done.add(i)
                self.dead_letter.write(reason, doc, {"shipper": self.shipper_name, "seq": seq})
                log.warning("shipper:%s rejected event %s: %s", self.shipper_name,
                            doc.get("event", {}).get("id"), reason)
            self.stats["shipped"] += len(result.delivered)
            self.stats["rejected"] += len(result.rejected)
            retry = set(result.retry) | (set(range(len(pending))) - done)
            pending = [p for i, p in enumerate(pending) if i in retry]
            if not pending:
                if not self.quiet:
                    self.condition.clear()
                return True
            if result.waiting:
                self.stop_event.wait(result.retry_after or 1.0)
                continue
            self.stats["retries"] += 1
            self.stats["last_error"] = result.error or "retry"
            if not self.quiet:
                self.condition.error(f"{result.error or 'destination asked to retry'}; retrying")
            self.stop_event.wait(backoff(attempt, self.max_backoff, retry_after=result.retry_after))
            attempt += 1
        return True
