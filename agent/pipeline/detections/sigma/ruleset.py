"""Load Sigma rule files from directories, compile what agentd can evaluate, report the rest.

pySigma parses the YAML and the conditions in a child process (compile_rules.py) that
hands back a compact form and exits: the agent never holds pySigma or its parsed
objects, only the evaluators built from that form (evaluate.py). Nothing reaches the
network: the child uses the vendored ATT&CK subset. A rule agentd cannot evaluate is
skipped with its reason, once, at load; a file that no longer parses on reload keeps
its previous version running.
"""

from __future__ import annotations

import json
import os
import sys
from typing import Optional

from agent.pipeline.detections.alert import RuleMeta
from agent.pipeline.detections.rules.base import Hit, get
from agent.pipeline.detections.sigma import evaluate as E
from agent.pipeline.detections.sigma import fields as F
from agent.pipeline.detections.sigma import index
from agent.pipeline.detections.sigma.cache import compile_cached

_LAST_GOOD: dict = {}  # path -> compiled rules of its last good parse (kept across SIGHUP reloads)
_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))))
LICENSE = "Detection Rule License 1.1"


class CompileError(Exception):
    """The compiling child failed as a whole (not one rule or file): the message says how."""


def compile_files(paths: list) -> list:
    """compile_rules.py's answer for ``paths``, from a child process."""
    import subprocess  # only when the compiled rules are not cached: not on every start

    env = dict(os.environ, PYTHONPATH=os.pathsep.join(x for x in (_ROOT, os.environ.get("PYTHONPATH")) if x))
    # -P: never the working directory first on the path (a stray ./agent would shadow ours).
    r = subprocess.run([sys.executable, "-P", "-m", "agent.pipeline.detections.sigma.compile_rules"],
                       input=json.dumps(paths), capture_output=True, text=True, env=env)
    if r.returncode != 0:
        raise CompileError(f"the Sigma compiler exited with {r.returncode}: {r.stderr.strip()[-500:]}")
    return json.loads(r.stdout)


def _walk(dirs: list) -> tuple:
    files, missing = [], []
    for d in dirs:
        if not os.path.isdir(d):
            missing.append(d)
            continue
        for root, dirnames, names in os.walk(d):
            dirnames.sort()
            files += [os.path.join(root, n) for n in sorted(names) if n.endswith((".yml", ".yaml"))]
    return files, missing


class Compiled:
    __slots__ = ("meta", "match", "cond", "getters", "datasets", "needs", "path", "raw")

    def __init__(self, form: dict, path: str):
        category, service = form["source"]
        m = form["meta"]
        self.meta = RuleMeta(m["id"], m["name"], m["description"], "sigma", m["level"], m["techniques"],
                             m["tactics"], reference=m["reference"], tags=m["tags"], author=m["author"],
                             license=LICENSE)
        cond = self.cond = form["cond"]
        # The evaluator is built when an event first meets the rule: most rules never do in a run.
        self.match = self._build
        self.getters = {name: F.getter(category, service, name) for name in E.fields_used(cond, set())}
        self.datasets = F.datasets(category, service)
        self.needs = E.needs(cond)
        self.path = path
        # Keywords of a rule written for auditd's log search its raw records (event.original).
        self.raw = service == "auditd" and E.uses_text(cond)

    def _build(self, ev) -> bool:
        self.match = E.build(self.cond)
        return self.match(ev)


class SigmaRuleSet:
    def __init__(self, dirs: list, disabled=(), cache_dir: Optional[str] = None):
        self.meta: dict = {}
        self.skipped: list = []  # (path, rule id or "", title, reason)
        self.errors: list = []  # (path, reason): files that could not be read at all
        self.cache_dir = cache_dir
        self.dirs = list(dirs)
        self.rules: list = []
        disabled = set(disabled)
        files, missing = _walk(dirs)
        for d in missing:
            self.errors.append((d, "not a directory"))
        for path, items in self._compile(files):
            for item in items:
                if item.meta.id in self.meta:
                    self.skipped.append((path, item.meta.id, item.meta.name,
                                         "duplicate id (loaded from " + self._path_of(item.meta.id) + ")"))
                elif item.meta.id in disabled or item.meta.name in disabled:
                    self.skipped.append((path, item.meta.id, item.meta.name, "disabled in sigma_disabled"))
                else:
                    self.meta[item.meta.id] = item.meta
                    self.rules.append(item)
        self._index()

    def _path_of(self, rule_id: str) -> str:
        return next((r.path for r in self.rules if r.meta.id == rule_id), "?")

    def _compile(self, files: list) -> list:
        if not files:
            return []
        try:
            answers = compile_cached(files, self.dirs, self.cache_dir, compile_files)
        except (CompileError, ValueError, OSError) as e:
            # Nothing parsed: every file keeps its previous version, if it had one.
            answers = [{"path": p, "rules": [], "skipped": [], "error": str(e)} for p in files]
        out = []
        for a in answers:
            path = a["path"]
            if a["error"] is not None:
                if path in _LAST_GOOD:
                    self.errors.append((path, f"does not parse ({a['error']}); its previous version stays loaded"))
                    out.append((path, _LAST_GOOD[path]))
                else:
                    self.errors.append((path, f"does not parse: {a['error']}"))
                continue
            self.skipped += [(path, rid, title, reason) for rid, title, reason in a["skipped"]]
            # Compiled rules hold no state: a reload may hand the same ones out again.
            _LAST_GOOD[path] = [Compiled(f, path) for f in a["rules"]]
            out.append((path, _LAST_GOOD[path]))
        return out

    def _index(self) -> None:
        self.getters: dict = {}
        for r in self.rules:
            self.getters.update(r.getters)
        # The datasets whose events must carry their raw records to this stage.
        self.raw_datasets = frozenset(ds.split(":")[0] for r in self.rules if r.raw for ds in r.datasets)
        self.getters.setdefault(F.COMMAND_LINE, F.getter("process_creation", None, F.COMMAND_LINE))
        reader = lambda f: F.raw_text if f is None else self.getters[f]  # noqa: E731
        self.by_dataset = index.build(self.rules, reader)
        # Execs whose raw text is their command line: keywords and CommandLine in one index.
        self.exec_by_dataset = {**self.by_dataset,
                                **index.build(self.rules, reader, alias={None: F.COMMAND_LINE})}

    def _keys(self, doc: dict, ev: dict, ds: str) -> tuple:
        if ds in F.NET_DATASETS and not (doc.get("destination") or {}).get("ip"):
            # A unix-socket connect is not a Sigma network_connection (Sysmon's are TCP/UDP):
            # "not DestinationIp: 127.0.0.1" would match every one of them.
            return (ds + ":local",)
        if ev.get("module") == "journald":
            return ds, F.JOURNAL_ANY, "journald:" + str(get(doc, "process", "name") or "").lower()
        return (ds,)

    def match(self, doc: dict) -> list:
        ev = doc["event"]
        table = self.exec_by_dataset if F.text_is_command_line(doc) else self.by_dataset
        cands: frozenset = index.NONE  # grown only by what an event's values bring: mostly nothing
        for key in self._keys(doc, ev, ev.get("dataset", "")):
            entry = table.get(key)
            if entry is None:
                continue
            always, fields = entry
            if always:
                cands = cands.union(always)
            for getter, fi in fields:
                raw = getter(doc)
                if raw is None:
                    continue
                if type(raw) is str:
                    got = fi.memo.get(raw)  # FieldIndex.of's memo, without the call
                    if got is None:
                        got = fi.of(raw)
                elif isinstance(raw, list):
                    got = index.NONE.union(*[fi.of(x) for x in raw])
                else:
                    got = fi.of(raw)
                if got:
                    cands = cands | got
        if not cands:
            return []
        ev = E.Event(doc, self.getters, F.raw_text)
        hits = []
        for i in sorted(cands):
            r = self.rules[i]
            if r.match(ev):
                hits.append((r.meta.id, Hit(doc, [doc["event"]["id"]], r.meta.description or r.meta.name,
                                            key=get(doc, "session", "id") or "")))
        return hits
