"""Builders for kernel syscall events: auditd.process, auditd.network, auditd.file,
and the syscall part of CONFIG_CHANGE / LOGIN / TTY events (delegated to normalize_user).
"""

from __future__ import annotations

import ipaddress
from typing import Optional

from collectors.auditd import decode
from collectors.auditd.normalize import record_data

_EXEC = frozenset(("execve", "execveat"))
_CONNECT = frozenset(("connect", "socketcall"))
# Kernel records that make a syscall event something other than a plain syscall.
_DELEGATE = ("CONFIG_CHANGE", "LOGIN", "TTY")
_FILE_TYPES = {"CREATE": ("creation", "file-created"), "DELETE": ("deletion", "file-deleted")}
_EINPROGRESS = "-115"
_value_text = decode.value_text
_NO_VALUE = decode.NO_VALUE


def build(norm, ev, by_type: dict) -> dict:
    for t in _DELEGATE:
        if t in by_type:
            from collectors.auditd import normalize_user
            return normalize_user.build(norm, ev, by_type)
    sc = by_type["SYSCALL"][0]
    name = norm.syscall_name(sc)
    if "EXECVE" in by_type or name in _EXEC:
        return _process(norm, ev, by_type, sc, name)
    if name in _CONNECT and "SOCKADDR" in by_type:
        return _network(norm, ev, by_type, sc, name)
    if "PATH" in by_type:
        return _file(norm, ev, by_type, sc, name)
    return _generic_syscall(norm, ev, by_type, sc, name)


def outcome_of(sc) -> str:
    s = sc.fields.get("success")
    return "success" if s == "yes" else "failure" if s == "no" else "unknown"


def add_process(norm, doc: dict, sc, by_type: dict, users: list, paths: bool = True,
                syscall: Optional[str] = None) -> dict:
    """process.* from SYSCALL (+ PROCTITLE, CWD), identities, session.

    ``syscall``: norm.syscall_name(sc) when the caller has it already."""
    f = sc.fields
    proc: dict = {}
    pid = f.get("pid")
    if pid is not None and pid.isdigit():
        proc["pid"] = int(pid)
    ppid = f.get("ppid")
    if ppid is not None and ppid.isdigit():
        proc["parent"] = {"pid": int(ppid)}
    exe = _value_text(sc, "exe")
    if exe is not None:
        proc["executable"] = exe
    comm = _value_text(sc, "comm")
    if comm is not None:
        proc["name"] = comm
    tty = f.get("tty")
    if tty and tty not in _NO_VALUE:
        proc["tty"] = {"name": tty}
    pt = by_type.get("PROCTITLE")
    if pt:
        title = decode.proctitle(pt[0])
        if title is not None:
            try:
                proc["title"] = title.decode("utf-8")  # bytes_to_text() of valid UTF-8
            except UnicodeDecodeError:
                proc["title"] = decode.bytes_to_text(title)[0]
    cwd = by_type.get("CWD")
    if cwd:
        wd = _value_text(cwd[0], "cwd")
        if wd is not None:
            proc["working_directory"] = wd
    doc["process"] = proc
    norm.add_identity(doc, sc, users)
    a = doc.setdefault("auditd", {})
    a["syscall"] = norm.syscall_name(sc) if syscall is None else syscall
    if "exit" in f:
        a["exit"] = f["exit"]
    # An exec's PATH items (the binary, the loader) add little and cost a third of the
    # parsing time of an exec-heavy log; file and network events keep them.
    items = by_type.get("PATH") if paths else None
    if items:
        a["paths"] = [_path(p) for p in items]
    return proc


def _path(rec) -> dict:
    f = rec.fields
    d: dict = {}
    name = decode.value_text(rec, "name")
    if name is not None:
        d["name"] = name
    for k in ("inode", "dev", "mode", "nametype", "ouid", "ogid", "item"):
        v = f.get(k)
        if v is not None:
            d[k] = v
    return d


def _process(norm, ev, by_type, sc, name) -> dict:
    doc = norm.start(ev, "auditd.process", category=["process"], type=["start"],
                     action="executed", outcome=outcome_of(sc))
    users: list = []
    tags: list = []
    proc = add_process(norm, doc, sc, by_type, users, paths=False, syscall=name)
    ex = by_type.get("EXECVE")
    if ex:
        raw_args, argc = decode.execve_args(ex)
        try:
            # bytes_to_text() of arguments that are all valid UTF-8: plain decoding.
            args = [a.decode("utf-8") for a in raw_args]
            escaped = False
        except UnicodeDecodeError:
            args = []
            escaped = False
            for a in raw_args:
                t, e = decode.bytes_to_text(a)
                args.append(t)
                escaped = escaped or e
        proc["args"] = args
        proc["args_count"] = argc
        proc["command_line"] = " ".join(args)
        if escaped:
            proc["args_escaped"] = True
            tags.append("non-utf8-args")
    norm.tags_from_key(sc, tags)
    return norm.finish(doc, users, [], tags)


def _network(norm, ev, by_type, sc, name) -> dict:
    outcome = outcome_of(sc)
    if sc.fields.get("exit") == _EINPROGRESS:
        outcome = "unknown"  # non-blocking connect: the result comes later
    doc = norm.start(ev, "auditd.network", category=["network"], type=["connection", "start"],
                     action="connected-to", outcome=outcome)
    users: list = []
    ips: list = []
    tags: list = []
    add_process(norm, doc, sc, by_type, users)
    sa = decode.sockaddr(by_type["SOCKADDR"][0].fields.get("saddr", ""))
    if sa is not None:
        fam = sa.get("family")
        if fam in ("inet", "inet6"):
            doc["destination"] = {"ip": sa["ip"], "port": sa["port"]}
            doc["network"] = {"type": "ipv4" if fam == "inet" else "ipv6"}
            ips.append(sa["ip"])
        else:
            doc.setdefault("auditd", {})["data"] = {"socket": sa}
    norm.tags_from_key(sc, tags)
    return norm.finish(doc, users, ips, tags)


def _file(norm, ev, by_type, sc, name) -> dict:
    paths = by_type["PATH"]
    # The object of the syscall is the last non-PARENT item (CREATE/DELETE/NORMAL).
    target = paths[-1]
    for p in reversed(paths):
        if p.fields.get("nametype") != "PARENT":
            target = p
            break
    etype, action = _FILE_TYPES.get(target.fields.get("nametype", ""), ("change", "file-changed"))
    doc = norm.start(ev, "auditd.file", category=["file"], type=[etype], action=action,
                     outcome=outcome_of(sc))
    users: list = []
    tags: list = []
    add_process(norm, doc, sc, by_type, users)
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
    norm.tags_from_key(sc, tags)
    return norm.finish(doc, users, [], tags)


def _generic_syscall(norm, ev, by_type, sc, name) -> dict:
    doc = norm.start(ev, "auditd.syscall", category=["process"], type=["info"],
                     action=name or "syscall", outcome=outcome_of(sc))
    users: list = []
    tags: list = []
    add_process(norm, doc, sc, by_type, users)
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
    norm.tags_from_key(sc, tags)
    return norm.finish(doc, users, ips, tags)


def valid_ip(v) -> bool:
    if not v or v in decode.NO_VALUE:
        return False
    try:
        ipaddress.ip_address(v)
    except ValueError:
        return False
    return True
