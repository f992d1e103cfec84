"""Tampering with the audit trail and with the agent itself.

The agent's own stop, kill or change is also seen at its next start (engine.startup):
the state it saved says whether it stopped cleanly and what its config and code were.
"""

from __future__ import annotations

import re

from agent.base.options import Option
from agent.pipeline.detections.rules.base import Hit, Rule, get, login_user, opt_users

_AUDIT_LOG = re.compile(r"(?:^|[\s=])(?:/var/log/audit\b|/etc/audit\b)")
_WRITERS = {"rm", "mv", "cp", "tee", "sed", "touch", "truncate", "ln", "install", "chmod", "chown", "vi", "vim",
            "nano", "ed", "dd", "perl", "python3", "unlink", "shred"}
_CLEARING = re.compile(r"^(?:rm|truncate|shred|unlink|mv|cp|dd|tee)$")


class AuditRulesChanged(Rule):
    key = "audit_rules_changed"
    id = "agentd-audit-rules-changed"
    name = "Audit rules changed"
    description = "Kernel audit rules were added, deleted, or auditing was switched off (CONFIG_CHANGE)."
    severity = "high"
    techniques = ("T1685", "T1685.004")
    datasets = ("auditd.config",)
    options = {"allow_users": opt_users("login users allowed to change audit rules (e.g. a config tool)")}

    def check(self, doc: dict, ts: float) -> list:
        if doc["event"].get("action") != "audit-config-changed":
            return []
        data = get(doc, "auditd", "data") or {}
        op = data.get("op") or ""
        # pam_tty_audit switches TTY auditing on at every login: not a rule change.
        if op == "tty_set" or self.allowed_user(login_user(doc)):
            return []
        if "audit_enabled" in data and str(data.get("audit_enabled")) != "0" and op != "set":
            return []
        what = op or ", ".join(f"{k}={v}" for k, v in data.items() if k.startswith(("audit_", "old")))
        return [Hit(doc, [doc["event"]["id"]], f"audit configuration changed ({what}) by "
                    f"{login_user(doc) or '?'}", key=get(doc, "session", "id") or "host")]


class AuditDaemonStopped(Rule):
    key = "auditd_stopped"
    id = "agentd-auditd-stopped"
    name = "Audit daemon stopped"
    description = "auditd stopped or aborted: nothing is recorded until it starts again."
    severity = "high"
    techniques = ("T1685", "T1685.004")
    datasets = ("auditd.config",)
    options: dict = {}

    def check(self, doc: dict, ts: float) -> list:
        if doc["event"].get("action") not in ("audit-daemon-stopped", "audit-daemon-aborted"):
            return []
        return [Hit(doc, [doc["event"]["id"]], f"auditd {doc['event']['action'].rsplit('-', 1)[-1]}", key="host")]


class AuditLogTampered(Rule):
    key = "audit_log_tampered"
    id = "agentd-audit-log-tampered"
    name = "Audit log truncated or removed"
    description = "A login wrote to, truncated or removed the audit log or audit configuration."
    severity = "critical"
    techniques = ("T1685", "T1685.006", "T1070")
    datasets = ("auditd.file", "auditd.process")
    options = {"allow_users": opt_users()}

    def check(self, doc: dict, ts: float) -> list:
        ev = doc["event"]
        user = login_user(doc)
        if self.allowed_user(user):
            return []
        if ev.get("dataset") == "auditd.file":
            path = str(get(doc, "file", "path") or "")
            exe = str(get(doc, "process", "executable") or "")
            if not path.startswith(("/var/log/audit/", "/etc/audit/")) or exe.endswith(("/auditd", "/augenrules")):
                return []
            return [Hit(doc, [ev["id"]], f"{ev.get('action')} {path} by {exe or '?'} ({user or '?'})",
                        key=get(doc, "session", "id") or "host")]
        if ev.get("action") != "exec" or not _CLEARING.match(str(get(doc, "process", "name") or "")):
            return []
        cmd = str(get(doc, "process", "command_line") or "")
        if not _AUDIT_LOG.search(cmd) or get(doc, "process", "name") == "cp" and not cmd.endswith(
                ("audit.log", "/audit")):
            return []
        return [Hit(doc, [ev["id"]], f"{cmd[:200]} ({user or '?'})", key=get(doc, "session", "id") or "host")]


class PamChanged(Rule):
    key = "pam_tty_audit_removed"
    id = "agentd-pam-tty-audit-removed"
    name = "PAM changed or pam_tty_audit missing"
    description = ("PAM configuration was written, or a login opened without pam_tty_audit although earlier "
                   "logins had it: keystrokes are no longer recorded.")
    severity = "high"
    techniques = ("T1556", "T1556.003")
    datasets = ("auditd.file", "auditd.login", "auditd.process")
    options = {"allow_users": opt_users()}

    def check(self, doc: dict, ts: float) -> list:
        ev = doc["event"]
        if ev.get("action") == "exec":
            # Without the /etc/pam.d watch loaded, the command that writes there still shows.
            if get(doc, "process", "name") not in _WRITERS or self.allowed_user(login_user(doc)):
                return []
            args = [a for a in get(doc, "process", "args") or [] if isinstance(a, str)]
            paths = [a for a in args[1:] if a.startswith("/etc/pam.d/") or a.startswith("of=/etc/pam.d/")]
            if not paths:
                return []
            return [Hit(doc, [ev["id"]], f"{login_user(doc) or '?'} ran {' '.join(args)[:200]}",
                        key="file:" + paths[0])]
        if ev.get("dataset") == "auditd.file":
            path = str(get(doc, "file", "path") or "")
            if not path.startswith("/etc/pam.d/") or self.allowed_user(login_user(doc)):
                return []
            return [Hit(doc, [ev["id"]], f"PAM configuration {path} {ev.get('action')} by {login_user(doc) or '?'}",
                        key="file:" + path)]
        if ev.get("action") != "started-session":
            return []
        data = get(doc, "auditd", "data") or {}
        if not str(data.get("exe") or "").endswith("/sshd"):
            return []
        had = "pam_tty_audit" in str(data.get("grantors") or "")
        if had:
            self.state["seen"] = True
            return []
        if not self.state.get("seen"):
            return []
        return [Hit(doc, [ev["id"]], "an SSH login opened without pam_tty_audit: its keystrokes are not recorded",
                    key="grantors")]


class AgentTampered(Rule):
    key = "agent_tampered"
    id = "agentd-agent-tampered"
    name = "Agent configuration or code changed, or agent stopped"
    description = ("agentd's configuration or code was written, or agentd was stopped, killed or restarted "
                   "with another configuration (seen at its next start).")
    severity = "high"
    techniques = ("T1685", "T1685.004")
    datasets = ("auditd.file", "agentd.agent")
    options = {
        "watch_paths": Option("list", "/etc/agentd, /opt/agentd, /usr/lib/agentd",
                              "paths whose writes mean the agent was changed"),
        "max_downtime": Option("duration", "5m", "a clean stop longer than this is reported too", minimum=0),
        "allow_users": opt_users("users allowed to change the agent (e.g. the package manager's)"),
    }

    def check(self, doc: dict, ts: float) -> list:
        ev = doc["event"]
        if ev.get("dataset") == "agentd.agent":  # made by the engine at start-up
            return [Hit(doc, [ev["id"]], doc.get("message", "agent restarted"), key="start")]
        path = str(get(doc, "file", "path") or "")
        tags = doc.get("tags") or ()
        if not (path.startswith(tuple(self.conf["watch_paths"])) or "agentd_config" in tags
                or "agentd_code" in tags) or self.allowed_user(login_user(doc)):
            return []
        return [Hit(doc, [ev["id"]], f"agent file {path} {ev.get('action')} by {login_user(doc) or '?'}",
                    key="file:" + path)]


RULES = (AuditRulesChanged, AuditDaemonStopped, AuditLogTampered, PamChanged, AgentTampered)
