"""The kernel's process events (netlink proc connector): exec and exit as they happen.

Polling /proc every few seconds misses a process that lives a fraction of a second,
and a transfer client must be watched from its exec to read its I/O counters before
it is gone. The proc connector (root, CONFIG_PROC_EVENTS) pushes each exec and exit;
nothing is polled. Where it cannot be opened the collector polls /proc only, and says so.
"""

from __future__ import annotations

import ctypes
import errno
import os
import select
import socket
import struct

NETLINK_CONNECTOR = 11
CN_IDX_PROC = 1
CN_VAL_PROC = 1
PROC_CN_MCAST_LISTEN = 1
NLMSG_DONE = 3
EXEC = 0x2
EXIT = 0x80000000

_NLHDR = struct.Struct("=IHHII")
_CNMSG = struct.Struct("=IIIIHH")
_EVHDR = struct.Struct("=IIQ")
_PIDS = struct.Struct("=II")
_EXIT = struct.Struct("=IIII")  # pid, tgid, exit_code, exit_signal

SO_ATTACH_FILTER = 26
_WHAT, _PID, _TGID = 36, 52, 56  # offsets in a message: nlmsghdr 16 + cn_msg 20, then proc_event
# A classic BPF socket filter: the kernel drops every proc event but an exec and a
# process's (not a thread's) exit. The connector sends fork, exit, comm, uid... of every
# task on the host; each woke the collector for nothing (most of its cost when the host
# forks a lot). BPF loads words big-endian: the event codes are compared byte-swapped.
_FILTER = (
    (0x20, 0, 0, _WHAT),                      # 0 A = what
    (0x15, 7, 0, socket.htonl(EXEC)),          # 1 exec: accept
    (0x15, 0, 5, socket.htonl(EXIT)),          # 2 not an exit: drop
    (0x20, 0, 0, _TGID),                       # 3 A = tgid
    (0x02, 0, 0, 0),                           # 4 M[0] = A
    (0x61, 0, 0, 0),                           # 5 X = M[0]
    (0x20, 0, 0, _PID),                        # 6 A = pid
    (0x1D, 1, 0, 0),                           # 7 pid == tgid: accept
    (0x06, 0, 0, 0),                           # 8 drop
    (0x06, 0, 0, 0x40000),                     # 9 accept
)


def _attach_filter(sock: socket.socket) -> bool:
    prog = b"".join(struct.pack("=HBBI", *ins) for ins in _FILTER)
    buf = ctypes.create_string_buffer(prog, len(prog))
    try:  # struct sock_fprog {unsigned short len; struct sock_filter *filter;}; the kernel copies it
        sock.setsockopt(socket.SOL_SOCKET, SO_ATTACH_FILTER, struct.pack("HP", len(_FILTER), ctypes.addressof(buf)))
    except OSError:
        return False  # every event is read and sorted here instead
    return True


class ProcEvents:
    """``poll(timeout)`` -> ([exec'd tgids], [(exited tgid, wait status)], overflowed)."""

    def __init__(self):
        self.sock = socket.socket(socket.AF_NETLINK, socket.SOCK_DGRAM, NETLINK_CONNECTOR)
        try:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 * 1024 * 1024)
            self.filtered = _attach_filter(self.sock)
            self.sock.bind((0, CN_IDX_PROC))
            payload = struct.pack("=I", PROC_CN_MCAST_LISTEN)
            cn = _CNMSG.pack(CN_IDX_PROC, CN_VAL_PROC, 0, 0, len(payload), 0) + payload
            self.sock.send(_NLHDR.pack(_NLHDR.size + len(cn), NLMSG_DONE, 0, 0, os.getpid()) + cn)
            self.sock.setblocking(False)
        except OSError:
            self.sock.close()
            raise

    def poll(self, timeout: float) -> tuple:
        execs: list = []
        exits: list = []
        overflow = False
        r, _, _ = select.select([self.sock], [], [], max(0.0, timeout))
        if not r:
            return execs, exits, overflow
        while True:
            try:
                data = self.sock.recv(65536)
            except BlockingIOError:
                break
            except OSError as e:
                if e.errno == errno.ENOBUFS:  # the kernel dropped events: the next scan catches up
                    overflow = True
                    continue
                raise
            off = 0
            while off + _NLHDR.size <= len(data):
                length = _NLHDR.unpack_from(data, off)[0]
                if length < _NLHDR.size:
                    break
                ev = off + _NLHDR.size + _CNMSG.size
                if ev + _EVHDR.size + _EXIT.size <= off + length:
                    what = _EVHDR.unpack_from(data, ev)[0]
                    pid, tgid, code, _sig = _EXIT.unpack_from(data, ev + _EVHDR.size)
                    if what == EXEC:
                        execs.append(tgid)
                    elif what == EXIT and pid == tgid:
                        exits.append((tgid, code))
                off += (length + 3) & ~3
        return execs, exits, overflow

    def close(self) -> None:
        self.sock.close()
