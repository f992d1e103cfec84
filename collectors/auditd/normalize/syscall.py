"""Builders for kernel syscall events: auditd.process, auditd.network, auditd.file and
auditd.syscall (any other syscall). The dispatch (dispatch.py) sends here the SYSCALL
events that carry no CONFIG_CHANGE, LOGIN or TTY record (those are user.py's and tty.py's).
"""

from __future__ import annotations

from collectors.auditd import decode
from collectors.auditd.normalize.document import (
    EXEC_ACTION,
    Documents,
    exec_args,
    finish,
    outcome_of,
    put_args,
    record_data,
    syscall_name,
    tags_from_key,
)

_EXEC = frozenset(("execve", "execveat"))
_CONNECT = frozenset(("connect", "socketcall"))
_FILE_TYPES = {"CREATE": ("creation", "file-created"), "DELETE": ("deletion", "file-deleted")}
_EINPROGRESS = "-115"


def build(docs: Documents, ev, by_type: dict) -> dict:
    sc = by_type["SYSCALL"][0]
    name = syscall_name(sc)
    if "EXECVE" in by_type or name in _EXEC:
        return _process(docs, ev, by_type, sc, name)
    if name in _CONNECT and "SOCKADDR" in by_type:
        return _network(docs, ev, by_type, sc, name)
    if "PATH" in by_type:
        return _file(docs, ev, by_type, sc, name)
    return _generic_syscall(docs, ev, by_type, sc, name)


def _process(docs: Documents, ev, by_type, sc, name) -> dict:
    outcome = outcome_of(sc)
    doc = docs.start(ev, "auditd.process", category=["process"], type=["start"],
                     action=EXEC_ACTION[outcome], outcome=outcome)
    users: list = []
    tags: list = []
    proc = docs.add_process(doc, sc, by_type, users, paths=False, syscall=name)
    ex = by_type.get("EXECVE")
    if ex:
        put_args(doc, proc, tags, exec_args(ex))
    tags_from_key(sc, tags)
    return finish(doc, users, [], tags)


def _network(docs: Documents, ev, by_type, sc, name) -> dict:
    outcome = outcome_of(sc)
    if sc.fields.get("exit") == _EINPROGRESS:
        outcome = "unknown"  # non-blocking connect: the result comes later
    doc = docs.start(ev, "auditd.network", category=["network"], type=["connection", "start"],
                     action="connected-to", outcome=outcome)
    users: list = []
    ips: list = []
    tags: list = []
    docs.add_process(doc, sc, by_type, users)
    sa = decode.sockaddr(by_type["SOCKADDR"][0].fields.get("saddr", ""))
    if sa is not None:
        fam = sa.get("family")
        if fam in ("inet", "inet6"):
            doc["destination"] = {"ip": sa["ip"], "port": sa["port"]}
            doc["network"] = {"type": "ipv4" if fam == "inet" else "ipv6"}
            ips.append(sa["ip"])
        else:
            doc.setdefault("auditd", {})["data"] = {"socket": sa}
    tags_from_key(sc, tags)
    return finish(doc, users, ips, tags)


def _file(docs: Documents, ev, by_type, sc, name) -> dict:
    paths = by_type["PATH"]
    # The object of the syscall is the last non-PARENT item (CREATE/DELETE/NORMAL).
    target = paths[-1]
    for p in reversed(paths):
        if p.fields.get("nametype") != "PARENT":
            target = p
            break
    etype, action = _FILE_TYPES.get(target.fields.get("nametype", ""), ("change", "file-changed"))
    doc = docs.start(ev, "auditd.file", category=["file"], type=[etype], action=action,
                     outcome=outcome_of(sc))
    users: list = []
    tags: list = []
    docs.add_process(doc, sc, by_type, users)
    fd: dict = {}
    path = decode.value_text(target, "name")
    if path is not None:
        cwd = doc["process"].get("working_directory")
        fd["path"] = path if path.startswith("/") or not cwd else cwd.rstrip("/") + "/" + path
    tf = target.fields
    if "inode" in tf:
        fd["inode"] = tf["inode"]
    if "mode" in tf:
        fd["mode"] = tf["mode"]
    if "ouid" in tf:
        fd["uid"] = tf["ouid"]
    if "ogid" in tf:
        fd["gid"] = tf["ogid"]
    if fd:
        doc["file"] = fd
    tags_from_key(sc, tags)
    return finish(doc, users, [], tags)


def _generic_syscall(docs: Documents, ev, by_type, sc, name) -> dict:
    doc = docs.start(ev, "auditd.syscall", category=["process"], type=["info"],
                     action=name or "syscall", outcome=outcome_of(sc))
    users: list = []
    tags: list = []
    docs.add_process(doc, sc, by_type, users)
    doc.setdefault("auditd", {})["data"] = record_data(sc)
    others = [r for r in ev.records if r.type not in ("SYSCALL", "PROCTITLE", "CWD", "PATH")]
    ips: list = []
    if others:
        doc.setdefault("auditd", {})["records"] = [{"type": r.type, "data": record_data(r)} for r in others]
        for r in others:
            if r.type == "SOCKADDR":
                sa = decode.sockaddr(r.fields.get("saddr", ""))
                if sa:
                    r_ip = sa.get("ip")
                    if r_ip:
                        ips.append(r_ip)
    tags_from_key(sc, tags)
    return finish(doc, users, ips, tags)
