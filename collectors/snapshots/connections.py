"""Sockets of login sessions: opened, closed, listening; sshd's channels flagged as forwarded.

A socket is attributed to the session process that holds it (the first one found
holding its descriptor). Connections a login's own sshd makes or accepts are the
traffic *through* the bastion (ProxyJump ``ssh -J``, ``-W``, ``-L``, ``-D``: sshd
connects out, direct-tcpip; ``-R``: sshd listens) and carry ``tags: ssh-forwarded``
and ``agentd.snapshot.forward``; the login's own inbound connection is not flagged.

Bytes: neither psutil nor /proc/net give per-socket byte counts, so connection events
carry none (the kernel's sock_diag tcp_info bytes_acked/bytes_received would; not read
here). Transfer events count bytes from the client process's I/O counters instead.
"""

from __future__ import annotations

from agent.base.events import HostInfo, add_related, base_doc, make_event_id, rfc3339
from collectors.snapshots import scan
from collectors.snapshots.processes import Proc, common

SSHD = frozenset(("sshd", "sshd-session"))
MAX_TRACKED = 65536  # sockets remembered at most (open ones of session processes, plus unowned inodes)


class Conn:
    __slots__ = ("sock", "proc", "opened", "action", "direction", "forward")

    def __init__(self, sock, proc, opened, action, direction, forward):
        self.sock = sock
        self.proc = proc
        self.opened = opened
        self.action = action
        self.direction = direction
        self.forward = forward


class ConnectionTracker:
    def __init__(self, host: HostInfo):
        self.host = host
        self.known: dict = {}  # inode -> Conn
        self.ignored: set = set()  # inodes of sockets no session process holds
        self.fd_scans = 0

    def scan(self, procs: dict, now: float, joined: list = (), table=None) -> list:
        """``joined``: processes new to ``procs`` since the last scan; a socket they hold
        may have been ignored before (sshd's monitor accepts the login's connection
        before pam_loginuid gives it a session)."""
        table = scan.sockets() if table is None else table
        out = []
        for ino in [i for i in self.known if i not in table]:
            c = self.known.pop(ino)
            if c.action == "connection-opened":
                out.append(self._doc(ino, c, now, "connection-closed"))
        self.ignored.intersection_update(table)
        new = [i for i in table if i not in self.known and i not in self.ignored]
        owners = self._owners(procs.values(), {i: table[i][7] for i in new}, joined) if new else {}
        if joined and self.ignored:
            late = self._owners(joined, {i: table[i][7] for i in self.ignored})
            self.ignored.difference_update(late)
            owners.update(late)
            new += list(late)
        if not new:
            return out
        listen = {raw[3] for raw in table.values() if raw[6] == "listen"}
        fwd_listen = {c.sock.lport for c in self.known.values() if c.forward}
        for ino in new:
            p = owners.get(ino)
            if p is None:
                if len(self.ignored) < MAX_TRACKED:
                    self.ignored.add(ino)
                continue
            raw = table[ino]
            if raw[6] in ("syn_sent", "syn_recv"):
                continue  # not connected yet: looked at again next scan
            s = scan.decode(raw)
            c = self._classify(s, p, now, listen, fwd_listen)
            if c is None:
                self.ignored.add(ino)
                continue
            if len(self.known) < MAX_TRACKED:
                self.known[ino] = c
                out.append(self._doc(ino, c, now, c.action))
        return out

    def _owners(self, procs, wanted: dict, first=()) -> dict:
        """inode -> the session process holding it, for ``wanted`` (inode -> socket uid).

        Reading descriptors is the expensive part of a scan, so only processes that
        could own one are read: the socket's uid is its creator's, so a process of
        another (effective) uid is skipped, except sshd, whose privilege-separated
        child changes uid after we may have looked. New processes go first, and the
        search stops once every wanted inode has its owner."""
        self.fd_scans += 1
        owners: dict = {}
        uids = set(wanted.values())
        left = len(wanted)
        seen = {p.pid for p in first}
        for group in (first, (p for p in procs if p.pid not in seen)):
            for p in group:
                if p.euid not in uids and p.uid not in uids and p.comm not in SSHD:
                    continue
                for ino in scan.socket_inodes(p.pid):
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

    def _doc(self, ino: int, c: Conn, now: float, action: str) -> dict:
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
        add_related(doc, ips=(s.lip, s.rip))
        return doc
