"""The detection stage: every event after redaction and the session join, before the spool.

Rules are routed by ``event.dataset`` so an event meets only the rules that can
match it; an exec or typed lines meet only those their gates let through (gate.py).
Each match becomes an alert unless the same rule already alerted for the same session
(or source) within the throttle window; swallowed matches are counted into the next
alert. Rule state (windows, what was seen) and the throttle table are
bounded, saved in the spool database with the batch, and loaded at start, so a
restart or a SIGHUP reload loses neither.
"""

from __future__ import annotations

import hashlib
import logging
import os
import time
from typing import Optional

from agent.base.events import base_doc, dumps, loads, make_event_id, parse_rfc3339
from agent.pipeline.detections import options as dopts
from agent.pipeline.detections.alert import RuleMeta, alert_doc
from agent.pipeline.detections.gate import EXEC, TYPED, CommandRoute
from agent.pipeline.detections.rules import BUILTIN
from agent.pipeline.detections.rules.base import Hit

log = logging.getLogger("agentd.detections")

KV_KEY = "detections.v1"
SAVE_EVERY = 5.0
EXPIRE_EVERY = 60.0
CODE_ROOTS = ("agent", "collectors", "shippers")


def builtin_meta(cls) -> RuleMeta:
    return RuleMeta(cls.id, cls.name, cls.description, "agentd", cls.severity, cls.techniques)


def code_digest() -> str:
    """A digest of agentd's own code, so a changed binary is seen at the next start."""
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
    h = hashlib.sha256()
    for top in CODE_ROOTS:
        for dirpath, dirnames, files in os.walk(os.path.join(root, top)):
            dirnames[:] = sorted(d for d in dirnames if d != "__pycache__")
            for f in sorted(files):
                if f.endswith(".py"):
                    p = os.path.join(dirpath, f)
                    h.update(p[len(root):].encode())
                    try:
                        with open(p, "rb") as fh:
                            h.update(fh.read())
                    except OSError:
                        pass
    return h.hexdigest()[:32]


def file_digest(path: Optional[str]) -> str:
    if not path:
        return ""
    try:
        with open(path, "rb") as f:
            return hashlib.sha256(f.read()).hexdigest()[:32]
    except OSError:
        return ""


class DetectionStage:
    def __init__(self, sections: Optional[dict], host, store=None, sessions=None, live: bool = False,
                 config_path: Optional[str] = None, now=time.time, cache_dir: Optional[str] = None,
                 drop_original: bool = False):
        conf = dopts.defaults()
        for name, values in (sections or {}).items():
            if name in conf:
                conf[name].update(values)
        self.conf = conf["detections"]
        self.host = host
        self.store = store
        self.sessions = sessions
        self.live = live
        self.now = now
        self.config_path = config_path
        self.state: dict = self._load()
        self.rules: list = []
        self.meta: dict = {}
        rule_state = self.state.setdefault("rules", {})
        for cls in BUILTIN:
            rconf = conf[f"detection:{cls.key}"]
            if not rconf["enabled"]:
                continue
            rule = cls(rconf, rule_state.setdefault(cls.key, {}))
            self.rules.append(rule)
            self.meta[cls.id] = builtin_meta(cls)
        self.sigma = None
        if self.conf["sigma_dirs"]:
            from agent.pipeline.detections.sigma.ruleset import SigmaRuleSet

            self.sigma = SigmaRuleSet(self.conf["sigma_dirs"], disabled=self.conf["sigma_disabled"],
                                      cache_dir=cache_dir)
            # Reported once per load (start or SIGHUP), never per event.
            for path, rid, title, reason in self.sigma.skipped:
                log.info("sigma: skipped %s (%s) in %s: %s", rid, title, path, reason)
            for path, reason in self.sigma.errors:
                log.error("sigma: %s: %s", path, reason)
            log.info("sigma: %d rules loaded, %d skipped, %d files with errors", len(self.sigma.rules),
                     len(self.sigma.skipped), len(self.sigma.errors))
        # Raw records (event.original) some Sigma rule's keywords read: the collectors attach
        # them to these datasets; dropped here after matching unless keep_original is on.
        self.raw_datasets = self.sigma.raw_datasets if self.sigma is not None else frozenset()
        self.drop_original = drop_original  # keep_original off: raw text only for matching
        self.route: dict = {}
        for rule in self.rules:
            for ds in rule.datasets or ("*",):
                self.route.setdefault(ds, []).append(rule)
        self.everywhere = tuple(self.route.pop("*", ()))
        # One list per dataset, the rules for every dataset included: one lookup per event.
        self.route = {ds: tuple(rules) + self.everywhere for ds, rules in self.route.items()}
        # Execs and typed lines meet only the rules their gates let through (gate.py).
        self.commands: dict = {ds: (action, CommandRoute(self.route.get(ds, self.everywhere), (ds, action) == EXEC))
                               for ds, action in (EXEC, TYPED)}
        self.throttle: dict = self.state.setdefault("throttle", {})
        self.stats = {"alerts": 0, "suppressed": 0, "errors": 0}
        self.failed: set = set()
        self._dirty = False
        self._saved_at = 0.0
        self._expired_at = 0.0
        self._stamp: object = None
        self._ts: Optional[float] = None
        self._startup: list = self._startup_events() if live else []

    # -- persistence ---------------------------------------------------------

    def _load(self) -> dict:
        if self.store is None:
            return {}
        raw = self.store.kv_get(KV_KEY)
        if not raw:
            return {}
        try:
            data = loads(raw)
        except ValueError:
            log.warning("detections: saved rule state unreadable; starting empty")
            return {}
        return data if isinstance(data, dict) else {}

    def commit(self, force: bool = False) -> None:
        if self.store is None:
            return
        now = self.now()
        if not force and (not self._dirty or now - self._saved_at < SAVE_EVERY):
            return
        meta = self.state.setdefault("agent", {})
        meta["saved"] = now
        meta["clean"] = bool(force)  # only the stop path forces: anything else is a kill or crash
        self._saved_at = now
        self._dirty = False
        self.store.transaction([("INSERT OR REPLACE INTO kv VALUES (?, ?, ?)", (KV_KEY, dumps(self.state), now),
                                 False)])

    def _expire(self, ts: float) -> None:
        self._expired_at = ts
        window = self.conf["throttle"]
        for k in [k for k, v in self.throttle.items() if ts - v[0] > max(window, 60) * 2]:
            del self.throttle[k]
        for rule in self.rules:
            rule.expire(ts)

    # -- the stage -----------------------------------------------------------

    def apply(self, doc: dict) -> list:
        ev = doc.get("event") or {}
        if ev.get("kind") == "alert":
            return []
        out: list = []
        if self._startup:
            out += self._run_startup()
        stamp = doc.get("@timestamp")
        if stamp != self._stamp:  # batches share timestamps: parse each once
            self._stamp, self._ts = stamp, parse_rfc3339(stamp)
        ts = self._ts if self._ts is not None else self.now()
        hits: list = []
        ds = ev.get("dataset", "")
        rules = self.route.get(ds, self.everywhere)
        command = self.commands.get(ds)
        run = command[1].select(doc) if command is not None and ev.get("action") == command[0] else rules
        for rule in run:  # inline, not through _check: this loop runs for every event
            try:
                got = rule.check(doc, ts)
            except Exception:
                self._failed(rule, doc)
                continue
            for h in got:
                hits.append((rule.id, h))
        if ds == "agentd.gap" and not doc.get("session") and self.sessions is not None:
            hits += self._gap_in_sessions(doc, ts)
        if self.sigma is not None:
            try:
                hits += self.sigma.match(doc)
            except Exception:
                self.stats["errors"] += 1
                log.exception("detections: Sigma evaluation failed on event %s", ev.get("id"))
            if self.drop_original and ds in self.raw_datasets:
                ev.pop("original", None)
        if rules or hits:
            self._dirty = True
        for meta_id, hit in hits:
            a = self._alert(meta_id, hit, ts)
            if a is not None:
                out.append(a)
        if ts - self._expired_at > EXPIRE_EVERY:
            self._expire(ts)
        return out

    def _check(self, rule, doc: dict, ts: float) -> list:
        try:
            return [(rule.id, h) for h in rule.check(doc, ts)]
        except Exception:
            self._failed(rule, doc)
            return []

    def _failed(self, rule, doc: dict) -> None:
        # A rule bug must never stop events: logged once per rule, counted.
        self.stats["errors"] += 1
        if rule.id not in self.failed:
            self.failed.add(rule.id)
            log.exception("detections: rule %s failed on event %s", rule.id, doc["event"].get("id"))

    def _gap_in_sessions(self, doc: dict, ts: float) -> list:
        """A gap the session join found inside several sessions (agentd.gap.sessions): one hit each."""
        rule = next((r for r in self.route.get("agentd.gap", ()) if r.key == "session_loss"), None)
        ids = ((doc.get("agentd") or {}).get("gap") or {}).get("sessions") or []
        if rule is None or not ids:
            return []
        users = {s.get("id"): s.get("user") for s in self.sessions.snapshot()}
        out = []
        for sid in ids:
            out += self._check(rule, dict(doc, session={"id": sid, "user": users.get(sid)}), ts)
        return out

    def _alert(self, meta_id: str, hit: Hit, ts: float) -> Optional[dict]:
        meta = self.meta.get(meta_id) or (self.sigma.meta.get(meta_id) if self.sigma else None)
        if meta is None:
            return None
        key = f"{meta_id}|{hit.key or (hit.doc.get('session') or {}).get('id') or ''}"
        entry = self.throttle.get(key)
        window = self.conf["throttle"]
        if entry is not None and 0 <= ts - entry[0] < window:
            entry[1] += 1
            self.stats["suppressed"] += 1
            return None
        suppressed = entry[1] if entry else 0
        self.throttle[key] = [ts, 0]
        self.stats["alerts"] += 1
        return alert_doc(self.host, meta, hit, ts, suppressed)

    # -- the agent's own start ---------------------------------------------------

    def _startup_events(self) -> list:
        """Compare what the last run saved with now: killed, long stopped, config or code changed."""
        agent = self.state.setdefault("agent", {})
        now = self.now()
        code, cfg = code_digest(), file_digest(self.config_path)
        findings = []
        if agent.get("saved"):
            down = now - agent["saved"]
            if not agent.get("clean"):
                findings.append(("agent-killed", f"agentd was killed or crashed (not stopped cleanly); events "
                                 f"since {down:.0f}s before this start were not watched live"))
            else:
                rule = next((r for r in self.rules if r.key == "agent_tampered"), None)
                if rule is not None and down > rule.conf["max_downtime"]:
                    findings.append(("agent-was-stopped", f"agentd was stopped for {down:.0f}s"))
            if agent.get("code") and agent["code"] != code:
                findings.append(("agent-code-changed", "agentd's code changed since its last run"))
            if agent.get("config") and cfg and agent["config"] != cfg:
                findings.append(("agent-config-changed", f"agentd's config {self.config_path} changed since its "
                                 "last run"))
        agent.update(code=code, config=cfg, started=now)
        # Saved as "running" at once: a kill before the first batch must still be seen.
        self._dirty = True
        self.commit()
        docs = []
        for action, message in findings:
            doc = base_doc(host=self.host, timestamp=now, event_id=make_event_id(self.host.id, "agent", action, now),
                           module="agentd", dataset="agentd.agent", kind="event", category=["host"],
                           type=["change"], action=action, outcome="unknown")
            doc["message"] = message
            docs.append(doc)
        return docs

    def startup(self) -> list:
        """The start-up findings (killed, stopped long, code/config changed) and their alerts,
        at once: waiting for the next event would leave a kill unreported on a quiet bastion."""
        return self._run_startup() if self._startup else []

    def _run_startup(self) -> list:
        docs, self._startup = self._startup, []
        out = []
        for doc in docs:
            out.append(doc)
            out += self.apply(doc)
        return out

    # -- reports -------------------------------------------------------------------

    def describe(self) -> dict:
        """What `agentd rules list` and replay report: loaded, skipped (why) and replay caveats."""
        loaded = [(m.id, m.name, m.ruleset, m.level) for m in self.meta.values()]
        notes = [(r.id, r.replay_note) for r in self.rules if r.replay_note]
        skipped = []
        if self.sigma is not None:
            loaded += [(m.id, m.name, "sigma", m.level) for m in self.sigma.meta.values()]
            skipped = list(self.sigma.skipped)
        return {"loaded": loaded, "skipped": skipped, "replay_notes": notes}
