"""`agentd replay`: the collectors' parsing and normalization over existing files.

Same code as the daemon, minus following and the spool: the forensic path from a
bastion's old logs to the SIEM format, and the easiest way to see what the agent
makes of a given log.

The journal is merged into the audit stream by time before the session join,
so sshd's "Accepted … port … key …" line meets the audit records of the same
login in the order they happened, as it does live.
"""

from __future__ import annotations

import argparse
import collections
import sys

from agent.app.gc_tune import quiet_gc
from agent.base.component import RunContext
from agent.base.config import AGENT_OPTIONS, ConfigError, load_config
from agent.pipeline.detections.sigma.cache import user_cache_dir
from agent.pipeline.pipeline import Pipeline, check_conf


def _confs(path):
    if path:
        cfg = load_config(path)
        errors = check_conf(cfg.agent)
        if errors:
            raise ConfigError([f"Error: {path} [agent] {key}: {msg}" for key, msg in errors])
        return cfg.agent, {c.type_name: c.conf for c in cfg.collectors}, cfg.sections
    return {k: o.default_value() for k, o in AGENT_OPTIONS.items()}, {}, {}


def _collector(cls, name: str, overrides: dict, ctx):
    conf = {k: o.default_value() for k, o in cls.options.items()}
    conf.update(overrides)
    return cls(name, conf, ctx)


def _ts(event) -> str:
    # RFC 3339 strings of one fixed format sort as the times they stand for.
    return event.doc.get("@timestamp", "")


class _Writer:
    def __init__(self, out, pipeline: Pipeline):
        self.out = out
        self.pipeline = pipeline
        self.journal: collections.deque = collections.deque()  # not yet merged, oldest first
        self.count = 0

    def write(self, events: list) -> None:
        if events:
            events = self.pipeline.apply(events)
            self.out.write(b"".join(e.to_json() + b"\n" for e in events))
            self.count += len(events)

    def audit_batch(self, events: list, position=None) -> None:
        if not events:
            return
        merged: list = []
        for ev in events:
            ts = _ts(ev)
            while self.journal and _ts(self.journal[0]) <= ts:
                merged.append(self.journal.popleft())
            merged.append(ev)
        self.write(merged)

    def finish(self) -> None:
        self.write(list(self.journal))
        self.journal.clear()


def _say_detections(pipeline: Pipeline) -> None:
    """Retro-hunt: say which rules cannot give the live result here, instead of silently differing."""
    det = pipeline.detections
    if det is None:
        print("agentd replay: detections off", file=sys.stderr)
        return
    d = det.describe()
    print(f"agentd replay: detections on: {len(d['loaded'])} rules, {len(d['skipped'])} Sigma rules skipped",
          file=sys.stderr)
    for rule_id, note in d["replay_notes"]:
        print(f"agentd replay: rule {rule_id} differs from live: {note}", file=sys.stderr)
    print("agentd replay: rule agentd-agent-tampered: the agent's own stops and changes are seen only live",
          file=sys.stderr)


def run(args: argparse.Namespace) -> int:
    try:
        agent_conf, collector_confs, sections = _confs(args.config)
    except ConfigError as e:
        for line in e.lines:
            print(line, file=sys.stderr)
        return 2
    ctx = RunContext(agent_conf)
    out = sys.stdout.buffer if args.output == "-" else open(args.output, "wb")
    # A retro-hunt runs again and again with the same rules: their compiled form is kept.
    pipeline = Pipeline(agent_conf, ctx.host, expect_journal=bool(args.journal), sections=sections,
                        sigma_cache=user_cache_dir())
    ctx.agent = pipeline.collector_agent_conf(agent_conf)
    _say_detections(pipeline)
    writer = _Writer(out, pipeline)
    status = 0
    restore_gc = quiet_gc()
    try:
        if args.journal:
            from collectors.journald.collector import JournaldCollector

            jc = _collector(JournaldCollector, "replay", collector_confs.get("journald", {}), ctx)
            try:
                jc.replay(args.journal, lambda evs, pos: writer.journal.extend(evs))
            except OSError as e:
                print(f"Error: {args.journal}: {e.strerror or e}", file=sys.stderr)
                status = 1
            writer.journal = collections.deque(sorted(writer.journal, key=_ts))
            writer.pipeline.sessions.preload([e.doc for e in writer.journal])
            print(f"agentd replay: {len(writer.journal)} journal events from {args.journal}", file=sys.stderr)
        if args.audit_log:
            from collectors.auditd.collector import AuditdCollector

            overrides = dict(collector_confs.get("auditd", {}), dead_letter_file=args.dead_letter)
            ac = _collector(AuditdCollector, "replay", overrides, ctx)
            for path in args.audit_log:
                try:
                    ac.replay(path, writer.audit_batch)
                except OSError as e:
                    print(f"Error: {path}: {e.strerror}", file=sys.stderr)
                    status = 1
            st = ac.stats
            kept = f", kept in {args.dead_letter}" if st["malformed"] else ""
            print(f"agentd replay: {st['lines']} audit lines, {st['records']} records, {st['events']} events, "
                  f"{st['malformed']} malformed{kept}", file=sys.stderr)
        writer.finish()
    finally:
        restore_gc()
        out.flush()
        if out is not sys.stdout.buffer:
            out.close()
    return status
