"""Redaction speed: strings/s and events/s of the redaction stage (it runs on every event).

    .venv/bin/python benchmarks/redact_bench.py [--repo PATH]

--repo runs the same measurement against another checkout's agent.pipeline.redact (e.g. main
before a change), so before/after figures come from one machine in one run.

Workloads:
* events: every document of tests/golden/*.jsonl plus exec events built from the redaction corpus,
  through Redactor.apply (fresh copies each round; one Redactor, as in the daemon);
* unique lines: the corpus command lines made unique per round (a counter appended), so no cache
  helps: the worst case of new text;
* repeated lines: the same lines every round (what a bastion mostly sees: the same commands);
* plain unique lines: everyday commands with no keyword (ls, cd, systemctl ...), made unique.
"""

from __future__ import annotations

import argparse
import copy
import glob
import json
import os
import re
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)


def _corpus() -> list:
    out = []
    for name in ("clean.txt", "secrets.txt"):
        path = os.path.join(REPO, "tests", "unit", "data", "redaction", name)
        with open(path, encoding="utf-8") as f:
            out += [re.sub("[⟦⟧]", "", line.rstrip("\n")) for line in f if line.strip() and not line.startswith("#")]
    return out


def _events(lines: list) -> list:
    docs = []
    for path in sorted(glob.glob(os.path.join(REPO, "tests", "golden", "*.jsonl"))):
        with open(path, encoding="utf-8") as f:
            docs += [json.loads(line) for line in f if line.strip()]
    for line in lines:
        args = line.split()
        docs.append({"event": {"module": "auditd", "dataset": "auditd.process"},
                     "process": {"args": args, "command_line": line, "title": line[:128], "name": args[0]}})
    return docs


PLAIN = ["ls -la /var/log", "cd /srv/app/releases", "systemctl status nginx --no-pager", "tail -n 100 /var/log/syslog",
         "vim /etc/hosts", "df -h", "ps aux --sort=-%mem | head", "grep -r error /var/log/app/", "sudo -i",
         "docker ps -a", "kubectl get pods -n prod", "git pull origin main", "journalctl -u sshd --since today",
         "cat /etc/os-release", "ip addr show", "ss -tlnp", "free -m", "uptime", "top -b -n1 | head -20", "exit"]


def _rate(fn, n_items: int, min_seconds: float = 2.0) -> float:
    """Items per CPU second (process time: steadier than wall time on a shared machine)."""
    rounds, t0 = 0, time.process_time()
    while True:
        fn(rounds)
        rounds += 1
        dt = time.process_time() - t0
        if dt >= min_seconds:
            return n_items * rounds / dt


def main(repo: str = REPO) -> dict:
    sys.path.insert(0, repo)
    from agent.pipeline.redact import Redactor
    lines = _corpus()
    docs = _events(lines)
    r = Redactor()

    def events(_):
        for d in copy.deepcopy(docs):
            r.apply(d)

    def unique(k):
        for line in lines:
            r.redact_text("%s #%d" % (line, k))

    def plain(k):
        for line in PLAIN:
            r.redact_text("%s #%d" % (line, k))

    def repeated(_):
        for line in lines:
            r.redact_text(line)

    res = {
        "repo": repo,
        "events_per_s": round(_rate(events, len(docs))),
        "unique_lines_per_s": round(_rate(unique, len(lines))),
        "repeated_lines_per_s": round(_rate(repeated, len(lines))),
        "plain_unique_lines_per_s": round(_rate(plain, len(PLAIN))),
        "n_lines": len(lines), "n_events": len(docs),
    }
    return res


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--repo", default=REPO)
    a = ap.parse_args()
    print("BENCH-RESULT " + json.dumps(main(os.path.abspath(a.repo)), sort_keys=True))
