"""One host's snapshot state: session processes, their sockets, watched transfer clients.

Pure bookkeeping over /proc readings; the collector decides when each part runs.
"""

from __future__ import annotations

import os

from agent.base.boot import boot_time
from agent.base.events import HostInfo
from collectors.snapshots import scan, transfers
from collectors.snapshots.connections import ConnectionTracker
from collectors.snapshots.processes import LOGIN_SETTERS, Proc, ended, look, started
from collectors.snapshots.resources import Resources


class Snapshotter:
    def __init__(self, host: HostInfo, transfer_programs: list, disk_paths: list, tcp_bytes=None):
        self.host = host
        self.procs: dict = {}  # pid -> Proc, processes of login sessions
        self.outside: dict = {}  # pid -> comm, processes without a session (not reported)
        self.watches: dict = {}  # pid -> transfers.Watch
        self.joined: list = []  # processes new since the last socket scan
        self.conns = ConnectionTracker(host, tcp_bytes)
        self.res = Resources(host, disk_paths)
        self.boot = boot_time()
        self.programs = frozenset(transfer_programs)
        self.me = os.getpid()
        self.counts = {"exec_notices": 0, "scans": 0, "processes_started": 0, "processes_ended": 0, "connections": 0, "transfers": 0}

    # -- processes ------------------------------------------------------------

    def _new(self, pid: int, now: float, how: str) -> list:
        if pid == self.me:
            return []
        p = look(pid, self.boot)
        if p is None:
            if how == "exec":
                # not remembered at exec (most execs of a host are outside logins, and
                # short-lived): a scan that finds it still running reads it once then
                return []
            st = scan.stat(pid)
            if st is not None and st[5] not in ("Z", "X"):
                self.outside[pid] = st[0]
            return []
        self.procs[pid] = p
        self.joined.append(p)
        self.counts["processes_started"] += 1
        self._maybe_watch(p)
        return [started(self.host, p, now, how)]

    def _maybe_watch(self, p: Proc) -> None:
        name = os.path.basename(p.args[0]) if p.args else p.comm
        if name not in self.programs and p.comm not in self.programs:
            return
        spec = transfers.parse(p.args)
        if spec is None:
            return
        try:
            cwd = os.readlink(f"/proc/{p.pid}/cwd")
        except OSError:
            cwd = "/"
        self.watches[p.pid] = transfers.Watch(p, spec, cwd)

    def _end(self, p: Proc, now: float, code, at_exit: bool) -> list:
        self.counts["processes_ended"] += 1
        out = [ended(self.host, p, now, code, at_exit)]
        w = self.watches.pop(p.pid, None)
        if w is not None:
            self.counts["transfers"] += 1
            out.append(transfers.event(self.host, w, now, at_exit, code))
        return out

    def on_execs(self, pids: list, now: float) -> list:
        out: list = []
        self.counts["exec_notices"] += len(pids)
        for pid in pids:
            self.outside.pop(pid, None)
            old = self.procs.get(pid)
            if old is not None and old.args == scan.cmdline(pid) and old.exe == scan.exe(pid):
                continue  # a scan found this image first
            self.procs.pop(pid, None)  # a new image of a known pid: reported as a new process
            self.watches.pop(pid, None)
            out += self._new(pid, now, "exec")
        return out

    def on_exits(self, exits: list, now: float) -> list:
        out: list = []
        for pid, code in exits:
            self.outside.pop(pid, None)
            p = self.procs.pop(pid, None)
            if p is not None:
                # The exited process is a zombie until its parent reaps it: its counters are
                # final and still readable if we are quicker than the parent.
                out += self._end(p, now, code, p.sample())
        return out

    def sample_watches(self) -> None:
        for w in self.watches.values():
            w.proc.sample()

    # -- the periodic scan ----------------------------------------------------

    def scan(self, now: float) -> list:
        self.counts["scans"] += 1
        alive = scan.pids()
        out: list = []
        procs, outside = self.procs, self.outside
        for pid in procs.keys() - alive:
            out += self._end(procs.pop(pid), now, None, False)
        for pid in outside.keys() - alive:
            del outside[pid]
        # Known processes are not re-read here (that was most of a scan's cost): their
        # counters are read at each state report, at their exit (the proc connector) and,
        # for transfer clients, every watch_interval. Set arithmetic, not a loop over
        # every pid of the host: a scan where nothing changed costs little more than
        # listing /proc.
        for pid in [p for p, comm in outside.items() if comm in LOGIN_SETTERS]:
            # sshd's monitor (and cron, login) set their login session after they started
            if scan.session_of(pid) is not None:
                del outside[pid]
                out += self._new(pid, now, "scan")
        for pid in sorted(alive - procs.keys() - outside.keys()):
            out += self._new(pid, now, "scan")
        conns = self.conns.scan(procs, now, [p for p in self.joined if p.pid in procs])
        self.joined = []
        self.counts["connections"] += sum(1 for d in conns if d["event"]["action"] != "connection-closed")
        return out + conns

    def state(self, now: float) -> list:
        for p in self.procs.values():
            p.sample()
        return self.res.sessions(self.procs, now) + [self.res.host_state(now)]
