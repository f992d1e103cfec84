"""`agentd rules list`: which detection rules run, which Sigma rules were skipped and why.

`agentd check-config` uses ``check`` so a rules directory that cannot be read, or a
rule file that does not parse, is a config error like any other.
"""

from __future__ import annotations

import sys

from agent.pipeline.detections import options as dopts
from agent.pipeline.detections.rules import BUILTIN


def _conf(cfg) -> dict:
    conf = dopts.defaults()
    for name, values in cfg.sections.items():
        if name in conf:
            conf[name].update(values)
    return conf


def load_sigma(cfg):
    det = _conf(cfg)["detections"]
    if not det["enabled"] or not det["sigma_dirs"]:
        return None
    from agent.pipeline.detections.sigma.ruleset import SigmaRuleSet

    return SigmaRuleSet(det["sigma_dirs"], disabled=det["sigma_disabled"])


def check(cfg) -> list:
    """Error lines (the config checker's format) for unreadable rules dirs and unparsable rule files."""
    sigma = load_sigma(cfg)
    if sigma is None:
        return []
    return [f"Error: {cfg.path} [detections] sigma_dirs: {path}: {reason}" for path, reason in sigma.errors]


def summary(cfg) -> str:
    conf = _conf(cfg)
    if not conf["detections"]["enabled"]:
        return "detections: off"
    on = sum(1 for cls in BUILTIN if conf[f"detection:{cls.key}"]["enabled"])
    text = f"detections: {on} of {len(BUILTIN)} built-in rules on"
    sigma = load_sigma(cfg)
    if sigma is not None:
        text += f", {len(sigma.rules)} Sigma rules loaded, {len(sigma.skipped)} skipped (agentd rules list says why)"
    return text


def list_rules(cfg, out=sys.stdout) -> int:
    conf = _conf(cfg)
    enabled = conf["detections"]["enabled"]
    out.write(f"detections: {'on' if enabled else 'off ([detections] enabled = false)'}\n\n")
    out.write("built-in rules ([detection:RULE] in agentd.conf):\n")
    for cls in BUILTIN:
        state = "on " if conf[f"detection:{cls.key}"]["enabled"] else "off"
        out.write(f"  {state} {cls.id:38} {cls.severity:9} {cls.name}\n")
    sigma = load_sigma(cfg)
    if sigma is None:
        out.write("\nSigma: no sigma_dirs configured\n")
        return 0
    out.write(f"\nSigma rules loaded: {len(sigma.rules)}\n")
    for r in sorted(sigma.rules, key=lambda r: r.path):
        out.write(f"  loaded  {r.meta.id:38} {r.meta.level:13} {r.meta.name}  ({r.path})\n")
    out.write(f"\nSigma rules skipped: {len(sigma.skipped)}\n")
    for path, rid, title, reason in sigma.skipped:
        out.write(f"  skipped {rid:38} {title}  ({path}): {reason}\n")
    if sigma.errors:
        out.write(f"\nSigma files with errors: {len(sigma.errors)}\n")
        for path, reason in sigma.errors:
            out.write(f"  error   {path}: {reason}\n")
    return 1 if sigma.errors else 0
