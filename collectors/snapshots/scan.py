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


def pids() -> set:
    return set(map(int, filter(str.isdigit, os.listdir("/proc"))))


def _read(path: str) -> Optional[str]:
    # os.open/os.read, not open(): no buffered file object per read (a cold scan reads
    # six small files for each process of a login)
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:  # gone, or a kernel thread
        return None
    try:
        data = os.read(fd, 65536)
        if data:
            more = os.read(fd, 65536)
            while more:  # a long command line
                data += more
                more = os.read(fd, 65536)
    except OSError:
        return None
    finally:
        os.close(fd)
    return data.decode("utf-8", "surrogateescape")


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
    v = _read(f"/proc/{pid}/status")
    if not v:
        return out
    i = v.find("\nUid:")
    if i >= 0:
        ids = v[i + 5:v.find("\n", i + 1)].split()
        out["uid"], out["euid"] = int(ids[0]), int(ids[1])
    i = v.find("\nVmHWM:")
    if i >= 0:
        out["hwm"] = int(v[i + 7:v.find("\n", i + 1)].split()[0]) * 1024
    return out


def cmdline(pid: int) -> list:
    v = _read(f"/proc/{pid}/cmdline")
    return v.rstrip("\0").split("\0") if v else []


def exe(pid: int) -> str:
    try:
        return os.readlink(f"/proc/{pid}/exe")
    except OSError:
        return ""


def fd_count(pid: int) -> Optional[int]:
    """How many descriptors a process has open (Linux >= 6.2 gives it as the size of
    /proc/PID/fd; None where it cannot be read, 0 on older kernels: then always read)."""
    try:
        n = os.stat(f"/proc/{pid}/fd").st_size
    except OSError:
        return None
    return n or None


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


# Raw socket rows, kept undecoded until a socket is new: (transport, family, local addr
# bytes, local port, remote addr bytes, remote port, state, uid, sock_diag cookie)
TCP_DIAG_STATES = {1: "established", 2: "syn_sent", 3: "syn_recv", 10: "listen",
                   # a connection the peer or the holder has begun to close, still held by a
                   # process (an orphan has inode 0 and is not listed): it is closed when let go
                   4: "closing", 5: "closing", 8: "closing", 9: "closing", 11: "closing"}
_DIAG_REQ = struct.Struct("=IHHII BBBBI HH16s16sI8s")
# the compat request (inet_diag_req, TCPDIAG_GETSOCK): the kernel dumps IPv4 and IPv6 in
# one walk of its TCP hash table, which costs about 2 ms here however few sockets there are
_DIAG_REQ_V1 = struct.Struct("=IHHII BBBB HH16s16sI8s II")
TCPDIAG_GETSOCK = 18
_DIAG_MSG = struct.Struct("=BBBB HH16s16sI8s IIIII")
# one read per message of what every socket needs: netlink length and type, family, state,
# local port, uid, inode (the rest is decoded only for a socket not seen before)
_DIAG_QUICK = struct.Struct("=IH10xBBxxH58xII")
_NLHDR = struct.Struct("=IHHII")
SOCK_DIAG_BY_FAMILY = 20
NLM_F_REQUEST_DUMP = 0x1 | 0x300
_FAMILY = {socket.AF_INET: "ipv4", socket.AF_INET6: "ipv6"}
_TCP_STATES = sum(1 << s for s in TCP_DIAG_STATES)


class Table(dict):
    """inode -> raw row (None for a socket the caller already knows: not decoded), and
    ``listen``: the local ports of every listening TCP socket of the host."""

    def __init__(self):
        super().__init__()
        self.listen: set = set()


def sockets_diag(known=()) -> Table:
    """The host's sockets from the kernel's socket diagnostics (netlink sock_diag).

    Much cheaper than /proc/net/tcp*, whose text the kernel regenerates on each read
    (about 11 ms for 1,000 sockets here, against well under one for the dump).
    Sockets in ``known`` (inodes) are listed with no row: most of a steady scan."""
    out = Table()
    with socket.socket(socket.AF_NETLINK, socket.SOCK_DGRAM, 4) as nl:  # NETLINK_SOCK_DIAG
        nl.send(_DIAG_REQ_V1.pack(_DIAG_REQ_V1.size, TCPDIAG_GETSOCK, NLM_F_REQUEST_DUMP, 0, 0,
                                  socket.AF_INET, 0, 0, 0, 0, 0, b"", b"", 0, b"", _TCP_STATES, 0))
        try:
            _dump(nl, "tcp", out, known)
        except OSError:  # a kernel without the compat request: one dump per family
            for af in (socket.AF_INET, socket.AF_INET6):
                _request(nl, af, 6, _TCP_STATES)
                _dump(nl, "tcp", out, known)
        for af in (socket.AF_INET, socket.AF_INET6):
            _request(nl, af, 17, 0xFFFFFFFF)
            _dump(nl, "udp", out, known)
    return out


def _request(nl, af: int, proto: int, states: int) -> None:
    nl.send(_DIAG_REQ.pack(_DIAG_REQ.size, SOCK_DIAG_BY_FAMILY, NLM_F_REQUEST_DUMP, 0, 0,
                           af, proto, 0, 0, states, 0, 0, b"", b"", 0, b""))


def _dump(nl, transport: str, out: Table, known) -> None:
    quick, full, hdr = _DIAG_QUICK.unpack_from, _DIAG_MSG.unpack_from, _NLHDR.size
    tcp = transport == "tcp"
    while True:
        data = nl.recv(1 << 20)
        off, end = 0, len(data)
        while off + hdr <= end:
            if end - off < _DIAG_QUICK.size:
                length, mtype = _NLHDR.unpack_from(data, off)[:2]
                if mtype == 3:  # NLMSG_DONE
                    return
                raise OSError("sock_diag dump failed" if mtype == 2 else "sock_diag: short message")
            length, mtype, af, st, sport, uid, ino = quick(data, off)
            if mtype == 3:  # NLMSG_DONE
                return
            if mtype == 2:  # NLMSG_ERROR
                raise OSError("sock_diag dump failed")
            if tcp and st == 10:
                out.listen.add(socket.ntohs(sport))
            if ino:
                if ino in known:
                    out[ino] = None
                else:
                    (_f, _s, _t, _r, _sp, dport, src, dst, _if, cookie, *_rest) = full(data, off + hdr)
                    state = TCP_DIAG_STATES.get(st) if tcp else ("connected" if dport else "bound")
                    family = _FAMILY.get(af)
                    if state is not None and family is not None:
                        out[ino] = (transport, family, src, socket.ntohs(sport), dst, socket.ntohs(dport), state, uid,
                                    cookie)
            if length == 0:
                return
            off += (length + 3) & ~3


def sockets_proc(known=()) -> Table:
    """The same rows from /proc/net/{tcp,udp}{,6}: where sock_diag is not available."""
    out = Table()
    for transport, family, path in (("tcp", "ipv4", "/proc/net/tcp"), ("tcp", "ipv6", "/proc/net/tcp6"),
                                    ("udp", "ipv4", "/proc/net/udp"), ("udp", "ipv6", "/proc/net/udp6")):
        for line in (_read(path) or "").splitlines()[1:]:
            f = line.split()
            ino = int(f[9])
            code = int(f[3], 16)
            la, lp = f[1].split(":")
            if transport == "tcp" and code == 10:
                out.listen.add(int(lp, 16))
            if not ino:
                continue
            ra, rp = f[2].split(":")
            rport = int(rp, 16)
            state = (TCP_DIAG_STATES.get(code) if transport == "tcp" else ("connected" if rport else "bound"))
            if state is None:
                continue
            out[ino] = (transport, family, _unhex(la), int(lp, 16), _unhex(ra), rport, state, int(f[7]), b"")
    return out


def _unhex(h: str) -> bytes:
    b = bytes.fromhex(h)
    return b"".join(b[i:i + 4][::-1] for i in range(0, len(b), 4))  # each 32-bit word is host order


def sockets(known=()) -> Table:
    try:
        return sockets_diag(known)
    except OSError:
        return sockets_proc(known)


def decode(raw: tuple) -> Sock:
    transport, family, la, lport, ra, rport, state = raw[:7]
    return Sock(transport, family, _ip(family, la), lport, _ip(family, ra) if rport else "", rport, state)
