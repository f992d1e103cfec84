"""Alert documents: ECS event.kind=alert with rule.*, threat.* and the evidence."""

from __future__ import annotations

from agent.base.events import HostInfo, add_related, base_doc, make_event_id
from agent.pipeline.detections.attack import threat

# Sigma level -> (Kibana severity, risk score), as Elastic's Sigma conversion maps them.
LEVELS = {
    "informational": ("low", 1),
    "low": ("low", 21),
    "medium": ("medium", 47),
    "high": ("high", 73),
    "critical": ("critical", 99),
}


class RuleMeta:
    """What an alert says about the rule that raised it (built-in or Sigma)."""

    __slots__ = ("id", "name", "description", "reference", "ruleset", "level", "techniques", "tactics", "tags",
                 "author", "license", "threat")

    def __init__(self, id: str, name: str, description: str, ruleset: str, level: str, techniques=(),
                 tactics=(), reference: str = "", tags=(), author: str = "", license: str = ""):
        self.id = id
        self.name = name
        self.description = description
        self.ruleset = ruleset
        self.level = level if level in LEVELS else "medium"
        self.techniques = tuple(techniques)
        self.tactics = tuple(tactics)
        self.reference = reference or (
            f"https://attack.mitre.org/techniques/{self.techniques[0].replace('.', '/')}/" if self.techniques else "")
        self.tags = list(tags)
        self.author = author
        self.license = license
        self.threat = threat(self.techniques, self.tactics) if (self.techniques or self.tactics) else None


def alert_doc(host: HostInfo, meta: RuleMeta, hit, ts: float, suppressed: int = 0) -> dict:
    ev = hit.doc
    evidence = [e for e in hit.evidence if e]
    doc = base_doc(
        host=host, timestamp=ts,
        event_id=make_event_id(host.id, "alert", meta.id, hit.key, evidence[0] if evidence else ev["event"]["id"]),
        module="agentd", dataset="agentd.alert", kind="alert", category=["intrusion_detection"], type=["info"],
        action="rule-matched", outcome="success",
    )
    severity, risk = LEVELS[meta.level]
    doc["event"]["severity"] = risk
    doc["event"]["risk_score"] = risk
    doc["message"] = f"{meta.name}: {hit.message}"
    rule = {"id": meta.id, "name": meta.name, "description": meta.description, "ruleset": meta.ruleset}
    if meta.reference:
        rule["reference"] = meta.reference
    if meta.author:
        rule["author"] = meta.author
    if meta.license:
        rule["license"] = meta.license
    doc["rule"] = rule
    if meta.threat:
        doc["threat"] = meta.threat
    if meta.tags:
        doc["tags"] = list(meta.tags)
    if ev.get("session"):
        doc["session"] = dict(ev["session"])
    leader = (ev.get("process") or {}).get("entry_leader")
    if leader:
        doc["process"] = {"entry_leader": leader}
    for k, v in hit.fields.items():
        doc[k] = v
    alert: dict = {"evidence": evidence, "count": hit.count, "severity": severity, "level": meta.level}
    if suppressed:
        alert["suppressed_before"] = suppressed
    doc["agentd"] = {"alert": alert}
    rel = ev.get("related") or {}
    add_related(doc, users=tuple(rel.get("user") or ()) + ((ev.get("session") or {}).get("user"),)
                + ((hit.fields.get("user") or {}).get("name"),),
                ips=tuple(rel.get("ip") or ()) + ((hit.fields.get("source") or {}).get("ip"),)
                + ((hit.fields.get("destination") or {}).get("ip"),))
    return doc
