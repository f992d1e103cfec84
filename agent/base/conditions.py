"""One ERROR line per change of condition, not one per retry (journalpump, Vector)."""

from __future__ import annotations

import logging
import time
from typing import Optional

log = logging.getLogger("agentd.ship")


class ConditionLog:
    """Logs ONE ERROR line when a condition starts or changes, an INFO when it ends.

    A SIEM that is down for an hour while the worker retries every few seconds
    must not write a thousand identical lines; the first line, the change to a
    different problem and the recovery are what an operator needs.
    """

    def __init__(self, name: str, logger: Optional[logging.Logger] = None):
        self.name = name
        self.log = logger or log
        self.current = ""
        self.count = 0
        self.since = 0.0

    def error(self, condition: str) -> None:
        self.count += 1
        if condition != self.current:
            self.log.error("%s: %s", self.name, condition)
            self.current = condition
            self.since = self.since or time.monotonic()

    def clear(self) -> None:
        if self.current:
            self.log.info("%s: recovered after %d failed attempt(s) over %.0fs", self.name, self.count,
                          time.monotonic() - self.since)
        self.current = ""
        self.count = 0
        self.since = 0.0
