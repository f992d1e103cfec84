"""Component registry: `type =` name -> module, imported only when configured.

Lazy imports keep start-up cheap and let a bastion without python-systemd run the
auditd collector alone; a missing dependency is reported as a config error on the
section that needs it.
"""

from __future__ import annotations

import importlib

COLLECTORS = {
    "auditd": "collectors.auditd.collector:AuditdCollector",
    "journald": "collectors.journald.collector:JournaldCollector",
    "snapshots": "collectors.snapshots.collector:SnapshotsCollector",
}

# Components that run with their defaults when agentd.conf has no section of their type
# (an upgraded install whose file predates them): kind -> {type: section name}. A section
# of that type, even with `enabled = false`, is the config speaking and wins.
DEFAULT_ON = {"collector": {"snapshots": "snapshots"}}

SHIPPERS = {
    "file": "shippers.file:FileShipper",
    "splunk_hec": "shippers.splunk_hec:SplunkHecShipper",
    "elasticsearch": "shippers.elasticsearch:ElasticsearchShipper",
    "webhook": "shippers.webhook:WebhookShipper",
}

KINDS = {"collector": COLLECTORS, "shipper": SHIPPERS}

# event.module -> how that source's raw forms (event.original, keystrokes.text) are re-encoded
# after masking. The redaction stage asks here by the event's module, so the pipeline never
# imports a collector and a source's wire format stays in its package.
RAW_TEXT = {
    "auditd": "collectors.auditd.raw_redact:RAW_TEXT",
}
# Sections of agentd.conf owned by a pipeline stage: a function returning
# {section name: option schema}. Named here so config loading stays in the base.
SECTIONS = ("agent.pipeline.detections.options:section_schemas",)


class RegistryError(Exception):
    pass


def load(kind: str, type_name: str):
    table = KINDS[kind]
    target = table.get(type_name)
    if target is None:
        raise RegistryError(f"unknown {kind} type {type_name!r}; known types: {', '.join(sorted(table))}")
    module_name, _, attr = target.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as e:
        raise RegistryError(f"{kind} type {type_name!r} cannot be loaded: {e}") from None
    return getattr(module, attr)


def all_types(kind: str) -> list:
    return sorted(KINDS[kind])


_raw_text_cache: dict = {}


def raw_text(module: str):
    """The raw-form redactor of an event.module, or None (the stage then masks the raw text as
    plain text). Raises RegistryError when one is declared but cannot be loaded."""
    if module not in _raw_text_cache:
        target = RAW_TEXT.get(module)
        if target is None:
            _raw_text_cache[module] = None
        else:
            module_name, _, attr = target.partition(":")
            try:
                _raw_text_cache[module] = getattr(importlib.import_module(module_name), attr)
            except ImportError as e:
                raise RegistryError(f"raw text redactor for {module!r} cannot be loaded: {e}") from None
    return _raw_text_cache[module]
def section_schemas() -> dict:
    """Every stage-owned section's schema, {name: {key: Option}}, in agentd.conf order."""
    out: dict = {}
    for target in SECTIONS:
        module_name, _, attr = target.partition(":")
        out.update(getattr(importlib.import_module(module_name), attr)())
    return out
