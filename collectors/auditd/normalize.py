"""Audit events -> ECS documents (datasets of ../shared/EVENTS.md).

This module holds the dispatch and what every audit document shares (ids, time, the
sender process, users and the audit session); the per-dataset builders live in
normalize_syscall.py (process, network, file) and normalize_user.py (auth, login, config,
tty, generic).

Every document keeps ``auditd.session`` (``ses``) and ``user.audit.id`` (``auid``) even
when they are "unset" (4294967295): the session join downstream needs to know the event
was *not* part of a login. ids are ``make_event_id(host.id, "auditd", node, stamp, i)``
with ``i`` the index of the document within the audit event, so re-reading a record
always gives the same id.
"""

from __future__ import annotations

from typing import Optional

from agent.base.events import HostInfo, add_related, base_doc, make_event_id
from collectors.auditd import decode
from collectors.auditd.names import NameCache, enriched_name
from collectors.auditd.reassemble import AuditEvent, Gap

__all__ = ["Normalizer", "record_data"]

# Syscall numbers by audit arch, for RAW logs (ENRICHED logs name the syscall themselves).
_SYSCALLS = {
    "c000003e": {"59": "execve", "322": "execveat", "42": "connect"},       # x86_64
    "40000003": {"11": "execve", "358": "execveat", "362": "connect", "102": "socketcall"},
    "c00000b7": {"221": "execve", "281": "execveat", "203": "connect"},    # aarch64
}


_key_tags: dict = {}  # value of key= -> its non-empty rule keys, in order


class Normalizer:
    def __init__(self, host: HostInfo, keep_original: bool = False, resolve_ids: bool = True):
        self.host = host
        self.keep_original = keep_original
        self.names = NameCache(resolve_ids)
        # Lines typed earlier in each audit session, so that <up> in a keystroke
        # record flushed later (sudo's pty, a full buffer) recalls the right line.
        self.tty_history: dict = {}
        self._fp_tails: dict = {}  # fastpath.py: SYSCALL tail -> its cached values
        # Imported here: the builders import this module's helpers.
        from collectors.auditd import fastpath, normalize_syscall, normalize_user
        self._fast = fastpath.process
        self._syscall = normalize_syscall
        self._user = normalize_user

    # -- entry points -------------------------------------------------------------------

    def normalize(self, ev: AuditEvent) -> list:
        doc = self._fast(self, ev)  # the exec shape; None: the general builders
        if doc is not None:
            return [doc]
        by_type: dict = {}
        for r in ev.records:
            t = r.type
            same = by_type.get(t)
            if same is None:
                by_type[t] = [r]
            else:
                same.append(r)
        if "SYSCALL" in by_type:
            doc = self._syscall.build(self, ev, by_type)
        else:
            doc = self._user.build(self, ev, by_type)
        return [doc]

    def gap(self, gap: Gap) -> dict:
        doc = base_doc(
            host=self.host, timestamp=gap.time,
            event_id=make_event_id(self.host.id, "auditd-gap", gap.node, gap.stamp, gap.reason, gap.first),
            module="agentd", dataset="agentd.gap", category=["host"], type=["info"],
            action="events-lost", outcome="failure",
        )
        g: dict = {"source": "auditd", "reason": gap.reason, "count": gap.count}
        if gap.first is not None:
            g["first_serial"], g["last_serial"] = gap.first, gap.last
        if gap.node:
            g["node"] = gap.node
        doc["agentd"] = {"gap": g}
        doc["message"] = (
            f"auditd: {gap.count} audit records lost (kernel lost counter)" if gap.reason == "kernel-lost"
            else f"auditd: serials {gap.first}-{gap.last} missing from the log ({gap.count})"
        )
        return doc

    # -- helpers for the builders --------------------------------------------------------

    def start(self, ev: AuditEvent, dataset: str, *, category: list, type: list, action: str,
              outcome: str = "unknown", index: int = 0) -> dict:
        doc = base_doc(
            host=self.host, timestamp=ev.time,
            event_id=make_event_id(self.host.id, "auditd", ev.node, ev.stamp, index),
            module="auditd", dataset=dataset, category=category, type=type, action=action,
            outcome=outcome, sequence=ev.serial,
        )
        if self.keep_original:
            doc["event"]["original"] = "\n".join(
                r.raw.decode("utf-8", "surrogateescape") for r in ev.records)
        if ev.node:
            doc["auditd"] = {"node": ev.node}
        return doc

    def user_name(self, rec, field: str, enriched_key: str) -> Optional[str]:
        name = rec.enriched.get(enriched_key)
        if name is not None:
            return enriched_name(name)
        return self.names.user(rec.fields.get(field))

    def group_name(self, rec, field: str, enriched_key: str) -> Optional[str]:
        name = rec.enriched.get(enriched_key)
        if name is not None:
            return enriched_name(name)
        return self.names.group(rec.fields.get(field))

    def _uname(self, enriched: Optional[str], raw: Optional[str]) -> Optional[str]:
        """user_name() with the ENRICHED value and the raw id already looked up."""
        if enriched is not None:
            if not enriched or enriched == "unset" or enriched.startswith("unknown("):
                return None  # enriched_name()
            return enriched
        cache = self.names._users
        if raw in cache:
            return cache[raw]
        return self.names.user(raw)

    def _gname(self, enriched: Optional[str], raw: Optional[str]) -> Optional[str]:
        if enriched is not None:
            if not enriched or enriched == "unset" or enriched.startswith("unknown("):
                return None
            return enriched
        cache = self.names._groups
        if raw in cache:
            return cache[raw]
        return self.names.group(raw)

    def add_identity(self, doc: dict, rec, users: list) -> None:
        """user.* (uid), user.effective.* (euid), group.* (gid), user.audit.* (auid), ses."""
        f = rec.fields
        e = rec.enriched
        user: dict = {}
        uid = f.get("uid")
        if uid is not None:
            user["id"] = uid
            name = self._uname(e.get("UID"), uid)
            if name:
                user["name"] = name
                users.append(name)
        euid = f.get("euid")
        if euid is not None:
            eff = {"id": euid}
            name = self._uname(e.get("EUID"), euid)
            if name:
                eff["name"] = name
                users.append(name)
            egid = f.get("egid")
            if egid is not None:
                eg = {"id": egid}
                gname = self._gname(e.get("EGID"), egid)
                if gname:
                    eg["name"] = gname
                eff["group"] = eg
            user["effective"] = eff
        # add_audit_ids(doc, rec, users, user), inlined
        auid = f.get("auid")
        if auid is not None:
            a = {"id": auid}
            name = self._uname(e.get("AUID"), auid)
            if name:
                a["name"] = name
                users.append(name)
            user["audit"] = a
        ses = f.get("ses")
        if ses is not None:
            doc.setdefault("auditd", {})["session"] = ses
        if user:
            doc["user"] = user
        gid = f.get("gid")
        if gid is not None:
            g = {"id": gid}
            gname = self._gname(e.get("GID"), gid)
            if gname:
                g["name"] = gname
            doc["group"] = g

    def add_audit_ids(self, doc: dict, rec, users: list, user: Optional[dict] = None) -> None:
        f = rec.fields
        auid = f.get("auid")
        if auid is not None:
            if user is None:
                user = doc.setdefault("user", {})
            a = {"id": auid}
            name = self._uname(rec.enriched.get("AUID"), auid)
            if name:
                a["name"] = name
                users.append(name)
            user["audit"] = a
        ses = f.get("ses")
        if ses is not None:
            doc.setdefault("auditd", {})["session"] = ses

    def syscall_name(self, rec) -> str:
        name = rec.enriched.get("SYSCALL")
        if name:
            return name
        num = rec.fields.get("syscall", "")
        return _SYSCALLS.get(rec.fields.get("arch", ""), {}).get(num, num)

    @staticmethod
    def tags_from_key(rec, tags: list) -> None:
        """Rule keys: ``key="exec"``, or several keys hex-encoded and joined by 0x01."""
        if "key" not in rec.fields:
            return
        b = decode.value_bytes(rec, "key")
        if not b:
            return
        keys = _key_tags.get(b)
        if keys is None:
            keys = tuple(t for t in (k.decode("utf-8", "replace") for k in b.split(b"\x01")) if t)
            if len(_key_tags) >= 1024:
                _key_tags.clear()
            _key_tags[b] = keys
        for t in keys:
            if t not in tags:
                tags.append(t)

    @staticmethod
    def finish(doc: dict, users: list, ips: list, tags: list) -> dict:
        if tags:
            doc["tags"] = tags
        if users or ips:
            if "related" in doc:
                add_related(doc, users=tuple(users), ips=tuple(ips))
            else:
                # add_related on a document without related.*, inlined: truthy values,
                # first-seen order, no duplicates, no empty lists.
                rel = {}
                for key, values in (("user", users), ("ip", ips)):
                    clean: list = []
                    for v in values:
                        if v and v not in clean:
                            clean.append(v)
                    if clean:
                        rel[key] = clean
                if rel:
                    doc["related"] = rel
        return doc


def record_data(rec) -> dict:
    """All fields of a record for ``auditd.data`` (ENRICHED interpretations under ``interpreted``)."""
    data = dict(rec.fields)
    data.pop("msg", None)  # a user-space payload, already flattened into the other fields
    if rec.enriched:
        data["interpreted"] = dict(rec.enriched)
    return data

