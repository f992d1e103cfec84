"""A login's summary events (``agentd.session``: session-started, session-ended) as
documents, from the join's state of that login; the join decides when."""

from __future__ import annotations

from agent.base.events import HostInfo, base_doc, make_event_id


def login_text(s: dict) -> str:
    """The timeline row of a login or logout: who, from where, how, on which terminal."""
    src = s["source"]
    return (f"{s.get('user')} from {src.get('ip', '?')} port {src.get('port', '?')} "
            f"{(s['auth'] or {}).get('method', '')} {s.get('tty', '')}").strip()


def summary_doc(host: HostInfo, s: dict, public: dict, action: str, revision: int = 0) -> dict:
    """The summary event of login ``s`` (``public``: its session.* as events carry it);
    ``revision`` > 0 is a corrected re-issue of an ended login's summary, under its own id."""
    ended = action == "session-ended"
    ts = s["end"] if ended else s["start"]
    parts = (s["id"], action, revision) if revision else (s["id"], action)
    doc = base_doc(
        host=host, timestamp=ts, event_id=make_event_id(host.id, "session", *parts),
        module="agentd", dataset="agentd.session", kind="state", category=["session"],
        type=["end" if ended else "start"], action=action, outcome="success",
    )
    doc["session"] = public
    doc["user"] = {"name": s.get("user")}
    if ended:
        doc["event"]["duration"] = int((s["end"] - s["start"]) * 1e9)
        gaps = s.get("gaps") or []
        doc["agentd"] = {"session": {"commands": s["commands"], "hosts": list(s["hosts"]),
                                     "bytes_transferred": s["bytes"], "bytes_in": s.get("bytes_in", 0),
                                     "bytes_out": s.get("bytes_out", 0), "alerts": s["alerts"],
                                     "complete": not gaps}}
        doc["message"] = (f"session of {s.get('user')} ended: {s['commands']} commands, "
                          f"{len(s['hosts'])} hosts, {s['bytes']} bytes transferred")
        if gaps:
            doc["agentd"]["session"]["gaps"] = [dict(g) for g in gaps]
            doc["message"] += "; timeline incomplete: " + "; ".join(g["message"] for g in gaps)
    return doc
