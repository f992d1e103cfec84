"""Sockets of login sessions: opened, closed, listening; sshd's channels flagged as forwarded.

A socket is attributed to the session process that holds it (the first one found
holding its descriptor). Connections a login's own sshd makes or accepts are the
traffic *through* the bastion (ProxyJump ``ssh -J``, ``-W``, ``-L``, ``-D``: sshd
connects out, direct-tcpip; ``-R``: sshd listens) and carry ``tags: ssh-forwarded``
and ``agentd.snapshot.forward``; the login's own inbound connection is not flagged.

Bytes: neither psutil nor /proc/net give per-socket byte counts. A TCP connection's
close carries ``source.bytes`` / ``destination.bytes`` / ``network.bytes`` from the
kernel's tcp_info at the socket's release (tcp_bytes.py; ``agentd.snapshot.bytes_source:
tcp_info``); where that notice does not come within CLOSE_GRACE (no CAP_NET_ADMIN, the
peer holds the connection half-closed, notices dropped) the close has no bytes. UDP has
none. Transfer events count bytes from the client process's I/O counters.
"""

from __future__ import annotations

import logging

from agent.base.events import HostInfo, add_related, base_doc, make_event_id, rfc3339
from collectors.snapshots import scan
from collectors.snapshots.processes import Proc, common
from collectors.snapshots.tcp_bytes import TcpBytes

log = logging.getLogger("agentd.snapshots")

SSHD = frozenset(("sshd", "sshd-session"))
MAX_TRACKED = 65536  # sockets remembered at most (open ones of session processes, plus unowned inodes)
CLOSE_GRACE = 5.0  # a close waits this long at most for its byte counts (the kernel frees a socket after FIN)
RECHECK = 60.0  # sockets no session process held are looked for again, in every descriptor, this often


class Conn:
    __slots__ = ("sock", "proc", "opened", "action", "direction", "forward", "cookie", "closed")

    def __init__(self, sock, proc, opened, action, direction, forward, cookie=b""):
        self.sock = sock
        self.proc = proc
        self.opened = opened
        self.action = action
        self.direction = direction
        self.forward = forward
        self.cookie = cookie
        self.closed = 0.0


def open_bytes():
    try:
        return TcpBytes()
    except OSError as e:
        log.warning("snapshots: the kernel's socket release notices cannot be read (%s): connection-closed "
                    "events carry no bytes", e)
        return None


class ConnectionTracker:
    def __init__(self, host: HostInfo, tcp_bytes=None):
        self.host = host
        self.known: dict = {}  # inode -> Conn
        self.ignored: dict = {}  # inode -> socket uid, of sockets no session process holds
        self.closing: dict = {}  # inode -> Conn gone from the table, waiting for its byte counts
        self.bytes = tcp_bytes
        self.fd_scans = 0
        self.next_recheck = 0.0

    def scan(self, procs: dict, now: float, joined: list = (), table=None) -> list:
        """``joined``: processes new to ``procs`` since the last scan; a socket they hold
        may have been ignored before (sshd's monitor accepts the login's connection
        before pam_loginuid gives it a session)."""
        known, ignored = self.known, self.ignored
        if table is None:
            table = scan.sockets(known.keys() | ignored.keys())  # rows decoded for new sockets only
        out = self._closes(now, list(known.keys() - table.keys()))
        for ino in [i for i in ignored if i not in table]:
            del ignored[ino]
        new = [i for i, raw in table.items() if raw is not None and i not in known and i not in ignored]
        owners = self._owners(procs.values(), {i: table[i][7] for i in new}, joined) if new else {}
        recheck = now >= self.next_recheck
        if recheck:
            self.next_recheck = now + RECHECK
        if (joined or recheck) and ignored:
            late = self._owners(procs.values() if recheck else joined, ignored, fresh=recheck)
            if late:
                for ino in late:
                    del ignored[ino]
                again = scan.sockets(table.keys() - late.keys())  # their rows, not kept while ignored
                for ino in late:
                    if again.get(ino) is not None:
                        table[ino] = again[ino]
                        new.append(ino)
                owners.update(late)
        if not new:
            return out
        listen = table.listen
        fwd_listen = {c.sock.lport for c in known.values() if c.forward}
        for ino in new:
            p = owners.get(ino)
            raw = table[ino]
            if p is None:
                if len(ignored) < MAX_TRACKED:
                    ignored[ino] = raw[7]
                continue
            if raw[6] in ("syn_sent", "syn_recv"):
                continue  # not connected yet: looked at again next scan
            s = scan.decode(raw)
            c = self._classify(s, p, now, listen, fwd_listen)
            if c is None:
                ignored[ino] = raw[7]
                continue
            if len(known) < MAX_TRACKED:
                c.cookie = raw[8]
                known[ino] = c
                if self.bytes is not None and s.transport == "tcp" and c.action == "connection-opened":
                    self.bytes.want(c.cookie)
                out.append(self._doc(ino, c, now, c.action))
        return out

    def _closes(self, now: float, gone: list) -> list:
        """connection-closed of sockets gone now, and of those that waited for their bytes."""
        out = []
        for ino in gone:
            c = self.known.pop(ino)
            if c.action == "connection-opened":
                c.closed = now
                self.closing[ino] = c
        if not self.closing:
            return out
        if self.bytes is not None:
            self.bytes.drain()
        for ino, c in list(self.closing.items()):
            counts = self.bytes.take(c.cookie) if self.bytes is not None and c.sock.transport == "tcp" else None
            if counts is None and self.bytes is not None and c.sock.transport == "tcp" and now < c.closed + CLOSE_GRACE:
                continue
            if counts is None and self.bytes is not None:
                self.bytes.forget(c.cookie)
            del self.closing[ino]
            out.append(self._doc(ino, c, c.closed, "connection-closed", counts))
        return out

    def _owners(self, procs, wanted: dict, first=(), fresh: bool = False) -> dict:
        """inode -> the session process holding it, for ``wanted`` (inode -> socket uid).

        Reading descriptors is the expensive part of a scan, so only processes that
        could own one are read: the socket's uid is its creator's, so a process of
        another (effective) uid is skipped, except sshd, whose privilege-separated
        child changes uid after we may have looked. New processes go first, and the
        search stops once every wanted inode has its owner. A process's socket inodes
        are read again only when its descriptor count changed (one stat, not a read of
        every descriptor): a new socket of the host that no session process holds (a
        daemon's) no longer costs a read of every descriptor of every session. A process
        that closed one descriptor and opened a socket between two scans keeps its count:
        that socket is found by the next ``fresh`` search (every RECHECK seconds)."""
        self.fd_scans += 1
        owners: dict = {}
        uids = set(wanted.values())
        left = len(wanted)
        seen = {p.pid for p in first}
        for group in (first, (p for p in procs if p.pid not in seen)):
            for p in group:
                if p.euid not in uids and p.uid not in uids and p.comm not in SSHD:
                    continue
                n = scan.fd_count(p.pid)
                if fresh or n != p.nfds or n is None:
                    p.sockets = scan.socket_inodes(p.pid)
                    p.nfds = n
                for ino in p.sockets:
                    if ino in wanted and ino not in owners:
                        owners[ino] = p
                        left -= 1
                if not left:
                    return owners
        return owners

    def _classify(self, s, p: Proc, now: float, listen: set, fwd_listen: set):
        sshd = p.comm in SSHD
        if s.state in ("listen", "bound"):
            if not s.lport:
                return None
            return Conn(s, p, now, "listening", "", "remote-forward" if sshd else "")
        ingress = s.lport in listen
        forward = ""
        if sshd:
            if not ingress:
                forward = "direct-tcpip"  # ssh -J / -W / -L / -D: sshd connects to the target
            elif s.lport in fwd_listen:
                forward = "remote-forward"  # ssh -R: a peer connected to sshd's forwarded port
        return Conn(s, p, now, "connection-opened", "ingress" if ingress else "egress", forward)

    def _doc(self, ino: int, c: Conn, now: float, action: str, counts=None) -> dict:
        s = c.sock
        closed = action == "connection-closed"
        doc = base_doc(
            host=self.host, timestamp=now, module="psutil", dataset="psutil.network",
            event_id=make_event_id(self.host.id, self.host.boot_id, "psutil.network", action, ino, s.lip, s.lport,
                                   s.rip, s.rport),
            category=["network"], type=["connection", "end" if closed else "start"], action=action,
            outcome="success")
        common(doc, c.proc)
        local = {"ip": s.lip, "port": s.lport}
        remote = {"ip": s.rip, "port": s.rport} if s.rport else None
        if c.action == "listening":
            doc["destination"] = local
        elif c.direction == "ingress":
            doc["source"], doc["destination"] = remote, local
        else:
            doc["source"], doc["destination"] = local, remote
        doc["network"] = {"transport": s.transport, "type": s.family}
        if c.direction:
            doc["network"]["direction"] = c.direction
        snap = doc["agentd"]["snapshot"]
        snap["socket_inode"] = ino
        if c.forward:
            snap["forward"] = c.forward
            doc["tags"] = ["ssh-forwarded"]
        if closed:
            doc["event"]["start"] = rfc3339(c.opened)
            doc["event"]["end"] = rfc3339(now)
            doc["event"]["duration"] = int((now - c.opened) * 1e9)
            if counts is not None:
                sent, received = counts
                local, peer = ("destination", "source") if c.direction == "ingress" else ("source", "destination")
                doc[local]["bytes"] = sent
                if doc.get(peer):
                    doc[peer]["bytes"] = received
                doc["network"]["bytes"] = sent + received
                snap["bytes_source"] = "tcp_info"
        add_related(doc, ips=(s.lip, s.rip))
        return doc
