"""Audit rules compared by meaning, not as text.

Both the recommended rules file (auditctl -R syntax) and `auditctl -l` output are
parsed into normalized rules: list and action, arch, the set of syscalls, the set of
field filters (``auid!=unset`` == ``auid!=-1`` == ``auid!=4294967295``), the keys.
A recommended rule is covered when, for each of its syscalls, some loaded ``always``
rule on the same list and arch has that syscall (or ``all``) and no filter the
recommended rule lacks: a loaded rule with fewer filters records at least as much.
So ``-S execve,execveat`` split over two rules is covered, and ``auid>=1000`` in
place of ``auid!=unset`` is not (it misses root logins, auid 0).
"""

from __future__ import annotations

import dataclasses
import os
import platform
import re
import shlex
from typing import Optional

_FIELD_RE = re.compile(r"^([A-Za-z_0-9]+)\s*(!=|<=|>=|&=|=|<|>|&)\s*(.*)$")
# Fields holding a uid/gid, where "unset" is spelled three ways.
_ID_FIELDS = {"auid", "loginuid", "uid", "euid", "suid", "fsuid", "gid", "egid", "sgid", "fsgid",
              "obj_uid", "obj_gid", "ouid", "ogid"}
_UNSET = {"unset", "-1", "4294967295"}
_ARCH_64 = {"b64", "x86_64", "aarch64", "ppc64", "ppc64le", "s390x", "riscv64"}
_ARCH_32 = {"b32", "i386", "i486", "i586", "i686", "arm", "armeb", "armv7l", "ppc", "s390"}
# Control options (not rules) and whether they take a value.
_CONTROLS = {"-D": False, "-b": True, "-f": True, "-e": True, "-r": True, "--backlog_wait_time": True,
             "--loginuid-immutable": False, "-i": False, "-c": False, "--reset-lost": False}


def native_arch() -> str:
    return "b64" if platform.machine() in _ARCH_64 or platform.architecture()[0] == "64bit" else "b32"


@dataclasses.dataclass(frozen=True)
class Rule:
    list: str                 # exit, user, exclude, filesystem, io_uring, task
    action: str               # always / never
    arch: str                 # b64 / b32
    syscalls: frozenset       # names; {"all"} when none given (watches, user list)
    fields: frozenset         # (name, op, value) normalized, without arch and key
    keys: tuple = ()
    text: str = dataclasses.field(default="", compare=False)
    heading: str = dataclasses.field(default="", compare=False)  # the rules file's section comment

    @property
    def is_watch(self) -> bool:
        return any(f[0] == "watch" for f in self.fields)

    @property
    def key(self) -> str:
        return ",".join(self.keys)


@dataclasses.dataclass
class Ruleset:
    rules: list
    controls: dict            # "-e" -> "2", "-f" -> "1", ...
    errors: list              # (line number, text, why)


def _norm_value(name: str, value: str) -> str:
    value = value.strip().strip('"')
    if name in _ID_FIELDS and value in _UNSET:
        return "unset"
    if name == "perm":
        return "".join(sorted(set(value)))
    return value


def _norm_arch(value: str) -> str:
    if value in _ARCH_64:
        return "b64"
    if value in _ARCH_32:
        return "b32"
    raise ValueError(f"unknown arch {value!r}")


def parse_rule(line: str, heading: str = "") -> Optional[object]:
    """One line -> Rule, or ("control", option, value), or None (blank, comment)."""
    text = line.strip()
    if not text or text.startswith("#") or text == "No rules":
        return None
    try:
        tokens = shlex.split(text, comments=True)
    except ValueError as e:
        raise ValueError(f"cannot split: {e}") from None
    if not tokens:
        return None
    if tokens[0] in _CONTROLS:
        return ("control", tokens[0], tokens[1] if _CONTROLS[tokens[0]] and len(tokens) > 1 else "")
    lst = action = arch = None
    syscalls: set = set()
    fields: set = set()
    keys: list = []
    perms = ""
    i = 0
    while i < len(tokens):
        tok = tokens[i]
        arg = tokens[i + 1] if i + 1 < len(tokens) else None
        i += 2
        if tok in ("-a", "-A", "-d"):
            if arg is None or "," not in arg:
                raise ValueError(f"{tok} needs list,action")
            a, b = arg.split(",", 1)
            action, lst = (a, b) if a in ("always", "never") else (b, a)
            if action not in ("always", "never"):
                raise ValueError(f"unknown action in {arg!r}")
        elif tok in ("-w", "-W"):
            if arg is None:
                raise ValueError("-w needs a path")
            lst, action = "exit", "always"
            # A directory watch (-F dir=) is recursive, a path watch is not; auditctl -l
            # prints both as -w, so both are the same "watch" here.
            fields.add(("watch", "=", arg.rstrip("/") or "/"))
        elif tok == "-p":
            perms = arg or ""
        elif tok == "-S":
            for s in (arg or "").split(","):
                if s:
                    syscalls.add(s.lower())
        elif tok == "-k":
            keys.append(arg or "")
        elif tok in ("-F", "-C"):
            m = _FIELD_RE.match(arg or "")
            if not m:
                raise ValueError(f"bad field {arg!r}")
            name, op, value = m.group(1).lower(), m.group(2), m.group(3)
            if name == "arch" and tok == "-F":
                arch = _norm_arch(value)
            elif name == "key" and tok == "-F":
                keys.append(value)
            elif name in ("path", "dir") and tok == "-F":
                fields.add(("watch", "=", value.rstrip("/") or "/"))
            elif name == "perm" and tok == "-F":
                perms = value
            else:
                fields.add((name, op, _norm_value(name, value)))
        else:
            raise ValueError(f"unknown option {tok!r}")
    if lst is None:
        raise ValueError("no -a/-w: not a rule")
    if perms:
        fields.add(("perm", "=", _norm_value("perm", perms)))
    return Rule(lst, action, arch or native_arch(), frozenset(syscalls or {"all"}), frozenset(fields),
                tuple(k for k in keys if k), text, heading)


def parse_rules(text: str) -> Ruleset:
    rules, controls, errors = [], {}, []
    heading = ""
    for n, line in enumerate(text.splitlines(), 1):
        m = re.match(r"^##\s*-+\s*(.*?)\s*-*\s*$", line)
        if m and m.group(1):
            heading = m.group(1)
        try:
            r = parse_rule(line, heading)
        except ValueError as e:
            errors.append((n, line.strip(), str(e)))
            continue
        if r is None:
            continue
        if isinstance(r, tuple):
            controls[r[1]] = r[2]
        else:
            rules.append(r)
    return Ruleset(rules, controls, errors)


def _filters_within(loaded: Rule, wanted: Rule) -> bool:
    """Every filter of ``loaded`` also restricts ``wanted`` (so loaded records at least as much)."""
    for f in loaded.fields:
        if f in wanted.fields:
            continue
        if f[0] == "watch":
            # A directory watch is recursive: a watch on /etc/ssh covers /etc/ssh/sshd_config.
            want = next((w for w in wanted.fields if w[0] == "watch"), None)
            if want is not None and want[2].startswith(f[2].rstrip("/") + "/") and os.path.isdir(f[2]):
                continue
        if f[0] == "perm":
            want = next((w for w in wanted.fields if w[0] == "perm"), None)
            if want is not None and set(want[2]) <= set(f[2]):
                continue
        return False
    if wanted.is_watch and not any(w[0] == "perm" for w in wanted.fields):
        # A watch without -p means all permissions; a loaded one with -p is narrower.
        return not any(f[0] == "perm" and set(f[2]) != set("rwxa") for f in loaded.fields)
    return True


@dataclasses.dataclass
class Coverage:
    wanted: Rule
    missing: frozenset        # syscalls of wanted no loaded rule records ({"all"} for a watch)
    by: list                  # the loaded rules that cover it
    other_keys: set           # keys of covering rules when they differ from wanted's
    never: list               # loaded `never` rules before a covering rule that overlap it
    narrower: list = dataclasses.field(default_factory=list)  # filters of near-miss rules wanted lacks

    @property
    def covered(self) -> bool:
        return not self.missing


def coverage(wanted: Rule, loaded: list) -> Coverage:
    candidates = [(i, r) for i, r in enumerate(loaded)
                  if r.list == wanted.list and r.action == "always" and r.arch == wanted.arch
                  and _filters_within(r, wanted)]
    missing, by, first = set(), [], None
    for s in wanted.syscalls:
        hit = next(((i, r) for i, r in candidates if s in r.syscalls or "all" in r.syscalls), None)
        if hit is None:
            missing.add(s)
            continue
        if hit[1] not in by:
            by.append(hit[1])
        first = hit[0] if first is None else min(first, hit[0])
    other = {r.key for r in by if r.key != wanted.key}
    never = []
    if first is not None:
        never = [r for r in loaded[:first]
                 if r.list == wanted.list and r.action == "never" and r.arch == wanted.arch
                 and ("all" in r.syscalls or r.syscalls & wanted.syscalls or "all" in wanted.syscalls)]
    narrower = []
    if missing:
        # Rules that would have covered but for extra filters: say which filters, the usual
        # cause (e.g. auid>=1000 from a CIS profile, which skips root logins).
        for r in loaded:
            if (r.list == wanted.list and r.action == "always" and r.arch == wanted.arch
                    and (r.syscalls & missing or "all" in r.syscalls) and not _filters_within(r, wanted)):
                extra = sorted(f"{n}{op}{v}" for n, op, v in r.fields - wanted.fields if n != "watch")
                if extra and extra not in narrower:
                    narrower.append(extra)
    return Coverage(wanted, frozenset(missing), by, other, never, narrower)


def group_name(rule: Rule) -> str:
    """Checks are per purpose: watched files together, syscall rules by key."""
    return "watches" if rule.is_watch else (rule.key or "unkeyed")
