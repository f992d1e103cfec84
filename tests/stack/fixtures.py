"""pytest fixtures and helpers over the real stack: bring it up once per test session and
read what the real daemons wrote (audit.log from a remembered position, the journal from
a cursor). Import them into a conftest with `from tests.stack.fixtures import *`.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import subprocess
import time
from typing import Any, Callable, Dict, Iterator, List, Optional, Sequence

import pytest

from tests.stack import stack as _stack
from tests.stack.session import SshSession

__all__ = [
    "stack", "ssh_session", "audit_mark", "journal_mark",
    "AuditMark", "audit_position", "audit_records_since", "wait_for_audit",
    "parse_audit_line", "group_events", "execve_argv", "decode_tty_data",
    "journal_cursor", "journal_since", "wait_for_journal",
]

AUDIT_LOG = _stack.AUDIT_LOG


# ---------------------------------------------------------------- audit log


@dataclasses.dataclass(frozen=True)
class AuditMark:
    """A position in the audit log that survives rotation: auditd rotates by renaming
    audit.log to audit.log.1, so the inode tells which file the offset belongs to."""
    dev: int
    inode: int
    offset: int


def audit_position(path: str = AUDIT_LOG) -> AuditMark:
    st = os.stat(path)
    return AuditMark(st.st_dev, st.st_ino, st.st_size)


def _read_from(path: str, offset: int) -> bytes:
    with open(path, "rb") as f:
        f.seek(offset)
        return f.read()


def audit_bytes_since(mark: AuditMark, path: str = AUDIT_LOG) -> bytes:
    """Raw bytes appended since `mark`, following one or more rotations."""
    st = os.stat(path)
    if (st.st_dev, st.st_ino) == (mark.dev, mark.inode):
        return _read_from(path, mark.offset)
    # Rotated: find the renamed file that is our inode, read its tail, then every newer one.
    chunks = []
    for n in range(1, 10):
        old = f"{path}.{n}"
        try:
            ost = os.stat(old)
        except FileNotFoundError:
            break
        if (ost.st_dev, ost.st_ino) == (mark.dev, mark.inode):
            chunks.append(_read_from(old, mark.offset))
            for m in range(n - 1, 0, -1):
                chunks.append(_read_from(f"{path}.{m}", 0))
            break
    chunks.append(_read_from(path, 0))
    return b"".join(chunks)


def audit_records_since(mark: "AuditMark | int", path: str = AUDIT_LOG) -> List[str]:
    """Complete lines written since `mark` (an AuditMark, or a byte offset in the current
    file). A trailing partial line (auditd mid-write) is left for the next call."""
    if isinstance(mark, int):
        st = os.stat(path)
        mark = AuditMark(st.st_dev, st.st_ino, mark)
    data = audit_bytes_since(mark, path)
    end = data.rfind(b"\n")
    if end < 0:
        return []
    return data[:end].decode("utf-8", errors="surrogateescape").split("\n")


_FIELD_RE = re.compile(r'([\w\[\]-]+)=("[^"]*"|\'[^\']*\'|\S*)')
_HDR_RE = re.compile(r"^type=(\S+) msg=audit\((\d+\.\d+):(\d+)\):\s?(.*)$", re.S)


def parse_audit_line(line: str) -> Optional[Dict[str, Any]]:
    """Just enough parsing for tests: type, time, serial, and raw fields. The ENRICHED
    suffix (after \\x1d) is parsed separately into `enriched`. Quotes are kept off."""
    m = _HDR_RE.match(line)
    if not m:
        return None
    body, _, enriched = m.group(4).partition("\x1d")
    def fields(s: str, unquote: bool = True) -> Dict[str, str]:
        out: Dict[str, str] = {}
        for k, v in _FIELD_RE.findall(s):
            if unquote and len(v) >= 2 and v[0] == v[-1] and v[0] in "\"'":
                v = v[1:-1]
            out.setdefault(k, v)
        return out
    return {"type": m.group(1), "time": float(m.group(2)), "serial": int(m.group(3)),
            "fields": fields(body), "raw_fields": fields(body, unquote=False),
            "enriched": fields(enriched), "raw": line}


def execve_argv(rec: Dict[str, Any]) -> List[bytes]:
    """argv of a parsed EXECVE record: quoted values are literal, unquoted ones hex, and an
    argument the kernel split (aN_len=..., aN[0]=..., aN[1]=...) is joined back."""
    raw = rec["raw_fields"]
    def value(v: str) -> bytes:
        if v.startswith('"') and v.endswith('"') and len(v) >= 2:
            return v[1:-1].encode("utf-8", errors="surrogateescape")
        return bytes.fromhex(v)
    out = []
    for i in range(int(raw["argc"])):
        if f"a{i}" in raw:
            out.append(value(raw[f"a{i}"]))
        else:
            parts, j = [], 0
            while f"a{i}[{j}]" in raw:
                parts.append(value(raw[f"a{i}[{j}]"]))
                j += 1
            out.append(b"".join(parts))
    return out


def group_events(lines: Sequence[str]) -> Dict[int, List[Dict[str, Any]]]:
    """serial -> parsed records of that event, in log order."""
    events: Dict[int, List[Dict[str, Any]]] = {}
    for line in lines:
        rec = parse_audit_line(line)
        if rec:
            events.setdefault(rec["serial"], []).append(rec)
    return events


def decode_tty_data(hexdata: str) -> bytes:
    return bytes.fromhex(hexdata)


def wait_for_audit(predicate: Callable[[List[str]], Any], timeout: float = 20.0,
                   since: "AuditMark | int" = 0, interval: float = 0.2) -> Any:
    """Poll the audit log until predicate(lines since `since`) is truthy; return its value."""
    deadline = time.monotonic() + timeout
    while True:
        lines = audit_records_since(since)
        result = predicate(lines)
        if result:
            return result
        if time.monotonic() >= deadline:
            tail = "\n".join(lines[-15:])
            raise AssertionError(f"audit condition not met within {timeout}s; last lines:\n{tail}")
        time.sleep(interval)


# ---------------------------------------------------------------- journal


def journal_cursor() -> str:
    """The cursor of the newest journal entry (start reading after it)."""
    out = subprocess.run(["journalctl", "-n", "1", "-o", "json", "--no-pager"],
                         capture_output=True, text=True, check=True).stdout.strip()
    if not out:
        return ""
    return json.loads(out.splitlines()[-1])["__CURSOR"]


def journal_since(cursor: str, matches: Sequence[str] = ()) -> List[Dict[str, Any]]:
    """Entries after `cursor` as dicts (journalctl -o json); `matches` like "_COMM=sshd",
    with "+" between groups for OR, exactly as journalctl takes them."""
    argv = ["journalctl", "-o", "json", "--no-pager"]
    if cursor:
        argv += ["--after-cursor", cursor]
    out = subprocess.run(argv + list(matches), capture_output=True, text=True,
                         check=True).stdout
    entries = []
    for line in out.splitlines():
        if line.strip():
            e = json.loads(line)
            msg = e.get("MESSAGE")
            if isinstance(msg, list):  # journald stores non-UTF-8 messages as byte arrays
                e["MESSAGE"] = bytes(msg).decode("utf-8", errors="replace")
            entries.append(e)
    return entries


def wait_for_journal(predicate: Callable[[List[Dict[str, Any]]], Any], cursor: str,
                     matches: Sequence[str] = (), timeout: float = 20.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        entries = journal_since(cursor, matches)
        result = predicate(entries)
        if result:
            return result
        if time.monotonic() >= deadline:
            tail = "\n".join(str(e.get("MESSAGE")) for e in entries[-15:])
            raise AssertionError(f"journal condition not met within {timeout}s; last:\n{tail}")
        time.sleep(0.2)


# ---------------------------------------------------------------- fixtures


@pytest.fixture(scope="session")
def stack() -> Iterator[_stack.StackInfo]:
    """The real stack, brought up once. Left running afterwards (other test runs on this
    machine share it) unless AGENTD_STACK_TEARDOWN=1."""
    if os.geteuid() != 0:
        pytest.skip("the real stack needs root (auditd, sshd, users)")
    if not _stack.audit_supported():
        pytest.skip("no kernel audit support here (auditctl -s failed)")
    for binary in ("/usr/sbin/auditd", "/usr/sbin/sshd", _stack.JOURNALD_BIN):
        if not os.path.exists(binary):
            pytest.skip(f"{binary} not installed")
    try:
        info = _stack.up()
    except _stack.StackError as e:
        pytest.fail(f"stack up failed: {e}")
    yield info
    if os.environ.get("AGENTD_STACK_TEARDOWN") == "1":
        _stack.down()


@pytest.fixture
def ssh_session(stack: _stack.StackInfo) -> Iterator[Callable[..., SshSession]]:
    """Factory: ssh_session("alice") logs in with alice's key (or password for carol/dave);
    keyword arguments go to SshSession. Sessions still open at test end are closed."""
    opened: List[SshSession] = []

    def make(user: str, **kw: Any) -> SshSession:
        creds = stack.users.get(user, {})
        if "key" not in kw and "password" not in kw:
            if creds.get("key_path"):
                kw["key"] = creds["key_path"]
            elif creds.get("password"):
                kw["password"] = creds["password"]
        kw.setdefault("host", stack.jump_host)
        kw.setdefault("port", stack.jump_port)
        s = SshSession(user, **kw)
        opened.append(s)
        return s

    yield make
    for s in opened:
        s.close()


@pytest.fixture
def audit_mark(stack: _stack.StackInfo) -> AuditMark:
    """Where the audit log ends as the test starts."""
    return audit_position(stack.audit_log)


@pytest.fixture
def journal_mark(stack: _stack.StackInfo) -> str:
    """The journal cursor as the test starts."""
    return journal_cursor()
