"""What happens to every event between its collector and the spool (or replay
output): the session join and redaction. Redaction is last, so nothing another
stage copies into the event escapes it, and it runs before the spool, so secrets
never touch disk."""

from __future__ import annotations

import logging
from typing import Optional

log = logging.getLogger("agentd.enrich")


class Enricher:
    def __init__(self, agent_conf: dict, sessions=None):
        self.sessions = sessions
        self.redactor = None
        if agent_conf.get("redact", True):
            try:
                from agent.redact import Redactor
            except ImportError:  # pragma: no cover - only while the module is absent
                log.warning("redaction module missing: events are NOT redacted")
            else:
                self.redactor = Redactor(enabled=True, extra_patterns=agent_conf.get("redact_patterns") or ())

    def apply(self, docs: list, session_source: Optional[str] = None) -> None:
        """Enrich ECS dicts in place."""
        if self.sessions is not None:
            for doc in docs:
                self.sessions.apply(doc)
        if self.redactor is not None:
            for doc in docs:
                self.redactor.apply(doc)
