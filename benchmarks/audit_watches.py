"""What the audit watches that detections need cost in audit log volume: records and bytes
per minute of a typical session workload, with them (as loaded) and without them.

    sudo .venv/bin/python benchmarks/audit_watches.py [--seconds 60]

Needs root and the test stack (`tests/stack/stackctl up`), whose audit rules are
packaging/audit/agentd.rules. The watches issue 15 added (keys pam, cron, shell_profile,
audit_log, audit_config, agentd_config, agentd_code) are not removed for the run: the stack
is shared, and other work on it reads them. Instead, an event these watches alone log
carries their key (the exec and connect rules come first in the file, so an exec or
connect carries its own key): "without" is the same window minus those events.

The workload is one interactive SSH session as alice, typing ordinary bastion work in a
loop (listing, reading files and logs, a sudo read, editing a file of her own, crontab -l,
systemctl status, an ssh hop to the target) until --seconds have passed. Only the audit
events of that session (its ses=) count: other work on the shared stack is left out.
Then, once, the writes an administrator makes to watched files (a PAM file, a cron file, a
profile script: created and removed) show what each such change costs.

The last line printed is `BENCH-RESULT {json}`.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import time
import uuid

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

from tests.stack import stack as _stack  # noqa: E402
from tests.stack.fixtures import audit_bytes_since, audit_position  # noqa: E402
from tests.stack.session import SshSession  # noqa: E402

WATCH_KEYS = {"pam", "cron", "shell_profile", "audit_log", "audit_config", "agentd_config", "agentd_code"}
_REC = re.compile(rb"msg=audit\(\d+\.\d+:(\d+)\)")
_SES = re.compile(rb" ses=(\d+)")
_KEY = re.compile(rb' key="?([^" \n]+)')

ROUND = [
    "ls -la /etc >/dev/null", "cat /etc/os-release >/dev/null", "grep -c . /etc/passwd >/dev/null",
    "sudo tail -n 20 /var/log/auth.log >/dev/null 2>&1; true", "echo note >> ~/notes-{tag}; sed -i 's/note/n/' ~/notes-{tag}",
    "crontab -l >/dev/null 2>&1; true", "systemctl status ssh >/dev/null 2>&1; true",
    "ssh -o BatchMode=yes 127.0.0.2 true 2>/dev/null; true", "ps aux >/dev/null", "df -h >/dev/null",
]
ADMIN = [
    "sudo touch /etc/pam.d/agentd-bench-{tag}; sudo rm -f /etc/pam.d/agentd-bench-{tag}",
    "sudo touch /etc/cron.d/agentd-bench-{tag}; sudo rm -f /etc/cron.d/agentd-bench-{tag}",
    "sudo touch /etc/profile.d/agentd-bench-{tag}.sh; sudo rm -f /etc/profile.d/agentd-bench-{tag}.sh",
]


def events_of(raw: bytes, ses: str) -> dict:
    """serial -> [bytes, records, key] of the audit events of one login session."""
    by_serial: dict = {}
    for line in raw.splitlines(keepends=True):
        m = _REC.search(line)
        if not m:
            continue
        e = by_serial.setdefault(m.group(1), [0, 0, None, None])
        e[0] += len(line)
        e[1] += 1
        s = _SES.search(line)
        if s:
            e[3] = s.group(1).decode()
        k = _KEY.search(line)
        if k and e[2] is None:
            e[2] = k.group(1).decode()
    return {serial: e[:3] for serial, e in by_serial.items() if e[3] == ses}


def tally(events: dict) -> dict:
    watch = [e for e in events.values() if e[2] in WATCH_KEYS]
    return {"events": len(events), "records": sum(e[1] for e in events.values()),
            "bytes": sum(e[0] for e in events.values()), "watch_events": len(watch),
            "watch_records": sum(e[1] for e in watch), "watch_bytes": sum(e[0] for e in watch)}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=60.0)
    args = ap.parse_args(argv)
    info = _stack.up()
    tag = uuid.uuid4().hex[:6]
    key = info.users["alice"]["key_path"]
    with SshSession("alice", key=key) as s:
        ses = s.run("cat /proc/self/sessionid").strip()
        mark = audit_position()
        t0, rounds = time.monotonic(), 0
        while time.monotonic() - t0 < args.seconds:
            for cmd in ROUND:
                s.run(cmd.format(tag=tag), timeout=60)
            rounds += 1
        elapsed = time.monotonic() - t0
        s.run(f"rm -f ~/notes-{tag}")
        time.sleep(1.0)  # auditd writes asynchronously
        work = tally(events_of(audit_bytes_since(mark), ses))
        mark = audit_position()
        for cmd in ADMIN:
            s.run(cmd.format(tag=tag), timeout=60)
        time.sleep(1.0)
        admin = tally(events_of(audit_bytes_since(mark), ses))
    per_min = 60.0 / elapsed
    result = {
        "seconds": round(elapsed, 1), "rounds": rounds, "commands_per_min": round(rounds * len(ROUND) * per_min),
        "with_records_per_min": round(work["records"] * per_min),
        "with_bytes_per_min": round(work["bytes"] * per_min),
        "without_records_per_min": round((work["records"] - work["watch_records"]) * per_min),
        "without_bytes_per_min": round((work["bytes"] - work["watch_bytes"]) * per_min),
        "watch_events_in_workload": work["watch_events"],
        "admin_changes": len(ADMIN) * 2, "admin_watch_records": admin["watch_records"],
        "admin_watch_bytes": admin["watch_bytes"],
    }
    w = result
    print(f"typical session, {w['seconds']}s, {w['commands_per_min']} commands/min:")
    print(f"  with the watches    {w['with_records_per_min']:7d} records/min {w['with_bytes_per_min']:9d} bytes/min")
    print(f"  without the watches {w['without_records_per_min']:7d} records/min {w['without_bytes_per_min']:9d} "
          f"bytes/min ({w['watch_events_in_workload']} events logged by the watches)")
    print(f"admin writes to watched files: {w['admin_changes']} (create + remove of a PAM, cron and profile "
          f"file): {w['admin_watch_records']} records, {w['admin_watch_bytes']} bytes")
    print("BENCH-RESULT " + json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
