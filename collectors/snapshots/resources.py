"""Periodic resource state: per login session (CPU %, RSS, processes) and of the host
(CPU, memory, load, free space where the audit log and the spool live, auditd running)."""

from __future__ import annotations

import os
from typing import Optional

import psutil

from agent.base.events import HostInfo, base_doc, make_event_id
from collectors.snapshots import scan


class Resources:
    def __init__(self, host: HostInfo, disk_paths: list):
        self.host = host
        self.disk_paths = disk_paths
        self.last_cpu: dict = {}  # pid -> (cpu ticks, time) at the previous state
        self.auditd_pid = 0  # where auditd was last found: looked at first
        psutil.cpu_percent(None)  # primes the host counter: the first state covers the first interval

    def sessions(self, procs: dict, now: float) -> list:
        per: dict = {}
        cpu_now: dict = {}
        for p in procs.values():
            s = per.setdefault(p.ses, {"cpu_pct": 0.0, "rss_bytes": 0, "processes": 0, "auid": p.auid, "uid": p.uid})
            s["processes"] += 1
            s["rss_bytes"] += p.rss
            prev = self.last_cpu.get(p.pid)
            if prev is not None and now > prev[1]:
                s["cpu_pct"] += 100.0 * (p.cpu - prev[0]) / scan.CLK_TCK / (now - prev[1])
            cpu_now[p.pid] = (p.cpu, now)
        self.last_cpu = cpu_now
        out = []
        for ses, s in per.items():
            doc = base_doc(host=self.host, timestamp=now, module="psutil", dataset="psutil.process", kind="state",
                           event_id=make_event_id(self.host.id, self.host.boot_id, "psutil.session-state", ses, now),
                           category=["process"], type=["info"], action="session-resources", outcome="success")
            doc["auditd"] = {"session": str(ses)}
            doc["agentd"] = {"snapshot": {"seen_by": "snapshot", "login_uid": s["auid"],
                                          "resources": {"cpu_pct": round(s["cpu_pct"], 1),
                                                        "rss_bytes": s["rss_bytes"], "processes": s["processes"]}}}
            out.append(doc)
        return out

    def host_state(self, now: float) -> dict:
        vm = psutil.virtual_memory()
        cpu = psutil.cpu_percent(None)
        doc = base_doc(host=self.host, timestamp=now, module="psutil", dataset="psutil.host", kind="state",
                       event_id=make_event_id(self.host.id, self.host.boot_id, "psutil.host-state", now),
                       category=["host"], type=["info"], action="host-resources", outcome="success")
        doc["host"]["cpu"] = {"usage": round(cpu / 100.0, 4)}
        disks = []
        for path in self.disk_paths:
            d = _disk(path)
            if d is not None:
                disks.append(d)
        doc["agentd"] = {"host": {
            "memory": {"total_bytes": vm.total, "available_bytes": vm.available, "used_pct": vm.percent},
            "load": [round(x, 2) for x in os.getloadavg()],
            "disks": disks,
            "auditd_running": self._auditd_running(),
        }}
        return doc

    def _auditd_running(self) -> bool:
        """auditd where it was last seen, else a search of every process (once, not at
        every state report: that read the stat of each process on the host)."""
        if self.auditd_pid and (scan.stat(self.auditd_pid) or ("",))[0] == "auditd":
            return True
        self.auditd_pid = 0
        for pid in scan.pids():
            st = scan.stat(pid)
            if st is not None and st[0] == "auditd":
                self.auditd_pid = pid
                return True
        return False


def _disk(path: str) -> Optional[dict]:
    # the nearest existing directory: the audit log's directory may be all there is
    while path and not os.path.exists(path):
        path = os.path.dirname(path)
    try:
        u = psutil.disk_usage(path)
    except OSError:
        return None
    return {"path": path, "free_bytes": u.free, "used_pct": u.percent}
