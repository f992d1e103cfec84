"""What every audit document shares: the start of a document (ids, time, host), the
sender process, users and the audit session, rule-key tags, ``related.*``.

:class:`Documents` holds what these need beyond the event (the host, keep_original, the
uid/gid name cache); the builders (syscall.py, user.py, tty.py) and the exec fast path
(fastpath.py) take it and import nothing above this module.

Every document keeps ``auditd.session`` (``ses``) and ``agentd.user.audit.id`` (``auid``) even
when they are "unset" (4294967295): the session join downstream needs to know the event
was *not* part of a login. ids are ``make_event_id(host.id, "auditd", node, stamp, i)``
with ``i`` the index of the document within the audit event, so re-reading a record
always gives the same id.
"""

from __future__ import annotations

import ipaddress
from functools import lru_cache
from typing import Optional

from agent.base.events import HostInfo, add_related, base_doc, make_event_id, tty_device
from collectors.auditd import decode
from collectors.auditd.names import NameCache, enriched_name
from collectors.auditd.parse import AuditRecord
from collectors.auditd.reassemble import AuditEvent

__all__ = ["Documents", "record_data", "outcome_of", "res_outcome", "valid_ip", "syscall_by_number",
           "title_text", "exec_args", "put_args", "put_tty", "add_tags", "finish", "EXEC_ACTION"]

# Syscall numbers by audit arch, for RAW logs (ENRICHED logs name the syscall themselves).
_SYSCALLS = {
    "c000003e": {"59": "execve", "322": "execveat", "42": "connect"},       # x86_64
    "40000003": {"11": "execve", "358": "execveat", "362": "connect", "102": "socketcall"},
    "c00000b7": {"221": "execve", "281": "execveat", "203": "connect"},    # aarch64
}
_RES_OK = frozenset(("success", "yes", "1"))
_RES_FAIL = frozenset(("failed", "fail", "no", "0"))
_NO_VALUE = decode.NO_VALUE
_value_text = decode.value_text


class Documents:
    """Starts documents and fills their shared parts, for one host and one name cache."""

    def __init__(self, host: HostInfo, keep_original=False, resolve_ids: bool = True):
        """``keep_original``: True (every event), or the datasets whose events carry it
        (what a detection rule reads, the agent's own keep_original being off)."""
        self.host = host
        self.keep_original = keep_original is True
        self.original_for = frozenset() if isinstance(keep_original, bool) else frozenset(keep_original)
        self.names = NameCache(resolve_ids)

    def start(self, ev: AuditEvent, dataset: str, *, category: list, type: list, action: str,
              outcome: str = "unknown", index: int = 0) -> dict:
        doc = base_doc(
            host=self.host, timestamp=ev.time,
            event_id=make_event_id(self.host.id, "auditd", ev.node, ev.stamp, index),
            module="auditd", dataset=dataset, category=category, type=type, action=action,
            outcome=outcome, sequence=ev.serial,
        )
        if self.keep_original or dataset in self.original_for:
            doc["event"]["original"] = "\n".join(
                r.raw.decode("utf-8", "surrogateescape") for r in ev.records)
        if ev.node:
            doc["auditd"] = {"node": ev.node}
        return doc

    def user_of(self, rec: AuditRecord, field: str, enriched_key: str, users: Optional[list] = None) -> Optional[dict]:
        """``{"id", "name"?}`` of a uid-like field (ENRICHED name, else the local one), the
        name also into ``users`` when given; None when the record has no such field."""
        d = _id_name(rec, field, enriched_key, self.names.user)
        if users is not None and d is not None and "name" in d:
            users.append(d["name"])
        return d

    def group_of(self, rec: AuditRecord, field: str, enriched_key: str) -> Optional[dict]:
        return _id_name(rec, field, enriched_key, self.names.group)

    def add_identity(self, doc: dict, rec: AuditRecord, users: list) -> None:
        """user.* (uid), user.effective.* (euid), group.* (gid), agentd.user.audit.* (auid), ses."""
        user = self.user_of(rec, "uid", "UID", users) or {}
        eff = self.user_of(rec, "euid", "EUID", users)
        if eff is not None:
            eg = self.group_of(rec, "egid", "EGID")
            if eg is not None:
                eff["group"] = eg
            user["effective"] = eff
        self.add_audit_ids(doc, rec, users)
        if user:
            doc["user"] = user
        g = self.group_of(rec, "gid", "GID")
        if g is not None:
            doc["group"] = g

    def add_audit_ids(self, doc: dict, rec: AuditRecord, users: list) -> None:
        """agentd.user.audit.* (auid: ECS has no login uid; the process tree puts the login
        user on process.entry_leader.user), auditd.session."""
        a = self.user_of(rec, "auid", "AUID", users)
        if a is not None:
            ag = doc.get("agentd")
            if ag is None:
                doc["agentd"] = {"user": {"audit": a}}
            else:
                ag["user"] = {"audit": a}
        ses = rec.fields.get("ses")
        if ses is not None:
            doc.setdefault("auditd", {})["session"] = ses

    def add_process(self, doc: dict, sc, by_type: dict, users: list, paths: bool = True,
                    syscall: Optional[str] = None) -> dict:
        """process.* from SYSCALL (+ PROCTITLE, CWD), identities, session.

        ``syscall``: syscall_name(sc) when the caller has it already."""
        f = sc.fields
        proc: dict = {}
        pid = f.get("pid")
        if pid is not None and pid.isdecimal():
            proc["pid"] = int(pid)
        ppid = f.get("ppid")
        if ppid is not None and ppid.isdecimal():
            proc["parent"] = {"pid": int(ppid)}
        exe = _value_text(sc, "exe")
        if exe is not None:
            proc["executable"] = exe
        comm = _value_text(sc, "comm")
        if comm is not None:
            proc["name"] = comm
        tty = f.get("tty")
        pt = by_type.get("PROCTITLE")
        if pt:
            title = title_text(pt[0])
            if title is not None:
                proc["title"] = title
        cwd = by_type.get("CWD")
        if cwd:
            wd = _value_text(cwd[0], "cwd")
            if wd is not None:
                proc["working_directory"] = wd
        doc["process"] = proc
        self.add_identity(doc, sc, users)
        if tty and tty not in _NO_VALUE:
            put_tty(doc, proc, tty)
        a = doc.setdefault("auditd", {})
        a["syscall"] = syscall_name(sc) if syscall is None else syscall
        if "exit" in f:
            a["exit"] = f["exit"]
        # An exec's PATH items (the binary, the loader) add little and cost a third of the
        # parsing time of an exec-heavy log; file and network events keep them.
        items = by_type.get("PATH") if paths else None
        if items:
            a["paths"] = [_path(p) for p in items]
        return proc


def _id_name(rec: AuditRecord, field: str, enriched_key: str, lookup) -> Optional[dict]:
    v = rec.fields.get(field)
    if v is None:
        return None
    d = {"id": v}
    name = rec.enriched.get(enriched_key)
    name = enriched_name(name) if name is not None else lookup(v)
    if name:
        d["name"] = name
    return d


def _path(rec) -> dict:
    f = rec.fields
    d: dict = {}
    name = _value_text(rec, "name")
    if name is not None:
        d["name"] = name
    for k in ("inode", "dev", "mode", "nametype", "ouid", "ogid", "item"):
        v = f.get(k)
        if v is not None:
            d[k] = v
    return d


def record_data(rec) -> dict:
    """All fields of a record for ``auditd.data`` (ENRICHED interpretations under ``interpreted``)."""
    data = dict(rec.fields)
    data.pop("msg", None)  # a user-space payload, already flattened into the other fields
    if rec.enriched:
        data["interpreted"] = dict(rec.enriched)
    return data


# event.action of an execve by its outcome: `exec` is what Kibana's Session View reads (it
# filters on fork/exec/end); a failed execve changed no process, so it is not an `exec`.
# (Before ECS 9 conformance both were `executed`: README, "Migration".)
EXEC_ACTION = {"success": "exec", "failure": "exec-failed", "unknown": "exec"}


def outcome_of(sc) -> str:
    """event.outcome of a syscall (``success=``)."""
    s = sc.fields.get("success")
    return "success" if s == "yes" else "failure" if s == "no" else "unknown"


def res_outcome(rec) -> str:
    """event.outcome of a user-space record (``res=``)."""
    r = rec.fields.get("res")
    return "success" if r in _RES_OK else "failure" if r in _RES_FAIL else "unknown"


def valid_ip(v) -> bool:
    if not v or v in _NO_VALUE:
        return False
    try:
        ipaddress.ip_address(v)
    except ValueError:
        return False
    return True


def syscall_by_number(arch: str, num: str) -> str:
    """The name of syscall ``num`` on audit arch ``arch`` (the number when not known)."""
    return _SYSCALLS.get(arch, {}).get(num, num)


def syscall_name(rec) -> str:
    name = rec.enriched.get("SYSCALL")
    if name:
        return name
    return syscall_by_number(rec.fields.get("arch", ""), rec.fields.get("syscall", ""))


def title_text(rec: AuditRecord) -> Optional[str]:
    """process.title from a PROCTITLE record."""
    title = decode.proctitle(rec)
    if title is None:
        return None
    try:
        return title.decode("utf-8")  # bytes_to_text() of valid UTF-8
    except UnicodeDecodeError:
        return decode.bytes_to_text(title)[0]


def exec_args(execve: list) -> tuple:
    """(args, argc, command line, escaped) from an event's EXECVE records."""
    raw_args, argc = decode.execve_args(execve)
    try:
        # bytes_to_text() of arguments that are all valid UTF-8: plain decoding.
        args = tuple(map(_utf8, raw_args))
        escaped = False
    except UnicodeDecodeError:
        texts = []
        escaped = False
        for a in raw_args:
            t, e = decode.bytes_to_text(a)
            texts.append(t)
            escaped = escaped or e
        args = tuple(texts)
    return args, argc, " ".join(args), escaped


_utf8 = bytes.decode  # UTF-8, strict


def put_args(doc: dict, proc: dict, tags: list, decoded: tuple) -> None:
    """process.args* from exec_args(); escaped arguments tag the event ``non-utf8-args`` and
    set ``agentd.process.args_escaped`` (ECS has no such field)."""
    args, argc, cmdline, escaped = decoded
    proc["args"] = list(args)
    proc["args_count"] = argc
    proc["command_line"] = cmdline
    if escaped:
        doc.setdefault("agentd", {}).setdefault("process", {})["args_escaped"] = True
        tags.append("non-utf8-args")


def put_tty(doc: dict, proc: dict, tty: str) -> None:
    """ECS process.tty (char_device) of the audit ``tty=`` name; the name itself, which ECS
    has no field for, as agentd.process.tty.name."""
    dev = tty_device(tty)
    if dev is not None:
        proc["tty"] = dev
    doc.setdefault("agentd", {}).setdefault("process", {})["tty"] = {"name": tty}


def key_tags(rec: AuditRecord) -> tuple:
    """Rule keys: ``key="exec"``, or several keys hex-encoded and joined by 0x01."""
    if "key" not in rec.fields:
        return ()
    b = decode.value_bytes(rec, "key")
    if not b:
        return ()
    return _split_keys(b)


@lru_cache(maxsize=1024)
def _split_keys(b: bytes) -> tuple:
    """The non-empty rule keys in a key= value, in order."""
    return tuple(t for t in (k.decode("utf-8", "replace") for k in b.split(b"\x01")) if t)


def add_tags(tags: list, new) -> None:
    for t in new:
        if t not in tags:
            tags.append(t)


def tags_from_key(rec, tags: list) -> None:
    add_tags(tags, key_tags(rec))


def finish(doc: dict, users, ips, tags: list) -> dict:
    """tags and related.user / related.ip (truthy values, first-seen order, no duplicates)."""
    if tags:
        doc["tags"] = tags
    if users or ips:
        if "related" in doc:
            add_related(doc, users=tuple(users), ips=tuple(ips))
            return doc
        # add_related on a document without related.*, inlined: no empty lists.
        rel = {}
        if users:
            clean = _unique(users)
            if clean:
                rel["user"] = clean
        if ips:
            clean = _unique(ips)
            if clean:
                rel["ip"] = clean
        if rel:
            doc["related"] = rel
    return doc


def _unique(values) -> list:
    clean: list = []
    for v in values:
        if v and v not in clean:
            clean.append(v)
    return clean
