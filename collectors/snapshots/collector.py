"""The snapshots collector: what goes through the bastion, from /proc and psutil.

Events have no replay position (the source is the live system, not a log): they are
spooled with position None. Their ids are deterministic from what they describe (pid
and start time, socket inode and addresses), so a restart that reports the same open
connection again yields the same event.id, which Elasticsearch drops as a duplicate.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from typing import Optional

from agent.base.events import Event, Position
from agent.base.options import Option
from collectors.base import Collector, Emit
from collectors.snapshots.connections import open_bytes
from collectors.snapshots.proc_events import ProcEvents
from collectors.snapshots.snapshot import Snapshotter

log = logging.getLogger("agentd.snapshots")

MAX_WAIT = 0.5  # `stop` is looked at this often at least


class SnapshotsCollector(Collector):
    type_name = "snapshots"
    description = ("snapshots of login sessions (/proc, psutil): connections with ProxyJump and port forwards "
                   "flagged, processes the audit rules missed, scp/sftp/rsync transfers, session and host resources")
    options = {
        "interval": Option("duration", "2s", "how often processes and sockets of login sessions are sampled",
                           minimum=0.1, maximum=300.0),
        "state_interval": Option("duration", "60s",
                                 "how often per-session and host resource state is reported; 0 means never",
                                 minimum=0.0),
        "proc_events": Option("bool", "true", "follow exec and exit from the kernel's proc connector (short-lived "
                              "processes and transfer clients seen at once); false: periodic scans only"),
        "watch_interval": Option("duration", "100ms", "how often a running transfer client's I/O counters are read",
                                 minimum=0.01, maximum=10.0),
        "transfer_programs": Option("list", "scp, sftp, rsync",
                                    "transfer clients reported as one transfer event per command"),
        "settle": Option("duration", "2s", "events of a login first seen less than this ago wait until then, so its audit "
                         "LOGIN and sshd's Accepted line are joined first (origin and key on the event)",
                         minimum=0.0, maximum=60.0),
        "connection_bytes": Option("bool", "true", "bytes of each TCP connection on its close, from the kernel's "
                                   "tcp_info when it releases the socket (sock_diag notices; needs CAP_NET_ADMIN)"),
        "disk_paths": Option("list", "/var/log/audit",
                             "filesystems whose free space the host state reports (the spool's is always added)"),
    }

    def __init__(self, name: str, conf: dict, context=None):
        super().__init__(name, conf, context)
        self.stats = {"events": 0, "proc_events": "off"}

    def run(self, emit: Emit, stop: threading.Event, position: Optional[Position] = None) -> None:
        conf = self.conf
        disks = list(conf["disk_paths"]) + [self.context.state_dir]
        tcp_bytes = open_bytes() if conf["connection_bytes"] else None
        self.stats["connection_bytes"] = "on" if tcp_bytes is not None else "off"
        snap = Snapshotter(self.context.host, conf["transfer_programs"], disks, tcp_bytes)
        listener = None
        if conf["proc_events"]:
            try:
                listener = ProcEvents()
                self.stats["proc_events"] = "on"
            except OSError as e:
                log.warning("snapshots: the kernel's proc connector cannot be opened (%s); scanning every %gs only: "
                            "processes shorter than that are missed", e, conf["interval"])
        try:
            self._loop(emit, stop, snap, listener)
        finally:
            if listener is not None:
                listener.close()
            if tcp_bytes is not None:
                tcp_bytes.close()

    def _loop(self, emit: Emit, stop: threading.Event, snap: Snapshotter, listener) -> None:
        conf = self.conf
        now = time.time()
        next_scan, next_watch = now, now
        next_state = now + conf["state_interval"] if conf["state_interval"] else float("inf")
        # Events of a login seen for the first time less than `settle` seconds ago wait
        # until then (their @timestamp stays the observation's): the session join attaches
        # what it knows when an event passes, and a new login's audit LOGIN and sshd
        # journal line reach it through other collectors. Older logins' events go at once,
        # so a summary at logout has counted them.
        pending: deque = deque()  # (due, doc) in arrival order: a later one waits at most `settle`
        young: dict = {}  # ses -> when first seen
        next_prune = now
        while not stop.is_set():
            now = time.time()
            wait = next_scan - now
            if pending:
                wait = min(wait, pending[0][0] - now)
            if snap.watches:
                wait = min(wait, next_watch - now)
            wait = min(max(wait, 0.0), MAX_WAIT)
            execs, exits = [], []
            if listener is not None:
                execs, exits, overflow = listener.poll(wait)
                if overflow:
                    next_scan = 0.0  # events were dropped by the kernel: a scan catches up now
            elif wait:
                stop.wait(wait)
            now = time.time()
            events = snap.on_execs(execs, now) if execs else []
            if exits:
                events += snap.on_exits(exits, now)
            if snap.watches and now >= next_watch:
                snap.sample_watches()
                next_watch = now + conf["watch_interval"]
            if snap.conns.bytes is not None:
                snap.conns.bytes.drain()  # often: the kernel holds few notices (one per TCP socket freed)
            if now >= next_scan:
                events += snap.scan(now)
                next_scan = now + conf["interval"]
            if now >= next_state:
                events += snap.state(now)
                next_state = now + conf["state_interval"]
            self.stats.update(snap.counts)
            self.stats["fd_scans"] = snap.conns.fd_scans
            due: list = []
            while pending and pending[0][0] <= now:
                due.append(pending.popleft()[1])
            for d in events:
                ses = (d.get("auditd") or {}).get("session")
                first = young.setdefault(ses, now) if ses else now
                if first + conf["settle"] > now:
                    pending.append((first + conf["settle"], d))
                else:
                    due.append(d)
            if now >= next_prune:
                # a login is forgotten once settled and without processes: every login of
                # the host passes through here (the table used to keep up to 1,024 of them)
                live = {str(p.ses) for p in snap.procs.values()}
                for ses in [k for k, t in young.items() if t + conf["settle"] <= now and k not in live]:
                    del young[ses]
                next_prune = now + max(conf["interval"], conf["settle"])
            if due:
                self.stats["events"] += len(due)
                emit([Event(d) for d in due], None)

        if pending:  # stopping: what is held goes now (it has no source position to re-read it from)
            emit([Event(d) for _, d in pending], None)

    def replay(self, source: str, emit: Emit) -> None:
        raise NotImplementedError("snapshots describe the live system; there is nothing to replay")
