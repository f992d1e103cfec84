"""sd_notify without a dependency: READY, STOPPING, WATCHDOG, STATUS.

Works with no systemd at all (NOTIFY_SOCKET unset: every call is a no-op), so the
same `agentd run` serves systemd Type=notify units and a terminal.
"""

from __future__ import annotations

import os
import socket


def notify(message: str) -> bool:
    addr = os.environ.get("NOTIFY_SOCKET")
    if not addr:
        return False
    if addr.startswith("@"):
        addr = "\0" + addr[1:]  # abstract namespace
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as s:
            s.connect(addr)
            s.sendall(message.encode())
        return True
    except OSError:
        return False


def watchdog_interval() -> float:
    """Seconds between WATCHDOG=1 pings (half the unit's WatchdogSec), 0 when off."""
    usec = os.environ.get("WATCHDOG_USEC")
    pid = os.environ.get("WATCHDOG_PID")
    if not usec or (pid and pid != str(os.getpid())):
        return 0.0
    try:
        return int(usec) / 2e6
    except ValueError:
        return 0.0
