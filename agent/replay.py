"""`agentd replay`: the collectors' parsing and normalization over existing files.

Same code as the daemon, minus following and the spool: the forensic path from a
bastion's old logs to the SIEM format, and the easiest way to see what the agent
makes of a given log.
"""

from __future__ import annotations

import argparse
import sys

from agent.component import RunContext
from agent.config import AGENT_OPTIONS, ConfigError, load_config
from agent.enrich import Enricher


def _agent_conf(path):
    if path:
        cfg = load_config(path)
        collectors = {c.type_name: c.conf for c in cfg.collectors}
        return cfg.agent, collectors
    return {k: o.default_value() for k, o in AGENT_OPTIONS.items()}, {}


def run(args: argparse.Namespace) -> int:
    try:
        agent_conf, collector_confs = _agent_conf(args.config)
    except ConfigError as e:
        for line in e.lines:
            print(line, file=sys.stderr)
        return 2
    ctx = RunContext(agent_conf)
    enricher = Enricher(agent_conf)
    out = sys.stdout.buffer if args.output == "-" else open(args.output, "wb")
    total = 0

    def emit(events, position):
        nonlocal total
        if not events:
            return
        enricher.apply([e.doc for e in events])
        out.write(b"".join(e.to_json() + b"\n" for e in events))
        total += len(events)

    status = 0
    try:
        if args.audit_log:
            from collectors.auditd.collector import AuditdCollector

            conf = {k: o.default_value() for k, o in AuditdCollector.options.items()}
            conf.update(collector_confs.get("auditd", {}))
            conf["dead_letter_file"] = args.dead_letter
            collector = AuditdCollector("replay", conf, ctx)
            for path in args.audit_log:
                try:
                    collector.replay(path, emit)
                except OSError as e:
                    print(f"Error: {path}: {e.strerror}", file=sys.stderr)
                    status = 1
            st = collector.stats
            kept = f", kept in {args.dead_letter}" if st["malformed"] else ""
            print(f"agentd replay: {st['lines']} lines, {st['records']} records, {st['events']} events, "
                  f"{st['malformed']} malformed{kept}", file=sys.stderr)
        if args.journal:
            print("Error: --journal: the journald collector is not available in this version", file=sys.stderr)
            status = 1
    finally:
        out.flush()
        if out is not sys.stdout.buffer:
            out.close()
    return status
