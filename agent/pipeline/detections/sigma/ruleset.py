"""Load Sigma rule files from directories, compile what agentd can evaluate, report the rest.

pySigma parses the YAML and the condition; nothing here reaches the network: the
ATT&CK data pySigma would download is replaced by the vendored subset before any
rule is parsed. A rule agentd cannot evaluate is skipped with its reason, once, at
load; a file that no longer parses on reload keeps its previous version running.
"""

from __future__ import annotations

import os
from typing import Optional

import yaml

from agent.pipeline.detections import attack
from agent.pipeline.detections.alert import RuleMeta
from agent.pipeline.detections.rules.base import Hit, get
from agent.pipeline.detections.sigma import fields as F
from agent.pipeline.detections.sigma.compiler import Event, Unsupported, compile_condition, needs

_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_LAST_GOOD: dict = {}  # path -> compiled rules of its last good parse (kept across SIGHUP reloads)


def _offline_pysigma() -> None:
    from sigma.data import mitre_attack

    mitre_attack._load_mitre_attack_data = attack.pysigma_data  # never the network, never ~/.cache


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
    __slots__ = ("meta", "match", "getters", "datasets", "needs", "path")

    def __init__(self, meta, match, getters, datasets, need, path):
        self.meta = meta
        self.match = match
        self.getters = getters
        self.datasets = datasets
        self.needs = need
        self.path = path


def _fields_used(node, out: set) -> set:
    field = getattr(node, "field", None)
    if field is not None:
        out.add(field)
    for a in getattr(node, "args", None) or ():
        if not isinstance(a, str):
            _fields_used(a, out)
    return out


def _meta(rule) -> RuleMeta:
    techniques, tactics, tags = [], [], []
    for tag in rule.tags or ():
        tags.append(f"{tag.namespace}.{tag.name}")
        if tag.namespace != "attack":
            continue
        name = tag.name.lower()
        if name.startswith("t") and name[1:2].isdigit():
            techniques.append(name.upper())
        elif name in attack.TACTICS:
            tactics.append(name)
    level = rule.level.name.lower() if rule.level is not None else "medium"
    author = rule.author or ""
    return RuleMeta(str(rule.id or rule.title), rule.title, rule.description or "", "sigma", level, techniques,
                    tactics, reference=(rule.references or [""])[0], tags=tags, author=author,
                    license="Detection Rule License 1.1")


def compile_rule(rule, path: str) -> Compiled:
    ls = rule.logsource
    if ls.product not in (None, "linux"):
        raise Unsupported(f"log source product {ls.product!r}: agentd reads Linux only")
    if ls.category is not None:
        if ls.category not in F.CATEGORY_FIELDS:
            raise Unsupported(f"log source category {ls.category!r}: agentd has no such events")
        datasets, table = F.CATEGORY_FIELDS[ls.category]
        keywords_ok = False
    else:
        datasets = F.service_datasets(ls.service)
        table = F.AUDITD_FIELDS if ls.service == "auditd" else {}
        keywords_ok = True
    parsed = [cond.parse() for cond in rule.detection.parsed_condition]
    used: set = set()
    for p in parsed:
        _fields_used(p, used)
    getters = {}
    for name in used:
        g = F.auditd_field(name) if ls.service == "auditd" else table.get(name)
        if g is None:
            raise Unsupported(f"field {name!r} is not something agentd's events provide")
        getters[name] = g
    subs = [compile_condition(p, getters, keywords_ok) for p in parsed]
    match = subs[0] if len(subs) == 1 else (lambda ev: any(s(ev) for s in subs))
    need: Optional[list] = []
    for p in parsed:
        got = needs(p)
        need = None if got is None or need is None else need + got
    return Compiled(_meta(rule), match, getters, datasets, need, path)


class SigmaRuleSet:
    def __init__(self, dirs: list, disabled=()):
        self.meta: dict = {}
        self.skipped: list = []  # (path, rule id or "", title, reason)
        self.errors: list = []  # (path, reason): files that could not be read at all
        self.rules: list = []
        disabled = set(disabled)
        files, missing = _walk(dirs)
        for d in missing:
            self.errors.append((d, "not a directory"))
        if files:
            _offline_pysigma()
        for path in files:
            for item in self._load_file(path):
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

    def _load_file(self, path: str) -> list:
        from sigma.collection import SigmaCollection
        from sigma.rule import SigmaRule

        try:
            with open(path, encoding="utf-8") as f:
                text = f.read()
            # libyaml's loader: pySigma's own (pure Python) made loading 154 rules take seconds.
            collection = SigmaCollection.from_dicts(list(yaml.load_all(text, Loader=_LOADER)))
        except Exception as e:  # pySigma raises many types for bad YAML/rules
            reason = " ".join(str(e).split())[:300] or type(e).__name__
            if path in _LAST_GOOD:
                self.errors.append((path, f"does not parse ({reason}); its previous version stays loaded"))
                return _LAST_GOOD[path]
            self.errors.append((path, f"does not parse: {reason}"))
            return []
        out = []
        for rule in collection.rules:
            if not isinstance(rule, SigmaRule):
                self.skipped.append((path, str(getattr(rule, "id", "") or ""), getattr(rule, "title", ""),
                                     f"{type(rule).__name__}: correlation and filter rules are not evaluated"))
                continue
            try:
                out.append(compile_rule(rule, path))
            except Unsupported as e:
                self.skipped.append((path, str(rule.id or ""), rule.title, str(e)))
            except Exception as e:
                self.skipped.append((path, str(rule.id or ""), rule.title, f"cannot compile: {e}"))
        _LAST_GOOD[path] = out
        return out

    def _index(self) -> None:
        """Per dataset: the rules always evaluated, and per field an Aho-Corasick automaton
        from needed literals to the rules needing them."""
        import ahocorasick

        self.getters: dict = {}
        for r in self.rules:
            self.getters.update(r.getters)
        self.by_dataset: dict = {}
        for i, r in enumerate(self.rules):
            for ds in r.datasets:
                always, literals = self.by_dataset.setdefault(ds, ([], {}))
                if not r.needs:
                    always.append(i)
                    continue
                for field, lit in r.needs:
                    literals.setdefault(field, {}).setdefault(lit, set()).add(i)
        for ds, (always, literals) in list(self.by_dataset.items()):
            # One automaton per dataset over all its fields: the event's field values are
            # scanned as one text, segment i being field i, and a literal counts only
            # inside the segment of the field it was needed in.
            fields = list(literals)
            words: dict = {}
            for fi, field in enumerate(fields):
                for lit, idx in literals[field].items():
                    words.setdefault(lit, []).append((fi, len(lit), tuple(sorted(idx))))
            auto = ahocorasick.Automaton()
            for lit, entries in words.items():
                auto.add_word(lit, tuple(entries))
            if words:
                auto.make_automaton()
            getters = tuple(F.raw_text if f is None else self.getters[f] for f in fields)
            self.by_dataset[ds] = (tuple(always), getters, auto if words else None)

    def _keys(self, doc: dict) -> list:
        ev = doc["event"]
        ds = ev.get("dataset", "")
        if ds in F.NET_DATASETS and not (doc.get("destination") or {}).get("ip"):
            # A unix-socket connect is not a Sigma network_connection (Sysmon's are TCP/UDP):
            # "not DestinationIp: 127.0.0.1" would match every one of them.
            return [ds + ":local"]
        keys = [ds]
        if ev.get("module") == "journald":
            keys += [F.JOURNAL_ANY, "journald:" + str(get(doc, "process", "name") or "").lower()]
        return keys

    def match(self, doc: dict) -> list:
        cands: set = set()
        for key in self._keys(doc):
            entry = self.by_dataset.get(key)
            if entry is None:
                continue
            always, getters, auto = entry
            cands.update(always)
            if auto is None:
                continue
            parts, starts, pos = [], [], 0
            for getter in getters:
                raw = getter(doc)
                text = "" if raw is None else ("\x00".join(map(str, raw)) if isinstance(raw, list) else str(raw))
                starts.append(pos)
                parts.append(text)
                pos += len(text) + 1
            starts.append(pos)
            for end, entries in auto.iter("\x01".join(parts).lower()):
                for fi, n, idx in entries:
                    if starts[fi] <= end - n + 1 and end < starts[fi + 1] - 1:
                        cands.update(idx)
        if not cands:
            return []
        ev = Event(doc, self.getters, F.raw_text)
        hits = []
        for i in sorted(cands):
            r = self.rules[i]
            if r.match(ev):
                hits.append((r.meta.id, Hit(doc, [doc["event"]["id"]], r.meta.description or r.meta.name,
                                            key=get(doc, "session", "id") or "")))
        return hits
