"""The PAM stack sshd uses: pam_tty_audit (keystrokes) and pam_loginuid (the audit
login uid every audit rule filters on)."""

from __future__ import annotations

import os
import shlex

from agent.app.doctor import sshd
from agent.app.doctor.finding import FAIL, OK, WARN, Finding, cis, read_text, shared_file

PAM_DIR = "/etc/pam.d"
SERVICE = "sshd"  # OpenSSH's PAM service name (SSHD_PAM_SERVICE)
PAM_LINE_REL = "pam/agentd-tty-audit"


def session_lines(service: str = SERVICE, pam_dir: str = PAM_DIR, _seen: frozenset = frozenset()) -> list:
    """(file, module, args) of every session line, includes and substacks followed."""
    path = os.path.join(pam_dir, service)
    if path in _seen:
        return []
    text = read_text(path)
    if text is None:
        return []
    out = []
    for raw in text.splitlines():
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        if line.startswith("@include"):
            out += session_lines(line.split(None, 1)[1].strip(), pam_dir, _seen | {path})
            continue
        try:
            tok = shlex.split(line)
        except ValueError:
            tok = line.split()
        typ = tok[0].lstrip("-") if tok else ""
        if typ != "session" or len(tok) < 3:
            continue
        if tok[1].startswith("["):  # [value=action ...] control, possibly with spaces
            j = next((k for k, t in enumerate(tok) if t.endswith("]")), 1)
            tok = tok[:2] + tok[j + 1:]
        if tok[1] in ("include", "substack"):
            out += session_lines(tok[2], pam_dir, _seen | {path})
            continue
        out.append((path, os.path.basename(tok[2]), tok[3:]))
    return out


def check_tty_audit(ctx, pam_dir: str = PAM_DIR) -> Finding:
    line_file = shared_file(PAM_LINE_REL)
    fix = f"append the line in {line_file} (session required pam_tty_audit.so enable=*) to {pam_dir}/{SERVICE}"
    hides = "keystrokes of SSH sessions (what was typed, including into programs that run no new command)"
    s = sshd.find(ctx)
    if s.settings and s.get("usepam", "no") != "yes":
        return Finding("pam.tty_audit", FAIL, f"sshd does not use PAM (UsePAM {s.get('usepam')} in {s.config})",
                       hides + "; also the audit login uid (pam_loginuid) that ties commands to the login",
                       f"UsePAM yes in {s.config}, then {fix}", cis("5.1.22", "5.1.22"))
    lines = [ln for ln in session_lines(pam_dir=pam_dir) if ln[1] == "pam_tty_audit.so"]
    if not lines:
        return Finding("pam.tty_audit", FAIL, f"pam_tty_audit is not in the session stack of {pam_dir}/{SERVICE}",
                       hides, fix)
    path, _, args = lines[-1]
    enable = [a for a in args if a.startswith("enable=")]
    if not enable or any(a in ("disable=*",) for a in args):
        return Finding("pam.tty_audit", FAIL, f"pam_tty_audit in {path} enables nobody: {' '.join(args)}",
                       hides, f"give it enable=* ({line_file})")
    if "log_passwd" in args:
        return Finding("pam.tty_audit", WARN, f"pam_tty_audit in {path} with log_passwd: {' '.join(args)}",
                       "nothing; but passwords typed at no-echo prompts (sudo, su, ssh to the next host) "
                       "are written to the audit log", f"remove log_passwd from that line in {path}")
    return Finding("pam.tty_audit", OK, f"pam_tty_audit {' '.join(args)} in {path} (log_passwd off)")


def check_loginuid(ctx, pam_dir: str = PAM_DIR) -> Finding:
    if any(ln[1] == "pam_loginuid.so" for ln in session_lines(pam_dir=pam_dir)):
        return Finding("pam.loginuid", OK, f"pam_loginuid sets the audit login uid in {pam_dir}/{SERVICE}")
    return Finding("pam.loginuid", FAIL, f"pam_loginuid is not in the session stack of {pam_dir}/{SERVICE}",
                   "every command and connection of SSH logins: their auid stays unset, which the audit rules "
                   "(auid!=unset) skip", f"add 'session required pam_loginuid.so' to {pam_dir}/{SERVICE}")


def checks(ctx) -> list:
    return [check_tty_audit(ctx), check_loginuid(ctx)]
