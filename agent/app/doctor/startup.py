"""What `agentd run` says when it starts: where the events go (its first line), and
the doctor's WARN/FAIL findings, once, from a background thread so start-up does not
wait for sshd -T and auditctl."""

from __future__ import annotations

import logging
import threading

from agent.app.doctor.finding import FAIL, OK

log = logging.getLogger("agentd")

# The shippers report their own connection errors while running.
RUN_GROUPS = ("agent", "audit", "pam", "sshd", "journald", "posture")
# Checks that ask what only root may ask (auditctl -s / -l, sshd -T reading host keys).
NEED_ROOT = ("audit.daemon", "audit.rules", "audit.rules.boot", "sshd.config")


def destinations(cfg) -> str:
    from agent.app.doctor.shippers import destination

    parts = [f"[{c.section}] {c.type_name} {destination(c)}" for c in cfg.enabled("shipper")]
    return "events go to: " + ("; ".join(parts) or "nowhere (no enabled shipper)")


def _log_findings(cfg) -> None:
    from agent.app import doctor

    try:
        findings = doctor.run_checks(doctor.Context(cfg.path, online=False, cfg=cfg), RUN_GROUPS)
    except Exception:
        log.exception("agentd doctor checks at start failed")
        return
    # Under the packaged unit agentd is not root: what it may not ask (auditctl -s, sshd -T)
    # is one INFO line, not a FAIL at every start.
    unable = [f.check for f in findings
              if f.check in NEED_ROOT and f.status != OK and f.summary.startswith("cannot")]
    if unable:
        log.info("doctor: could not check %s with this process's rights; `agentd doctor` as root does",
                 ", ".join(unable))
    bad = [f for f in findings if f.status != OK and f.check not in unable]
    for f in bad:
        log.log(logging.ERROR if f.status == FAIL else logging.WARNING, "doctor: %s", f.line())
    if bad:
        log.info("doctor: %d finding(s) above; `agentd doctor -c %s` shows every check", len(bad), cfg.path)


def log_findings_in_background(cfg) -> threading.Thread:
    t = threading.Thread(target=_log_findings, args=(cfg,), name="doctor", daemon=True)
    t.start()
    return t
