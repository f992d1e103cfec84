"""agentd.gap events: the agent's own evidence of loss, as data (EVENTS.md)."""

from __future__ import annotations

import time
from typing import Optional

from agent.base.events import HostInfo, base_doc, make_event_id


def gap_doc(host: HostInfo, source: str, reason: str, detail: str, *, count: Optional[int] = None,
            timestamp: Optional[float] = None, session: Optional[dict] = None) -> dict:
    ts = time.time() if timestamp is None else timestamp
    doc = base_doc(
        host=host, timestamp=ts, event_id=make_event_id(host.id, "gap", source, reason, detail, ts),
        module="agentd", dataset="agentd.gap", kind="event", category=["host"], type=["info"],
        action="events-lost", outcome="failure",
    )
    gap: dict = {"source": source, "reason": reason, "detail": detail}
    if count is not None:
        gap["count"] = count
    doc["agentd"] = {"gap": gap}
    doc["message"] = f"{source}: events lost ({reason}): {detail}"
    if session:
        doc["session"] = session
    return doc
