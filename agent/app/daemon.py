"""`agentd run`: collectors -> pipeline -> spool -> shippers, until SIGTERM.

Threads with bounded work are enough (DESIGN.md): each collector blocks on its
source (inotify, the journal fd) and on ``spool.write`` when the spool is full;
each shipper blocks on the spool. The main thread only handles signals, the
systemd watchdog, purging and the status file.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading
import time
from typing import Optional

from agent.app import malloc_trim, memtrace, notify, status
from agent.app.gc_tune import quiet_gc
from agent.base.component import RunContext
from agent.base.config import Config, ConfigError, load_config
from agent.base.deadletter import DeadLetter
from agent.base.gaps import gap_doc
from agent.pipeline.pipeline import Pipeline
from agent.pipeline.shipping import ShipperWorker
from agent.pipeline.spool import Spool, SpoolClosed

log = logging.getLogger("agentd")

RESTART_DELAY = 5.0
LOGIN_WAIT = 3.0  # at most this long a line of a login waits for the audit log to name the login
QUIET_LIBRARY_LOGGERS = ("httpx", "httpcore")


class Runtime:
    """One configuration's worth of running components."""

    def __init__(self, cfg: Config):
        self.cfg = cfg
        self.ctx = RunContext(cfg.agent)
        state = cfg.agent["state_dir"]
        os.makedirs(state, mode=0o750, exist_ok=True)
        host = self.ctx.host
        self.spool = Spool(
            os.path.join(state, "spool.db"), cfg.agent["spool_max_bytes"], cfg.agent["spool_full_policy"],
            gap_factory=lambda n, detail: gap_doc(host, "spool", "spool-full", detail, count=n),
        )
        if self.spool.recovered:
            self.spool.write("agentd", [gap_doc(host, "spool", "spool-recovered", self.spool.recovered)], None)
        self.pipeline = Pipeline(
            cfg.agent, host, store=self.spool, live=True,
            expect_journal=any(c.type_name == "journald" for c in cfg.enabled("collector")),
            sections=cfg.sections, config_path=cfg.path)
        self.ctx.agent = self.pipeline.collector_agent_conf(cfg.agent)
        started = self.pipeline.startup()
        if started and self.spool.write("agentd", started, None):
            self.pipeline.commit()
        self._emit_lock = threading.Lock()
        self.stop_event = threading.Event()
        self.collectors: list = []  # (name, collector, thread)
        self.shippers: list = []  # ShipperWorker
        self._audit_name: Optional[str] = None  # the auditd collector, which names the logins
        self._audit_stats: Optional[dict] = None
        self._audit_stuck_at = -1.0  # read_through when a wait last timed out
        self.started = time.time()

    def _emit_for(self, name: str):
        def emit(events: list, position: Optional[dict]) -> None:
            if events and name != self._audit_name:
                self._await_logins(events)
            # One lock around the pipeline + write: session state and the events it
            # shaped reach the spool in the order they were observed.
            with self._emit_lock:
                if events:
                    events = self.pipeline.apply(events)
                if self.spool.write(name, events, position, self.stop_event):
                    self.pipeline.commit()
        return emit

    def _await_logins(self, events: list) -> None:
        """Hold a batch (journald's, the snapshots') that names a login the join does not
        know until the auditd collector has read its log through the batch's time: that
        login's LOGIN record was written before, so the lines join it instead of going out
        without who and from where. Bounded by LOGIN_WAIT; an auditd collector that does not
        move (stopped, failing) is not waited for again until it does. Nothing is lost while
        holding: this collector's position has not moved yet."""
        audit = self._audit_stats
        if audit is None:
            return
        t = self.pipeline.sessions.unknown_login_time(events)
        through = audit.get("read_through", 0.0)
        if t is None or through >= t or through == self._audit_stuck_at:
            return
        deadline = time.monotonic() + LOGIN_WAIT
        while audit.get("read_through", 0.0) < t:
            if time.monotonic() > deadline:
                self._audit_stuck_at = audit.get("read_through", 0.0)
                return
            if self.stop_event.wait(0.02):
                return

    def _run_collector(self, name: str, collector) -> None:
        emit = self._emit_for(name)
        while not self.stop_event.is_set():
            try:
                collector.run(emit, self.stop_event, self.spool.position(name))
                return
            except SpoolClosed:
                return
            except Exception as e:
                # Restart from the last committed position: nothing is lost, the
                # events since then are read again.
                log.exception("collector:%s failed; restarting in %.0fs", name, RESTART_DELAY)
                collector.stats["last_error"] = f"{type(e).__name__}: {e}"
                self.stop_event.wait(RESTART_DELAY)

    def start(self) -> None:
        for comp in self.cfg.enabled("collector"):
            c = comp.build(self.ctx)
            c.stats.setdefault("last_error", "")
            t = threading.Thread(target=self._run_collector, args=(comp.name, c), name=f"collect-{comp.name}",
                                 daemon=True)
            self.collectors.append((comp.name, c, t))
            if comp.type_name == "auditd" and self._audit_name is None:
                self._audit_name, self._audit_stats = comp.name, c.stats
        for comp in self.cfg.enabled("shipper"):
            dl = DeadLetter(os.path.join(self.ctx.state_dir, "dead-letter", f"shipper-{comp.name}.jsonl"))
            self.shippers.append(ShipperWorker(
                comp.name, comp.build(self.ctx), self.spool, dl, self.stop_event,
                batch_max=self.cfg.agent["batch_max_events"], max_backoff=self.cfg.agent["retry_max_backoff"],
                linger=self.cfg.agent["batch_linger"]))
        for _, _, t in self.collectors:
            t.start()
        for w in self.shippers:
            w.start()
        log.info("agentd started: collectors %s, shippers %s", [n for n, _, _ in self.collectors],
                 [w.shipper_name for w in self.shippers])

    def tick(self) -> None:
        # Documents released by time (an end that waited for sshd's line). The main loop never
        # waits here, for the lock (a collector holds it while a full spool blocks) or for room:
        # the summaries stay held, and a later tick releases them.
        if not self.spool.would_block() and self._emit_lock.acquire(blocking=False):
            try:
                due = self.pipeline.tick()
                if due and self.spool.write("agentd", due, None):
                    self.pipeline.commit()
            finally:
                self._emit_lock.release()
        self.spool.purge([w.shipper_name for w in self.shippers])

    def snapshot(self) -> dict:
        names = [w.shipper_name for w in self.shippers]
        spool = self.spool.stats(names)
        return {
            "time": time.time(), "pid": os.getpid(), "started": self.started, "config": self.cfg.path,
            "collectors": {n: dict(c.stats) for n, c, _ in self.collectors},
            "shippers": {w.shipper_name: dict(w.stats, **spool["shippers"].get(w.shipper_name, {}))
                         for w in self.shippers},
            "spool": {k: v for k, v in spool.items() if k != "shippers"},
        }

    def stop(self, timeout: float) -> dict:
        """Stop within ``timeout``; returns the final status snapshot."""
        self.stop_event.set()
        deadline = time.monotonic() + timeout
        for _, _, t in self.collectors:
            t.join(max(0.1, deadline - time.monotonic()))
        for w in self.shippers:
            w.join(max(0.1, deadline - time.monotonic()))
        self.tick()
        with self._emit_lock:
            self.pipeline.commit(force=True)
        snap = self.snapshot()
        self.spool.close()
        return snap


def setup_logging(level: str) -> None:
    root = logging.getLogger()
    for h in list(root.handlers):
        root.removeHandler(h)
    handler: Optional[logging.Handler] = None
    if not sys.stderr.isatty() and os.environ.get("JOURNAL_STREAM"):
        try:
            from systemd.journal import JournalHandler

            handler = JournalHandler(SYSLOG_IDENTIFIER="agentd")
        except ImportError:
            handler = None
    if handler is None:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root.addHandler(handler)
    root.setLevel(level.upper())
    # httpx logs every request at INFO: one line per shipped batch (several a second under
    # load) in the agent's log and the journal. Its warnings and errors still show; at
    # log_level debug, everything does.
    for name in QUIET_LIBRARY_LOGGERS:
        logging.getLogger(name).setLevel(logging.DEBUG if level.upper() == "DEBUG" else logging.WARNING)


def run(cfg: Config) -> int:
    # The spool and outputs hold command lines and keystrokes: not for other users.
    os.umask(0o027)
    setup_logging(cfg.agent["log_level"])
    memtrace.start_from_env()
    from agent.app.doctor import startup

    log.info("%s", startup.destinations(cfg))  # the first line: where the events go
    startup.log_findings_in_background(cfg)
    signals: list = []
    wake = threading.Event()

    def on_signal(signum, frame):
        signals.append(signum)
        wake.set()

    for s in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGUSR2):
        signal.signal(s, on_signal)

    rt = Runtime(cfg)
    rt.start()
    # Config, rules, modules and caches are loaded now and live as long as the runtime.
    thaw = quiet_gc()
    endpoint = status.Endpoint(lambda: rt.snapshot())  # the current runtime's, also after a reload
    endpoint.set(cfg.agent["status_listen"])
    notify.notify("READY=1\nSTATUS=running")
    wd = notify.watchdog_interval()
    last_wd = last_status = 0.0
    last_trim = time.monotonic()
    status_path = os.path.join(cfg.agent["state_dir"], "status.json")
    while True:
        wake.wait(0.5)
        wake.clear()
        now = time.monotonic()
        if wd and now - last_wd >= wd:
            notify.notify("WATCHDOG=1")
            last_wd = now
        rt.tick()
        if now - last_status >= 2.0:
            status.write_file(status_path, rt.snapshot())
            last_status = now
        if now - last_trim >= malloc_trim.INTERVAL:
            malloc_trim.trim()  # what a burst of events left in glibc's heaps goes back
            last_trim = now
        while signals:
            signum = signals.pop(0)
            if signum == signal.SIGHUP:
                thaw()  # the old runtime's frozen objects become collectable again
                rt = _reload(rt)
                thaw = quiet_gc()
                endpoint.set(rt.cfg.agent["status_listen"])
                continue
            if signum == signal.SIGUSR2:
                memtrace.report()  # AGENTD_TRACEMALLOC: the top allocations to the log
                continue
            log.info("agentd stopping (signal %d)", signum)
            notify.notify("STOPPING=1")
            snap = rt.stop(rt.cfg.agent["shutdown_timeout"])
            endpoint.close()
            memtrace.report()
            snap["stopped"] = True
            status.write_file(status_path, snap)
            return 0


def _reload(rt: Runtime) -> Runtime:
    """SIGHUP: a bad new config is reported and the running one kept."""
    notify.notify("RELOADING=1")
    try:
        new = load_config(rt.cfg.path)
    except ConfigError as e:
        for line in e.lines:
            log.error("reload refused: %s", line)
        notify.notify("READY=1")
        return rt
    log.info("reloading %s", rt.cfg.path)
    rt.stop(rt.cfg.agent["shutdown_timeout"])
    setup_logging(new.agent["log_level"])
    from agent.app.doctor import startup

    log.info("%s", startup.destinations(new))  # the shippers may have changed
    nrt = Runtime(new)
    nrt.start()
    notify.notify("READY=1")
    return nrt
