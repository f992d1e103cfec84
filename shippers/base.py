"""The shipper contract: send a batch, return an outcome per event, never raise on
what the destination answered.

The pipeline marks an event done for a shipper only when it comes back in
``delivered`` (or ``rejected``, which goes to the dead-letter file with the
reason). Everything in ``retry`` is sent again later, in order.
"""

from __future__ import annotations

from typing import Optional

from agent.base.component import Component


class SendResult:
    """Outcome of one ``send``: indexes into the batch that was passed in."""

    __slots__ = ("delivered", "retry", "rejected", "retry_after", "error", "waiting")

    def __init__(
        self,
        delivered: Optional[list] = None,
        retry: Optional[list] = None,
        rejected: Optional[list] = None,
        retry_after: Optional[float] = None,
        error: str = "",
    ):
        self.delivered = delivered or []
        self.retry = retry or []
        self.rejected = rejected or []  # [(index, reason)]
        self.retry_after = retry_after  # seconds, from a Retry-After header
        self.error = error  # one line for the log and `agentd status`; never a secret
        # True when the retries are a normal wait (e.g. HEC indexer acks still
        # pending), not a failure: the worker polls again quietly, no backoff.
        self.waiting = False

    @classmethod
    def all_delivered(cls, n: int) -> SendResult:
        return cls(delivered=list(range(n)))

    @classmethod
    def all_retry(cls, n: int, error: str, retry_after: Optional[float] = None) -> SendResult:
        return cls(retry=list(range(n)), error=error, retry_after=retry_after)

    @property
    def ok(self) -> bool:
        return not self.retry

    def __repr__(self) -> str:
        return (f"SendResult(delivered={len(self.delivered)}, retry={len(self.retry)}, "
                f"rejected={len(self.rejected)}, error={self.error!r})")


class Shipper(Component):
    # True when send() takes ``raw``: each event's JSON exactly as the spool holds it
    # (compact, sorted keys), in the same order as ``events``. A shipper that puts
    # those bytes on the wire does not serialize every event a second time. With raw,
    # ``events`` parses an event each time it is indexed: read each one once.
    takes_raw = False

    def send(self, events: list, raw: Optional[list] = None) -> SendResult:
        """Deliver ``events`` (ECS dicts, in spool order)."""
        raise NotImplementedError

    def health(self) -> tuple:
        """Online check for `agentd check-config --online`: (ok, message)."""
        return True, "no online check for this shipper"

    def close(self) -> None:
        pass
