"""The one pipeline every event passes, in `agentd run` and `agentd replay` alike.

    normalize (in the collector) -> redaction -> same fact -> session join -> process tree
    -> recordings -> [detections]
    -> spool or output

Redaction is first: the session join keeps a timeline of command lines and
keystrokes in the spool database, and later stages (detections) copy evidence,
so nothing after it may ever see an unmasked secret.

A stage is an object with ``apply(doc) -> list`` (the documents it adds, e.g. a
session summary or an alert) and ``commit(force)`` (persist its state after the
batch is stored). A document a stage adds passes every other stage too, so a
summary is redacted and an alert is joined to its session and counted there; a
stage never sees what it added itself. A new stage is added here, in one place.
"""

from __future__ import annotations

import os
from typing import Optional

from agent.base.events import Event
from agent.pipeline.detections.engine import DetectionStage
from agent.pipeline.process_tree import ProcessTree
from agent.pipeline.recordings import RecordingStage
from agent.pipeline.redact import Redactor, rule_names
from agent.pipeline.same_fact import SameFact
from agent.pipeline.session_store import SessionStore
from agent.pipeline.sessions import SessionTracker


class RedactionStage:
    def __init__(self, redactor: Redactor):
        self.redactor = redactor

    def apply(self, doc: dict) -> list:
        self.redactor.apply(doc)
        return []

    def commit(self, force: bool = False) -> None:
        pass


def check_conf(agent_conf: dict) -> list:
    """[(key, message)] for [agent] settings only the stages can judge (rule names)."""
    unknown = sorted(set(agent_conf.get("redact_disable") or ()) - rule_names())
    if unknown:
        return [("redact_disable", f"unknown rule(s) {', '.join(unknown)}; known: {', '.join(sorted(rule_names()))}")]
    return []


class Pipeline:
    def __init__(self, agent_conf: dict, host, store=None, live: bool = False, expect_journal: bool = False,
                 sections: Optional[dict] = None, config_path: Optional[str] = None,
                 sigma_cache: Optional[str] = None):
        self.sessions = SessionTracker(host, store=SessionStore(store) if store is not None else None, live=live,
                                       expect_journal=expect_journal)
        self.detections: Optional[DetectionStage] = None
        self.stages: list = []
        if agent_conf.get("redact", True):
            self.stages.append(RedactionStage(Redactor(
                enabled=True, extra_patterns=agent_conf.get("redact_patterns") or (),
                disabled=agent_conf.get("redact_disable") or (), extra_names=agent_conf.get("redact_names") or ())))
        # Before the join: the join's timeline shows a fact two sources reported once.
        self.stages.append(SameFact())  # an audit connect/exec and its snapshot name each other
        self.stages.append(self.sessions)
        # After the join: a login's entry leader and source IP come from the session.
        self.stages.append(ProcessTree(host, self.sessions, store=store, live=live))
        # After the join: chunks are ordered, capped and stored per session.
        self.stages.append(RecordingStage(
            host, store=SessionStore(store) if store is not None else None, live=live,
            max_session_bytes=int(agent_conf.get("recording_max_bytes") or 8 << 20),
            keep_seconds=float(agent_conf.get("session_retention") or 30 * 86400.0),
            store_max_bytes=int(agent_conf.get("recording_store_max_bytes") or 512 << 20)))
        if ((sections or {}).get("detections") or {}).get("enabled", True):
            # The compiled Sigma rules are kept in the state directory (start-up without pySigma),
            # else where the caller says (a replay: the user's cache directory).
            state_dir = agent_conf.get("state_dir")
            self.detections = DetectionStage(sections, host, store=store, sessions=self.sessions, live=live,
                                             config_path=config_path,
                                             cache_dir=state_dir if state_dir and os.path.isdir(state_dir)
                                             else sigma_cache,
                                             drop_original=not agent_conf.get("keep_original"))
            self.stages.append(self.detections)

    def collector_agent_conf(self, agent_conf: dict) -> dict:
        """[agent] as the collectors read it: with ``original_datasets``, the datasets whose
        raw records a detection rule reads (Sigma keywords on auditd's log) though
        keep_original is off; the detection stage drops them again after matching."""
        want = self.detections.raw_datasets if self.detections is not None else frozenset()
        if not want or agent_conf.get("keep_original"):
            return agent_conf
        return dict(agent_conf, original_datasets=want)

    def apply(self, events: list) -> list:
        """Run events through every stage, in place; returns them plus what the stages added,
        each added document right after the event that caused it."""
        out = []
        stages = self.stages
        for e in events:
            out.append(e)
            pending = None
            for i, stage in enumerate(stages):
                added = stage.apply(e.doc)
                if added:
                    pending = pending or []
                    pending.extend((d, i) for d in added)
            if pending:
                self._settle(pending, out)
        return out

    def _settle(self, pending: list, out: list) -> None:
        """Documents (doc, the stage that added it) through every other stage, and what they add."""
        stages = self.stages
        while pending:
            doc, origin = pending.pop(0)
            for i, stage in enumerate(stages):
                if i != origin:
                    added = stage.apply(doc)
                    if added:
                        pending.extend((d, i) for d in added)
            out.append(Event(doc))

    def tick(self) -> list:
        """Live, on the daemon's tick: what the stages release by time rather than on an event
        (an end summary that waited for sshd's line), through the other stages like any added
        document."""
        out: list = []
        origin = self.stages.index(self.sessions)
        self._settle([(d, origin) for d in self.sessions.due()], out)
        return out

    def startup(self) -> list:
        """What the stages have to say at start (detections: the agent was killed), as
        documents for the spool before any collector runs."""
        docs = []
        for stage in self.stages:
            fn = getattr(stage, "startup", None)
            if fn is not None:
                docs += fn()
        return docs

    def commit(self, force: bool = False) -> None:
        """After the batch is stored: let each stage persist its state."""
        for stage in self.stages:
            stage.commit(force)
