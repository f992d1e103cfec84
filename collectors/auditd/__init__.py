"""The auditd collector: /var/log/audit/audit.log -> ECS events.

The modules in the order the data flows through them:

1. tail.py: follow the log across rotations, line by complete line, with positions;
2. parse.py: a line -> an AuditRecord (fields parsed on first use);
3. reassemble.py: records -> AuditEvents (and Gaps: evidence of loss);
4. decode.py, names.py: raw values -> bytes and text (hex, argv, proctitle, sockaddr),
   uid/gid -> names; keystrokes/: TTY bytes -> aureport's text and the typed lines;
5. normalize/: an AuditEvent -> an ECS document.

collector.py wires them together as the agent's Collector. raw_redact.py is the other
direction, for the pipeline's redaction stage: masking inside auditd's raw forms (hex
arguments, PROCTITLE, TTY data) of event.original.
"""
