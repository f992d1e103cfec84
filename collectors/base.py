"""The collector contract.

A collector runs in its own thread until ``stop`` is set. It calls
``emit(events, position)`` with the events read since the last call and the
source position up to which everything has been turned into those events. The
pipeline commits both in one spool transaction, so on restart ``start(position)``
resumes exactly after what is safely stored. ``emit`` may block: that is the
backpressure (the audit log and the journal buffer for us on disk).
"""

from __future__ import annotations

import threading
from typing import Callable, Optional

from agent.base.component import Component
from agent.base.events import Event, Position

Emit = Callable[[list, Optional[Position]], None]


class Collector(Component):
    def run(self, emit: Emit, stop: threading.Event, position: Optional[Position] = None) -> None:
        """Read until ``stop`` is set, resuming after ``position`` when given."""
        raise NotImplementedError

    def replay(self, source: str, emit: Emit) -> None:
        """Read an existing file or directory to its end (``agentd replay``)."""
        raise NotImplementedError


__all__ = ["Collector", "Emit", "Event", "Position"]
