"""journald: running, storage persistent, its rate limit."""

from __future__ import annotations

import glob
import os
import re

from agent.app.doctor.finding import FAIL, OK, WARN, Finding, cis, read_text

MAIN = ("/usr/lib/systemd/journald.conf", "/etc/systemd/journald.conf")
DROPIN_DIRS = ("/usr/lib/systemd/journald.conf.d", "/usr/local/lib/systemd/journald.conf.d",
               "/run/systemd/journald.conf.d", "/etc/systemd/journald.conf.d")
DEFAULT_INTERVAL, DEFAULT_BURST = 30.0, 10000
_UNITS = {"us": 1e-6, "ms": 1e-3, "s": 1, "sec": 1, "m": 60, "min": 60, "h": 3600, "hr": 3600, "d": 86400}


def settings(root: str = "") -> dict:
    """[Journal] settings as systemd merges them: the main file, then drop-ins by file name
    (a name in /etc masks the same name in /run and /usr/lib)."""
    files = [root + p for p in MAIN if os.path.exists(root + p)][-1:]
    dropins: dict = {}
    for d in DROPIN_DIRS:
        for p in sorted(glob.glob(os.path.join(root + d, "*.conf"))):
            dropins[os.path.basename(p)] = p
    files += [dropins[n] for n in sorted(dropins)]
    out: dict = {}
    for p in files:
        section = ""
        for line in (read_text(p) or "").splitlines():
            line = line.strip()
            if not line or line[0] in "#;":
                continue
            if line.startswith("["):
                section = line.strip("[]")
            elif section == "Journal" and "=" in line:
                k, _, v = line.partition("=")
                out[k.strip()] = (v.strip(), p)
    return out


def seconds(text: str) -> float:
    total, found = 0.0, False
    for num, unit in re.findall(r"(\d+(?:\.\d+)?)\s*([a-z]*)", text.lower()):
        total += float(num) * _UNITS.get(unit or "s", 1)
        found = True
    if not found:
        raise ValueError(text)
    return total


def _running() -> bool:
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                with open(f"/proc/{d}/comm") as f:
                    if f.read().strip() == "systemd-journal":
                        return True
            except OSError:
                continue
    return False


def checks(ctx) -> list:
    if not ctx.has_collector("journald"):
        return [Finding("journald.collector", WARN, "no enabled [collector:journald] in the config",
                        "sshd logins with their key fingerprints, sudo, su and sftp transfers",
                        f"add a [collector:journald] section (type = journald) to {ctx.config_path}")]
    out = []
    if not _running():
        out.append(Finding("journald.running", FAIL, "systemd-journald is not running",
                           "sshd logins, key fingerprints, sudo, su and sftp transfers",
                           "systemctl start systemd-journald"))
    st = settings()
    storage, where = st.get("Storage", ("auto", "default"))
    persistent = storage == "persistent" or (storage == "auto" and os.path.isdir("/var/log/journal"))
    ref = cis("6.1.2.4", "6.2.2.4")
    if persistent:
        out.append(Finding("journald.storage", OK, f"Storage={storage} ({where}): the journal survives a reboot",
                           cis=ref))
    else:
        detail = "" if storage != "auto" else ", and /var/log/journal does not exist"
        out.append(Finding("journald.storage", FAIL, f"Storage={storage} ({where}){detail}: the journal is lost on "
                           "reboot", "logins and transfers logged while agentd was stopped, if the host reboots "
                           "before agentd reads them", "Storage=persistent in a drop-in, e.g. "
                           "/etc/systemd/journald.conf.d/agentd.conf, then systemctl restart systemd-journald", ref))
    iv_text, iv_where = st.get("RateLimitIntervalSec", st.get("RateLimitInterval", (f"{DEFAULT_INTERVAL:g}s", "default")))
    burst_text, burst_where = st.get("RateLimitBurst", (str(DEFAULT_BURST), "default"))
    try:
        interval, burst = seconds(iv_text), int(burst_text)
    except ValueError:
        return out + [Finding("journald.ratelimit", WARN, f"cannot read RateLimitIntervalSec={iv_text} / "
                              f"RateLimitBurst={burst_text}", "", "fix the journald configuration")]
    if interval == 0 or burst == 0:
        out.append(Finding("journald.ratelimit", OK, "rate limiting off"))
    elif burst / interval < DEFAULT_BURST / DEFAULT_INTERVAL:
        out.append(Finding("journald.ratelimit", WARN, f"RateLimitBurst={burst} per RateLimitIntervalSec={iv_text}: "
                           "below journald's default", "sshd lines beyond the limit during a burst of logins "
                           "(journald logs 'Suppressed N messages')",
                           f"raise RateLimitBurst or remove the settings ({burst_where}, {iv_where})"))
    else:
        out.append(Finding("journald.ratelimit", OK, f"at most {burst} lines per {iv_text} per service "
                           "(journald logs 'Suppressed N messages' beyond it)"))
    return out
