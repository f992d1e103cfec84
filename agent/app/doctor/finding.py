"""What every doctor check returns, and the small helpers the checks share."""

from __future__ import annotations

import dataclasses
import os
import subprocess
from typing import Optional

OK, WARN, FAIL = "OK", "WARN", "FAIL"

# Where the package installs the files an admin applies (packaging/build/stage.sh);
# a source checkout has them under packaging/.
SHARE_DIR = "/usr/share/agentd"
_REPO_PACKAGING = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "..", "packaging")


@dataclasses.dataclass
class Finding:
    check: str          # e.g. "audit.rules.exec"
    status: str         # OK / WARN / FAIL
    summary: str        # what doctor saw
    hides: str = ""     # what agentd cannot see because of it (WARN/FAIL)
    fix: str = ""       # the exact change that fixes it
    cis: str = ""       # posture: the CIS Benchmark items

    def line(self) -> str:
        parts = [f"{self.status:<4} {self.check:<30} {self.summary}"]
        if self.hides:
            parts.append(f"hides: {self.hides}")
        if self.fix:
            parts.append(f"fix: {self.fix}")
        if self.cis:
            parts.append(self.cis)
        return " | ".join(parts)


def shared_file(rel: str) -> str:
    """The installed copy of packaging/<rel> (/usr/share/agentd/<rel>), else the checkout's."""
    installed = os.path.join(SHARE_DIR, rel)
    if os.path.exists(installed):
        return installed
    repo = os.path.normpath(os.path.join(_REPO_PACKAGING, rel))
    return repo if os.path.exists(repo) else installed


def run(cmd: list, timeout: float = 15.0) -> tuple:
    """(returncode, stdout, stderr); returncode None when the program cannot run."""
    try:
        p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=timeout,
                           stdin=subprocess.DEVNULL)
    except (OSError, subprocess.TimeoutExpired) as e:
        return None, "", str(e)
    return p.returncode, p.stdout, p.stderr


def first_line(text: str) -> str:
    lines = [ln for ln in (text or "").strip().splitlines() if ln.strip()]
    return lines[0] if lines else ""


def read_text(path: str) -> Optional[str]:
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            return f.read()
    except OSError:
        return None


def cis(debian: str, rhel: str) -> str:
    """A CIS Benchmark citation: CIS Debian Linux 12 v1.1.0 item, and RHEL 9 v2.0.0's where it differs
    (numbers from ComplianceAsCode's controls/cis_debian12.yml and products/rhel9/controls/cis_rhel9.yml)."""
    if debian == rhel:
        return f"CIS Debian 12 v1.1.0 {debian} (same in RHEL 9 v2.0.0)"
    return f"CIS Debian 12 v1.1.0 {debian}, RHEL 9 v2.0.0 {rhel}"
