"""auditd: running, its log readable, the loaded rules against the recommended ones,
immutability, backlog / lost / failure mode (`auditctl -s`)."""

from __future__ import annotations

import glob
import os

from agent.app.doctor import auditrules
from agent.app.doctor.finding import (
    FAIL,
    OK,
    WARN,
    Finding,
    cis,
    first_line,
    read_text,
    run,
    shared_file,
)

RULES_REL = "audit/agentd.rules"
AUDITD_CONF = "/etc/audit/auditd.conf"
RETENTION_MIN_MB = 1000  # about 5 minutes of a 1,000 commands/s burst
# Record types the auditd collector builds events from: an exclude rule on one of them
# removes that evidence before it is written.
NEEDED_TYPES = {"SYSCALL", "EXECVE", "SOCKADDR", "PATH", "CWD", "PROCTITLE", "TTY", "USER_TTY", "LOGIN",
                "USER_LOGIN", "USER_START", "USER_END", "USER_AUTH", "USER_ACCT", "CRED_ACQ", "CRED_DISP",
                "CRED_REFR", "USER_CMD", "CONFIG_CHANGE", "DAEMON_START", "DAEMON_END", "EOE"}
_HIDES = {
    "exec": "the commands people run (process start events, sudo/su children, the process tree)",
    "net_connect": "outbound connections from sessions: the hop from the bastion to internal hosts "
                   "(ssh, nc, curl; also sshd's own connects for forwarded TCP channels)",
    "watches": "changes to the files that decide who gets in and what they may do",
}


def status() -> dict:
    rc, out, err = run(["auditctl", "-s"])
    if rc != 0:
        return {"_error": first_line(err) or ("auditctl not found" if rc is None else f"exit {rc}")}
    st = {}
    for line in out.splitlines():
        k, _, v = line.partition(" ")
        st[k] = v.strip()
    return st


def loaded_rules() -> auditrules.Ruleset:
    rc, out, err = run(["auditctl", "-l"])
    if rc != 0:
        return auditrules.Ruleset([], {}, [(0, "auditctl -l", first_line(err) or f"exit {rc}")])
    return auditrules.parse_rules(out)


def _pid_alive(pid: str) -> bool:
    return pid.isdigit() and pid != "0" and os.path.exists(f"/proc/{pid}")


def _persist_fix(rules_path: str, immutable: bool) -> str:
    tail = "; the rules are immutable (-e 2): reboot for it to apply" if immutable else ""
    return (f"to keep it across reboots: cp {rules_path} /etc/audit/rules.d/agentd.rules && augenrules --load"
            + tail)


def check_daemon(ctx) -> Finding:
    st = ctx.memo("audit.status", status)
    if "_error" in st:
        return Finding("audit.daemon", FAIL, f"cannot read the audit status: {st['_error']}",
                       "everything auditd records: commands, connections, keystrokes, logins",
                       "install auditd (apt-get install auditd / dnf install audit) and run doctor as root")
    if st.get("enabled") == "0":
        return Finding("audit.daemon", FAIL, "kernel auditing is off (enabled 0)",
                       "every audit record: commands, connections, keystrokes",
                       "auditctl -e 1, and `systemctl enable --now auditd`")
    if not _pid_alive(st.get("pid", "0")):
        return Finding("audit.daemon", FAIL, "no auditd registered with the kernel (pid 0)",
                       "audit records: without auditd they go to the kernel log and are lost when it fills",
                       "systemctl enable --now auditd")
    return Finding("audit.daemon", OK, f"auditd pid {st['pid']}, auditing enabled ({st.get('enabled')})")


def check_log(ctx) -> Finding:
    if not ctx.has_collector("auditd"):
        return Finding("audit.log", WARN, "no enabled [collector:auditd] in the config",
                       "commands, connections, keystrokes and config changes are not collected",
                       f"add a [collector:auditd] section (type = auditd, enabled = true) to {ctx.config_path}")
    path = ctx.collector_option("auditd", "log_file", "/var/log/audit/audit.log")
    conf = read_text(AUDITD_CONF) or ""
    settings = auditd_settings(conf)
    written = settings.get("log_file", "/var/log/audit/audit.log")
    if conf and os.path.realpath(written) != os.path.realpath(path):
        return Finding("audit.log", FAIL, f"agentd reads {path} but auditd writes {written} ({AUDITD_CONF})",
                       "every audit event: the agent follows a file auditd does not write",
                       f"set log_file = {written} in [collector:auditd] of {ctx.config_path}")
    if settings.get("write_logs", "yes").lower() == "no":
        return Finding("audit.log", FAIL, f"auditd does not write a log (write_logs = no in {AUDITD_CONF})",
                       "every audit event", f"write_logs = yes in {AUDITD_CONF}, then restart auditd")
    try:
        with open(path, "rb") as f:
            f.read(1)
    except OSError as e:
        return Finding("audit.log", FAIL, f"cannot read {path}: {e.strerror}", "every audit event",
                       "run agentd as root or with CAP_DAC_READ_SEARCH (the packaged unit does)")
    fmt = settings.get("log_format", "RAW")
    return Finding("audit.log", OK, f"{path} readable (log_format {fmt})")


def auditd_settings(text: str) -> dict:
    """auditd.conf's `key = value` lines (keys as written, values stripped)."""
    return dict((k.strip(), v.strip()) for k, _, v in
                (ln.partition("=") for ln in text.splitlines() if "=" in ln and not ln.lstrip().startswith("#")))


def check_retention(ctx, conf_path: str = AUDITD_CONF) -> Finding:
    """How much audit log auditd keeps before it deletes the oldest file: what agentd may fall
    behind by (stopped, restarted, slow under a burst) without losing records unread."""
    text = read_text(conf_path)
    if text is None:
        return Finding("audit.retention", WARN, f"cannot read {conf_path}",
                       "whether auditd deletes logs agentd has not read yet", "run doctor as root")
    st = auditd_settings(text)
    action = st.get("max_log_file_action", "ROTATE").upper()
    if action != "ROTATE":
        if action in ("SUSPEND", "SINGLE", "HALT"):
            return Finding("audit.retention", WARN, f"max_log_file_action {action}: auditd stops writing "
                           f"(or stops the host) when the log reaches max_log_file",
                           "every record after that point", f"max_log_file_action = ROTATE (or KEEP_LOGS, "
                           f"watching disk space) in {conf_path}")
        return Finding("audit.retention", OK, f"max_log_file_action {action}: auditd deletes no log")
    try:
        files, size_mb = int(st.get("num_logs", "5")), int(st.get("max_log_file", "8"))
    except ValueError:
        return Finding("audit.retention", WARN, f"num_logs / max_log_file unreadable in {conf_path}",
                       "whether auditd deletes logs agentd has not read yet", "fix the values")
    kept = max(files, 1) * size_mb
    # ~3 KB of records per command (benchmarks/audit_watches.py: 1.52 MB per 478 commands).
    seconds = kept * 1024 / 3 / 1000
    summary = (f"auditd keeps {max(files, 1)} x {size_mb} MB = {kept} MB of audit log: about "
               f"{seconds:,.0f} s of records at 1,000 commands/s")
    if kept < RETENTION_MIN_MB:
        return Finding("audit.retention", WARN, summary,
                       "records in rotated files auditd deletes before agentd has read them: when agentd is "
                       "stopped, restarted or behind for longer than that (agentd reports the loss as an "
                       "agentd.gap event)",
                       f"num_logs = 10 and max_log_file = 100 in {conf_path} (1 GB), then `service auditd reload`")
    return Finding("audit.retention", OK, summary)


def check_rules(ctx) -> list:
    rules_path = shared_file(RULES_REL)
    text = read_text(rules_path)
    if text is None:
        return [Finding("audit.rules", FAIL, f"the recommended rules are missing ({rules_path})",
                        "nothing to compare the loaded rules with", "reinstall the agentd package")]
    wanted = auditrules.parse_rules(text)
    loaded = ctx.memo("audit.rules", loaded_rules)
    st = ctx.memo("audit.status", status)
    immutable = st.get("enabled") == "2"
    if loaded.errors and not loaded.rules and loaded.errors[0][0] == 0:
        return [Finding("audit.rules", FAIL, f"cannot list the loaded rules: {loaded.errors[0][2]}",
                        "whether commands and connections are recorded at all", "run doctor as root")]
    groups: dict = {}
    for r in wanted.rules:
        groups.setdefault(auditrules.group_name(r), []).append(r)
    out = []
    for group, rules in groups.items():
        covs = [auditrules.coverage(r, loaded.rules) for r in rules]
        hides = _HIDES.get(group) or (rules[0].heading or group).lower()
        missing = [c for c in covs if not c.covered]
        if missing:
            what = "; ".join(_missing_text(c) for c in missing)
            fix = " ; ".join(f"auditctl {c.wanted.text}" for c in missing)
            out.append(Finding(f"audit.rules.{group}", FAIL, f"not covered: {what}", hides,
                               f"{fix} ({_persist_fix(rules_path, immutable)})"))
            continue
        nevers = {n.text for c in covs for n in c.never}
        if nevers:
            out.append(Finding(f"audit.rules.{group}", WARN,
                               f"covered, but earlier never-rules may drop part of it: {'; '.join(sorted(nevers))}",
                               hides, "remove or narrow those never-rules (auditctl -d ...)"))
            continue
        keys = sorted({k for c in covs for k in c.other_keys})
        note = f" (under key {', '.join(keys) or 'none'} instead of {', '.join(sorted({r.key for r in rules}))})" \
            if keys else ""
        out.append(Finding(f"audit.rules.{group}", OK,
                           f"{len(rules)} recommended rule(s) covered by the loaded rules{note}: "
                           + _describe(group, rules)))
    out.append(_check_exclude(loaded.rules))
    return out


def _describe(group: str, rules: list) -> str:
    if group == "watches":
        return ", ".join(next(f[2] for f in r.fields if f[0] == "watch") for r in rules)
    sys_ = sorted({s for r in rules for s in r.syscalls})
    arches = sorted({r.arch for r in rules})
    return f"{','.join(sys_)} ({'/'.join(arches)})"


def _missing_text(c: auditrules.Coverage) -> str:
    near = "".join(f"; a loaded rule also requires {' '.join(x)}, which is narrower" for x in c.narrower)
    if c.wanted.is_watch:
        return f"watch {next(f[2] for f in c.wanted.fields if f[0] == 'watch')}{near}"
    return f"{','.join(sorted(c.missing))} on {c.wanted.arch} (wanted: {c.wanted.text}{near})"


def _check_exclude(loaded: list) -> Finding:
    bad = []
    for r in loaded:
        if r.list != "exclude" or r.action != "always":
            continue
        types = {f[2] for f in r.fields if f[0] == "msgtype" and f[1] == "="}
        if not types or types & NEEDED_TYPES:
            bad.append(r.text)
    if bad:
        return Finding("audit.rules.exclude", FAIL, f"exclude rules drop records agentd needs: {'; '.join(bad)}",
                       "the records those rules exclude (never written to the log)",
                       "; ".join(f"auditctl -d {t.split(None, 1)[1]}" for t in bad if " " in t))
    return Finding("audit.rules.exclude", OK, "no exclude rule drops a record type agentd reads")


def check_boot(ctx, etc: str = "/etc/audit") -> Finding:
    """The rules auditd loads when it starts: augenrules compiles rules.d/*.rules into
    audit.rules. Rules loaded by hand with auditctl are gone after a reboot."""
    rules_path = shared_file(RULES_REL)
    wanted = auditrules.parse_rules(read_text(rules_path) or "").rules
    files = sorted(glob.glob(os.path.join(etc, "rules.d", "*.rules"))) + [os.path.join(etc, "audit.rules")]
    texts = [read_text(f) for f in files]
    if not any(t is not None for t in texts):
        return Finding("audit.rules.boot", WARN, f"cannot read the rules auditd loads at start ({etc})",
                       "whether the coverage above survives a reboot", "run doctor as root")
    boot = auditrules.parse_rules("\n".join(t for t in texts if t)).rules
    lost = sorted({auditrules.group_name(r) for r in wanted if not auditrules.coverage(r, boot).covered})
    if lost:
        return Finding("audit.rules.boot", WARN, f"loaded now, but not in {etc}/rules.d: {', '.join(lost)} "
                       "would be missing after a reboot or an auditd restart",
                       "what those rules record, from the next boot on",
                       f"cp {rules_path} {etc}/rules.d/agentd.rules && augenrules --load")
    return Finding("audit.rules.boot", OK, f"the rules in {etc}/rules.d cover the recommended ones at every start")


def check_immutable(ctx) -> Finding:
    st = ctx.memo("audit.status", status)
    if st.get("enabled") == "2":
        return Finding("audit.immutable", OK, "rules are immutable until reboot (-e 2)")
    return Finding("audit.immutable", WARN, f"rules can be changed at run time (enabled {st.get('enabled', '?')})",
                   "an intruder with root can delete the rules (auditctl -D); only a CONFIG_CHANGE record shows it",
                   "add -e 2 as the last rule, e.g. echo '-e 2' > /etc/audit/rules.d/99-finalize.rules && "
                   "augenrules --load (rule changes then need a reboot)",
                   cis("6.2.3.20", "6.3.3.20"))


def check_status(ctx) -> list:
    st = ctx.memo("audit.status", status)
    if "_error" in st:
        return []
    out = []
    limit, backlog = int(st.get("backlog_limit", "0") or 0), int(st.get("backlog", "0") or 0)
    rate = st.get("rate_limit", "0")
    if limit < 8192 or (limit and backlog > limit * 0.8) or rate not in ("0", ""):
        out.append(Finding("audit.backlog", WARN,
                           f"backlog {backlog} of limit {limit}, rate_limit {rate}/s",
                           "records dropped when a burst of logins or commands overflows the queue",
                           "-b 8192 and no -r in the audit rules (as in the recommended rules)"))
    else:
        out.append(Finding("audit.backlog", OK, f"backlog {backlog} of limit {limit}, no rate limit, "
                                                f"backlog_wait_time {st.get('backlog_wait_time', '?')}"))
    lost = int(st.get("lost", "0") or 0)
    if lost:
        out.append(Finding("audit.lost", WARN, f"the kernel lost {lost} audit records since boot",
                           "whatever those records held; agentd reports loss it sees as agentd.gap events",
                           "raise the backlog (-b), check that auditd keeps up (disk, log_format), "
                           "reset the counter with auditctl --reset-lost to watch for new loss"))
    else:
        out.append(Finding("audit.lost", OK, "no audit records lost since boot"))
    mode = st.get("failure", "1")
    if mode == "0":
        out.append(Finding("audit.failure", WARN, "failure mode 0 (silent)",
                           "that records are being lost: the kernel does not even log it",
                           "-f 1 in the audit rules (printk)"))
    elif mode == "2":
        out.append(Finding("audit.failure", WARN, "failure mode 2 (panic)",
                           "nothing, but a lost record panics the bastion and locks every admin out",
                           "-f 1 in the audit rules, unless policy demands panic"))
    else:
        out.append(Finding("audit.failure", OK, "failure mode 1 (printk): loss is logged"))
    return out


def checks(ctx) -> list:
    daemon = check_daemon(ctx)
    out = [daemon, check_log(ctx), check_retention(ctx)]
    if daemon.status == FAIL and "_error" in ctx.memo("audit.status", status):
        return out
    return out + check_rules(ctx) + [check_boot(ctx), check_immutable(ctx)] + check_status(ctx)
