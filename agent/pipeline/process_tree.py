"""The process tree: ECS's Linux event model (ECS RFC 0030) on every event that has a process.

Runs after the session join, because the root of a login's tree (the *entry leader*) and
its origin (``entry_meta.source.ip``) come from the login. On each event with a
``process.pid`` it sets:

- ``process.entity_id``: ``make_event_id(host.id, boot id, "process", pid, start)``, where
  ``start`` is the ``@timestamp`` of the first event the agent saw of that process (for an
  exec, its first exec). Deterministic: replaying the same logs gives the same ids. A pid
  seen again in another audit session, or exec'ing from another parent, is a new process
  (pid reuse); live, /proc's start time also tells a reused pid from a re-exec.
- ``process.start`` and ``process.interactive`` (the process has a terminal).
- ``process.parent.pid``/``entity_id``, and the parent's exec facts (``executable``,
  ``name``, ``args``, ``command_line``, ``start``) when its exec was seen.
- ``process.entry_leader.*`` on every event of a login: the login's first process (the
  login shell, or the command of ``ssh host cmd``), ``entry_meta.type = sshd``,
  ``entry_meta.source.ip`` and the login user. Its entity id is derived from the login
  (``make_event_id(host.id, boot id, "entry-leader", session.id)``), not from its pid,
  so that events before the shell's exec (pam_motd's commands, run by sshd during the
  login) already carry the same id, one per login, across sudo, su and restarts.
- ``process.session_leader.*`` and ``process.group_leader.*``: not in audit records;
  live only, from /proc/PID/stat while the process is still there.

The first process of a login is the first exec in its audit session that is not sshd's
own doing: children of the sshd monitor (pam_motd's run-parts) and their descendants are
skipped (the monitor's own events carry no entry leader; a process that changed its own
login id and then execs, as cron's or a script's does, is its own entry leader), and it must come within LEADER_WINDOW seconds of the login (a login whose shell
the agent did not see keeps an entry leader without pid rather than a wrong one).

A login's entry leader is dropped an hour after its end, or 14 days after its start when
no end was seen. State (pid -> process facts, login -> entry leader) is bounded (MAX_PROCS, least
recently used out first) and saved in the spool database with the session table.
"""

from __future__ import annotations

import hashlib
import time
from typing import Optional

from agent.base.events import HostInfo, Shared, dumps, loads, make_event_id, parse_rfc3339
from agent.pipeline.procfs import ExecStat, proc_facts, proc_stat

KV_KEY = "process_tree.v1"
MAX_PROCS = 16384
KEEP_RECENT = 512
SAVE_EVERY = 5.0  # a crash loses at most this much of the tree (ids of later events may differ)
LEADER_WINDOW = 30.0
ENDED_TTL = 3600.0
IDLE_TTL = 14 * 86400.0
START_SLACK = 2.0  # /proc/stat's btime has whole seconds

_EXEC_DATASET = "auditd.process"
# What a child's process.parent and a login's entry leader repeat of the process's exec
# (Sigma's ParentImage / ParentCommandLine); the entry leader leaves out command_line.
_FACTS = ("executable", "name", "args", "args_count", "command_line")


class ProcessTree:
    def __init__(self, host: HostInfo, sessions=None, store=None, live: bool = False, now=time.time):
        self.host = host
        self.sessions = sessions  # the SessionTracker: login_of(ses) -> sshd monitor pid, auid
        self.store = store
        self.live = live
        self.now = now
        self.procs: dict = {}  # pid -> {"e": entity id, "s": ses, "pp": ppid, "t": start, "x": facts}
        self.logins: dict = {}  # session.id -> entry leader state
        self._pub: dict = {}  # session.id -> (source ip, the entry_leader dict events carry)
        self._dirty = False
        self._saved_at = 0.0
        self._proc_cache: dict = {}  # (pid, start) -> leader dict read from /proc
        self._alive = ExecStat()  # live: /proc/PID/stat of exec'd processes still there
        # make_event_id(host.id, boot id, "process", pid, start) with the constant part
        # hashed once (the same bytes, so the same ids; a new id per exec is the hot path)
        self._eid_prefix = hashlib.blake2b(digest_size=16)
        self._eid_prefix.update(f"{host.id}\x1f{host.boot_id}\x1fprocess\x1f".encode("utf-8", "surrogateescape"))
        self._load()

    def _eid(self, pid: int, start: str) -> str:
        h = self._eid_prefix.copy()
        h.update(f"{pid}\x1f{start}\x1f".encode("utf-8", "surrogateescape"))
        return h.hexdigest()

    # -- persistence -----------------------------------------------------------

    def _load(self) -> None:
        if self.store is None:
            return
        raw = self.store.kv_get(KV_KEY)
        if not raw:
            return
        try:
            data = loads(raw)
            self.procs = {int(k): v for k, v in data.get("procs", {}).items()}
            self.logins = data.get("logins", {})
            for r in self.procs.values():
                if r.get("x") is not None:
                    r["x"] = Shared(r["x"])
        except (ValueError, TypeError, AttributeError):
            self.procs, self.logins = {}, {}

    def commit(self, force: bool = False) -> None:
        if self.store is None or not self._dirty:
            return
        now = self.now()
        if not force and now - self._saved_at < SAVE_EVERY:
            return
        self._expire(now)
        # Processes that were a parent (a shell, sudo, su) and the most recent ones (a shell
        # whose first command is still to come) are kept across a restart; the many older
        # short-lived leaves (each `ls`) would only make the blob large.
        items = list(self.procs.items())
        keep = {pid: r for pid, r in items[:-KEEP_RECENT] if "k" in r}
        keep.update(items[-KEEP_RECENT:])
        for pid, r in keep.items():
            if type(r["x"]) is tuple:
                self._facts(pid, r)  # saved as the object children carry
        blob = dumps({"procs": keep, "logins": self.logins})
        self.store.transaction([("INSERT OR REPLACE INTO kv VALUES (?, ?, ?)", (KV_KEY, blob, now), False)])
        self._dirty = False
        self._saved_at = now

    def _expire(self, now: float) -> None:
        gone = [sid for sid, lg in self.logins.items()
                if (lg.get("end") and now - lg["end"] > ENDED_TTL) or now - lg.get("seen", now) > IDLE_TTL]
        # (seen: when the agent first saw the login; refreshing it per event costs too much)
        for sid in gone:
            del self.logins[sid]
            self._pub.pop(sid, None)

    def _bound(self) -> None:
        # dicts keep insertion order and a touched process is re-inserted: the first
        # ones are the least recently used.
        drop = len(self.procs) - MAX_PROCS + MAX_PROCS // 8
        for pid in list(self.procs)[:drop]:
            del self.procs[pid]

    # -- the stage -------------------------------------------------------------

    def apply(self, doc: dict) -> list:
        proc = doc.get("process")
        if proc is None:
            if doc["event"].get("action") == "session-ended" and "session" in doc:
                lg = self.logins.get(doc["session"].get("id"))
                if lg is not None:
                    lg["end"] = self.now()
                    self._dirty = True
            return []
        pid = proc.get("pid")
        if type(pid) is not int:
            return []
        procs = self.procs
        ts = doc["@timestamp"]
        a = doc.get("auditd")
        ses = a.get("session") if a is not None else None
        if ses in _UNSET:
            ses = None
        parent = proc.get("parent")
        ppid = parent.get("pid") if parent is not None else None
        ev = doc["event"]
        is_exec = ev["outcome"] == "success" and ev.get("dataset") == _EXEC_DATASET
        sess = doc.get("session")
        login = None
        if sess is not None:
            login = self.logins.get(sess.get("id")) or self._login(sess)

        rec = procs.pop(pid, None)  # re-inserted below: most recently used last
        if rec is not None and not _same(rec, ses, ppid if is_exec else None):
            rec = None
        stat = None
        if is_exec and self.live:
            stat = self._alive.stat(pid, _float(ts))
            if stat is not None and rec is not None and stat[4] > (parse_rfc3339(rec["t"]) or 0) + START_SLACK:
                rec = None  # /proc says this pid's process began after the one we knew: reused
        if rec is None:
            rec = {"e": self._eid(pid, ts),
                   "s": ses, "pp": ppid, "t": ts, "x": None}
            self._dirty = True
        procs[pid] = rec
        if is_exec:
            self._exec(pid, rec, proc, ts, login, ppid)
        if len(procs) > MAX_PROCS:
            self._bound()

        proc["entity_id"] = rec["e"]
        proc["start"] = rec["t"]
        if "tty" in proc:
            proc["interactive"] = True
        elif a is not None:
            proc["interactive"] = False
        if ppid is not None:
            prec = procs.pop(ppid, None)
            if prec is not None and (ses is None or prec["s"] is None or prec["s"] == ses):
                procs[ppid] = prec
                prec["k"] = 1  # a parent: kept across restarts
                x = prec["x"]
                if x is not None:  # shared by the children's events
                    proc["parent"] = x if type(x) is Shared else self._facts(ppid, prec)
                else:
                    parent["entity_id"] = prec["e"]
            elif ses is not None:
                # The parent's exec was not seen (sshd's session child, a subshell): it
                # gets an id now, which its later events and children share.
                prec = {"e": self._eid(ppid, ts),
                        "s": ses, "pp": None, "t": ts, "x": None, "k": 1}
                procs[ppid] = prec
                parent["entity_id"] = prec["e"]
            elif prec is not None:
                procs[ppid] = prec
        if login is not None:
            lpid = login["pid"]
            if pid != login["sshd"] or pid == lpid:
                src = sess.get("source")
                pub = self._pub.get(login["sid"])
                if pub is None or pub[0] != (src.get("ip") if src else None):
                    pub = self._entry_leader(login, sess)
                proc["entry_leader"] = pub[1][pid == lpid]
        if is_exec:
            if stat is not None and stat[4] <= _float(ts) + START_SLACK:
                self._leaders(proc, rec, ses, stat)
        elif "l" in rec:
            proc.update(rec["l"])
        return []

    # -- exec ------------------------------------------------------------------

    def _exec(self, pid: int, rec: dict, proc: dict, ts: str, login: Optional[dict], ppid) -> None:
        # The exec's facts as they are: most processes (each `ls`) are never a parent, so
        # the object their children would carry is made only when one is (_facts).
        rec["x"] = tuple(map(proc.get, _FACTS))
        if ppid is not None:
            rec["pp"] = ppid
        self._dirty = True
        if login is None or login.get("pid") is not None:
            return
        pre = login["pre"]
        if ppid is not None and (ppid == login.get("sshd") or ppid in pre):
            pre.append(pid)  # sshd's own work during the login (pam_motd)
            return
        if pid in pre:
            return
        start = login.get("start")
        t = _float(ts)
        if start is not None and t - start > LEADER_WINDOW:
            return
        # The login's first process: it takes the login's entry leader id.
        rec["e"] = login["e"]
        login["pid"] = pid
        login["x"] = dict(self._facts(pid, rec))
        tty = proc.get("tty")
        if tty:
            login["tty"] = tty
        self._pub.pop(login["sid"], None)

    @staticmethod
    def _facts(pid: int, rec: dict) -> dict:
        """The process's exec facts as its children's process.parent carries them, made from
        the exec's tuple on first use and then shared by all (a Shared); without its exec, a
        plain dict of pid, id and start."""
        x = rec["x"]
        if x is None:
            return {"pid": pid, "entity_id": rec["e"], "start": rec["t"]}
        if type(x) is tuple:
            facts = x
            x = rec["x"] = Shared(pid=pid, entity_id=rec["e"], start=rec["t"])
            for k, v in zip(_FACTS, facts, strict=True):
                if v is not None:
                    x[k] = v
        return x

    # -- entry leader (one per login) --------------------------------------------

    def _login(self, sess: dict) -> Optional[dict]:
        sid = sess.get("id")
        lg = self.logins.get(sid)
        if lg is None:
            if not sid:
                return None
            ses = sid.rsplit(":", 1)[-1]
            facts = None
            if self.sessions is not None and hasattr(self.sessions, "login_of"):
                facts = self.sessions.login_of(ses)
            facts = facts or {}
            lg = {"sid": sid, "e": make_event_id(self.host.id, self.host.boot_id, "entry-leader", sid),
                  "pid": None, "pre": [], "sshd": facts.get("sshd_pid"), "auid": facts.get("auid"),
                  "start": parse_rfc3339(sess.get("start")), "seen": self.now()}
            self.logins[sid] = lg
            self._dirty = True
        return lg

    def _entry_leader(self, lg: dict, sess: dict) -> tuple:
        """(source ip, (entry_leader for the other processes, for the leader itself)), shared
        by the login's events until the login's source ip or leader changes."""
        src = sess.get("source")
        ip = src.get("ip") if src else None
        sid = lg["sid"]
        el: dict = {"entity_id": lg["e"]}
        x = lg.get("x")
        if x:
            el.update(x)
            el.pop("command_line", None)
            el["entity_id"] = lg["e"]
            tty = lg.get("tty")
            el["interactive"] = bool(tty)
            if tty:
                el["tty"] = tty
        elif sess.get("start"):
            el["start"] = sess["start"]
        meta: dict = {"type": "sshd" if (ip or sess.get("auth")) else "unknown"}
        if ip:
            meta["source"] = {"ip": ip}
        el["entry_meta"] = meta
        user: dict = {}
        if lg.get("auid") not in (None, "", "4294967295"):
            user["id"] = str(lg["auid"])
        if sess.get("user"):
            user["name"] = sess["user"]
        if user:
            el["user"] = user
        pub = self._pub[sid] = (ip, (Shared(el, same_as_process=False), Shared(el, same_as_process=True)))
        return pub

    # -- session and group leaders (live, /proc) ----------------------------------

    def _leaders(self, proc: dict, rec: dict, ses, stat: tuple) -> None:
        out = {}
        for key, lpid in (("session_leader", stat[2]), ("group_leader", stat[1])):
            if lpid <= 0:
                continue
            d = self._leader(lpid, ses, proc["pid"], rec)
            if d is not None:
                out[key] = d
        if out:
            proc.update(out)
            rec["l"] = out

    def _leader(self, lpid: int, ses, pid: int, rec: dict) -> Optional[dict]:
        if lpid == pid:
            return dict(self._facts(pid, rec), same_as_process=True)
        lrec = self.procs.get(lpid)
        if lrec is not None and _same(lrec, ses, None):
            return dict(self._facts(lpid, lrec), same_as_process=False)
        st = proc_stat(lpid)
        if st is None:
            return None
        key = (lpid, st[4])
        d = self._proc_cache.get(key)
        if d is None:
            from agent.base.events import rfc3339
            start = rfc3339(st[4])
            d = {"pid": lpid, "entity_id": self._eid(lpid, start),
                 "start": start}
            d.update(proc_facts(lpid))
            if len(self._proc_cache) > 1024:
                self._proc_cache.clear()
            self._proc_cache[key] = d
        return dict(d, same_as_process=False)


_UNSET = frozenset(("4294967295", "-1", "unset", ""))


def _same(rec: dict, ses, ppid) -> bool:
    """Could rec be the process an event with this ses / ppid comes from?"""
    rs = rec["s"]
    if rs is not None and ses is not None and rs != ses:
        return False
    rp = rec["pp"]
    return ppid is None or rp is None or rp == ppid


def _float(ts: str) -> float:
    return parse_rfc3339(ts) or 0.0  # a burst's shared stamp: parse_rfc3339 caches the last one
