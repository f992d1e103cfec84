"""The session join: who, from which IP, with which key, on every event of a login.

A login on the jump server is the kernel audit session (``ses``): every process of
the login inherits it and sudo/su do not change it. The pieces arrive from two
sources, in either order:

- audit ``LOGIN`` (pam_loginuid): sshd monitor pid -> new ses, auid;
- audit ``USER_START`` (PAM session_open) with that ses: source address;
- audit ``USER_LOGIN`` from the monitor pid (its own ses field is still unset on
  Debian's sshd): the terminal (/dev/pts/N);
- sshd's journal line ``Accepted <method> for <user> from <ip> port <n> ssh2[: <type> <fp>]``
  from the same monitor pid: port, method, key type and fingerprint;
- audit ``USER_END`` from the monitor pid: the end.

Live, the two sources race: a login shorter than journald's delivery (``ssh -N``
refused at once, a one-command automation login, an scp) ends in the audit stream
before sshd's "Accepted" line is read. Its end summary then waits, up to ACCEPT_WAIT,
for that line (its port and key are what the summary is for); ``due()`` releases it
when the line never comes. (The other way round, a journal line of a login whose
audit LOGIN is not read yet, is held back by the daemon: ``unknown_login_time``.)

So the join keys are the monitor pid (to link journal and audit) and ses (for
everything else). Events of the "target" host's sshd never carry a jump-host ses,
so they never join. The table persists in the spool database so a restart keeps
attributing events of logins that began before it.
"""

from __future__ import annotations

import threading
import time
from typing import Optional

from agent.base.events import (
    HostInfo,
    parse_rfc3339,
    rfc3339,
)
from agent.pipeline.procfs import tcp_peer
from agent.pipeline.session_fields import get, pid_of, record_type, ses_of, timeline_text, tty_name
from agent.pipeline.session_store import TimelineRow
from agent.pipeline.session_summary import login_text, summary_doc

ENDED_TTL = 3600.0  # keep an ended session this long for late events (keystrokes flush at logout)
IDLE_TTL = 14 * 86400.0
PENDING_TTL = 600.0
TTY_GRACE = 2.0  # a journald line this long after its login's end still joins it by pty
ACCEPT_WAIT = 5.0  # live: how long an ended sshd login's summary waits for its "Accepted" line
PEER_FRESH = 60.0  # a login this recent still has its sshd monitor (for procfs.tcp_peer)
MAX_GAPS = 20  # per session: enough to say why its timeline is incomplete
COUNTER_SAVE = 5.0  # a crash may lose this much of the per-session counters, nothing else


class SessionTracker:
    def __init__(self, host: HostInfo, store=None, now=time.time, live: bool = False,
                 expect_journal: bool = False):
        self.host = host
        self.live = live
        self.expect_journal = expect_journal
        self.store = store  # a SessionStore, or None (replay keeps nothing)
        self.now = now
        self._lock = threading.Lock()
        self.sessions: dict = {}  # ses -> state
        self.by_pid: dict = {}  # sshd monitor pid -> ses
        self.accepts: dict = {}  # sshd monitor pid -> facts from "Accepted …"
        self.pending_tty: dict = {}  # monitor pid -> tty seen before its LOGIN
        self._awaiting: set = set()  # ses of ended logins whose summary waits for sshd's line
        self._timeline: list = []  # TimelineRow not yet stored
        self._touched: set = set()  # ses whose history row needs rewriting
        self._dirty = False  # logins, ends, accepts: saved with the next batch
        self._counted = False  # only counters moved: saved at most every COUNTER_SAVE s
        self._saved_at = 0.0
        self._clock = 0.0  # the newest source event time seen: what expiry counts in
        # the last session start formatted: one login's events share it
        self._start_text: tuple = (None, "")
        self._load()

    # -- persistence ---------------------------------------------------------

    def _load(self) -> None:
        data = self.store.load_state() if self.store is not None else None
        if not data:
            return
        self.sessions = data.get("sessions", {})
        self.by_pid = {int(k): v for k, v in data.get("by_pid", {}).items()}
        self.accepts = {int(k): v for k, v in data.get("accepts", {}).items()}
        self._awaiting = {ses for ses, s in self.sessions.items() if s.get("end_due") is not None}

    def commit(self, force: bool = False) -> None:
        """Called after each batch. Logins, ends and sshd facts are saved at once;
        counter-only changes at most every COUNTER_SAVE seconds, in one
        transaction, because rewriting the table per batch cost more than the
        parsing of the batch itself."""
        if self.store is None or not (self._dirty or self._counted):
            return
        if not (self._dirty or force) and self.now() - self._saved_at < COUNTER_SAVE:
            return
        with self._lock:
            # History first: a session that began and ended inside one batch of a
            # catch-up must get its row before expiry may drop it from the table.
            changed = [s for ses, s in self.sessions.items() if ses in self._touched]
            self._expire()
            self._saved_at = self.now()
            self.store.save({"sessions": self.sessions, "by_pid": self.by_pid, "accepts": self.accepts},
                            changed, self._timeline, self._saved_at)
            self._timeline = []
            self._touched = set()
            self._dirty = self._counted = False

    def _expire(self) -> None:
        # In event time, not by the wall clock: over a backlog (a catch-up after
        # downtime) a session that ended hours ago by the wall clock still gets the
        # late records of its logout, which come right after it in the stream.
        now = self._clock or self.now()
        for ses, s in list(self.sessions.items()):
            if (s.get("end") and now - s["end"] > ENDED_TTL) or now - s.get("last", now) > IDLE_TTL:
                del self.sessions[ses]
        live = {s.get("sshd_pid") for s in self.sessions.values()}
        self.by_pid = {p: v for p, v in self.by_pid.items() if p in live}
        self.accepts = {p: a for p, a in self.accepts.items() if now - a.get("seen", now) < PENDING_TTL
                        or p in live}

    # -- the join ------------------------------------------------------------

    def apply(self, doc: dict) -> list:
        """Attach ``session`` to ``doc`` when it belongs to one; returns new summary events."""
        with self._lock:
            ev = doc.get("event", {})
            module = ev.get("module")
            if module != "agentd":
                self._tick(doc)
            elif ev.get("dataset") == "agentd.gap":
                return self._gap(doc)
            extra = self._observe(doc)
            ses = ses_of(doc)
            if ses is None:
                pid = pid_of(doc)
                if pid is not None and pid in self.by_pid and module != "auditd":
                    ses = self.by_pid[pid]
            if ses is None and ev.get("kind") == "alert":
                ses = self._ses_of_id(get(doc, "session", "id"))
            if ses is None and module == "journald":
                ses = self._ses_of_tty(doc)
            s = self.sessions.get(ses) if ses else None
            if s is not None:
                doc["session"] = self._public(s)
                self._count(s, doc, ev)
            return extra

    def _ses_of_tty(self, doc: dict) -> Optional[str]:
        # journald reads _AUDIT_SESSION from /proc when the line arrives; a sudo or su that
        # has already exited leaves it out. Its terminal still names the login: only one
        # session holds a pty at any time, and the login user must match the actor. "At the
        # line's time", not "now": the journal may be read after the audit log has already
        # said the login ended (a refused sudo, then logout), and a pty is reused later.
        tty = get(doc, "agentd", "process", "tty", "name")
        user = get(doc, "user", "name")
        if not tty or not user:
            return None
        # A login's last process may log just after sshd closed it (the hangup reaches it
        # after USER_END): an ended login keeps its pty for TTY_GRACE, unless a login that
        # holds the pty at that time is found.
        t = self._time(doc)
        found = [(s.get("end") is None or t <= s["end"], ses) for ses, s in self.sessions.items()
                 if s.get("tty") == tty and s.get("user") == user
                 and (s.get("start") or t) <= t <= (s.get("end") or t) + TTY_GRACE]
        holding = [ses for inside, ses in found if inside]
        if holding:
            return holding[0] if len(holding) == 1 else None
        return found[0][1] if len(found) == 1 else None

    def _ses_of_id(self, sid) -> Optional[str]:
        # An alert carries its evidence's session.id, not a ses of its own.
        ses = str(sid or "").rpartition(":")[2]
        s = self.sessions.get(ses)
        return ses if s is not None and s["id"] == sid else None

    def _observe(self, doc: dict) -> list:
        ev = doc.get("event", {})
        rtype = record_type(doc)
        sshd_login = ev.get("dataset") == "sshd.auth" and ev.get("action") == "logged-in"
        if not rtype and not sshd_login:
            return []  # nearly every event: an exec, a keystroke line, a connection
        pid = pid_of(doc)
        out: list = []
        if sshd_login and pid is not None:
            auth = get(doc, "session", "auth") or {}
            self.accepts[pid] = {
                "user": get(doc, "user", "name"), "ip": get(doc, "source", "ip"),
                "port": get(doc, "source", "port"), "auth": {k: v for k, v in auth.items() if v},
                "seen": self._time(doc),
            }
            ses = self.by_pid.get(pid)
            if ses in self.sessions:
                s = self.sessions[ses]
                self._merge_accept(s, pid)
                self._touched.add(ses)  # its history row gains the method and key, even after its end
                if ses in self._awaiting:  # its end was read first: the summary waited for this line
                    out += self._end(s)
                else:
                    out += self._announce(s)
            self._dirty = True
        elif rtype == "LOGIN" and pid is not None:
            ses = ses_of(doc)
            if ses and ses not in self.sessions:
                self._start(ses, pid, doc)
                s = self.sessions[ses]
                # With sshd's journal lines expected, announce the login once they
                # say how it authenticated; a summary without method and key is
                # what an analyst would have to look up again.
                if not self.expect_journal or s["auth"]:
                    out += self._announce(s)
        elif rtype == "USER_START" and ses_of(doc) in self.sessions:
            s = self.sessions[ses_of(doc)]
            if s.get("sshd_pid") == pid and not s["source"].get("ip"):
                ip = get(doc, "source", "ip")
                if ip:
                    s["source"]["ip"] = ip
                    self._dirty = True
        elif rtype == "USER_LOGIN" and pid is not None:
            tty = tty_name(get(doc, "auditd", "data", "terminal") or get(doc, "agentd", "process", "tty", "name")
                            or get(doc, "auditd", "terminal"))
            ses = self.by_pid.get(pid)
            if tty and ses in self.sessions:
                self.sessions[ses]["tty"] = tty
                self._dirty = True
            elif tty:
                self.pending_tty[pid] = tty
        elif rtype == "USER_END" and pid is not None:
            ses = ses_of(doc)
            s = self.sessions.get(ses)
            if s is not None and s.get("sshd_pid") == pid and not s.get("end"):
                s["end"] = self._time(doc)
                self._dirty = True
                if self.live and self.expect_journal and not s["auth"] and s.get("via", "").startswith("sshd"):
                    s["end_due"] = self.now() + ACCEPT_WAIT
                    self._awaiting.add(ses)
                else:
                    out += self._end(s)
        return out

    def _end(self, s: dict) -> list:
        self._awaiting.discard(s["ses"])
        s.pop("end_due", None)
        # never announced (no sshd line came): now, before the end
        return self._announce(s) + [self._summary(s, "session-ended")]

    def due(self) -> list:
        """Live, called on the daemon's tick: the end summaries whose "Accepted" line did
        not come within ACCEPT_WAIT (journald behind or rate-limited, or a login sshd did
        not log), released without the port and key rather than held back for ever."""
        if not self._awaiting:
            return []
        with self._lock:
            now = self.now()
            out: list = []
            for ses in sorted(self._awaiting):
                s = self.sessions.get(ses)
                if s is None:
                    self._awaiting.discard(ses)
                elif s.get("end_due", 0.0) <= now:
                    out += self._end(s)
            if out:
                self._dirty = True
            return out

    def _gap(self, doc: dict) -> list:
        """Loss at a time a session was open makes that session's timeline incomplete:
        the gap joins each such session's timeline and summary, and the gap event
        names the session when there is exactly one."""
        t = self._time(doc)
        out: list = []
        hit = [s for s in self.sessions.values()
               if (s.get("start") or t) <= t and (not s.get("end") or t <= s["end"])]
        named = get(doc, "session", "id")
        if named:  # a loss inside one session (a recording's missing chunk): that session only
            hit = [s for s in self.sessions.values() if s["id"] == named]
        g = doc.setdefault("agentd", {}).setdefault("gap", {})
        why = {"source": g.get("source"), "reason": g.get("reason"), "count": g.get("count"),
               "message": doc.get("message") or g.get("detail") or "events lost"}
        for s in hit:
            gaps = s.setdefault("gaps", [])
            if len(gaps) < MAX_GAPS:
                gaps.append({k: v for k, v in why.items() if v is not None})
            self._timeline.append(TimelineRow(s["id"], t, "events-lost", why["message"]))
            self._touched.add(s["ses"])
            self._dirty = True
            if s.get("end") and s["ses"] not in self._awaiting:
                # Audit holes are final only event_timeout after them: the session may
                # have ended (and said it was complete) in between. Say it again, corrected.
                out.append(self._summary(s, "session-ended", revision=len(gaps)))
        if hit:
            g["sessions"] = [s["id"] for s in hit]
        if len(hit) == 1:
            doc["session"] = self._public(hit[0])
        return out

    def preload(self, docs: list) -> None:
        """Replay: the journal is known up front, so "Accepted …" facts can be
        in place before the audit LOGIN they belong to (journald stamps lines
        when it receives them, a little after the audit record of the login)."""
        with self._lock:
            for doc in docs:
                ev = doc.get("event", {})
                if ev.get("dataset") == "sshd.auth" and ev.get("action") == "logged-in":
                    self._observe(doc)

    def _start(self, ses: str, pid: int, doc: dict) -> None:
        # LOGIN's own user.* is the sshd process (root); the login is the new auid.
        data = get(doc, "auditd", "data") or {}
        user = (data.get("interpreted") or {}).get("AUID") or get(doc, "agentd", "user", "audit", "name")
        s = {
            "ses": ses, "id": f"{self.host.id}:{self.host.boot_id}:{ses}", "user": user,
            "auid": data.get("auid") or get(doc, "agentd", "user", "audit", "id"), "sshd_pid": pid, "start": self._time(doc),
            "source": {}, "auth": {}, "tty": self.pending_tty.pop(pid, ""),
            "commands": 0, "hosts": [], "bytes": 0, "alerts": 0, "last": self._time(doc),
            "via": get(doc, "process", "name") or "",  # the program that logged in: sshd, cron, login
        }
        self.sessions[ses] = s
        self.by_pid[pid] = ses
        if pid in self.accepts:
            self._merge_accept(s, pid)
        elif self.live and self.now() - s["start"] < PEER_FRESH:
            # Only a login that is happening now: a backlog's monitor pid is gone or,
            # worse, reused by a process whose peer has nothing to do with the login.
            s["source"].update(tcp_peer(pid))
        self._dirty = True

    def _summary(self, s: dict, action: str, revision: int = 0) -> dict:
        """A session's summary event; ``revision`` > 0 re-issues an ended session's
        summary corrected by news that came after its end (a gap), under its own id."""
        ended = action == "session-ended"
        self._touched.add(s["ses"])
        if not revision:
            self._timeline.append(TimelineRow(s["id"], s["end"] if ended else s["start"], action, login_text(s)))
        return summary_doc(self.host, s, self._public(s), action, revision)

    def _announce(self, s: dict) -> list:
        if s.get("announced"):
            return []
        s["announced"] = True
        return [self._summary(s, "session-started")]

    def _merge_accept(self, s: dict, pid: int) -> None:
        a = self.accepts.get(pid)
        if not a:
            return
        if a.get("ip"):
            s["source"]["ip"] = a["ip"]
        if a.get("port") is not None:
            s["source"]["port"] = a["port"]
        s["auth"].update(a.get("auth") or {})
        s["user"] = s.get("user") or a.get("user")

    def _tick(self, doc: dict) -> None:
        """Move the stream's clock: the newest event time seen, never past the wall
        clock (one bogus future stamp must not expire every session at once)."""
        ts = parse_rfc3339(doc.get("@timestamp"))
        if ts is not None and ts > self._clock:
            self._clock = min(ts, self.now())

    def _time(self, doc: dict) -> float:
        ts = parse_rfc3339(doc.get("@timestamp"))  # a burst's shared stamp is parsed once there
        return self.now() if ts is None else ts

    def _public(self, s: dict) -> dict:
        # a new dict per event (later stages may add to theirs), built without a filtering pass
        pub: dict = {}
        if s["id"] is not None:
            pub["id"] = s["id"]
        if s.get("user") is not None:
            pub["user"] = s["user"]
        if s["source"]:
            pub["source"] = dict(s["source"])
        if s["auth"]:
            pub["auth"] = dict(s["auth"])
        if s.get("tty"):
            pub["tty"] = s["tty"]
        start = s.get("start")
        if start:
            if self._start_text[0] != start:
                self._start_text = (start, rfc3339(start))
            pub["start"] = self._start_text[1]
        return pub

    def _count(self, s: dict, doc: dict, ev: dict) -> None:
        action = ev.get("action")
        t = self._time(doc)
        if t > (s.get("last") or 0.0):
            s["last"] = t
        if action == "exec":
            s["commands"] += 1
        elif action in ("connected-to", "connection-opened", "listening"):
            ip = get(doc, "destination", "ip")
            inbound = action == "listening" or get(doc, "network", "direction") == "ingress"
            if ip and not inbound and ip not in s["hosts"] and len(s["hosts"]) < 100:
                s["hosts"].append(ip)
        elif action in ("file-uploaded", "file-downloaded", "file-sent", "file-received", "file-transferred"):
            n = int(get(doc, "transfer", "bytes") or 0)
            s["bytes"] += n
            # both ways: into the bastion (sftp-server uploads, client copies in) and out of it
            way = "bytes_in" if action in ("file-uploaded", "file-received") else "bytes_out"
            s[way] = s.get(way, 0) + n
        if doc["event"].get("kind") == "alert":
            s["alerts"] += 1
        if self.store is not None:  # without a store (replay) the rows would only pile up unread
            text = timeline_text(doc)
            if text:
                self._timeline.append(TimelineRow(s["id"], t, action, text))
        self._touched.add(s["ses"])
        self._counted = True

    # -- queries (for `agentd sessions` and later stages) ------------------------

    def login_of(self, ses: str) -> Optional[dict]:
        """The sshd monitor pid and login uid of a login (the process tree needs them)."""
        with self._lock:
            s = self.sessions.get(ses)
            return None if s is None else {"sshd_pid": s.get("sshd_pid"), "auid": s.get("auid")}

    def unknown_login_time(self, docs) -> Optional[float]:
        """The newest time of the documents that name a login (``ses``) the join does not
        know, from sources other than the audit log; None when there are none. Live, the
        daemon holds such a batch until the auditd collector has read its log through that
        time: the login's LOGIN record, written before any line of the login, is then joined."""
        newest = None
        with self._lock:
            for d in docs:
                doc = getattr(d, "doc", d)
                ses = ses_of(doc)
                if ses is not None and ses not in self.sessions and doc.get("event", {}).get("module") != "auditd":
                    t = self._time(doc)
                    newest = t if newest is None or t > newest else newest
        return newest

    def snapshot(self) -> list:
        with self._lock:
            return [dict(s) for s in self.sessions.values()]
