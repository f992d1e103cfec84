"""Render the shipped agentd.conf from the schema.

The default config is the documentation: every option of every component,
commented out, at its default, with its one-line doc. Rendering it from the
schema (instead of keeping a hand-written copy) means it cannot drift; a test
compares the committed agentd.conf with this output.
"""

from __future__ import annotations

from agent.base import registry
from agent.base.component import SHIPPER_OPTIONS
from agent.base.config import AGENT_OPTIONS

# Sections that are active in the shipped file: collect the audit log and the
# journal and write events to a local file, so `make run` works with no SIEM.
ACTIVE = {("collector", "auditd"): "auditd", ("collector", "journald"): "journald",
          ("collector", "snapshots"): "snapshots", ("shipper", "file"): "file"}

HEADER = """\
# agentd.conf: the jump-server monitoring agent's configuration.
#
# Every option is listed with its default, commented out; uncomment to change.
# Sections: [agent], then one [collector:NAME] or [shipper:NAME] per component,
# each with `type =` (what it is) and `enabled =`.
# Secrets (token, password, api_key) can be read from a file instead:
# `token_file = /etc/agentd/hec.token`, so this file may stay world-readable.
# Check a change with: agentd check-config -c /etc/agentd/agentd.conf
# (regenerate this file from the schema with: agentd default-config)
"""


def _option_lines(options: dict) -> list:
    lines = []
    for key, opt in options.items():
        lines.append(f"# {opt.doc}")
        if opt.choices:
            lines.append(f"# allowed: {', '.join(opt.choices)}")
        if opt.required:
            lines.append(f"# required{' (or ' + key + '_file)' if opt.secret else ''}")
            lines.append(f"#{key} =")
        else:
            default = opt.default or ""
            lines.append(f"#{key} = {default}".rstrip())
        lines.append("")
    return lines


def _stage_sections() -> list:
    """[detections] is active (on by default); each [detection:RULE] is listed commented out:
    uncomment the header and the options to change."""
    from agent.pipeline.detections.options import section_docs

    docs = section_docs()
    out: list = []
    for name, schema in registry.section_schemas().items():
        prefix = "" if ":" not in name else "#"
        out.append(f"# {docs.get(name, name)}")
        out.append(f"{prefix}[{name}]")
        out.append("")
        out += _option_lines(schema)
    return out


def render() -> str:
    out = [HEADER, "[agent]", ""]
    out += _option_lines(AGENT_OPTIONS)
    for kind in ("collector", "shipper"):
        for type_name in registry.all_types(kind):
            cls = registry.load(kind, type_name)
            active = (kind, type_name) in ACTIVE
            prefix = "" if active else "#"
            out.append(f"# {cls.description}")
            out.append(f"{prefix}[{kind}:{type_name}]")
            out.append(f"{prefix}type = {type_name}")
            out.append(f"{prefix}enabled = {'true' if active else 'false'}")
            out.append("")
            out += _option_lines(dict(SHIPPER_OPTIONS, **cls.options) if kind == "shipper" else cls.options)
    out += _stage_sections()
    return "\n".join(out).rstrip("\n") + "\n"
