"""The dispatch: which builder makes the document of an audit event, and gap documents.

Execs take the fast path (fastpath.py) when they have its shape; other SYSCALL events go
to syscall.py, keystrokes to tty.py, the kernel's LOGIN / CONFIG_CHANGE and everything
from user space to user.py.
"""

from __future__ import annotations

from agent.base.events import HostInfo, base_doc, make_event_id
from collectors.auditd.normalize import syscall, tty, user
from collectors.auditd.normalize.document import Documents
from collectors.auditd.normalize.fastpath import FastPath
from collectors.auditd.reassemble import AuditEvent, Gap

__all__ = ["Normalizer"]

# Kernel records that make a SYSCALL event something other than a syscall (user.py, tty.py).
_NOT_SYSCALL = ("CONFIG_CHANGE", "LOGIN", "TTY")


class Normalizer:
    def __init__(self, host: HostInfo, keep_original=False, resolve_ids: bool = True,
                 fast_path: bool = True):
        self.host = host
        self.docs = Documents(host, keep_original, resolve_ids)
        # Lines typed earlier in each audit session (tty.py).
        self.tty_history = tty.new_history()
        # fast_path=False: the general builders only (the fast path's equality test).
        self.fast_path = FastPath(self.docs) if fast_path else None

    def normalize(self, ev: AuditEvent) -> list:
        if self.fast_path is not None:
            doc = self.fast_path.build(ev)
            if doc is not None:
                return [doc]
        by_type: dict = {}
        for r in ev.records:
            t = r.type
            same = by_type.get(t)
            if same is None:
                by_type[t] = [r]
            else:
                same.append(r)
        if "SYSCALL" in by_type and not any(t in by_type for t in _NOT_SYSCALL):
            doc = syscall.build(self.docs, ev, by_type)
        elif "TTY" in by_type or "USER_TTY" in by_type:
            doc = tty.build(self.docs, ev, by_type, self.tty_history)
        else:
            doc = user.build(self.docs, ev, by_type)
        return [doc]

    def gap(self, gap: Gap) -> dict:
        doc = base_doc(
            host=self.host, timestamp=gap.time,
            event_id=make_event_id(self.host.id, "auditd-gap", gap.node, gap.stamp, gap.reason, gap.first),
            module="agentd", dataset="agentd.gap", category=["host"], type=["info"],
            action="events-lost", outcome="failure",
        )
        g: dict = {"source": "auditd", "reason": gap.reason, "count": gap.count}
        if gap.first is not None:
            g["first_serial"], g["last_serial"] = gap.first, gap.last
        if gap.node:
            g["node"] = gap.node
        doc["agentd"] = {"gap": g}
        doc["message"] = (
            f"auditd: {gap.count} audit records lost (kernel lost counter)" if gap.reason == "kernel-lost"
            else f"auditd: serials {gap.first}-{gap.last} missing from the log ({gap.count})"
        )
        return doc
