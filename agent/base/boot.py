"""When this host booted, as /proc/stat's ``btime`` says (whole seconds since the epoch).

/proc/PID/stat gives a process's start in clock ticks since boot; both the process tree
(live) and the snapshots collector turn that into a time with this. Read once: it does
not change while the host is up.
"""

from __future__ import annotations

_btime: list = []


def boot_time() -> float:
    """btime, or 0.0 where /proc/stat cannot be read or has none."""
    if not _btime:
        try:
            with open("/proc/stat", "rb") as f:
                for line in f:
                    if line.startswith(b"btime "):
                        _btime.append(float(line.split()[1]))
                        break
        except OSError:
            pass
        if not _btime:
            _btime.append(0.0)
    return _btime[0]
