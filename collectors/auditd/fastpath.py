"""Fast path for the dominant event shape: an exec (SYSCALL + EXECVE + CWD + PATH… +
PROCTITLE, optionally BPRM_FCAPS), about 80% of a bastion's records.

It builds the same document as normalize_syscall._process, but what repeats from exec to
exec is computed once and cached:

* the SYSCALL tail (from `` auid=`` to the end of the line, ENRICHED part included):
  identities and names, session, tty, comm, exe, rule-key tags, the ENRICHED syscall name.
  Valid only when the part before it is the plain kernel head (``arch=… pid=N``, matched
  exactly, no quotes anywhere before the tail) and the tail defines none of the head's
  keys: then every one of those values is a function of the tail alone (the parser's
  fallbacks included). Kept per Normalizer (names depend on resolve_ids);
* CWD and PROCTITLE values, by record body (no quotes before the body).

Anything else (other record types, a SYSCALL head of another shape, records already
parsed) returns None and the general builder runs.
"""

from __future__ import annotations

import re
from typing import Optional

from agent import __version__
from agent.base.events import make_event_id, rfc3339
from collectors.auditd import decode

_HEAD = re.compile(
    r"arch=([0-9a-f]+) syscall=([0-9]+) success=(yes|no) exit=(-?[0-9]+) a0=[0-9a-f]+ "
    r"a1=[0-9a-f]+ a2=[0-9a-f]+ a3=[0-9a-f]+ items=[0-9]+ ppid=([0-9]+) pid=([0-9]+)(?= auid=)",
    re.ASCII).match
# Head keys (and what would change how the body parses) a tail must not hold.
_FORBIDDEN = ("arch=", "syscall=", "success=", "exit=", "pid=", "items=", "a0=", "a1=",
              "a2=", "a3=", "msg=")
_OK_TYPES = frozenset(("SYSCALL", "EXECVE", "CWD", "PATH", "PROCTITLE", "BPRM_FCAPS"))
_EXEC = frozenset(("execve", "execveat"))
_MAX = 2048
_cwd_cache: dict = {}  # body+ENRICHED text -> value (CWD)
_title_cache: dict = {}  # (PROCTITLE)
_args_cache: dict = {}  # EXECVE text -> _args() of that one record


def _copy_user(user: dict) -> dict:
    """A copy of add_identity's user.* (nested: effective, effective.group, audit)."""
    u = user.copy()
    e = u.get("effective")
    if e is not None:
        e = u["effective"] = e.copy()
        g = e.get("group")
        if g is not None:
            e["group"] = g.copy()
    a = u.get("audit")
    if a is not None:
        u["audit"] = a.copy()
    return u


def _body_value(rec, fn, cache: dict):
    """fn(rec) cached by the record's text after its header (when that is sound).

    The header is ``[node=N ]type=T msg=audit(STAMP): ``: with T known (CWD, PROCTITLE)
    and STAMP digits, only the node can hold a quote."""
    start = rec._body
    node = rec.node
    if type(start) is not int or rec._fields is not None or (
            node and ('"' in node or "'" in node)):
        return fn(rec)
    key = rec._enr[start:]
    hit = cache.get(key, cache)
    if hit is cache:
        hit = fn(rec)
        if len(cache) >= _MAX:
            cache.clear()
        cache[key] = hit
    return hit


def _cwd(rec):
    return decode.value_text(rec, "cwd")


def _title(rec):
    title = decode.proctitle(rec)
    if title is None:
        return None
    try:
        return title.decode("utf-8")
    except UnicodeDecodeError:
        return decode.bytes_to_text(title)[0]


def _tail_info(norm, sc, cache: dict):
    """(head match, cached tail values) or None when the fast path does not apply."""
    start = sc._body
    if type(start) is not int or sc._fields is not None or sc._enriched is not None:
        return None
    node = sc.node
    if node and ('"' in node or "'" in node):
        return None  # the only part of the header that may hold a quote (see _body_value)
    text = sc._enr
    m = _HEAD(text, start)
    if m is None:
        return None
    tail = text[m.end():]
    info = cache.get(tail)
    if info is None:
        info = False
        for s in _FORBIDDEN:
            if s in tail:
                break
        else:
            doc: dict = {}
            users: list = []
            norm.add_identity(doc, sc, users)
            tags: list = []
            norm.tags_from_key(sc, tags)
            tty = sc.fields.get("tty")
            info = (doc.get("user"), doc.get("group"), doc.get("auditd", {}).get("session"),
                    tuple(users), decode.value_text(sc, "exe"), decode.value_text(sc, "comm"),
                    tty if tty and tty not in decode.NO_VALUE else None, tuple(tags),
                    sc.enriched.get("SYSCALL"))
        if len(cache) >= _MAX:
            cache.clear()
        cache[tail] = info
    if info is False:
        return None
    return m, info


def _args(execve: list) -> tuple:
    """(args, argc, command line, escaped) as normalize_syscall._process makes them."""
    raw_args, argc = decode.execve_args(execve)
    try:
        args = [x.decode("utf-8") for x in raw_args]
        escaped = False
    except UnicodeDecodeError:
        args = []
        escaped = False
        for x in raw_args:
            t, e = decode.bytes_to_text(x)
            args.append(t)
            escaped = escaped or e
    return tuple(args), argc, " ".join(args), escaped


def process(norm, ev) -> Optional[dict]:
    recs = ev.records
    sc = recs[0]
    if sc.type != "SYSCALL":
        return None
    execve = []
    cwd = pt = None
    for r in recs[1:]:
        t = r.type
        if t == "EXECVE":
            execve.append(r)
        elif t == "PATH" or t == "BPRM_FCAPS":
            pass
        elif t == "CWD":
            if cwd is None:
                cwd = r
        elif t == "PROCTITLE":
            if pt is None:
                pt = r
        else:
            return None  # another SYSCALL, or a type the general builder must see
    got = _tail_info(norm, sc, norm._fp_tails)
    if got is None:
        return None
    m, (user, group, ses, users, exe, comm, tty, keytags, esys) = got
    arch, num, success, exit_, ppid, pid = m.groups()
    if esys:
        name = esys
    else:
        from collectors.auditd.normalize import _SYSCALLS
        name = _SYSCALLS.get(arch, {}).get(num, num)
    if not execve and name not in _EXEC:
        return None

    host = norm.host
    event = {
        "id": make_event_id(host.id, "auditd", ev.node, ev.stamp, 0),
        "kind": "event", "module": "auditd", "dataset": "auditd.process",
        "outcome": "success" if success == "yes" else "failure",
        "category": ["process"], "type": ["start"], "action": "executed",
        "sequence": ev.serial,
    }
    doc = {
        "@timestamp": rfc3339(ev.time), "event": event,
        "host": {"name": host.name, "id": host.id},
        "agent": {"type": "agentd", "version": __version__},
    }
    if norm.keep_original:
        event["original"] = "\n".join(r.raw.decode("utf-8", "surrogateescape") for r in recs)
    a: dict = {"node": ev.node} if ev.node else {}
    proc: dict = {"pid": int(pid), "parent": {"pid": int(ppid)}}
    if exe is not None:
        proc["executable"] = exe
    if comm is not None:
        proc["name"] = comm
    if tty is not None:
        proc["tty"] = {"name": tty}
    if pt is not None:
        title = _body_value(pt, _title, _title_cache)
        if title is not None:
            proc["title"] = title
    if cwd is not None:
        wd = _body_value(cwd, _cwd, _cwd_cache)
        if wd is not None:
            proc["working_directory"] = wd
    doc["process"] = proc
    if user is not None:
        doc["user"] = _copy_user(user)
    if group is not None:
        doc["group"] = group.copy()
    if ses is not None:
        a["session"] = ses
    a["syscall"] = name
    a["exit"] = exit_
    doc["auditd"] = a
    tags: list = []
    if execve:
        ex = execve[0]
        start = ex._body
        if len(execve) == 1 and type(start) is int:
            # One EXECVE record: its arguments are a function of the text after the
            # header (execve_args reads from the header's "): " on).
            key = ex._enr[start:]
            hit = _args_cache.get(key)
            if hit is None:
                hit = _args(execve)
                if len(_args_cache) >= _MAX:
                    _args_cache.clear()
                _args_cache[key] = hit
        else:
            hit = _args(execve)
        args, argc, cmdline, escaped = hit
        proc["args"] = list(args)
        proc["args_count"] = argc
        proc["command_line"] = cmdline
        if escaped:
            proc["args_escaped"] = True
            tags.append("non-utf8-args")
    for t in keytags:
        if t not in tags:
            tags.append(t)
    if tags:
        doc["tags"] = tags
    if users:
        clean: list = []
        for v in users:
            if v and v not in clean:
                clean.append(v)
        if clean:
            doc["related"] = {"user": clean}
    return doc
