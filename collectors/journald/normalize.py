"""One journal entry (field name -> str) -> one ECS document.

Pure: the entry's own fields give the time (``__REALTIME_TIMESTAMP``), the id (boot
id + sequence number id + sequence number, all stored in the entry, so a re-read or a
replay yields the same id) and the session keys (``_PID``, ``_AUDIT_SESSION``,
``_AUDIT_LOGINUID``) that agent/sessions.py joins on.
"""

from __future__ import annotations

import logging
from typing import Optional

from agent.base.events import HostInfo, add_related, base_doc, make_event_id
from collectors.journald import sftp, sshd, sshd_forward, su, sudo, tlog
from collectors.journald.common import generic

log = logging.getLogger("agentd.journald")

# Audit records journald ingests (Audit=yes) carry _COMM of the audited process, so a
# _COMM=sshd match pulls them in too; the auditd collector owns them.
SKIP_TRANSPORTS = ("audit", "kernel")
_UNSET = ("", "4294967295", "-1")


def text(value) -> str:
    """A field as text: journald keeps non-UTF-8 data as bytes (the Reader then hands
    bytes, journalctl -o json a list of ints); a repeated field arrives as a list."""
    if isinstance(value, list):
        if value and all(isinstance(v, int) for v in value):
            value = bytes(value)
        else:
            value = value[0] if value else ""
    if isinstance(value, (bytes, bytearray)):
        return bytes(value).decode("utf-8", "backslashreplace")
    return "" if value is None else str(value)


def program_of(fields: dict) -> str:
    return text(fields.get("SYSLOG_IDENTIFIER")) or text(fields.get("_COMM"))


def cursor_parts(cursor: str) -> dict:
    """'s=…;i=…;b=…;m=…;t=…;x=…' -> {'s': …, 'i': …, …}: the sequence number id and
    number for systemd versions whose readers do not expose __SEQNUM."""
    out = {}
    for part in cursor.split(";"):
        k, sep, v = part.partition("=")
        if sep:
            out[k] = v
    return out


def entry_identity(fields: dict) -> tuple:
    cursor = text(fields.get("__CURSOR"))
    parts = cursor_parts(cursor)
    boot = text(fields.get("_BOOT_ID")) or parts.get("b", "")
    seqnum_id = text(fields.get("__SEQNUM_ID")) or parts.get("s") or text(fields.get("_MACHINE_ID"))
    seqnum = text(fields.get("__SEQNUM"))
    if not seqnum and "i" in parts:
        seqnum = str(int(parts["i"], 16))
    return boot.replace("-", ""), seqnum_id.replace("-", ""), seqnum or cursor


def _int(value) -> Optional[int]:
    try:
        return int(text(value))
    except ValueError:
        return None


def _merge(doc: dict, frag: dict) -> None:
    for key, value in frag.items():
        if isinstance(value, dict) and isinstance(doc.get(key), dict):
            _merge(doc[key], value)
        else:
            doc[key] = value


class Normalizer:
    def __init__(self, host: HostInfo, programs, keep_original: bool = False):
        self.host = host
        self.programs = set(programs)
        self.keep_original = keep_original
        self.sftp_state = sftp.SftpState()
        self.parse_errors = 0

    def wanted(self, fields: dict) -> bool:
        if text(fields.get("_TRANSPORT")) in SKIP_TRANSPORTS:
            return False
        return program_of(fields) in self.programs or text(fields.get("_COMM")) in self.programs

    def _fragment(self, program: str, message: str, fields: dict) -> Optional[dict]:
        if program.startswith("sshd"):
            return sshd.parse(message, fields) or sshd_forward.parse(message)
        if program == "sudo":
            return sudo.parse(message, fields)
        if program == "su":
            return su.parse(message, fields)
        if program == "sftp-server":
            return sftp.parse(message, fields, self.sftp_state)
        if program == tlog.PROGRAM:
            return tlog.parse(message, fields)
        return None

    def normalize(self, fields: dict) -> Optional[dict]:
        """The document for one entry, or None when the entry is not one of ours."""
        if not self.wanted(fields):
            return None
        program = program_of(fields)
        message = text(fields.get("MESSAGE"))
        try:
            frag = self._fragment(program, message, fields)
        except Exception:  # a parser bug must not stop the collector nor lose the line
            self.parse_errors += 1
            if self.parse_errors == 1 or self.parse_errors % 1000 == 0:
                log.exception("journald: parser error on %s message %r (%d so far)", program, message,
                              self.parse_errors)
            frag = None
        if frag is None:
            frag = generic(program)
        ev = frag.pop("event")
        boot, seqnum_id, seqnum = entry_identity(fields)
        usec = _int(fields.get("__REALTIME_TIMESTAMP")) or 0
        doc = base_doc(
            host=self.host, timestamp=usec / 1e6,
            event_id=make_event_id(self.host.id, "journald", boot, seqnum_id, seqnum),
            module="journald", dataset=ev["dataset"], category=ev.get("category"), type=ev.get("type"),
            action=ev.get("action", ""), outcome=ev.get("outcome", "unknown"),
        )
        doc["message"] = message
        self._process(doc, fields, program)
        _merge(doc, frag)
        self._session_keys(doc, fields)
        doc["journald"] = {"cursor": text(fields.get("__CURSOR")), "boot_id": boot}
        unit = text(fields.get("_SYSTEMD_UNIT"))
        if unit:
            doc["journald"]["unit"] = unit
        if self.keep_original and ev["dataset"] != tlog.DATASET:  # a chunk's text is in process.io.text
            doc["event"]["original"] = message
        user = doc.get("user", {})
        add_related(doc, users=(user.get("name"), (user.get("target") or {}).get("name")),
                    ips=((doc.get("source") or {}).get("ip"),))
        return doc

    @staticmethod
    def _process(doc: dict, fields: dict, program: str) -> None:
        proc: dict = {}
        pid = _int(fields.get("_PID")) or _int(fields.get("SYSLOG_PID"))
        if pid is not None:
            proc["pid"] = pid
        proc["name"] = text(fields.get("_COMM")) or program
        exe = text(fields.get("_EXE"))
        if exe:
            proc["executable"] = exe
        doc["process"] = proc
        doc["log"] = {"syslog": {"appname": program}}
        prio = _int(fields.get("PRIORITY"))
        if prio is not None:
            doc["log"]["syslog"]["severity"] = {"code": prio}

    @staticmethod
    def _session_keys(doc: dict, fields: dict) -> None:
        # The kernel audit session of the logging process: what agent/sessions.py reads
        # (auditd.session) to attach session.* to this event, as it does for audit events.
        ses = text(fields.get("_AUDIT_SESSION"))
        if ses and ses not in _UNSET:
            doc.setdefault("auditd", {})["session"] = ses
        auid = text(fields.get("_AUDIT_LOGINUID"))
        if auid and auid not in _UNSET:
            doc.setdefault("agentd", {}).setdefault("user", {}).setdefault("audit", {})["id"] = auid
