"""One fact, two sources: the audit `connect` and the snapshot of the same connection
(or the audit exec and the snapshot of the same process) meet here.

Both events are kept, each under its own deterministic event.id (the same id twice
would make Elasticsearch's `create` drop the second with a 409), and the later of the
two names the earlier in ``agentd.same_as``: a search on either finds the other, and
a count of connections can skip events that have ``agentd.same_as``.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Optional

MAX_KEYS = 8192  # remembered facts; old ones go first (a snapshot follows its audit record by seconds)


def _key(doc: dict) -> Optional[tuple]:
    ev = doc.get("event") or {}
    action = ev.get("action")
    proc = doc.get("process") or {}
    ses = (doc.get("auditd") or {}).get("session")
    pid = proc.get("pid")
    if pid is None:
        return None
    if action in ("connected-to", "connection-opened"):
        dst = doc.get("destination") or {}
        if not dst.get("ip") or (doc.get("network") or {}).get("direction") == "ingress":
            return None
        return ("net", ses, pid, dst["ip"], dst.get("port"))
    if (action in ("exec", "executed") and ev.get("outcome") == "success") or action == "process-started":
        return ("exec", ses, pid, proc.get("executable"))
    return None


class SameFact:
    def __init__(self):
        self.seen: OrderedDict = OrderedDict()  # key -> (module, event id)

    def apply(self, doc: dict) -> list:
        key = _key(doc)
        if key is None:
            return []
        module = doc["event"].get("module")
        prev = self.seen.get(key)
        if prev is not None and prev[0] != module:
            doc.setdefault("agentd", {})["same_as"] = prev[1]
            del self.seen[key]  # met: a later third report of it is a new fact
            return []
        self.seen[key] = (module, doc["event"].get("id"))
        self.seen.move_to_end(key)
        if len(self.seen) > MAX_KEYS:
            self.seen.popitem(last=False)
        return []

    def commit(self, force: bool = False) -> None:
        pass
