"""Render the man pages agentd(8) and agentd.conf(5) from the code.

agentd(8) comes from the argparse parser (the commands and their options) and
agentd.conf(5) from the option schema (every [agent] option and every
collector's and shipper's options with kind, default and doc), the same
source `agentd default-config` uses, so the pages cannot drift from what the
agent accepts. The packages build them with
``python -m agent.app.manpage 8`` and ``python -m agent.app.manpage 5``.
"""

from __future__ import annotations

import argparse
import sys

from agent import __version__
from agent.base import registry
from agent.base.component import COMMON_OPTIONS
from agent.base.config import AGENT_OPTIONS, DEFAULT_PATH

# Exit codes of the commands (agent/app/cli.py); the unit's
# RestartPreventExitStatus= names CONFIG_ERROR.
EXIT_CODES = (
    ("0", "success"),
    ("1", "check-config --online: a shipper's health check failed"),
    ("2", "the config file is invalid (every problem is printed, one per line), or a usage error"),
    ("3", "status, sessions: the agent has not run with this config yet (no status file or spool)"),
)

FILES = (
    (DEFAULT_PATH, "the configuration, see agentd.conf(5); mode 0640, it may hold secrets"),
    ("/var/lib/agentd", "state_dir: the spool database (spool.db), status.json, dead-letter/"),
    ("/var/log/agentd", "the file shipper's output (events.jsonl and its rotated copies)"),
    ("/usr/share/agentd", "recommended audit rules, PAM line, sshd drop-in, Elasticsearch template"),
    ("/usr/lib/agentd", "the agent's private Python environment"),
)

KIND_TEXT = {
    "bool": "true or false",
    "int": "a whole number",
    "float": "a number",
    "size": "a size (B, KiB, MiB, GiB, KB, MB, GB)",
    "duration": "a duration (ms, s, m, h, d)",
    "list": "a comma- or newline-separated list",
    "str": "text",
    "path": "an absolute path",
    "url": "a URL (http:// or https://)",
    "choice": "one of the allowed values",
}


def esc(text: str) -> str:
    """Text as roff reads it literally: backslashes and hyphens escaped, no
    line may start with a control character, non-ASCII as \\[uXXXX] (troff
    reads bytes, not UTF-8, unless man runs preconv)."""
    out = text.replace("\\", "\\e").replace("-", "\\-")
    out = "".join(c if ord(c) < 128 else f"\\[u{ord(c):04X}]" for c in out)
    lines = [("\\&" + ln) if ln[:1] in (".", "'") else ln for ln in out.split("\n")]
    return "\n".join(lines)


def _th(name: str, section: str) -> list:
    return [f'.TH {name.upper()} {section} "" "agentd {__version__}" "agentd"']


def _subcommands(parser: argparse.ArgumentParser) -> list:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            helps = {a.dest: a.help for a in action._choices_actions}
            return [(name, helps.get(name, ""), sp) for name, sp in action.choices.items()]
    return []


def _arg_label(action: argparse.Action) -> str:
    if not action.option_strings:
        return action.metavar or action.dest
    names = ", ".join(action.option_strings)
    if action.nargs == 0:
        return names
    return f"{names} {action.metavar or action.dest.upper()}"


def render_agentd8(parser: argparse.ArgumentParser) -> str:
    out = _th("agentd", "8")
    out += [".SH NAME", "agentd \\- jump\\-server (bastion) monitoring agent"]
    out += [".SH SYNOPSIS", ".B agentd", "[\\fB\\-\\-version\\fR] \\fICOMMAND\\fR [\\fIOPTIONS\\fR]"]
    out += [".SH DESCRIPTION", esc(parser.description or ""),
            ".PP", esc("It reads auditd's log and the systemd journal, joins events into SSH login "
                       "sessions, normalizes them to ECS, keeps them in a durable spool and ships them "
                       "to Splunk HEC, Elasticsearch or a local JSON-lines file."),
            ".PP", esc("After installing, check the host with `agentd doctor` and the running agent with "
                       "`agentd status`.")]
    out += [".SH COMMANDS"]
    for name, help_text, sp in _subcommands(parser):
        out += [".TP", f"\\fB{esc(name)}\\fR", esc(help_text or "")]
        for action in sp._actions:
            if isinstance(action, argparse._HelpAction):
                continue
            label = _arg_label(action)
            text = action.help or ""
            if action.choices:
                text += f" (one of: {', '.join(map(str, action.choices))})"
            out += [".RS", ".TP", f"\\fB{esc(label)}\\fR", esc(text), ".RE"]
    out += [".SH EXIT STATUS"]
    for code, text in EXIT_CODES:
        out += [".TP", f"\\fB{code}\\fR", esc(text)]
    out += [".SH SIGNALS", ".TP", "\\fBSIGHUP\\fR",
            esc("re-read the config; a bad one is reported and ignored (systemctl reload agentd)"),
            ".TP", "\\fBSIGTERM\\fR", esc("flush the spool's in-flight batches (shutdown_timeout) and exit"),
            ".TP", "\\fBSIGUSR2\\fR",
            esc("log the resident memory and, with AGENTD_TRACEMALLOC set, the top allocations (also at exit)")]
    out += [".SH ENVIRONMENT", ".TP", "\\fBAGENTD_TRACEMALLOC\\fR=\\fIN\\fR",
            esc("trace Python allocations with N frames per traceback (slows the agent: for diagnosis only); "
                "AGENTD_TRACEMALLOC_TOP sets how many allocation sites SIGUSR2 logs (default 25)"),
            ".TP", "\\fBMALLOC_ARENA_MAX\\fR",
            esc("glibc's malloc arenas; the packaged unit sets 2 (few threads, less memory held)")]
    out += [".SH FILES"]
    for path, text in FILES:
        out += [".TP", f"\\fI{esc(path)}\\fR", esc(text)]
    out += [".SH SEE ALSO", "\\fBagentd.conf\\fR(5), \\fBauditd\\fR(8), \\fBpam_tty_audit\\fR(8), "
            "\\fBjournalctl\\fR(1), \\fBsystemctl\\fR(1)"]
    return "\n".join(out) + "\n"


def _option_entries(options: dict) -> list:
    out = []
    for key, opt in options.items():
        out += [".TP", f"\\fB{esc(key)}\\fR = \\fI{esc(KIND_TEXT[opt.kind])}\\fR"]
        text = opt.doc.rstrip(".") + "."
        if opt.choices:
            text += f" Allowed: {', '.join(opt.choices)}."
        if opt.required:
            text += " Required."
        elif opt.default:
            text += f" Default: {opt.default}."
        else:
            text += " Default: empty."
        if opt.secret:
            text += f" Secret: may instead be read from the first line of a file named by {key}_file."
        out.append(esc(text))
    return out


def render_agentdconf5() -> str:
    out = _th("agentd.conf", "5")
    out += [".SH NAME", "agentd.conf \\- configuration of the agentd monitoring agent"]
    out += [".SH SYNOPSIS", f"\\fI{esc(DEFAULT_PATH)}\\fR"]
    out += [".SH DESCRIPTION",
            esc("An INI file: an [agent] section, then one [collector:NAME] or [shipper:NAME] section "
                "per component, each with type = (which component) and enabled =. Values are not "
                "interpolated ('%' is literal). Every problem in the file is reported at once, one "
                "per line, as: Error: <file> [<section>] <key>: <what is wrong, what is allowed>."),
            ".PP", esc("The installed file lists every option, commented out, at its default; "
                       "`agentd default-config` prints it and `agentd check-config` validates a file."),
            ".PP", esc("Secret options (tokens, passwords, keys) may be given as <name>_file = /path instead, "
                       "so secrets can live in a separate file readable only by the agent.")]
    out += [".SH [agent]"]
    out += _option_entries(AGENT_OPTIONS)
    out += [".SH COMPONENT SECTIONS", esc("Every [collector:NAME] and [shipper:NAME] section has:")]
    out += _option_entries(COMMON_OPTIONS)
    for kind, title in (("collector", "COLLECTORS"), ("shipper", "SHIPPERS")):
        out += [f".SH {title}"]
        for type_name in registry.all_types(kind):
            cls = registry.load(kind, type_name)
            out += [".SS", f"type = {esc(type_name)}", esc(cls.description.rstrip(".") + ".")]
            out += _option_entries(cls.options)
    out += [".SH EXAMPLE", ".nf",
            esc("[agent]\nstate_dir = /var/lib/agentd\n\n[collector:auditd]\ntype = auditd\n\n"
                "[collector:journald]\ntype = journald\n\n[shipper:hec]\ntype = splunk_hec\n"
                "url = https://splunk.example.com:8088\ntoken_file = /etc/agentd/hec.token"),
            ".fi"]
    out += [".SH SEE ALSO", "\\fBagentd\\fR(8)"]
    return "\n".join(out) + "\n"


def render(section: str) -> str:
    if section == "8":
        from agent.app.cli import build_parser

        return render_agentd8(build_parser())
    if section == "5":
        return render_agentdconf5()
    raise ValueError(f"no man page in section {section!r}; use 8 (agentd) or 5 (agentd.conf)")


def main(argv: list | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1 or args[0] not in ("5", "8"):
        print("usage: python -m agent.app.manpage 8|5", file=sys.stderr)
        return 2
    sys.stdout.write(render(args[0]))
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
