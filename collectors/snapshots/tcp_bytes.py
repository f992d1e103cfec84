"""Bytes of a TCP connection at its close, from the kernel's socket diagnostics.

psutil and /proc give no per-socket byte counts. The kernel's tcp_info does (what
``ss -ti`` prints: bytes_sent, bytes_retrans, bytes_received), and sock_diag, the
netlink family the socket tables are dumped from (scan.sockets_diag), broadcasts a
TCP socket's final tcp_info when the kernel frees it (multicast groups
SKNLGRP_INET_TCP_DESTROY and SKNLGRP_INET6_TCP_DESTROY, Linux >= 4.5, CAP_NET_ADMIN).
So nothing is polled and no socket table is read with tcp_info attached: a notice
arrives once per TCP socket freed on the host, and only those of connections the
collector tracks are decoded. A notice has no inode (the socket has left its
process by then); it is matched by the kernel's socket cookie, which the dump gives too.

Counts: sent = bytes_sent - bytes_retrans (data octets, retransmissions once);
received = bytes_received, which counts the peer's FIN as one (TCP sequence space).
"""

from __future__ import annotations

import errno
import socket
import struct
from typing import Optional

NETLINK_SOCK_DIAG = 4
GROUPS = 1 << 0 | 1 << 2  # SKNLGRP_INET_TCP_DESTROY (1), SKNLGRP_INET6_TCP_DESTROY (3): bit n-1
SO_RCVBUFFORCE = 33
RCVBUF = 4 * 1024 * 1024
INET_DIAG_INFO = 2
_NLHDR = struct.Struct("=IH")
_ATTR = struct.Struct("=HH")
_MSG_AT = 16  # struct inet_diag_msg after the netlink header
_COOKIE_AT = _MSG_AT + 44
_ATTRS_AT = _MSG_AT + 72
_INFO = struct.Struct("=120xQQ")  # tcpi_bytes_acked, tcpi_bytes_received
_SENT = struct.Struct("=200xQQ")  # tcpi_bytes_sent, tcpi_bytes_retrans (Linux >= 4.19)
MAX_WANTED = 65536


class TcpBytes:
    """``want(cookie)`` for each tracked TCP connection; ``drain()`` often (the kernel
    queues notices in a bounded buffer); ``take(cookie)`` -> (sent, received) or None."""

    def __init__(self):
        self.sock = socket.socket(socket.AF_NETLINK, socket.SOCK_DGRAM, NETLINK_SOCK_DIAG)
        try:
            try:
                self.sock.setsockopt(socket.SOL_SOCKET, SO_RCVBUFFORCE, RCVBUF)
            except OSError:
                self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RCVBUF)
            self.sock.bind((0, GROUPS))
            self.sock.setblocking(False)
        except OSError:
            self.sock.close()
            raise
        self.wanted: set = set()
        self.got: dict = {}  # cookie -> (sent, received), for wanted cookies only
        self.lost = 0  # times the kernel dropped notices (buffer full): those closes have no bytes

    def want(self, cookie: bytes) -> None:
        if cookie and len(self.wanted) < MAX_WANTED:
            self.wanted.add(cookie)

    def take(self, cookie: bytes) -> Optional[tuple]:
        """The counts of a connection gone from the socket table; None while no notice came
        (the socket may still be closing: FIN_WAIT, LAST_ACK). Call ``forget`` to give up."""
        got = self.got.pop(cookie, None)
        if got is not None:
            self.wanted.discard(cookie)
        return got

    def forget(self, cookie: bytes) -> None:
        self.wanted.discard(cookie)
        self.got.pop(cookie, None)

    def drain(self) -> None:
        wanted, got = self.wanted, self.got
        while True:
            try:
                data, sender = self.sock.recvfrom(65536)
            except BlockingIOError:
                return
            except OSError as e:
                if e.errno == errno.ENOBUFS:
                    self.lost += 1
                    continue
                raise
            if sender[0] != 0:
                continue  # not from the kernel: any local process may send to a netlink port
            off = 0
            while off + _ATTRS_AT <= len(data):
                length = _NLHDR.unpack_from(data, off)[0]
                if length < _ATTRS_AT:
                    break
                cookie = data[off + _COOKIE_AT:off + _COOKIE_AT + 8]
                if cookie in wanted:
                    counts = _counts(data, off + _ATTRS_AT, off + length)
                    if counts is not None:
                        got[cookie] = counts
                off += (length + 3) & ~3

    def close(self) -> None:
        self.sock.close()


def _counts(data: bytes, at: int, end: int) -> Optional[tuple]:
    while at + _ATTR.size <= end:
        alen, atype = _ATTR.unpack_from(data, at)
        if alen < _ATTR.size:
            return None
        if atype & 0x3FFF == INET_DIAG_INFO:
            info = data[at + _ATTR.size:at + alen]
            if len(info) >= _SENT.size:
                sent, retrans = _SENT.unpack_from(info)
                return sent - retrans, _INFO.unpack_from(info)[1]
            if len(info) >= _INFO.size:
                return _INFO.unpack_from(info)  # older kernels: bytes_acked stands for sent
            return None
        at += (alen + 3) & ~3
    return None
