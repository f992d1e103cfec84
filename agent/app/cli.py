"""The `agentd` command line."""

from __future__ import annotations

import argparse
import functools
import sys
from typing import Optional

from agent import __version__
from agent.base.config import DEFAULT_PATH, ConfigError, load_config


def _load(path: str):
    """Load the config or print every problem and return None."""
    try:
        cfg = load_config(path)
    except ConfigError as e:
        for line in e.lines:
            print(line, file=sys.stderr)
        return None
    from agent.pipeline.pipeline import check_conf
    errors = check_conf(cfg.agent)
    for key, msg in errors:
        print(f"Error: {path} [agent] {key}: {msg}", file=sys.stderr)
    return None if errors else cfg


def _configured(fn):
    """A command that needs the config: loads it (exit 2 on a bad one) and passes it on."""
    @functools.wraps(fn)
    def cmd(args: argparse.Namespace) -> int:
        cfg = _load(args.config)
        return 2 if cfg is None else fn(args, cfg)
    return cmd


@_configured
def cmd_check_config(args: argparse.Namespace, cfg) -> int:
    from agent.app import rules_cli

    rule_errors = rules_cli.check(cfg)
    for line in rule_errors:
        print(line, file=sys.stderr)
    if rule_errors:
        return 2
    parts = [f"{c.section} ({c.type_name})" for c in cfg.enabled("collector") + cfg.enabled("shipper")]
    print(f"{args.config}: OK: {', '.join(parts)}; {rules_cli.summary(cfg)}")
    if not args.online:
        return 0
    from agent.app.doctor import shippers

    failed = 0
    for section, ok, msg in shippers.health(cfg):
        failed += not ok
        print(f"[{section}] {'OK' if ok else 'FAILED'}: {msg}")
    return 1 if failed else 0


def cmd_doctor(args: argparse.Namespace) -> int:
    from agent.app import doctor

    return doctor.main(args.config, args.sshd_config, args.json, args.only, not args.offline)


def cmd_default_config(args: argparse.Namespace) -> int:
    from agent.app import defaultconf

    sys.stdout.write(defaultconf.render())
    return 0


@_configured
def cmd_run(args: argparse.Namespace, cfg) -> int:
    from agent.app import daemon

    return daemon.run(cfg)


def cmd_replay(args: argparse.Namespace) -> int:
    if not args.audit_log and not args.journal:
        print("Error: replay needs --audit-log FILE and/or --journal PATH", file=sys.stderr)
        return 2
    from agent.app import replay

    return replay.run(args)


@_configured
def cmd_status(args: argparse.Namespace, cfg) -> int:
    import os

    from agent.app import status

    path = os.path.join(cfg.agent["state_dir"], "status.json")
    try:
        snap = status.read_file(path)
    except (OSError, ValueError):
        print(f"agentd: no status at {path}: the agent has not run with this config", file=sys.stderr)
        return 3
    sys.stdout.write(status.render_text(snap))
    return 0


@_configured
def cmd_sessions(args: argparse.Namespace, cfg) -> int:
    from agent.app import sessions_cli

    try:
        if args.action == "show":
            if not args.id:
                print("Error: sessions show needs a session id (from `agentd sessions`)", file=sys.stderr)
                return 2
            return sessions_cli.show_session(cfg.agent["state_dir"], args.id)
        if args.action in ("play", "export", "report"):
            return sessions_cli.recording_command(cfg.agent["state_dir"], args)
        return sessions_cli.list_sessions(cfg.agent["state_dir"], args.since or "24h", args.user)
    except FileNotFoundError as e:
        print(f"agentd: no spool database at {e}: the agent has not run with this config", file=sys.stderr)
        return 3


@_configured
def cmd_rules(args: argparse.Namespace, cfg) -> int:
    from agent.app import rules_cli

    return rules_cli.list_rules(cfg)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="agentd",
        description="Jump-server monitoring agent: auditd and journald to ECS events, spooled and shipped.",
    )
    p.add_argument("--version", action="version", version=f"agentd {__version__}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")

    def with_config(sp: argparse.ArgumentParser) -> None:
        sp.add_argument("-c", "--config", default=DEFAULT_PATH, help=f"config file (default {DEFAULT_PATH})")

    sp = sub.add_parser("check-config", help="validate the config file and exit 0 when it is valid")
    with_config(sp)
    sp.add_argument("--online", action="store_true", help="also run each shipper's health check against its SIEM")
    sp.set_defaults(func=cmd_check_config)

    sp = sub.add_parser(
        "doctor", help="check this host's auditd, PAM, sshd, journald, shippers and access policy "
                       "against what agentd needs; exit 1 on any FAIL")
    with_config(sp)
    sp.add_argument("--sshd-config", metavar="FILE",
                    help="check this sshd config instead of the running sshd's (read with sshd -T -f FILE)")
    sp.add_argument("--json", action="store_true", help="print the findings as JSON")
    sp.add_argument("--only", metavar="GROUP[,GROUP]",
                    help="only these groups: agent, audit, pam, sshd, journald, shippers, posture")
    sp.add_argument("--offline", action="store_true", help="skip the shippers' online checks")
    sp.set_defaults(func=cmd_doctor)

    sp = sub.add_parser("run", help="run the agent in the foreground (systemd Type=notify)")
    with_config(sp)
    sp.set_defaults(func=cmd_run)

    sp = sub.add_parser(
        "replay", help="normalize existing audit logs / journals into JSON lines (forensics, testing)",
    )
    sp.add_argument("--audit-log", action="append", default=[], metavar="FILE",
                    help="an audit log file (repeatable; give rotated files oldest first)")
    sp.add_argument("--journal", metavar="PATH", help="a journal file or directory")
    sp.add_argument("--output", "-o", default="-", metavar="FILE", help="output file, - for stdout (default)")
    sp.add_argument("--dead-letter", default="agentd-replay.dead-letter.jsonl", metavar="FILE",
                    help="where malformed lines are kept with the reason (created only if needed)")
    sp.add_argument("-c", "--config", default=None,
                    help="config file whose [agent] settings (host_name, keep_original, redact) apply")
    sp.set_defaults(func=cmd_replay)

    sp = sub.add_parser("status", help="per collector and shipper: events in and shipped, spool depth, errors")
    with_config(sp)
    sp.set_defaults(func=cmd_status)

    sp = sub.add_parser("sessions", help="recent login sessions; `sessions show ID` prints one's timeline, "
                        "play/export/report ID its terminal recording and an HTML report")
    with_config(sp)
    sp.add_argument("action", nargs="?", choices=["list", "show", "play", "export", "report"], default="list")
    sp.add_argument("id", nargs="?", help="session id, or its audit ses number")
    sp.add_argument("--since", default=None, help="how far back to list or report (default 24h)")
    sp.add_argument("--user", default="", help="only this login user")
    sp.add_argument("--speed", type=float, default=1.0, help="play: speed factor (2 = twice as fast)")
    sp.add_argument("--max-idle", type=float, default=0.0, help="play: cap each pause at this many seconds")
    sp.add_argument("--format", choices=["asciicast"], default="asciicast", help="export: the file format")
    sp.add_argument("-o", "--output", default="", help="export: file (default stdout); report: FILE.html, "
                    "or a directory with --since")
    sp.add_argument("--group", default="", help="report: group that may read it (mode 0640; default 0600)")
    sp.set_defaults(func=cmd_sessions)

    sp = sub.add_parser("rules", help="detection rules: built-in and Sigma, loaded or skipped and why")
    with_config(sp)
    sp.add_argument("action", nargs="?", choices=["list"], default="list")
    sp.set_defaults(func=cmd_rules)

    sp = sub.add_parser("default-config", help="print the default agentd.conf generated from the schema")
    sp.set_defaults(func=cmd_default_config)
    return p


def main(argv: Optional[list] = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help(sys.stderr)
        return 2
    try:
        return args.func(args)
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # `agentd replay | head` is normal use; do not dump a traceback.
        return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
