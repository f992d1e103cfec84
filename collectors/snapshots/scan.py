"""Sampling /proc: processes of login sessions, their sockets, the kernel's socket tables.

The hot path reads /proc directly instead of through psutil: `psutil.net_connections`
maps every file descriptor of every process on each call, which at 500 processes and
1,000 sockets costs more than the whole snapshot budget (benchmarks/snapshots_bench.py).
Here only processes of a login session (a set /proc/PID/sessionid) are looked at,
and descriptors are read only when the socket tables hold an inode not seen before.
"""

from __future__ import annotations

import os
import socket
from typing import Optional

CLK_TCK = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")
UNSET = 4294967295  # sessionid / loginuid of a process outside any login

TCP_STATES = {"01": "established", "02": "syn_sent", "03": "syn_recv", "0A": "listen"}


def pids() -> list:
    return [int(n) for n in os.listdir("/proc") if n.isdigit()]


def _read(path: str) -> Optional[str]:
    try:
        with open(path, "rb") as f:
            return f.read().decode("utf-8", "surrogateescape")
    except OSError:  # gone, or a kernel thread
        return None


def session_of(pid: int) -> Optional[int]:
    """The kernel audit session of a process (what the audit records call ses), or None."""
    v = _read(f"/proc/{pid}/sessionid")
    if not v:
        return None
    ses = int(v)
    return None if ses == UNSET else ses


def loginuid(pid: int) -> Optional[int]:
    v = _read(f"/proc/{pid}/loginuid")
    return None if not v or int(v) == UNSET else int(v)


def stat(pid: int) -> Optional[tuple]:
    """(comm, ppid, cpu ticks user+system, start ticks since boot, rss bytes, state letter)."""
    v = _read(f"/proc/{pid}/stat")
    if not v:
        return None
    lp, rp = v.find("("), v.rfind(")")
    f = v[rp + 2:].split()
    # after "(comm) ": state ppid pgrp session tty tpgid flags minflt cminflt majflt cmajflt utime stime ...
    return v[lp + 1:rp], int(f[1]), int(f[11]) + int(f[12]), int(f[19]), int(f[21]) * PAGE, f[0]


def io(pid: int) -> Optional[dict]:
    v = _read(f"/proc/{pid}/io")
    if not v:
        return None
    out = {}
    for line in v.splitlines():
        k, _, n = line.partition(":")
        out[k] = int(n)
    return out


def status(pid: int) -> dict:
    """uid and peak RSS (VmHWM) from /proc/PID/status."""
    out: dict = {}
    for line in (_read(f"/proc/{pid}/status") or "").splitlines():
        if line.startswith("Uid:"):
            out["uid"] = int(line.split()[1])
        elif line.startswith("VmHWM:"):
            out["hwm"] = int(line.split()[1]) * 1024
    return out


def cmdline(pid: int) -> list:
    v = _read(f"/proc/{pid}/cmdline")
    return v.rstrip("\0").split("\0") if v else []


def exe(pid: int) -> str:
    try:
        return os.readlink(f"/proc/{pid}/exe")
    except OSError:
        return ""


def socket_inodes(pid: int) -> list:
    base = f"/proc/{pid}/fd"
    out = []
    try:
        names = os.listdir(base)
    except OSError:
        return out
    for n in names:
        try:
            link = os.readlink(f"{base}/{n}")
        except OSError:
            continue
        if link.startswith("socket:["):
            out.append(int(link[8:-1]))
    return out


def boot_time() -> float:
    for line in (_read("/proc/stat") or "").splitlines():
        if line.startswith("btime "):
            return float(line.split()[1])
    return 0.0


def _addr4(h: str) -> str:
    return socket.inet_ntop(socket.AF_INET, bytes.fromhex(h)[::-1])


def _addr6(h: str) -> str:
    b = bytes.fromhex(h)
    raw = b"".join(b[i:i + 4][::-1] for i in range(0, 16, 4))
    if raw[:12] == b"\0" * 10 + b"\xff\xff":
        return socket.inet_ntop(socket.AF_INET, raw[12:])  # ::ffff:a.b.c.d is an IPv4 peer
    return socket.inet_ntop(socket.AF_INET6, raw)


class Sock:
    __slots__ = ("transport", "family", "lip", "lport", "rip", "rport", "state")

    def __init__(self, transport, family, lip, lport, rip, rport, state):
        self.transport = transport
        self.family = family
        self.lip = lip
        self.lport = lport
        self.rip = rip
        self.rport = rport
        self.state = state


_TABLES = (("tcp", "ipv4", "/proc/net/tcp"), ("tcp", "ipv6", "/proc/net/tcp6"),
           ("udp", "ipv4", "/proc/net/udp"), ("udp", "ipv6", "/proc/net/udp6"))


def sockets(tables=_TABLES) -> dict:
    """inode -> Sock for every inet socket with an owner (inode 0: TIME_WAIT and the like).

    Addresses are decoded lazily by the caller's needs: only new inodes are turned
    into Sock objects, the rest is a dict lookup of the raw line's inode.
    """
    out: dict = {}
    for transport, family, path in tables:
        text = _read(path)
        if not text:
            continue
        conv = _addr4 if family == "ipv4" else _addr6
        for line in text.splitlines()[1:]:
            f = line.split()
            ino = int(f[9])
            if not ino:
                continue
            st = f[3]
            if transport == "tcp":
                state = TCP_STATES.get(st)
                if state is None:
                    continue  # closing states: the connection is over for us
            else:
                state = "bound"
            la, lp = f[1].split(":")
            ra, rp = f[2].split(":")
            out[ino] = (transport, family, conv, la, lp, ra, rp, state)
    return out


def decode(raw: tuple) -> Sock:
    transport, family, conv, la, lp, ra, rp, state = raw
    rport = int(rp, 16)
    rip = conv(ra) if rport else ""
    if transport == "udp" and rport:
        state = "connected"
    return Sock(transport, family, conv(la), int(lp, 16), rip, rport, state)
