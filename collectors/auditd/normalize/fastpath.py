"""Fast path for the dominant event shape: an exec (SYSCALL + EXECVE + CWD + PATH… +
PROCTITLE, optionally BPRM_FCAPS), about 80% of a bastion's records.

It builds the document syscall.py's exec builder builds, with the same helpers
(document.py), but what repeats from exec to exec is computed once and cached:

* the SYSCALL tail (from `` auid=`` to the end of the line, ENRICHED part included):
  identities and names, session, tty, comm, exe, rule-key tags, the ENRICHED syscall name.
  Valid only when the part before it is the plain kernel head (``arch=… pid=N``, matched
  exactly, no quotes anywhere before the tail) and the tail defines none of the head's
  keys: then every one of those values is a function of the tail alone (the parser's
  fallbacks included). Kept per FastPath (names depend on resolve_ids);
* the CWD and PROCTITLE values and the arguments of a single EXECVE record, by the
  record's text after its header (AuditRecord.text_after_header).

Any other event (other record types, a SYSCALL head of another shape, records already
parsed) gets None and the general builder runs.
"""

from __future__ import annotations

import re
from typing import Optional

from agent.base.cache import BoundedCache
from collectors.auditd import decode
from collectors.auditd.normalize.document import (
    EXEC_ACTION,
    Documents,
    add_tags,
    exec_args,
    finish,
    key_tags,
    put_args,
    put_tty,
    syscall_by_number,
    title_text,
)
from collectors.auditd.parse import AuditRecord
from collectors.auditd.reassemble import AuditEvent

_HEAD = re.compile(
    r"arch=([0-9a-f]+) syscall=([0-9]+) success=(yes|no) exit=(-?[0-9]+) a0=[0-9a-f]+ "
    r"a1=[0-9a-f]+ a2=[0-9a-f]+ a3=[0-9a-f]+ items=[0-9]+ ppid=([0-9]+) pid=([0-9]+)(?= auid=)",
    re.ASCII).match
# Head keys (and what would change how the body parses) a tail must not hold.
_FORBIDDEN = ("arch=", "syscall=", "success=", "exit=", "pid=", "items=", "a0=", "a1=",
              "a2=", "a3=", "msg=")
_EXEC = frozenset(("execve", "execveat"))
_MAX = 2048
_cwd_cache = BoundedCache(_MAX)  # body+ENRICHED text -> value (CWD)
_title_cache = BoundedCache(_MAX)  # (PROCTITLE)
_args_cache = BoundedCache(_MAX)  # EXECVE text -> exec_args() of that one record


def _copy_user(user: dict) -> dict:
    """A copy of add_identity's user.* (nested: effective, effective.group)."""
    u = user.copy()
    e = u.get("effective")
    if e is not None:
        e = u["effective"] = e.copy()
        g = e.get("group")
        if g is not None:
            e["group"] = g.copy()
    return u


def _cached(rec: AuditRecord, fn, cache: BoundedCache):
    """fn(rec) cached by the record's text after its header (when that is sound)."""
    key = rec.text_after_header()
    if key is None:
        return fn(rec)
    hit = cache.get(key, cache)
    if hit is cache:
        hit = cache.put(key, fn(rec))
    return hit


def _cwd(rec: AuditRecord):
    return decode.value_text(rec, "cwd")


class FastPath:
    def __init__(self, docs: Documents):
        self.docs = docs
        self._tails = BoundedCache(_MAX)  # SYSCALL tail -> its cached values (False: not this shape)

    def _tail_info(self, sc: AuditRecord):
        """(head match, cached tail values) or None when the fast path does not apply."""
        body = sc.text_after_header()
        if body is None:
            return None
        m = _HEAD(body)
        if m is None:
            return None
        tail = body[m.end():]
        cache = self._tails
        info = cache.get(tail)
        if info is None:
            info = False
            for s in _FORBIDDEN:
                if s in tail:
                    break
            else:
                doc: dict = {}
                users: list = []
                self.docs.add_identity(doc, sc, users)
                tty = sc.fields.get("tty")
                info = (doc.get("user"), doc.get("group"), doc.get("auditd", {}).get("session"),
                        doc.get("agentd", {}).get("user", {}).get("audit"),
                        tuple(users), decode.value_text(sc, "exe"), decode.value_text(sc, "comm"),
                        tty if tty and tty not in decode.NO_VALUE else None, key_tags(sc),
                        sc.enriched.get("SYSCALL"))
            cache.put(tail, info)
        if info is False:
            return None
        return m, info

    def build(self, ev: AuditEvent) -> Optional[dict]:
        recs = ev.records
        sc = recs[0]
        if sc.type != "SYSCALL":
            return None
        node = ev.node
        if node and ('"' in node or "'" in node):
            # The records' header is ``[node=N ]type=T msg=audit(STAMP): ``: with T one of
            # this shape's and STAMP digits, only the node can hold a quote, which would
            # fool decode.was_quoted() (it reads the raw line) and so the caches.
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
        got = self._tail_info(sc)
        if got is None:
            return None
        m, (user, group, ses, audit, users, exe, comm, tty, keytags, esys) = got
        arch, num, success, exit_, ppid, pid = m.groups()
        name = esys or syscall_by_number(arch, num)
        if not execve and name not in _EXEC:
            return None

        outcome = "success" if success == "yes" else "failure"
        doc = self.docs.start(ev, "auditd.process", category=["process"], type=["start"],
                              action=EXEC_ACTION[outcome], outcome=outcome)
        proc: dict = {"pid": int(pid), "parent": {"pid": int(ppid)}}
        if exe is not None:
            proc["executable"] = exe
        if comm is not None:
            proc["name"] = comm
        if pt is not None:
            title = _cached(pt, title_text, _title_cache)
            if title is not None:
                proc["title"] = title
        if cwd is not None:
            wd = _cached(cwd, _cwd, _cwd_cache)
            if wd is not None:
                proc["working_directory"] = wd
        doc["process"] = proc
        if user is not None:
            doc["user"] = _copy_user(user)
        if group is not None:
            doc["group"] = group.copy()
        if audit is not None:
            doc["agentd"] = {"user": {"audit": audit.copy()}}
        if tty is not None:
            put_tty(doc, proc, tty)
        a = doc.setdefault("auditd", {})
        if ses is not None:
            a["session"] = ses
        a["syscall"] = name
        a["exit"] = exit_
        tags: list = []
        if execve:
            # One EXECVE record: its arguments are a function of its text after the header.
            put_args(doc, proc, tags, _cached(execve[0], _exec_args1, _args_cache) if len(execve) == 1
                     else exec_args(execve))
        add_tags(tags, keytags)
        return finish(doc, users, (), tags)


def _exec_args1(rec: AuditRecord) -> tuple:
    return exec_args([rec])
