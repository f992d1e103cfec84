"""What happens to every event between its collector and the spool (or replay
output): redaction, then the session join. Both run before the spool, so
secrets never touch disk, and the join (which keeps a timeline of commands and
keystrokes in the spool database) only sees masked text."""

from __future__ import annotations

from agent.events import Event
from agent.redact import Redactor
from agent.sessions import SessionTracker


class Enricher:
    def __init__(self, agent_conf: dict, host, store=None, live: bool = False, expect_journal: bool = False):
        self.sessions = SessionTracker(host, store=store, live=live, expect_journal=expect_journal)
        self.redactor = None
        if agent_conf.get("redact", True):
            self.redactor = Redactor(enabled=True, extra_patterns=agent_conf.get("redact_patterns") or ())

    def apply(self, events: list) -> list:
        """Enrich events in place; returns them plus any session summaries they caused.

        Redaction comes first: the session timeline copies command lines and
        keystrokes into the spool database, so it must only ever see masked text.
        """
        out = []
        redactor = self.redactor
        for e in events:
            if redactor is not None:
                redactor.apply(e.doc)
            extra = self.sessions.apply(e.doc)
            out.append(e)
            for d in extra:
                if redactor is not None:
                    redactor.apply(d)
                out.append(Event(d))
        return out

    def commit(self, force: bool = False) -> None:
        """After the batch is stored: persist the session table."""
        self.sessions.save(force)
