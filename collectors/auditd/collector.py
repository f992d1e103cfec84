"""The auditd collector: follow audit.log, parse, reassemble, normalize, emit."""

from __future__ import annotations

from agent.options import Option
from collectors.base import Collector


class AuditdCollector(Collector):
    type_name = "auditd"
    description = "tail auditd's log (RAW or ENRICHED) and normalize its events"
    options = {
        "log_file": Option("path", "/var/log/audit/audit.log", "auditd's log file (auditd.conf log_file)"),
        "start_at": Option(
            "choice", "end", "where to start when there is no checkpoint: end or beginning of the log",
            choices=("end", "beginning"),
        ),
        "event_timeout": Option(
            "duration", "2s", "an incomplete audit event is emitted once records this much newer arrive",
            minimum=0.0,
        ),
        "max_line_bytes": Option("size", "64KiB", "longer lines are dead-lettered, not parsed", minimum=1024),
        "dead_letter_file": Option(
            "str", "", "where malformed lines go with the reason; empty means <state_dir>/dead-letter/auditd.log",
        ),
        "resolve_ids": Option("bool", "true", "turn uid/gid into names from local passwd/group when the log is RAW"),
    }
