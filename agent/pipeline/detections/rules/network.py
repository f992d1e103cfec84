"""Where sessions go and what they move: egress policy, new destinations, bulk transfer, and loss."""

from __future__ import annotations

from agent.base.options import Option
from agent.pipeline.detections.rules.base import (
    About,
    Hit,
    Rule,
    check_ports,
    get,
    ip_in,
    login_user,
    opt_cidrs,
    opt_users,
    port_in,
    ports,
    prune,
    prune_per_key,
)

_CONNECT = ("auditd.network", "psutil.network")
PRIVATE = "10.0.0.0/8, 172.16.0.0/12, 192.168.0.0/16, 127.0.0.0/8, 169.254.0.0/16, ::1/128, fc00::/7, fe80::/10"


def _connection(doc: dict):
    """(ip, port) of an outbound connection made inside a login session, else None."""
    if doc["event"].get("action") not in ("connected-to", "connection-opened"):
        return None
    ip = get(doc, "destination", "ip")
    if not ip or not get(doc, "session", "id"):
        return None
    return ip, get(doc, "destination", "port")


class Egress(Rule):
    about = About("egress_policy", "Connection outside the allowed destinations", "medium", ("T1041", "T1571"),
                  "A session connected to an address outside the allowed internal networks, or to a port not allowed.")
    datasets = _CONNECT
    options = {
        "allowed_destination_cidrs": opt_cidrs(PRIVATE, "networks sessions may connect to"),
        "allowed_destination_ports": Option("list", "", "ports sessions may connect to, e.g. 22, 443, 8000-8080 "
                                            "(empty: any)", check=check_ports),
        "allow_users": opt_users(),
    }

    def setup(self) -> None:
        self.ports = ports(self.conf["allowed_destination_ports"])

    def check(self, doc: dict, ts: float) -> list:
        c = _connection(doc)
        if c is None or self.allowed_user(login_user(doc)):
            return []
        ip, port = c
        why = []
        cidrs = self.nets["allowed_destination_cidrs"]
        if cidrs and not ip_in(ip, cidrs):
            why.append("address outside the allowed networks")
        if self.ports and not port_in(port, self.ports):
            why.append(f"port {port} not allowed")
        if not why:
            return []
        return [Hit(doc, [doc["event"]["id"]], f"{login_user(doc) or '?'} connected to {ip}:{port} with "
                    f"{get(doc, 'process', 'name') or '?'}: {', '.join(why)}", key=f"{get(doc, 'session', 'id')}|{ip}",
                    fields={"destination": {"ip": ip, "port": port}})]


class NewDestination(Rule):
    about = About("new_destination", "New destination for the user", "low", ("T1021", "T1021.004"),
                  "A user connected through the bastion to an address and port never seen for that user.")
    datasets = _CONNECT
    replay_note = "learns each user's destinations as it goes: a replay starts with none learned"
    options = {
        "alert_first": Option("bool", "false", "also alert on a user's first destination ever (no history)"),
        "remember": Option("duration", "90d", "how long a destination stays known", minimum=60),
        "ignore_cidrs": opt_cidrs("127.0.0.53/32", "destinations never learned nor alerted on (e.g. the resolver)"),
        "allow_users": opt_users(),
    }

    def check(self, doc: dict, ts: float) -> list:
        c = _connection(doc)
        user = login_user(doc)
        if c is None or not user or ip_in(c[0], self.nets["ignore_cidrs"]) or self.allowed_user(user):
            return []
        dest = f"{c[0]}:{c[1]}"
        seen = self.state.setdefault("users", {}).setdefault(user, {})
        new, first = dest not in seen, not seen
        seen[dest] = ts
        if len(seen) > 500:
            del seen[min(seen, key=seen.get)]
        if not new or (first and not self.conf["alert_first"]):
            return []
        return [Hit(doc, [doc["event"]["id"]], f"{user} connected to {dest} for the first time "
                    f"({get(doc, 'process', 'name') or '?'})", key=f"{user}|{dest}",
                    fields={"destination": {"ip": c[0], "port": c[1]}})]

    def expire(self, now: float) -> None:
        prune_per_key(self.state.setdefault("users", {}), now - self.conf["remember"])


class BulkTransfer(Rule):
    about = About("bulk_transfer", "Bulk transfer in a session", "medium", ("T1048", "T1030"),
                  "A session moved more bytes through the bastion (scp, sftp, rsync) than the threshold.")
    datasets = ("sshd.sftp", "agentd.transfer")
    options = {
        "threshold": Option("size", "100MiB", "bytes uploaded plus downloaded in one session", minimum=1),
        "allow_users": opt_users(),
    }

    def check(self, doc: dict, ts: float) -> list:
        if doc["event"].get("action") not in ("file-uploaded", "file-downloaded"):
            return []
        sid = get(doc, "session", "id") or login_user(doc) or "?"
        try:
            n = int(get(doc, "transfer", "bytes") or 0)
        except (TypeError, ValueError):
            return []
        sessions = self.state.setdefault("sessions", {})
        entry = sessions.setdefault(sid, [0, ts, []])
        entry[0] += n
        entry[1] = ts
        entry[2] = (entry[2] + [doc["event"]["id"]])[-20:]
        if entry[0] < self.conf["threshold"] or self.allowed_user(login_user(doc)) or len(entry) > 3:
            return []
        entry.append("alerted")
        return [Hit(doc, list(entry[2]), f"{login_user(doc) or '?'} transferred {entry[0]} bytes in one session "
                    f"(threshold {self.conf['threshold']})", key=sid, count=len(entry[2]))]

    def expire(self, now: float) -> None:
        prune(self.state.setdefault("sessions", {}), now - 14 * 86400, key=lambda v: v[1])


class SessionLoss(Rule):
    about = About("session_loss", "Events lost during a session", "medium", ("T1685",),
                  "The agent lost events (agentd.gap) while a session was open: its timeline is incomplete.")
    datasets = ("agentd.gap",)
    options: dict = {}

    def check(self, doc: dict, ts: float) -> list:
        # The engine expands a gap without a session into one copy per open session.
        if not get(doc, "session", "id"):
            return []
        return [Hit(doc, [doc["event"]["id"]], f"events lost during the session of {get(doc, 'session', 'user')}: "
                    f"{doc.get('message') or ''}", key=get(doc, "session", "id"))]


RULES = (Egress, NewDestination, BulkTransfer, SessionLoss)
