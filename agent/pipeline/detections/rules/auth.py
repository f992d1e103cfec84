"""Login rules: brute force, spraying, success after failures, policy (hours, CIDRs), root and new networks.

One failed login is one failure: sshd's journal line (``login-failed``) and the
audit ``USER_AUTH`` record of the same attempt are paired (same source IP and sshd
pid, a few seconds apart) and counted once. An attempt for an unknown user counts.
"""

from __future__ import annotations

import ipaddress
from typing import Optional

from agent.base.options import Option
from agent.pipeline.detections.rules.base import (
    About,
    Hit,
    Rule,
    check_days,
    check_hours,
    check_tz,
    day_set,
    get,
    ip_in,
    opt_cidrs,
    opt_users,
    prune,
    prune_per_key,
    within_hours,
)

PAIR_WINDOW = 5.0
_FAIL_DATASETS = ("sshd.auth", "auditd.auth")
_LOGIN = ("agentd.session",)


def failed_attempt(doc: dict) -> Optional[tuple]:
    """(source ip, user, sshd pid, origin) of a failed SSH login record, else None."""
    ev = doc["event"]
    action = ev.get("action")
    if ev.get("dataset") == "sshd.auth":
        if action != "login-failed":
            return None
        origin = "journal"
    elif action == "authentication-failed" and str(get(doc, "process", "executable") or "").endswith("/sshd"):
        origin = "audit"
    else:
        return None
    ip = get(doc, "source", "ip")
    if not ip:
        return None
    user = get(doc, "user", "name")
    return ip, None if user in ("?", "(invalid user)") else user, get(doc, "process", "pid"), origin


def count_attempt(state: dict, attempt: tuple, ts: float) -> bool:
    """True when this record is a new attempt, False when it is the other source's
    record of an attempt already counted."""
    ip, _, pid, origin = attempt
    recent = state.setdefault("recent", [])
    while recent and ts - recent[0][0] > PAIR_WINDOW * 4:
        recent.pop(0)
    for r in recent:
        if r[1] == ip and r[3] != origin and (pid is None or r[2] is None or r[2] == pid) \
                and abs(r[0] - ts) <= PAIR_WINDOW:
            recent.remove(r)
            return False
    recent.append([ts, ip, pid, origin])
    del recent[:-500]
    return True


class _FailureRule(Rule):
    datasets = _FAIL_DATASETS

    def failures(self, doc: dict, ts: float) -> Optional[tuple]:
        a = failed_attempt(doc)
        if a is None or not count_attempt(self.state, a, ts):
            return None
        return a

    def window_list(self, key: str, ts: float, item: list) -> list:
        m = self.state.setdefault("by", {})
        lst = m.setdefault(key, [])
        lst.append(item)
        horizon = ts - self.conf["window"]
        while lst and lst[0][0] < horizon:
            lst.pop(0)
        del lst[:-1000]
        return lst

    def expire(self, now: float) -> None:
        prune(self.state.setdefault("by", {}), now - self.conf["window"], key=lambda v: v[-1][0] if v else 0)


class BruteForce(_FailureRule):
    about = About("ssh_brute_force", "SSH brute force", "high", ("T1110", "T1110.001"),
                  "Many failed SSH logins from one source address, or against one user, within a window.")
    options = {
        "threshold": Option("int", "5", "failed logins from one source IP that raise the alert", minimum=1),
        "user_threshold": Option("int", "10", "failed logins against one user (any source) that raise it",
                                 minimum=1),
        "window": Option("duration", "10m", "the window the failures are counted in", minimum=1),
        "allow_source_cidrs": opt_cidrs("", "sources never alerted on (e.g. a monitoring host)"),
        "allow_users": opt_users(),
    }

    def check(self, doc: dict, ts: float) -> list:
        a = self.failures(doc, ts)
        if a is None or self.allowed_source(a[0]) or self.allowed_user(a[1]):
            return []
        ip, user = a[0], a[1]
        eid = doc["event"]["id"]
        out = []
        lst = self.window_list("ip:" + ip, ts, [ts, eid, user])
        if len(lst) >= self.conf["threshold"]:
            out.append(Hit(doc, [x[1] for x in lst], f"{len(lst)} failed SSH logins from {ip} within "
                           f"{self.conf['window']:g}s", key="ip:" + ip, count=len(lst),
                           fields={"source": {"ip": ip}}))
        if user:
            lst = self.window_list("user:" + user, ts, [ts, eid, ip])
            if len(lst) >= self.conf["user_threshold"]:
                out.append(Hit(doc, [x[1] for x in lst], f"{len(lst)} failed SSH logins for user {user} "
                               f"within {self.conf['window']:g}s", key="user:" + user, count=len(lst),
                               fields={"user": {"name": user}}))
        return out


class PasswordSpraying(_FailureRule):
    about = About("ssh_password_spraying", "SSH password spraying", "high", ("T1110", "T1110.003"),
                  "Failed SSH logins for many different users from one source address within a window.")
    options = {
        "users": Option("int", "5", "distinct user names tried from one source IP that raise the alert",
                        minimum=2),
        "window": Option("duration", "10m", "the window the user names are counted in", minimum=1),
        "allow_source_cidrs": opt_cidrs("", "sources never alerted on"),
    }

    def check(self, doc: dict, ts: float) -> list:
        a = self.failures(doc, ts)
        if a is None or self.allowed_source(a[0]):
            return []
        ip = a[0]
        lst = self.window_list(ip, ts, [ts, doc["event"]["id"], a[1] or "?"])
        users = {x[2] for x in lst}
        if len(users) < self.conf["users"]:
            return []
        return [Hit(doc, [x[1] for x in lst], f"failed SSH logins for {len(users)} users from {ip}: "
                    f"{', '.join(sorted(users)[:10])}", key=ip, count=len(lst), fields={"source": {"ip": ip}})]


class SuccessAfterFailures(_FailureRule):
    about = About("ssh_success_after_failures", "SSH login after failed attempts", "high", ("T1110", "T1078"),
                  "A successful SSH login from a source address that failed several times just before.")
    datasets = _FAIL_DATASETS + _LOGIN
    options = {
        "failures": Option("int", "3", "failed logins from the source before the success", minimum=1),
        "window": Option("duration", "10m", "how far back the failures are looked for", minimum=1),
        "allow_source_cidrs": opt_cidrs("", "sources never alerted on"),
        "allow_users": opt_users(),
    }

    def check(self, doc: dict, ts: float) -> list:
        if doc["event"].get("dataset") != "agentd.session":
            a = self.failures(doc, ts)
            if a is not None:
                self.window_list(a[0], ts, [ts, doc["event"]["id"]])
            return []
        if doc["event"].get("action") != "session-started":
            return []
        ip = get(doc, "session", "source", "ip")
        user = get(doc, "session", "user")
        if not ip or self.allowed_source(ip) or self.allowed_user(user):
            return []
        lst = [x for x in self.state.setdefault("by", {}).get(ip, []) if ts - x[0] <= self.conf["window"]]
        if len(lst) < self.conf["failures"]:
            return []
        self.state["by"].pop(ip, None)
        return [Hit(doc, [x[1] for x in lst] + [doc["event"]["id"]],
                    f"{user} logged in from {ip} after {len(lst)} failed attempts", key=ip,
                    count=len(lst), fields={"source": {"ip": ip}, "user": {"name": user}})]


def _login(doc: dict) -> Optional[tuple]:
    if doc["event"].get("dataset") != "agentd.session" or doc["event"].get("action") != "session-started":
        return None
    return get(doc, "session", "user"), get(doc, "session", "source", "ip")


class LoginOutsidePolicy(Rule):
    about = About("login_outside_policy", "Login outside allowed hours or networks", "medium", ("T1078",),
                  "A login at a time or day, or from a source address, that the bastion's policy does not allow.")
    datasets = _LOGIN
    options = {
        "allowed_hours": Option("str", "", "logins allowed between HH:MM-HH:MM (empty: any time)",
                                check=check_hours),
        "allowed_days": Option("list", "", "days logins are allowed, e.g. mon-fri (empty: every day)",
                               check=check_days),
        "timezone": Option("str", "UTC", "time zone of allowed_hours/allowed_days", check=check_tz),
        "allowed_source_cidrs": opt_cidrs("", "networks logins may come from (empty: any)"),
        "allow_users": opt_users(),
    }

    def setup(self) -> None:
        self.days = day_set(self.conf["allowed_days"])

    def check(self, doc: dict, ts: float) -> list:
        login = _login(doc)
        if login is None or self.allowed_user(login[0]):
            return []
        user, ip = login
        sid = get(doc, "session", "id") or ""
        out = []
        if (self.conf["allowed_hours"] or self.days) and not within_hours(
                ts, self.conf["allowed_hours"], self.days, self.conf["timezone"]):
            out.append(Hit(doc, [doc["event"]["id"]], f"{user} logged in outside the allowed hours "
                           f"({self.conf['allowed_hours'] or 'any'} {','.join(self.conf['allowed_days'])} "
                           f"{self.conf['timezone']})", key=sid + "|hours"))
        sources = self.nets["allowed_source_cidrs"]
        if sources and ip and not ip_in(ip, sources):
            out.append(Hit(doc, [doc["event"]["id"]], f"{user} logged in from {ip}, outside the allowed "
                           "source networks", key=sid + "|source", fields={"source": {"ip": ip}}))
        return out


class PrivilegedLogin(Rule):
    about = About("root_or_shared_login", "Direct root or shared-account login", "high", ("T1078", "T1078.003"),
                  "A login straight into root or a shared account: the person behind it is not known.")
    datasets = _LOGIN
    options = {
        "accounts": Option("list", "root", "accounts nobody should log in to directly"),
        "shared_accounts": Option("list", "", "shared accounts (e.g. deploy, admin)"),
        "allow_source_cidrs": opt_cidrs("", "sources from which such logins are expected"),
    }

    def setup(self) -> None:
        self.accounts = set(self.conf["accounts"]) | set(self.conf["shared_accounts"])

    def check(self, doc: dict, ts: float) -> list:
        login = _login(doc)
        if login is None or login[0] not in self.accounts or self.allowed_source(login[1]):
            return []
        kind = "shared account" if login[0] in self.conf["shared_accounts"] else "privileged account"
        return [Hit(doc, [doc["event"]["id"]], f"direct login to {kind} {login[0]} from {login[1] or '?'}")]


class NewSourceNetwork(Rule):
    about = About("login_new_network", "Login from a new network", "low", ("T1078",),
                  "A user logged in from a source network never seen for that user before.")
    datasets = _LOGIN
    replay_note = "learns each user's networks as it goes: a replay starts with none learned"
    options = {
        "prefix_v4": Option("int", "24", "IPv4 prefix length that makes one network", minimum=8, maximum=32),
        "prefix_v6": Option("int", "64", "IPv6 prefix length that makes one network", minimum=16, maximum=128),
        "alert_first_login": Option("bool", "false", "also alert on a user's very first login (no history)"),
        "remember": Option("duration", "90d", "how long a network stays known without logins", minimum=60),
        "allow_users": opt_users(),
    }

    def _net(self, ip: str) -> str:
        addr = ipaddress.ip_address(ip)
        prefix = self.conf["prefix_v4"] if addr.version == 4 else self.conf["prefix_v6"]
        return str(ipaddress.ip_network(f"{ip}/{prefix}", strict=False))

    def check(self, doc: dict, ts: float) -> list:
        login = _login(doc)
        if login is None or not login[0] or not login[1] or self.allowed_user(login[0]):
            return []
        user, ip = login
        try:
            net = self._net(ip)
        except ValueError:
            return []
        seen = self.state.setdefault("users", {}).setdefault(user, {})
        known = net in seen
        first = not seen
        seen[net] = ts
        if len(seen) > 100:
            del seen[min(seen, key=seen.get)]
        if known or (first and not self.conf["alert_first_login"]):
            return []
        return [Hit(doc, [doc["event"]["id"]], f"{user} logged in from {ip}: network {net} never seen for "
                    "this user", key=net, fields={"source": {"ip": ip}})]

    def expire(self, now: float) -> None:
        prune_per_key(self.state.setdefault("users", {}), now - self.conf["remember"])


RULES = (BruteForce, PasswordSpraying, SuccessAfterFailures, LoginOutsidePolicy, PrivilegedLogin, NewSourceNetwork)
