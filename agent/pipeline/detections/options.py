"""The [detections] section and one [detection:RULE] section per built-in rule (agentd.conf).

Config loading (agent.base.config) finds these through the registry, so the
schema lives next to the rules it configures; a missing section means its defaults.
"""

from __future__ import annotations

from agent.base.options import Option
from agent.pipeline.detections.rules import BUILTIN

DETECTIONS_OPTIONS: dict = {
    "enabled": Option("bool", "true", "run the detection rules on every event (alerts are events too)"),
    "sigma_dirs": Option("list", "", "directories of Sigma YAML rules, searched recursively; comma-separated "
                         "(e.g. /usr/share/agentd/sigma)"),
    "sigma_disabled": Option("list", "", "Sigma rule ids (or titles) not to evaluate"),
    "throttle": Option("duration", "10m", "one alert per rule and session (or source) within this window; later "
                       "matches are counted into the next alert", minimum=0),
}

RULE_COMMON: dict = {
    "enabled": Option("bool", "true", "set to false to turn this rule off"),
}


def rule_schema(cls) -> dict:
    schema = dict(RULE_COMMON)
    schema.update(cls.options)
    return schema


def section_schemas() -> dict:
    """Section name -> option schema, in the order agentd.conf lists them."""
    out = {"detections": DETECTIONS_OPTIONS}
    for cls in BUILTIN:
        out[f"detection:{cls.key}"] = rule_schema(cls)
    return out


def section_docs() -> dict:
    out = {"detections": "Detections: built-in bastion rules and Sigma rules, raising event.kind=alert events."}
    for cls in BUILTIN:
        out[f"detection:{cls.key}"] = f"{cls.name} ({cls.id}): {cls.description}"
    return out


def defaults() -> dict:
    return {name: {k: o.default_value() for k, o in schema.items()} for name, schema in section_schemas().items()}
