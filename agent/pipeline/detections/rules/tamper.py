"""Tampering with the audit trail and with the agent itself.

The agent's own stop, kill or change is also seen at its next start (engine.startup):
the state it saved says whether it stopped cleanly and what its config and code were.
"""

from __future__ import annotations

import re

from agent.base.options import Option
from agent.pipeline.detections.gate import Gate
from agent.pipeline.detections.literals import Gated
from agent.pipeline.detections.rules.base import About, Hit, Rule, get, login_user, opt_users

_AUDIT_LOG = Gated(re.compile(r"(?:^|[\s=])(?:/var/log/audit\b|/etc/audit\b)"))
_WRITERS = {"rm", "mv", "cp", "tee", "sed", "touch", "truncate", "ln", "install", "chmod", "chown", "vi", "vim",
            "nano", "ed", "dd", "perl", "python3", "unlink", "shred"}
_CLEARING = re.compile(r"^(?:rm|truncate|shred|unlink|mv|cp|dd|tee)$")


class AuditRulesChanged(Rule):
    about = About("audit_rules_changed", "Audit rules changed", "high", ("T1685", "T1685.004"),
                  "Kernel audit rules were added, deleted, or auditing was switched off (CONFIG_CHANGE).")
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
    about = About("auditd_stopped", "Audit daemon stopped", "high", ("T1685", "T1685.004"),
                  "auditd stopped or aborted: nothing is recorded until it starts again.")
    datasets = ("auditd.config",)
    options: dict = {}

    def check(self, doc: dict, ts: float) -> list:
        if doc["event"].get("action") not in ("audit-daemon-stopped", "audit-daemon-aborted"):
            return []
        return [Hit(doc, [doc["event"]["id"]], f"auditd {doc['event']['action'].rsplit('-', 1)[-1]}", key="host")]


class AuditLogTampered(Rule):
    about = About("audit_log_tampered", "Audit log truncated or removed", "critical", ("T1685", "T1685.006", "T1070"),
                  "A login wrote to, truncated or removed the audit log or audit configuration.")
    datasets = ("auditd.file", "auditd.process")
    gate = Gate(patterns=(_AUDIT_LOG,))  # an exec's command line names the audit log or config
    options = {"allow_users": opt_users()}

    def check(self, doc: dict, ts: float) -> list:
        ev = doc["event"]
        if ev.get("dataset") == "auditd.file":
            path = str(get(doc, "file", "path") or "")
            exe = str(get(doc, "process", "executable") or "")
            if not path.startswith(("/var/log/audit/", "/etc/audit/")) or exe.endswith(("/auditd", "/augenrules")):
                return []
            user = login_user(doc)
            if self.allowed_user(user):
                return []
            return [Hit(doc, [ev["id"]], f"{ev.get('action')} {path} by {exe or '?'} ({user or '?'})",
                        key=get(doc, "session", "id") or "host")]
        if ev.get("action") != "exec" or not _CLEARING.match(str(get(doc, "process", "name") or "")):
            return []
        cmd = str(get(doc, "process", "command_line") or "")
        if not _AUDIT_LOG.search(cmd) or get(doc, "process", "name") == "cp" and not cmd.endswith(
                ("audit.log", "/audit")):
            return []
        user = login_user(doc)
        if self.allowed_user(user):
            return []
        return [Hit(doc, [ev["id"]], f"{cmd[:200]} ({user or '?'})", key=get(doc, "session", "id") or "host")]


class PamChanged(Rule):
    about = About("pam_tty_audit_removed", "PAM changed or pam_tty_audit missing", "high", ("T1556", "T1556.003"),
                  ("PAM configuration was written, or a login opened without pam_tty_audit although earlier logins had "
                   "it: keystrokes are no longer recorded."))
    datasets = ("auditd.file", "auditd.login", "auditd.process")
    gate = Gate(names=frozenset(_WRITERS))  # an exec of a tool that writes files
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
    about = About("agent_tampered", "Agent configuration or code changed, or agent stopped", "high",
                  ("T1685", "T1685.004"),
                  ("agentd's configuration or code was written, or agentd was stopped, killed or restarted with another "
                   "configuration (seen at its next start)."))
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
