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
}

SHIPPERS = {
    "file": "shippers.file:FileShipper",
    "splunk_hec": "shippers.splunk_hec:SplunkHecShipper",
    "elasticsearch": "shippers.elasticsearch:ElasticsearchShipper",
}

KINDS = {"collector": COLLECTORS, "shipper": SHIPPERS}


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
