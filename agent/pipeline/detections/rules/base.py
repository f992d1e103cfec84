"""What every built-in rule shares: identity, ATT&CK mapping, options, allow-lists and bounded state."""

from __future__ import annotations

import ipaddress
import re
from datetime import datetime, timezone
from typing import ClassVar, NamedTuple, Optional

from agent.base.options import Option
from agent.pipeline.detections.gate import Gate
from agent.pipeline.session_fields import get as get  # one path reader for the pipeline's stages

MAX_KEYS = 10000  # per rule map: a flood of source IPs cannot grow the state without bound


def check_cidrs(value: list) -> None:
    for v in value:
        try:
            ipaddress.ip_network(v, strict=False)
        except ValueError:
            raise ValueError(f"{v!r} is not an IP network; use e.g. 10.0.0.0/8 or 192.0.2.7") from None


def check_ports(value: list) -> None:
    for v in value:
        lo, _, hi = v.partition("-")
        if not (lo.isdigit() and (not hi or hi.isdigit())):
            raise ValueError(f"{v!r} is not a port or a port range like 8000-8080")


_HOURS_RE = re.compile(r"^(\d{1,2}):(\d{2})-(\d{1,2}):(\d{2})$")
_DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


def check_hours(value: str) -> None:
    if value and not _HOURS_RE.match(value):
        raise ValueError(f"{value!r} is not an hour range; use HH:MM-HH:MM, e.g. 07:00-20:00")


def check_days(value: list) -> None:
    for v in value:
        a, _, b = v.lower().partition("-")
        if a not in _DAYS or (b and b not in _DAYS):
            raise ValueError(f"{v!r} is not a day or range of days; use mon..sun, e.g. mon-fri")


def check_tz(value: str) -> None:
    if value:
        from zoneinfo import ZoneInfo

        try:
            ZoneInfo(value)
        except Exception:
            raise ValueError(f"{value!r} is not a time zone; use e.g. UTC or Europe/Paris") from None


def opt_users(doc: str = "users this rule never alerts on") -> Option:
    return Option("list", "", doc)


class About(NamedTuple):
    """A built-in rule's identity, one line in its class: its id is "agentd-" and the key."""

    key: str  # config section [detection:KEY]
    name: str
    severity: str  # Sigma level names: informational, low, medium, high, critical
    techniques: tuple  # ATT&CK technique ids
    description: str


def opt_cidrs(default: str, doc: str) -> Option:
    return Option("list", default, doc, check=check_cidrs)


def nets(values: list) -> list:
    return [ipaddress.ip_network(v, strict=False) for v in values]


def ip_in(ip: Optional[str], networks: list) -> bool:
    if not ip:
        return False
    try:
        addr = ipaddress.ip_address(ip)
    except ValueError:
        return False
    return any(addr.version == n.version and addr in n for n in networks)


def ports(values: list) -> list:
    out = []
    for v in values:
        lo, _, hi = v.partition("-")
        out.append((int(lo), int(hi or lo)))
    return out


def port_in(port, ranges: list) -> bool:
    try:
        p = int(port)
    except (TypeError, ValueError):
        return False
    return any(lo <= p <= hi for lo, hi in ranges)


def day_set(values: list) -> set:
    out: set = set()
    for v in values:
        a, _, b = v.lower().partition("-")
        i, j = _DAYS.index(a), _DAYS.index(b or a)
        k = i
        while True:
            out.add(k)
            if k == j:
                break
            k = (k + 1) % 7
    return out


def within_hours(ts: float, hours: str, days: set, tz: str) -> bool:
    """True when ``ts`` falls inside the allowed hours and days (in ``tz``)."""
    if tz:
        from zoneinfo import ZoneInfo

        when = datetime.fromtimestamp(ts, ZoneInfo(tz))
    else:
        when = datetime.fromtimestamp(ts, timezone.utc)
    if days and when.weekday() not in days:
        return False
    m = _HOURS_RE.match(hours or "")
    if not m:
        return True
    start = int(m.group(1)) * 60 + int(m.group(2))
    end = int(m.group(3)) * 60 + int(m.group(4))
    now = when.hour * 60 + when.minute
    return start <= now < end if start <= end else (now >= start or now < end)


def login_user(doc: dict) -> Optional[str]:
    """The person behind an event: the login user of its session, else its user.name."""
    return get(doc, "session", "user") or get(doc, "user", "name")


def prune_per_key(outer: dict, horizon: float) -> None:
    """Maps of "seen" values per key (user -> {network: last seen}): forget what was last
    seen before ``horizon``, then keys left empty, and keep at most MAX_KEYS keys."""
    for k, seen in list(outer.items()):
        prune(seen, horizon)
        if not seen:
            del outer[k]
    prune(outer, 0, key=lambda v: max(v.values()) if v else 0)


def prune(mapping: dict, horizon: float, key=lambda v: v) -> None:
    """Drop entries older than ``horizon`` and keep at most MAX_KEYS (oldest go first)."""
    for k in [k for k, v in mapping.items() if key(v) < horizon]:
        del mapping[k]
    if len(mapping) > MAX_KEYS:
        for k in sorted(mapping, key=lambda k: key(mapping[k]))[: len(mapping) - MAX_KEYS]:
            del mapping[k]


class Hit:
    """One rule match: what the alert will say and which events prove it."""

    __slots__ = ("evidence", "message", "key", "count", "fields", "doc")

    def __init__(self, doc: dict, evidence: list, message: str, key: str = "", count: int = 1,
                 fields: Optional[dict] = None):
        self.doc = doc  # the event that completed the match (time, session, host)
        self.evidence = evidence
        self.message = message
        self.key = key
        self.count = count
        self.fields = fields or {}


class Rule:
    """A built-in rule. Subclasses set ``about``, ``datasets`` and ``options`` and implement ``check``.

    ``datasets`` routes events to the rule (None: every event); ``state`` is a
    JSON-able dict the engine persists, so windows and "seen" sets survive restarts.
    What every rule's options share is read here: ``allow_users``, and each list of
    networks (an ``opt_cidrs`` option) parsed once into ``self.nets[option]``.
    """

    about: ClassVar[Optional[About]] = None
    key: ClassVar[str] = ""
    id: ClassVar[str] = ""
    name: ClassVar[str] = ""
    description: ClassVar[str] = ""
    severity: ClassVar[str] = "medium"
    techniques: ClassVar[tuple] = ()
    datasets: ClassVar[Optional[tuple]] = None
    # On an exec or typed lines: what the rule cannot match without (gate.py); None: every one.
    gate: ClassVar[Optional[Gate]] = None
    options: ClassVar[dict] = {}
    # Said by `agentd replay` when a rule cannot give the live result there.
    replay_note: ClassVar[str] = ""

    def __init_subclass__(cls, **kw) -> None:
        super().__init_subclass__(**kw)
        about = cls.__dict__.get("about")
        if about is not None:
            cls.key, cls.name, cls.severity, cls.techniques, cls.description = about
            cls.id = "agentd-" + about.key.replace("_", "-")

    def __init__(self, conf: dict, state: dict):
        self.conf = conf
        self.state = state
        self.allow_users = set(conf.get("allow_users") or ())
        self.nets = {name: nets(conf[name]) for name, opt in self.options.items() if opt.check is check_cidrs}
        self.setup()

    def setup(self) -> None:
        pass

    def allowed_user(self, user: Optional[str]) -> bool:
        return bool(user) and user in self.allow_users

    def allowed_source(self, ip: Optional[str]) -> bool:
        """The source is in the rule's allow_source_cidrs."""
        return ip_in(ip, self.nets.get("allow_source_cidrs", ()))

    def check(self, doc: dict, ts: float) -> list:
        raise NotImplementedError

    def expire(self, now: float) -> None:
        pass
