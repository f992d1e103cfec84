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
import struct
from typing import Optional

CLK_TCK = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")
UNSET = 4294967295  # sessionid / loginuid of a process outside any login


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
            ids = line.split()
            out["uid"], out["euid"] = int(ids[1]), int(ids[2])
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


def _ip(family: str, raw: bytes) -> str:
    if family == "ipv4":
        return socket.inet_ntop(socket.AF_INET, raw[:4])
    if raw[:12] == b"\0" * 10 + b"\xff\xff":
        return socket.inet_ntop(socket.AF_INET, raw[12:16])  # ::ffff:a.b.c.d is an IPv4 peer
    return socket.inet_ntop(socket.AF_INET6, raw[:16])


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


# Raw socket rows, kept undecoded until a socket is new:
# (transport, family, local addr bytes, local port, remote addr bytes, remote port, state, uid)
TCP_DIAG_STATES = {1: "established", 2: "syn_sent", 3: "syn_recv", 10: "listen"}
_DIAG_REQ = struct.Struct("=IHHII BBBBI HH16s16sI8s")
_DIAG_MSG = struct.Struct("=BBBB HH16s16sI8s IIIII")
_NLHDR = struct.Struct("=IHHII")
SOCK_DIAG_BY_FAMILY = 20
NLM_F_REQUEST_DUMP = 0x1 | 0x300


def sockets_diag() -> dict:
    """inode -> raw row, from the kernel's socket diagnostics (netlink sock_diag).

    Much cheaper than /proc/net/tcp*, whose text the kernel regenerates on each read
    (about 11 ms for 1,000 sockets here, against well under one for the dump)."""
    out: dict = {}
    with socket.socket(socket.AF_NETLINK, socket.SOCK_DGRAM, 4) as nl:  # NETLINK_SOCK_DIAG
        for transport, proto, states in (("tcp", 6, sum(1 << s for s in TCP_DIAG_STATES)), ("udp", 17, 0xFFFFFFFF)):
            for family, af in (("ipv4", socket.AF_INET), ("ipv6", socket.AF_INET6)):
                nl.send(_DIAG_REQ.pack(_DIAG_REQ.size, SOCK_DIAG_BY_FAMILY, NLM_F_REQUEST_DUMP, 0, 0,
                                       af, proto, 0, 0, states, 0, 0, b"", b"", 0, b""))
                _dump(nl, transport, family, out)
    return out


def _dump(nl, transport: str, family: str, out: dict) -> None:
    while True:
        data = nl.recv(1 << 20)
        off = 0
        while off + _NLHDR.size <= len(data):
            length, mtype = _NLHDR.unpack_from(data, off)[:2]
            if mtype == 3:  # NLMSG_DONE
                return
            if mtype == 2:  # NLMSG_ERROR
                raise OSError("sock_diag dump failed")
            (fam, st, _t, _r, sport, dport, src, dst, _if, _ck,
             _exp, _rq, _wq, uid, ino) = _DIAG_MSG.unpack_from(data, off + _NLHDR.size)
            if ino:
                if transport == "tcp":
                    state = TCP_DIAG_STATES.get(st)
                else:
                    state = "connected" if dport else "bound"
                if state is not None:
                    out[ino] = (transport, family, src, socket.ntohs(sport), dst, socket.ntohs(dport), state, uid)
            off += (length + 3) & ~3
            if length == 0:
                return


def sockets_proc() -> dict:
    """The same rows from /proc/net/{tcp,udp}{,6}: where sock_diag is not available."""
    out: dict = {}
    for transport, family, path in (("tcp", "ipv4", "/proc/net/tcp"), ("tcp", "ipv6", "/proc/net/tcp6"),
                                    ("udp", "ipv4", "/proc/net/udp"), ("udp", "ipv6", "/proc/net/udp6")):
        for line in (_read(path) or "").splitlines()[1:]:
            f = line.split()
            ino = int(f[9])
            if not ino:
                continue
            code = int(f[3], 16)
            la, lp = f[1].split(":")
            ra, rp = f[2].split(":")
            rport = int(rp, 16)
            state = (TCP_DIAG_STATES.get(code) if transport == "tcp" else ("connected" if rport else "bound"))
            if state is None:
                continue
            out[ino] = (transport, family, _unhex(la), int(lp, 16), _unhex(ra), rport, state, int(f[7]))
    return out


def _unhex(h: str) -> bytes:
    b = bytes.fromhex(h)
    return b"".join(b[i:i + 4][::-1] for i in range(0, len(b), 4))  # each 32-bit word is host order


def sockets() -> dict:
    try:
        return sockets_diag()
    except OSError:
        return sockets_proc()


def decode(raw: tuple) -> Sock:
    transport, family, la, lport, ra, rport, state, _uid = raw
    return Sock(transport, family, _ip(family, la), lport, _ip(family, ra) if rport else "", rport, state)
