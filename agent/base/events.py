"""The event model: an ECS document, its deterministic id and the source position.

The contract for the document is ../shared/EVENTS.md. An event is created by a
collector (or normalizer) from one source record; everything here is pure so it
can be used by replay, the daemon and the tests alike.
"""

from __future__ import annotations

import calendar
import datetime as _dt
import hashlib
import math
import re
import socket
from typing import Any, Optional

import orjson

from agent import __version__
from agent.base.cache import BoundedCache

# The ECS release the events follow (ecs.version on every event; Elastic Security needs it).
ECS_VERSION = "9.4.0"

# Top-level objects of agentd's own (not ECS field sets); README "ECS" lists what each holds.
# Everything else in an event is an ECS field (tests/unit/test_ecs_fields.py checks it).
CUSTOM_OBJECTS = frozenset((
    "session", "keystrokes", "transfer", "agentd", "auditd", "journald", "sshd", "sftp", "sudo", "tlog",
))

# Positions are plain JSON-able dicts owned by the collector that made them, e.g.
# {"dev": 2049, "ino": 1234, "offset": 5678} for the audit log or {"cursor": "s=…"}
# for the journal. The spool stores them verbatim next to the events.
Position = dict


class Event:
    """One ECS document plus where it came from.

    ``position`` is the source position *after* the record this event came from
    was fully consumed: resuming from it never re-reads a completed record.
    """

    __slots__ = ("doc", "position")

    def __init__(self, doc: dict, position: Optional[Position] = None):
        self.doc = doc
        self.position = position

    @property
    def id(self) -> str:
        return self.doc["event"]["id"]

    @property
    def dataset(self) -> str:
        return self.doc["event"].get("dataset", "")

    def to_json(self) -> bytes:
        return dumps(self.doc)

    def __repr__(self) -> str:  # pragma: no cover - debugging aid
        return f"Event({self.dataset} {self.id} at {self.position})"


# PASSTHROUGH_SUBCLASS: a Shared dict reaches _default, which gives its JSON made once.
_DUMPS_OPTS = orjson.OPT_NON_STR_KEYS | orjson.OPT_SORT_KEYS | orjson.OPT_PASSTHROUGH_SUBCLASS


class Shared(dict):
    """An object a stage puts unchanged into many events (a parent's exec facts, a login's
    entry leader): ``dumps`` serializes it once and inserts those bytes (an orjson.Fragment,
    keys sorted like the rest) into every event that carries it. Readers see a dict; once
    in an event it is never mutated, which sharing it already requires."""

    __slots__ = ("_json",)


def _default(obj: Any) -> Any:
    if type(obj) is Shared:
        try:
            return obj._json
        except AttributeError:
            obj._json = orjson.Fragment(dumps(dict(obj)))
            return obj._json
    # PASSTHROUGH_SUBCLASS sends every other subclass of dict, list, str and int here too
    # (an OrderedDict, a Counter): written as its base type, as without the option.
    for base in (dict, list, str, int):
        if isinstance(obj, base):
            return base(obj) if base is not str else str.__str__(obj)
    raise TypeError(f"Type is not JSON serializable: {type(obj).__name__}")


def dumps(doc: Any) -> bytes:
    # OPT_NON_STR_KEYS tolerates int keys that sneak in from parsed data rather
    # than failing a whole batch; sorted keys keep output diffable for golden tests.
    try:
        return orjson.dumps(doc, default=_default, option=_DUMPS_OPTS)
    except TypeError:
        # Raw non-UTF-8 bytes from a malformed source line survive as surrogate
        # escapes; JSON cannot carry them. Escape them as \xNN text instead of
        # failing the batch (which would stall the collector on that line).
        return orjson.dumps(_without_surrogates(doc), default=_default, option=_DUMPS_OPTS)


def _without_surrogates(obj: Any) -> Any:
    if isinstance(obj, str):
        try:
            obj.encode("utf-8")
            return obj
        except UnicodeEncodeError:
            return obj.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
    if isinstance(obj, dict):
        return {k: _without_surrogates(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_without_surrogates(v) for v in obj]
    return obj


def loads(data: bytes | str) -> Any:
    return orjson.loads(data)


def make_event_id(*parts: object) -> str:
    """Deterministic id from the identity of the source record.

    Callers pass what identifies the record independent of when it is read:
    host id, source, audit node + stamp + serial (+ index within the audit
    event), or a journal entry's boot id + seqnum id + seqnum. Re-reading the same
    record after a restart or in a replay yields the same id, which is what lets
    Elasticsearch deduplicate re-sent batches by ``_id``.
    """
    # Hashes exactly the bytes str(p) + 0x1f for each part, in one call: the "\x1f"
    # separator is ASCII, so encoding the joined text equals joining the encoded parts.
    # ("%s\x1f" * n) % parts formats each part with str(), as the loop did.
    fmt = _id_formats.get(len(parts))
    if fmt is None:
        fmt = "%s\x1f" * len(parts)
    h = _blake2b_16.copy()
    h.update((fmt % parts).encode("utf-8", "surrogateescape"))
    return h.hexdigest()


_id_formats = {n: "%s\x1f" * n for n in range(12)}


_blake2b_16 = hashlib.blake2b(digest_size=16)  # copied: cheaper than a new one per id
_UTC = _dt.timezone.utc
_modf = math.modf
# Whole second -> "YYYY-mm-ddTHH:MM:SS." (strftime is most of rfc3339's cost; events of
# one second share it). Few entries: events come in time order, so only recent seconds
# repeat; 4096 grew a live agent's heap by ~85 KiB per 10 minutes for 68 minutes.
_ts_prefix = BoundedCache(64)
_ts_last: tuple = (None, "")


def _rfc3339_slow(ts: float) -> str:
    dt = _dt.datetime.fromtimestamp(ts, tz=_UTC)
    return dt.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def rfc3339(ts: float) -> str:
    """UTC, microsecond precision, 'Z' suffix, as EVENTS.md requires for @timestamp."""
    global _ts_last
    last = _ts_last
    if ts == last[0] and type(ts) is float:
        return last[1]  # the events of one burst share their timestamp
    # Splits ts the way datetime.fromtimestamp does (modf, microseconds rounded half to
    # even, carried into the second); a new second is formatted by datetime itself and
    # cached only when its microseconds agree with ours.
    try:
        frac, whole = _modf(ts)
        us = round(frac * 1e6)
        if us >= 1000000:
            whole += 1.0
            us -= 1000000
        elif us < 0:
            whole -= 1.0
            us += 1000000
        prefix = _ts_prefix.get(whole)
    except (TypeError, ValueError, OverflowError):
        return _rfc3339_slow(ts)
    if prefix is None:
        s = _rfc3339_slow(ts)
        if s[-8:] == ".%06dZ" % us:
            _ts_prefix.put(whole, s[:-7])
        return s
    s = "%s%06dZ" % (prefix, us)
    if type(ts) is float:
        _ts_last = (ts, s)
    return s


_TS = re.compile(r"(\d{4})-(\d\d)-(\d\d)[T ](\d\d):(\d\d):(\d\d)(?:\.(\d+))?(Z|[+-]\d\d:?\d\d)?$")


# Date and time of day ("YYYY-mm-ddTHH:MM:SS", the first 19 characters of every text the
# pattern matches) -> their epoch seconds, as _parse_rfc3339 found them.
_rfc_secs = BoundedCache(4096)
_rfc_last: tuple = ("", None)


def parse_rfc3339(ts: object) -> Optional[float]:
    """RFC 3339 text back to epoch seconds (microseconds kept); None if it is not one.

    The stages after the collector read back every event's @timestamp, several times: text
    of rfc3339()'s own form (``…SS.ffffffZ``) whose date and time were parsed before costs
    a slice, a dict lookup and an int(); anything else takes the full parse."""
    global _rfc_last
    last = _rfc_last
    if ts == last[0] and type(ts) is str:
        return last[1]
    if type(ts) is str and len(ts) == 27 and ts[19] == "." and ts[26] == "Z":
        secs = _rfc_secs.get(ts[:19])
        frac = ts[20:26]
        # isdecimal(): exactly what the pattern's \d accepts (Unicode category Nd).
        if secs is not None and frac.isdecimal():
            val = secs + int(frac) / 1e6
            _rfc_last = (ts, val)
            return val
    return _parse_rfc3339(ts)


def _parse_rfc3339(ts: object) -> Optional[float]:
    if not isinstance(ts, str):
        return None
    m = _TS.match(ts)
    if not m:
        return None
    y, mo, d, h, mi, s, frac, tz = m.groups()
    secs = calendar.timegm((int(y), int(mo), int(d), int(h), int(mi), int(s)))
    _rfc_secs.put(ts[:19], secs)
    if frac:
        secs += int(frac[:6].ljust(6, "0")) / 1e6
    if tz and tz != "Z":
        sign = 1 if tz[0] == "+" else -1
        tz = tz[1:].replace(":", "")
        secs -= sign * (int(tz[:2]) * 3600 + int(tz[2:]) * 60)
    return secs


def _read_first_line(path: str) -> str:
    try:
        with open(path, encoding="ascii", errors="replace") as f:
            return f.readline().strip()
    except OSError:
        return ""


class HostInfo:
    """Identity of the machine the events describe (not necessarily this one: replay)."""

    __slots__ = ("name", "id", "boot_id")

    def __init__(self, name: str, id: str, boot_id: str = ""):
        self.name = name
        self.id = id
        self.boot_id = boot_id

    @classmethod
    def local(cls, name: str = "") -> HostInfo:
        return cls(
            name=name or socket.gethostname(),
            id=_read_first_line("/etc/machine-id") or "unknown",
            boot_id=_read_first_line("/proc/sys/kernel/random/boot_id").replace("-", ""),
        )


def event_object(dataset: str, action: str = "", category: Optional[list] = None, type: Optional[list] = None,
                 outcome: str = "unknown", **more) -> dict:
    """ECS ``event`` with the classification fields that are set (empty ones are left out)."""
    return _classified({**more, "dataset": dataset, "outcome": outcome}, action, category, type)


def _classified(event: dict, action: str, category: Optional[list], type: Optional[list]) -> dict:
    if category:
        event["category"] = category
    if type:
        event["type"] = type
    if action:
        event["action"] = action
    return event


def base_doc(
    *,
    host: HostInfo,
    timestamp: float,
    event_id: str,
    module: str,
    dataset: str,
    kind: str = "event",
    category: Optional[list] = None,
    type: Optional[list] = None,
    action: str = "",
    outcome: str = "unknown",
    sequence: Optional[int] = None,
) -> dict:
    """The fields every event carries (EVENTS.md, "On every event")."""
    # event_object(dataset, action, category, type, outcome, id=…, kind=…, module=…) without
    # the keyword-argument merge, a third of this function's cost (it runs for every event).
    event = _classified({"id": event_id, "kind": kind, "module": module, "dataset": dataset, "outcome": outcome},
                        action, category, type)
    if sequence is not None:
        event["sequence"] = sequence
    return {
        "@timestamp": rfc3339(timestamp),
        "ecs": {"version": ECS_VERSION},
        "event": event,
        "host": {"name": host.name, "id": host.id},
        "agent": {"type": "agentd", "version": __version__},
    }


def tty_device(name: object) -> Optional[dict]:
    """ECS ``process.tty`` of a terminal name (audit's pts1, the journal's pts/1, tty2,
    ttyS0, console): pts/N is major 136 + N/256, minor N%256. None when not a terminal.
    (ECS has no tty name; agentd keeps it as ``agentd.process.tty.name``.)"""
    if not isinstance(name, str) or not name:
        return None
    dev = _tty_cache.get(name)
    if dev is None:
        n = name[5:] if name.startswith("/dev/") else name
        dev = ()
        if n.startswith("pts"):
            num = n[3:].lstrip("/")
            if num.isdigit():
                dev = (136 + int(num) // 256, int(num) % 256)
        elif n.startswith("ttyS") and n[4:].isdigit():
            dev = (4, 64 + int(n[4:]))
        elif n.startswith("tty") and n[3:].isdigit():
            dev = (4, int(n[3:]))
        elif n == "console":
            dev = (5, 1)
        if len(_tty_cache) < 4096:
            _tty_cache[name] = dev
    return {"char_device": {"major": dev[0], "minor": dev[1]}} if dev else None


_tty_cache: dict = {}


def add_related(doc: dict, *, users: tuple = (), ips: tuple = ()) -> None:
    """Fill related.user / related.ip without duplicates, keeping first-seen order."""
    rel = doc.setdefault("related", {})
    for key, values in (("user", users), ("ip", ips)):
        clean = [v for v in values if v]
        if not clean:
            continue
        cur = rel.setdefault(key, [])
        for v in clean:
            if v not in cur:
                cur.append(v)
    if not rel:
        del doc["related"]

