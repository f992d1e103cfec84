"""Typed config options: each component declares its options with these.

A parse function takes the raw INI string and returns the typed value, or raises
``ValueError`` with a message that says what is wrong *and* what is allowed, since
that text goes straight into the user-facing ``Error: <file> [<section>] <key>: …``
line.
"""

from __future__ import annotations

import os
import re
from typing import Any, Callable, Optional, Sequence

_SIZE_UNITS = {
    "": 1, "b": 1,
    "k": 1000, "kb": 1000, "kib": 1024,
    "m": 1000**2, "mb": 1000**2, "mib": 1024**2,
    "g": 1000**3, "gb": 1000**3, "gib": 1024**3,
}
_DURATION_UNITS = {"ms": 0.001, "s": 1.0, "": 1.0, "m": 60.0, "min": 60.0, "h": 3600.0, "d": 86400.0}
_TRUE = {"1", "yes", "true", "on"}
_FALSE = {"0", "no", "false", "off"}


class Secret(str):
    """A string that never shows itself in repr/str formatting of containers or logs."""

    def __repr__(self) -> str:
        return "Secret('***')"

    def reveal(self) -> str:
        return str.__str__(self)


def parse_bool(raw: str) -> bool:
    v = raw.strip().lower()
    if v in _TRUE:
        return True
    if v in _FALSE:
        return False
    raise ValueError(f"{raw!r} is not a boolean; use true or false")


def parse_int(raw: str) -> int:
    try:
        return int(raw.strip(), 10)
    except ValueError:
        raise ValueError(f"{raw!r} is not a whole number") from None


def parse_float(raw: str) -> float:
    try:
        return float(raw.strip())
    except ValueError:
        raise ValueError(f"{raw!r} is not a number") from None


def parse_size(raw: str) -> int:
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*", raw)
    unit = m.group(2).lower() if m else None
    if not m or unit not in _SIZE_UNITS:
        raise ValueError(f"{raw!r} is not a size; use a number with an optional unit: B, KiB, MiB, GiB, KB, MB, GB")
    return int(float(m.group(1)) * _SIZE_UNITS[unit])


def parse_duration(raw: str) -> float:
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([a-z]*)\s*", raw)
    unit = m.group(2) if m else None
    if not m or unit not in _DURATION_UNITS:
        raise ValueError(f"{raw!r} is not a duration; use a number with an optional unit: ms, s, m, h, d")
    return float(m.group(1)) * _DURATION_UNITS[unit]


def parse_list(raw: str) -> list:
    """Comma- or newline-separated list; empty items are dropped."""
    return [p.strip() for p in re.split(r"[,\n]", raw) if p.strip()]


def parse_str(raw: str) -> str:
    return raw.strip()


def parse_path(raw: str) -> str:
    v = raw.strip()
    if not v:
        raise ValueError("empty path; give an absolute path")
    if not os.path.isabs(v):
        raise ValueError(f"{v!r} is not an absolute path; paths must start with /")
    return v


def parse_url(raw: str) -> str:
    v = raw.strip()
    if not re.match(r"^https?://[^/\s]+", v):
        raise ValueError(f"{v!r} is not a URL; use http://host:port or https://host:port")
    return v.rstrip("/")


_KINDS: dict = {
    "bool": parse_bool,
    "int": parse_int,
    "float": parse_float,
    "size": parse_size,
    "duration": parse_duration,
    "list": parse_list,
    "str": parse_str,
    "path": parse_path,
    "url": parse_url,
    "choice": parse_str,
}


class Option:
    """One declared option: kind, default (as the INI text), one-line doc.

    ``default`` is kept as the text a user would write so the shipped agentd.conf
    can be compared with the schema literally. ``None`` means "no default": the
    option is then either required or simply absent.

    ``secret=True`` makes the option also accept ``<name>_file = /path``, read at
    validation time, so the config file itself can stay world-readable.
    """

    def __init__(
        self,
        kind: str,
        default: Optional[str],
        doc: str,
        *,
        required: bool = False,
        choices: Sequence[str] = (),
        minimum: Optional[float] = None,
        maximum: Optional[float] = None,
        secret: bool = False,
        check: Optional[Callable[[Any], None]] = None,
    ):
        if kind not in _KINDS:
            raise TypeError(f"unknown option kind {kind}")
        self.kind = kind
        self.default = default
        self.doc = doc
        self.required = required
        self.choices = tuple(choices)
        self.minimum = minimum
        self.maximum = maximum
        self.secret = secret
        self.check = check

    def parse(self, raw: str) -> Any:
        value = _KINDS[self.kind](raw)
        if self.choices and value not in self.choices:
            raise ValueError(f"{value!r} is not allowed; use one of: {', '.join(self.choices)}")
        if self.minimum is not None and value < self.minimum:
            raise ValueError(f"{raw.strip()} is below the minimum {self.minimum:g}")
        if self.maximum is not None and value > self.maximum:
            raise ValueError(f"{raw.strip()} is above the maximum {self.maximum:g}")
        if self.check is not None:
            self.check(value)
        if self.secret:
            value = Secret(value)
        return value

    def default_value(self) -> Any:
        return None if self.default is None else self.parse(self.default)


def read_secret_file(path: str) -> Secret:
    """Read a secret from a file; only the first line, without the newline, counts."""
    if not os.path.isabs(path):
        raise ValueError(f"{path!r} is not an absolute path; paths must start with /")
    try:
        with open(path, encoding="utf-8") as f:
            value = f.readline().rstrip("\r\n")
    except OSError as e:
        raise ValueError(f"cannot read {path}: {e.strerror}") from None
    if not value:
        raise ValueError(f"{path} is empty; it must hold the secret on its first line")
    return Secret(value)
