"""Group audit records into events and notice evidence of loss.

Completion. Records of one event share ``(node, serial)``; events of different CPUs can
interleave, so events are kept by that key. auditd 3.x does **not** write the kernel's EOE
record to its log (it is seen on the netlink socket and by plugins only), so an event in
audit.log completes on one of:

* ``EOE`` (when present: audisp plugins, other writers);
* ``PROCTITLE``: the kernel's audit_log_exit() writes it last, right before EOE, for every
  syscall event (verified on this machine: every multi-record event of a day of logs ends
  with it, including CONFIG_CHANGE/LOGIN/TTY events, which carry SYSCALL+PROCTITLE);
* a user-space message type (AUDIT_FIRST_USER_MSG 1100-1199, 2100-2999: USER_*, CRED_*,
  ADD_USER, …) or auditd's own DAEMON_* record: the kernel logs them with no syscall
  context, so they are always alone. Kernel CONFIG_CHANGE, LOGIN and TTY are *not* single:
  they come with the SYSCALL/PROCTITLE of the syscall that caused them;
* record-time expiry: a record more than ``timeout`` seconds newer than the event's time
  (kernel events without PROCTITLE: kernel threads, io_uring, partial events).

Sequence gaps (what we found, kernel 6.18 / auditd 3.0.9). The kernel takes an event's
serial lazily, in audit_log_start(), *after* the exclude filter and the backlog check; a
syscall the rules do not select never gets one. On this machine's log, with thousands of
filtered syscalls (auid unset) between logged ones, serials were contiguous within every
auditd run. The only gaps were across auditd restarts: between DAEMON_END and the next
DAEMON_START the kernel sends records to printk/kmsg (``audit_pid=0``), so their serials
never reach the log (they are in the journal). So:

* a gap *within* one auditd run is real loss (rate limit in audit_log_end, kauditd hold
  queue overflow, auditd suspended on a full disk -> DAEMON_RESUME): reported as a
  :class:`Gap` with reason ``sequence-gap``;
* a gap across DAEMON_START/DAEMON_END/DAEMON_ABORT is expected and not reported (the
  DAEMON_* events themselves say the daemon was down); the serial counter is re-based;
* DAEMON_* records carry auditd's own serial, not the kernel's, and are not tracked;
* a backwards jump (reboot, another kernel) re-bases silently;
* a whole event dropped by the backlog limit takes no serial and leaves no trace in the
  log; the kernel counts it in ``lost``, which reaches the log only as CONFIG_CHANGE
  ``op=set lost=0 old=N`` when someone resets the counter (``auditctl --reset-lost``):
  reported as a Gap with reason ``kernel-lost`` and ``count = old``. Any other record with
  a ``lost=`` field that rises (status records relayed by other writers) is reported too.

Serials may arrive slightly out of order (an event takes its serial at its first record,
which may be logged after a later event's), so a hole is only declared once a record more
than ``timeout`` seconds newer than the hole has arrived, or at :meth:`Reassembler.flush`.
"""

from __future__ import annotations

from typing import ClassVar, Optional

from collectors.auditd.parse import AuditRecord

__all__ = ["AuditEvent", "Gap", "Reassembler", "is_single_record_type"]

_USER_RANGES = ((1100, 1199), (2100, 2999))
_USER_NAMES = frozenset((
    "LOGIN_FAILURES", "TRUSTED_APP", "SYSTEM_BOOT", "SYSTEM_SHUTDOWN", "SYSTEM_RUNLEVEL",
    "SERVICE_START", "SERVICE_STOP", "GRP_AUTH", "CHGRP_ID", "ACCT_LOCK", "ACCT_UNLOCK",
    "ADD_USER", "DEL_USER", "ADD_GROUP", "DEL_GROUP", "DAC_CHECK", "SOFTWARE_UPDATE",
    "ROLE_ASSIGN", "ROLE_REMOVE", "ROLE_MODIFY", "LABEL_OVERRIDE", "LABEL_LEVEL_CHANGE",
    "DEV_ALLOC", "DEV_DEALLOC", "FS_RELABEL", "USYS_CONFIG", "MAC_CHECK", "GRP_MGMT",
    "GRP_CHAUTHTOK", "TEST", "TRUSTED_APP",
))
_USER_PREFIXES = ("USER", "CRED_", "DAEMON_", "ANOM_", "RESP_", "VIRT_", "CRYPTO_")
# Kernel records that merely start with a user-looking prefix.
_KERNEL_NAMES = frozenset(("ANOM_PROMISCUOUS", "ANOM_ABEND", "ANOM_LINK", "ANOM_CREAT",
                           "CRYPTO_KEY_USER_RESERVED"))
_DAEMON_RESTART = frozenset(("DAEMON_START", "DAEMON_END", "DAEMON_ABORT"))
_single_cache: dict = {}


def is_single_record_type(rtype: str) -> bool:
    """True for types that are always an event of their own (user space, auditd)."""
    hit = _single_cache.get(rtype)
    if hit is not None:
        return hit
    if rtype.startswith("UNKNOWN[") and rtype.endswith("]") and rtype[8:-1].isdigit():
        n = int(rtype[8:-1])
        res = any(lo <= n <= hi for lo, hi in _USER_RANGES) or 1200 <= n <= 1299
    elif rtype in _KERNEL_NAMES:
        res = False
    else:
        res = rtype in _USER_NAMES or rtype.startswith(_USER_PREFIXES)
    if len(_single_cache) < 4096:
        _single_cache[rtype] = res
    return res


class AuditEvent:
    __slots__ = ("records", "serial", "stamp", "time", "node")

    def __init__(self, first: AuditRecord):
        self.records = [first]
        self.serial = first.serial
        self.stamp = first.stamp
        self.time = first.time
        self.node = first.node

    def __repr__(self) -> str:  # pragma: no cover - debugging aid
        return f"AuditEvent({self.node}{self.stamp} {[r.type for r in self.records]})"


class Gap:
    """Evidence that audit records were lost before they reached the log."""

    __slots__ = ("node", "reason", "first", "last", "count", "time", "stamp")

    def __init__(self, node: str, reason: str, first: Optional[int], last: Optional[int],
                 count: int, time: float, stamp: str):
        self.node = node
        self.reason = reason    # "sequence-gap" or "kernel-lost"
        self.first = first      # first missing serial (None for kernel-lost)
        self.last = last        # last missing serial
        self.count = count      # records/events known to be missing
        self.time = time        # record time at which the loss was noticed
        self.stamp = stamp      # stamp of that record: makes the gap's id deterministic

    def __repr__(self) -> str:  # pragma: no cover - debugging aid
        return f"Gap({self.reason} {self.node} {self.first}..{self.last} n={self.count})"


class _SerialTrack:
    """Per-node sequence tracking; see the module docstring for the rules."""

    __slots__ = ("expect", "seen", "hole_time", "hole_stamp")

    # More missing serials than this at once is not loss but a different counter.
    MAX_JUMP: ClassVar[int] = 1_000_000

    def __init__(self) -> None:
        self.expect: Optional[int] = None
        self.seen: set = set()
        self.hole_time = 0.0
        self.hole_stamp = ""

    def rebase(self) -> None:
        self.expect = None
        self.seen.clear()

    def see(self, rec: AuditRecord, timeout: float, out: list) -> None:
        s = rec.serial
        if self.expect is None or s < self.expect - self.MAX_JUMP or s > self.expect + self.MAX_JUMP:
            self.expect = s + 1
            self.seen.clear()
            return
        if s < self.expect:
            return  # a later record of an event already seen
        if s == self.expect:
            self.expect += 1
            self._advance()
        elif s not in self.seen:
            if not self.seen:
                self.hole_time, self.hole_stamp = rec.time, rec.stamp
            self.seen.add(s)
        if self.seen and rec.time - self.hole_time > timeout:
            self.declare(rec.node, out, rec.time, rec.stamp)

    def _advance(self) -> None:
        seen = self.seen
        while self.expect in seen:
            seen.discard(self.expect)
            self.expect += 1  # type: ignore[operator]

    def declare(self, node: str, out: list, now: float, now_stamp: str) -> None:
        """The lowest hole is final: report it and move past it."""
        assert self.expect is not None
        nxt = min(self.seen)
        out.append(Gap(node, "sequence-gap", self.expect, nxt - 1, nxt - self.expect,
                       self.hole_time, self.hole_stamp))
        self.expect = nxt
        self._advance()
        if self.seen:
            # We do not keep a clock per hole; the next one's starts now, which at worst
            # reports it one timeout later.
            self.hole_time, self.hole_stamp = now, now_stamp


_MAX_JUMP = _SerialTrack.MAX_JUMP


class Reassembler:
    def __init__(self, timeout: float = 2.0):
        self.timeout = timeout
        self._pending: dict = {}        # (node, serial) -> AuditEvent, insertion = arrival order
        self._tracks: dict = {}         # node -> _SerialTrack
        self._lost: dict = {}           # node -> last seen kernel lost counter

    def push(self, rec: AuditRecord) -> list:
        out: list = []
        rtype = rec.type
        node = rec.node
        serial = rec.serial
        key = (node, serial)
        # The first letter before startswith(): its argument parsing costs more than the
        # rest of this test, and records of auditd itself are rare.
        if rtype[:1] == "D" and rtype.startswith("DAEMON_"):
            if rtype in _DAEMON_RESTART:
                track = self._tracks.get(node)
                if track is not None:
                    track.rebase()
        else:
            track = self._tracks.get(node)
            if track is None:
                track = self._tracks[node] = _SerialTrack()
            # The two common cases of _SerialTrack.see inlined: the next serial with no
            # hole open, and a later record of an event already seen.
            expect = track.expect
            if expect is None:
                track.see(rec, self.timeout, out)
            elif serial == expect and not track.seen:
                track.expect = serial + 1
            elif not (expect - _MAX_JUMP <= serial < expect):
                track.see(rec, self.timeout, out)
        # A text search first: reading .fields would parse every record (they are lazy).
        if rec.mentions("lost=") and "lost" in rec.fields:
            self._check_lost(rec, out)
        pending = self._pending
        if pending:
            # Older events first: output stays close to time order. Pending events are in
            # arrival order: when the oldest is fresh, nothing expires.
            cutoff = rec.time - self.timeout
            for oldest in pending.values():
                if oldest.time < cutoff:
                    self._expire(cutoff, out, key)
                break
        ev = pending.get(key)
        if rtype == "EOE" or rtype == "PROCTITLE":
            if ev is None:
                ev = AuditEvent(rec)
            else:
                del pending[key]
                ev.records.append(rec)
            out.append(ev)
        elif ev is not None:
            ev.records.append(rec)
        elif is_single_record_type(rtype):
            out.append(AuditEvent(rec))
        else:
            pending[key] = AuditEvent(rec)
        return out

    def _expire(self, cutoff: float, out: list, current: tuple) -> None:
        # Pending events are in arrival order, which is close to time order; stop at the
        # first one still fresh so the common case costs one comparison.
        pending = self._pending
        done = []
        for k, ev in pending.items():
            if ev.time >= cutoff:
                break
            if k != current:  # a late record of this very event still joins it
                done.append(k)
        for k in done:
            out.append(pending.pop(k))

    def _check_lost(self, rec: AuditRecord, out: list) -> None:
        f = rec.fields
        try:
            lost = int(f["lost"])
        except ValueError:
            return
        if f.get("op") == "set" and "old" in f:
            # CONFIG_CHANGE op=set lost=0 old=N: the counter was reset; N were lost.
            try:
                old = int(f["old"])
            except ValueError:
                return
            if old > 0:
                out.append(Gap(rec.node, "kernel-lost", None, None, old, rec.time, rec.stamp))
            self._lost[rec.node] = lost
            return
        prev = self._lost.get(rec.node)
        self._lost[rec.node] = lost
        if prev is not None and lost > prev:
            out.append(Gap(rec.node, "kernel-lost", None, None, lost - prev, rec.time, rec.stamp))

    def flush(self) -> list:
        out = list(self._pending.values())
        self._pending.clear()
        for node, track in self._tracks.items():
            while track.seen:
                track.declare(node, out, track.hole_time, track.hole_stamp)
        return out

    def pending_min_offset(self) -> Optional[int]:
        best = None
        for ev in self._pending.values():
            for r in ev.records:
                o = r.offset
                if o >= 0 and (best is None or o < best):
                    best = o
        return best
