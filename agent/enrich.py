"""What happens to every event between its collector and the spool (or replay
output): the session join, then redaction. Redaction is last, so nothing another
stage copies into the event escapes it, and it runs before the spool, so secrets
never touch disk."""

from __future__ import annotations

from agent.events import Event
from agent.redact import Redactor
from agent.sessions import SessionTracker


class Enricher:
    def __init__(self, agent_conf: dict, host, store=None, live: bool = False):
        self.sessions = SessionTracker(host, store=store, live=live)
        self.redactor = None
        if agent_conf.get("redact", True):
            self.redactor = Redactor(enabled=True, extra_patterns=agent_conf.get("redact_patterns") or ())

    def apply(self, events: list) -> list:
        """Enrich events in place; returns them plus any session summaries they caused."""
        out = []
        for e in events:
            extra = self.sessions.apply(e.doc)
            out.append(e)
            out.extend(Event(d) for d in extra)
        if self.redactor is not None:
            for e in out:
                self.redactor.apply(e.doc)
        return out

    def commit(self) -> None:
        """After the batch is stored: persist the session table."""
        self.sessions.save()
