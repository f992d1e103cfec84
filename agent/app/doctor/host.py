"""The host and the agent itself: its config, the clock, room for the spool."""

from __future__ import annotations

import ctypes
import ctypes.util
import os
from typing import Optional

from agent.app.doctor.finding import FAIL, OK, WARN, Finding, cis

TIME_ERROR = 5  # adjtimex(2): the clock is not synchronized (STA_UNSYNC)
MIN_FREE = 100 * 1024 * 1024


def clock_state() -> Optional[int]:
    """adjtimex(2) read-only (modes 0): what `timedatectl` reports as NTPSynchronized,
    without needing systemd or D-Bus. None when it cannot be asked."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        buf = ctypes.create_string_buffer(512)  # struct timex is ~208 bytes; modes (first int) = 0
        rc = libc.adjtimex(buf)
    except (OSError, AttributeError):
        return None
    return None if rc < 0 else rc


def check_config(ctx) -> Finding:
    if ctx.config_errors:
        more = f" (+{len(ctx.config_errors) - 1} more: agentd check-config -c {ctx.config_path})" \
            if len(ctx.config_errors) > 1 else ""
        return Finding("agent.config", FAIL, ctx.config_errors[0] + more,
                       "everything: agentd will not start with it (the checks below use the default settings)",
                       f"fix {ctx.config_path}; `agentd check-config` lists every problem")
    parts = [c.section for c in ctx.cfg.enabled("collector") + ctx.cfg.enabled("shipper")]
    return Finding("agent.config", OK, f"{ctx.config_path}: {', '.join(parts)}")


def check_clock(ctx) -> Finding:
    state = clock_state()
    if state is None:
        return Finding("host.clock", WARN, "cannot ask the kernel whether the clock is synchronized",
                       "", "check with timedatectl")
    if state == TIME_ERROR:
        return Finding("host.clock", WARN, "the system clock is not synchronized (adjtimex: TIME_ERROR)",
                       "the true order of events across hosts: a skewed @timestamp misplaces this bastion's "
                       "events against the targets' and the SIEM's",
                       "enable time sync: systemctl enable --now systemd-timesyncd (or chrony)",
                       cis("2.3.1.1", "2.3.1"))
    return Finding("host.clock", OK, "the system clock is synchronized")


def _existing(path: str) -> str:
    while path and not os.path.exists(path):
        parent = os.path.dirname(path)
        if parent == path:
            break
        path = parent
    return path or "/"


def check_spool(ctx) -> Finding:
    state = ctx.cfg.agent["state_dir"]
    cap = int(ctx.cfg.agent["spool_max_bytes"])
    where = _existing(state)
    try:
        st = os.statvfs(where)
    except OSError as e:
        return Finding("host.spool", FAIL, f"cannot stat {where}: {e.strerror}", "every event (no spool)",
                       f"create {state}")
    free = st.f_bavail * st.f_frsize
    used = 0
    db = os.path.join(state, "spool.db")
    for suffix in ("", "-wal"):
        try:
            used += os.path.getsize(db + suffix)
        except OSError:
            pass
    room = free + used
    mib = 1024 * 1024
    if not os.access(where, os.W_OK):
        return Finding("host.spool", FAIL, f"{where} is not writable", "every event: nothing can be spooled",
                       "run agentd as root or give its user that directory")
    if free < MIN_FREE:
        return Finding("host.spool", FAIL, f"only {free // mib} MiB free under {where}",
                       "events once the disk is full: the spool stops taking them and the sources wait",
                       f"free space on the filesystem of {state}")
    if room < cap:
        return Finding("host.spool", WARN, f"spool cap spool_max_bytes {cap // mib} MiB but only "
                       f"{free // mib} MiB free under {where}",
                       "events when a SIEM outage fills the disk before the cap is reached",
                       f"lower spool_max_bytes below {room // mib} MiB in {ctx.config_path}, or free space")
    return Finding("host.spool", OK, f"{free // mib} MiB free under {where} for a spool capped at {cap // mib} MiB")


def checks(ctx) -> list:
    return [check_config(ctx), check_clock(ctx), check_spool(ctx)]
