"""The auditd collector: tail, parse, reassemble, normalize /var/log/audit/audit.log."""
