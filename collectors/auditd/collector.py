"""The auditd collector: follow audit.log, parse, reassemble, normalize, emit."""

from __future__ import annotations

import logging
import os
import threading
import time
from typing import Optional

from agent.base.deadletter import DeadLetter
from agent.base.events import Event, Position
from agent.base.gaps import gap_doc
from agent.base.options import Option
from collectors.auditd.tail import LogFollower, Waiter
from collectors.base import Collector, Emit

log = logging.getLogger("agentd.auditd")


class AuditdCollector(Collector):
    type_name = "auditd"
    description = "tail auditd's log (RAW or ENRICHED) and normalize its events"
    options = {
        "log_file": Option("path", "/var/log/audit/audit.log", "auditd's log file (auditd.conf log_file)"),
        "start_at": Option(
            "choice", "end", "where to start when there is no checkpoint: end or beginning of the log",
            choices=("end", "beginning"),
        ),
        "event_timeout": Option(
            "duration", "2s", "an incomplete audit event is emitted once records this much newer arrive",
            minimum=0.0,
        ),
        "max_line_bytes": Option("size", "64KiB", "longer lines are dead-lettered, not parsed", minimum=1024),
        "dead_letter_file": Option(
            "str", "", "where malformed lines go with the reason; empty means <state_dir>/dead-letter/auditd.log",
        ),
        "resolve_ids": Option("bool", "true", "turn uid/gid into names from local passwd/group when the log is RAW"),
    }

    def __init__(self, name: str, conf: dict, context=None):
        super().__init__(name, conf, context)
        self.stats = {"lines": 0, "records": 0, "events": 0, "malformed": 0, "gaps": 0}
        self._dead_letter = None

    # -- pieces ------------------------------------------------------------

    def _dead_letter_path(self) -> str:
        if self.conf.get("dead_letter_file"):
            return self.conf["dead_letter_file"]
        return os.path.join(self.context.state_dir, "dead-letter", "auditd.log")

    def _reject(self, line: bytes, offset: int, reason: str) -> None:
        """Keep a malformed line with its reason; never stop for it."""
        self.stats["malformed"] += 1
        if self._dead_letter is None:
            self._dead_letter = DeadLetter(self._dead_letter_path())
        self._dead_letter.write(reason, line, {"offset": offset, "file": self.conf["log_file"]})
        if self.stats["malformed"] == 1 or self.stats["malformed"] % 1000 == 0:
            log.warning("auditd: %d malformed line(s) so far, kept in %s (latest: %s)",
                        self.stats["malformed"], self._dead_letter.path, reason)

    def _normalize_failed(self, item, exc: Exception) -> None:
        self.stats["normalize_errors"] = self.stats.get("normalize_errors", 0) + 1
        reason = f"normalize failed: {type(exc).__name__}: {exc}"
        if self.stats["normalize_errors"] == 1:
            log.exception("auditd: event %s could not be normalized; its records are kept in the dead-letter file",
                          item.stamp)
        for rec in item.records:
            self._reject(rec.raw, rec.offset, reason)

    def _new_state(self):
        from collectors.auditd.normalize import Normalizer
        from collectors.auditd.reassemble import Reassembler

        reasm = Reassembler(timeout=self.conf["event_timeout"])
        # original_datasets: set by the pipeline when a detection rule reads raw records.
        keep = self.context.agent.get("keep_original", False) or self.context.agent.get("original_datasets", ())
        norm = Normalizer(self.context.host, keep_original=keep,
                          resolve_ids=self.conf["resolve_ids"])
        return reasm, norm

    def _items_to_events(self, items: list, norm) -> list:
        from collectors.auditd.reassemble import Gap

        out = []
        for item in items:
            if isinstance(item, Gap):
                self.stats["gaps"] += 1
                out.append(Event(norm.gap(item)))
                continue
            self.stats["records"] += len(item.records)
            try:
                docs = norm.normalize(item)
            except Exception as e:
                # A normalizer bug must cost one event, kept with its reason, not
                # stall the collector on the same record forever.
                self._normalize_failed(item, e)
                continue
            for doc in docs:
                out.append(Event(doc))
        return out

    def _loss_events(self, follower: LogFollower) -> list:
        out = []
        while follower.losses:
            loss = follower.losses.pop(0)
            log.error("auditd: part of %s could not be read: %s", self.conf["log_file"], loss.detail)
            out.append(Event(gap_doc(self.context.host, "auditd", loss.reason, loss.detail)))
        return out

    # -- the loop ----------------------------------------------------------

    def _consume(self, follower: LogFollower, emit: Emit, stop: threading.Event,
                 waiter: Optional[Waiter]) -> None:
        from collectors.auditd.parse import ParseError, parse_line

        reasm, norm = self._new_state()
        push = reasm.push
        batch_max = int(self.context.agent.get("batch_max_events", 500))
        max_line = self.conf["max_line_bytes"]
        timeout = self.conf["event_timeout"]
        linger = float(self.context.agent.get("batch_linger", 0.2))
        last_pos: Optional[dict] = None
        idle_since = time.monotonic()
        while not stop.is_set():
            started = time.time()
            events = self._loss_events(follower)
            n = 0
            rec = None
            for line, off in follower.lines():
                n += 1
                if len(line) > max_line:
                    self._reject(line, off, f"line of {len(line)} bytes is over max_line_bytes")
                    continue
                try:
                    rec = parse_line(line, off)
                except ParseError as e:
                    self._reject(line, off, str(e))
                    continue
                items = push(rec)
                if items:  # most records complete nothing: no call for them
                    events += self._items_to_events(items, norm)
                    if len(events) >= batch_max:
                        break
            self.stats["lines"] += n
            events += self._loss_events(follower)
            if n:
                idle_since = time.monotonic()
            elif waiter is None:
                frag = follower.final_fragment()
                if frag:
                    self._reject(frag[0], frag[1], "unterminated last line")
                events += self._items_to_events(reasm.flush(), norm)
            elif time.monotonic() - idle_since > timeout and reasm.pending_min_offset() is not None:
                # The log went quiet with an event still open (no EOE yet): record
                # time cannot expire it, so wall time does.
                events += self._items_to_events(reasm.flush(), norm)
            self.stats["events"] += len(events)
            pos = follower.position(reasm.pending_min_offset())
            if events or pos != last_pos:
                emit(events, pos)
                last_pos = pos
            # What the log has been emitted through, as a time: everything written before the
            # read began when it found nothing new, else the last record read. The daemon holds
            # other sources' lines of a login until this passes them (its LOGIN first).
            through = started if n == 0 else (rec.time if rec is not None else 0.0)
            if through > self.stats.get("read_through", 0.0):
                self.stats["read_through"] = through
            if n == 0:
                if waiter is None:
                    return
                waiter.wait(0.5)
            elif waiter is not None and len(events) < batch_max and linger:
                # Under a steady trickle, let a batch gather instead of paying a
                # spool commit and a wake-up of every shipper per few lines.
                stop.wait(linger)

    def run(self, emit: Emit, stop: threading.Event, position: Optional[Position] = None) -> None:
        path = self.conf["log_file"]
        follower = LogFollower(path, position=position, start_at=self.conf["start_at"], follow=True,
                               max_line=self.conf["max_line_bytes"])
        waiter = Waiter(path)
        try:
            self._consume(follower, emit, stop, waiter)
        finally:
            waiter.close()
            follower.close()
            if self._dead_letter:
                self._dead_letter.close()

    def replay(self, source: str, emit: Emit) -> None:
        follower = LogFollower(source, start_at="beginning", follow=False, max_line=self.conf["max_line_bytes"])
        try:
            self._consume(follower, emit, threading.Event(), None)
        finally:
            follower.close()
            if self._dead_letter:
                self._dead_letter.close()
