"""`agentd doctor`: checks this bastion's setup against what agentd needs to see
everything. Each check returns a Finding (OK / WARN / FAIL) that says what it hides
and the exact fix. One module per group of checks."""

from __future__ import annotations

import json
import sys

from agent.app.doctor import audit, host, journald, pam, posture, shippers, sshd
from agent.app.doctor.context import Context
from agent.app.doctor.finding import FAIL, OK, WARN, Finding

GROUPS = {
    "agent": host.checks,
    "audit": audit.checks,
    "pam": pam.checks,
    "sshd": sshd.checks,
    "journald": journald.checks,
    "shippers": shippers.checks,
    "posture": posture.checks,
}

__all__ = ["GROUPS", "Context", "Finding", "OK", "WARN", "FAIL", "run_checks", "main"]


def run_checks(ctx: Context, groups=None) -> list:
    out = []
    for name, fn in GROUPS.items():
        if groups and name not in groups:
            continue
        try:
            out += fn(ctx)
        except Exception as e:  # one broken check must not hide the others
            out.append(Finding(f"{name}.error", FAIL, f"the check itself failed: {type(e).__name__}: {e}",
                               "whatever this group checks", "report this as a bug in agentd doctor"))
    return out


def main(config: str, sshd_config=None, as_json: bool = False, only=None, online: bool = True) -> int:
    groups = None
    if only:
        groups = [g.strip() for g in only.split(",") if g.strip()]
        unknown = [g for g in groups if g not in GROUPS]
        if unknown:
            print(f"Error: --only: unknown group(s) {', '.join(unknown)}; known: {', '.join(GROUPS)}",
                  file=sys.stderr)
            return 2
    findings = run_checks(Context(config, sshd_config, online), groups)
    failed = any(f.status == FAIL for f in findings)
    if as_json:
        json.dump({"ok": not failed, "findings": [f.__dict__ for f in findings]}, sys.stdout, indent=1)
        sys.stdout.write("\n")
    else:
        for f in findings:
            print(f.line())
        counts = {s: sum(f.status == s for f in findings) for s in (OK, WARN, FAIL)}
        print(f"{counts[OK]} OK, {counts[WARN]} WARN, {counts[FAIL]} FAIL")
    return 1 if failed else 0
