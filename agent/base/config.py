"""Load and validate agentd.conf as a whole before anything starts.

Every problem is collected (not just the first) and reported one per line as
``Error: <file> [<section>] <key>: <what is wrong, what is allowed>`` so a
sysadmin can fix the file in one go. `agentd check-config` runs exactly this.
"""

from __future__ import annotations

import configparser
import re
from typing import Any, Optional

from agent.base import registry
from agent.base.component import COMMON_OPTIONS, SHIPPER_OPTIONS
from agent.base.options import Option, read_secret_file

DEFAULT_PATH = "/etc/agentd/agentd.conf"

def _check_listen(value: str) -> None:
    if value and not re.fullmatch(r"[\w.\-]+:\d{1,5}|\[[0-9a-fA-F:]+\]:\d{1,5}", value):
        raise ValueError(f"{value!r} is not host:port, e.g. 127.0.0.1:9977")


def _check_patterns(value: list) -> None:
    for p in value or ():
        try:
            re.compile(p)
        except re.error as e:
            raise ValueError(f"{p!r} is not a regular expression: {e}") from None


AGENT_OPTIONS: dict = {
    "host_name": Option("str", "", "host.name on every event; empty means this machine's hostname"),
    "state_dir": Option("path", "/var/lib/agentd", "where the spool database and dead-letter files live"),
    "log_level": Option("choice", "info", "agent log verbosity", choices=("debug", "info", "warning", "error")),
    "keep_original": Option("bool", "false", "copy the raw source text into event.original"),
    "spool_max_bytes": Option("size", "1GiB", "cap on the spool's stored events (compressed, ~120 bytes per "
                              "exec event; the file is somewhat larger)", minimum=64 * 1024),
    "spool_full_policy": Option(
        "choice", "block", "when the spool is full: block (stop reading; sources keep the data) or drop_oldest",
        choices=("block", "drop_oldest"),
    ),
    "batch_max_events": Option("int", "500", "events per spool transaction and per shipped batch", minimum=1, maximum=100000),
    "batch_linger": Option(
        "duration", "200ms", "wait this long for a partial batch to fill (fewer commits and fsyncs under load)",
        minimum=0.0, maximum=10.0,
    ),
    "retry_max_backoff": Option("duration", "60s", "cap on the wait between retries of a failing shipper", minimum=0.1),
    "shutdown_timeout": Option("duration", "10s", "how long SIGTERM may take to flush before the agent exits", minimum=0),
    "recording_max_bytes": Option("size", "8MiB", "cap on one session's recorded terminal output (tlog); past it "
                                  "the text is cut and a gap event says so", minimum=1024),
    "recording_store_max_bytes": Option("size", "512MiB", "cap on all recordings kept for playback and reports; "
                                        "the oldest sessions' recordings go first", minimum=1024 * 1024),
    "session_retention": Option("duration", "30d", "how long sessions (summary, timeline, recording) are kept "
                                "for agentd sessions show/play/report after they ended", minimum=60.0),
    "redact": Option("bool", "true", "mask secrets (passwords, tokens) in keystrokes, arguments and originals"),
    "redact_patterns": Option("list", "", "extra regular expressions to mask (the whole match, or group 1), "
                              "comma- or newline-separated", check=_check_patterns),
    "redact_names": Option("list", "", "extra names whose value is a secret, as NAME=value, --name value, "
                           "name: value (e.g. CORP_CRED, x-corp-auth); case-insensitive"),
    "redact_disable": Option("list", "", "built-in redaction rules to turn off, by name (see "
                             "agent/pipeline/redact_rules.py, e.g. snmp, prompt-line, debconf-password)"),
    "status_listen": Option(
        "str", "", "host:port of a Prometheus /metrics endpoint; empty means off (keep it on 127.0.0.1)",
        check=_check_listen,
    ),
}

_SECTION_RE = re.compile(r"^(collector|shipper):([A-Za-z0-9_.-]+)$")


class ConfigError(Exception):
    """All problems found in one config file, each already formatted for the user."""

    def __init__(self, lines: list):
        super().__init__("\n".join(lines))
        self.lines = lines


class ComponentConf:
    __slots__ = ("kind", "name", "type_name", "enabled", "cls", "conf")

    def __init__(self, kind: str, name: str, type_name: str, enabled: bool, cls: Any, conf: dict):
        self.kind = kind
        self.name = name
        self.type_name = type_name
        self.enabled = enabled
        self.cls = cls
        self.conf = conf

    @property
    def section(self) -> str:
        return f"{self.kind}:{self.name}"

    def build(self, context: Any = None):
        return self.cls(self.name, self.conf, context)


class Config:
    def __init__(self, path: str, agent: dict, collectors: list, shippers: list, sections: Optional[dict] = None):
        self.path = path
        self.agent = agent
        self.collectors = collectors
        self.shippers = shippers
        # Stage-owned sections ([detections], [detection:NAME]): name -> typed options;
        # a section absent from the file holds its defaults.
        self.sections = sections or {}

    def enabled(self, kind: str) -> list:
        items = self.collectors if kind == "collector" else self.shippers
        return [c for c in items if c.enabled]


class _Errors:
    def __init__(self, path: str):
        self.path = path
        self.lines: list = []

    def add(self, section: Optional[str], key: Optional[str], msg: str) -> None:
        where = self.path
        if section is not None:
            where += f" [{section}]"
        if key is not None:
            where += f" {key}"
        self.lines.append(f"Error: {where}: {msg}")


def _parser() -> configparser.ConfigParser:
    # No interpolation: '%' is common in passwords and paths. A default section
    # name nobody writes, so a user's [DEFAULT] is reported as unknown instead of
    # silently leaking its keys into every section.
    return configparser.ConfigParser(
        interpolation=None, strict=True, default_section="\x00defaults", empty_lines_in_values=False
    )


def _validate_options(errors: _Errors, section: str, items: dict, schema: dict) -> dict:
    """Parse ``items`` (raw strings) against ``schema``; unknown keys are errors."""
    out: dict = {}
    known = set(schema) | {f"{k}_file" for k, o in schema.items() if o.secret}
    for key in items:
        if key not in known:
            allowed = ", ".join(sorted(known)) or "none"
            errors.add(section, key, f"unknown option; allowed here: {allowed}")
    for key, opt in schema.items():
        raw = items.get(key)
        file_key = f"{key}_file"
        if opt.secret and file_key in items:
            if raw is not None:
                errors.add(section, file_key, f"give either {key} or {file_key}, not both")
                continue
            try:
                out[key] = read_secret_file(items[file_key].strip())
            except ValueError as e:
                errors.add(section, file_key, str(e))
            continue
        if raw is None:
            if opt.required:
                alt = f" (or {file_key})" if opt.secret else ""
                errors.add(section, key, f"missing; this option{alt} is required: {opt.doc}")
            out[key] = opt.default_value()
            continue
        try:
            out[key] = opt.parse(raw)
        except ValueError as e:
            errors.add(section, key, str(e))
    return out


def _load_component(errors: _Errors, kind: str, name: str, section: str, items: dict) -> Optional[ComponentConf]:
    type_raw = items.get("type")
    if type_raw is None or not type_raw.strip():
        errors.add(section, "type", f"missing; set type = one of: {', '.join(registry.all_types(kind))}")
        return None
    type_name = type_raw.strip()
    try:
        cls = registry.load(kind, type_name)
    except registry.RegistryError as e:
        errors.add(section, "type", str(e))
        return None
    schema = dict(COMMON_OPTIONS)
    if kind == "shipper":
        schema.update(SHIPPER_OPTIONS)
    schema.update(cls.options)
    before = len(errors.lines)
    conf = _validate_options(errors, section, items, schema)
    enabled = bool(conf.pop("enabled", True))
    conf.pop("type", None)
    if len(errors.lines) == before:
        for key, msg in cls.validate_conf(conf):
            errors.add(section, key, msg)
    return ComponentConf(kind, name, type_name, enabled, cls, conf)


def _absent_defaults(errors: _Errors, kind: str, present: list, sections: list) -> list:
    """Components on by default whose type has no section in the file run with their
    defaults: an agentd.conf written before a component existed still gets it. Any
    section of that type (`enabled = false` included) is the config's own say."""
    have = {c.type_name for c in present}
    out = []
    for type_name, name in registry.DEFAULT_ON.get(kind, {}).items():
        section = f"{kind}:{name}"
        if type_name in have or section in sections:
            continue
        comp = _load_component(errors, kind, name, section, {"type": type_name})
        if comp is not None:
            out.append(comp)
    return out


def parse_config_text(text: str, path: str) -> Config:
    errors = _Errors(path)
    cp = _parser()
    try:
        cp.read_string(text, source=path)
    except configparser.Error as e:
        # configparser's own message already names the line; keep it on one line.
        errors.add(None, None, " ".join(str(e).split()))
        raise ConfigError(errors.lines) from None

    agent_items: dict = {}
    collectors: list = []
    shippers: list = []
    stage_schemas = registry.section_schemas()
    stage_items: dict = {}
    for section in cp.sections():
        items = dict(cp.items(section))
        if section == "agent":
            agent_items = items
            continue
        if section in stage_schemas:
            stage_items[section] = items
            continue
        m = _SECTION_RE.match(section)
        if not m:
            known = ", ".join(f"[{s}]" for s in stage_schemas if ":" not in s)
            rules = ", ".join(s.split(":", 1)[1] for s in stage_schemas if s.startswith("detection:"))
            errors.add(section, None, f"unknown section; allowed: [agent], [collector:NAME], [shipper:NAME], "
                       f"{known}, [detection:RULE] with RULE one of: {rules}")
            continue
        comp = _load_component(errors, m.group(1), m.group(2), section, items)
        if comp is not None:
            (collectors if comp.kind == "collector" else shippers).append(comp)
    agent = _validate_options(errors, "agent", agent_items, AGENT_OPTIONS)
    sections = {name: _validate_options(errors, name, stage_items.get(name, {}), schema)
                for name, schema in stage_schemas.items()}
    collectors += _absent_defaults(errors, "collector", collectors, cp.sections())
    shippers += _absent_defaults(errors, "shipper", shippers, cp.sections())
    if not errors.lines:
        if not any(c.enabled for c in collectors):
            errors.add(None, None, "no enabled [collector:NAME] section; the agent would read nothing")
        if not any(s.enabled for s in shippers):
            errors.add(None, None, "no enabled [shipper:NAME] section; events would go nowhere")
    if errors.lines:
        raise ConfigError(errors.lines)
    return Config(path, agent, collectors, shippers, sections)


def load_config(path: str = DEFAULT_PATH) -> Config:
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except OSError as e:
        raise ConfigError([f"Error: {path}: cannot read the config file: {e.strerror}"]) from None
    except UnicodeDecodeError as e:
        raise ConfigError([f"Error: {path}: not valid UTF-8 at byte {e.start}"]) from None
    return parse_config_text(text, path)
