"""The journald collector on the real journal: real logins, sudo and sftp through the
jump sshd arrive as the right events; a restart from the committed cursor re-reads
nothing and misses nothing (checked id for id against journalctl's own reading); a
rotation while running or between runs changes nothing; a vacuumed cursor is evidence
of loss, not a crash."""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import threading
import time
from typing import Callable, List, Optional

import pytest

from agent.base.component import RunContext
from agent.base.config import AGENT_OPTIONS
from agent.base.events import HostInfo
from collectors.journald.collector import JournaldCollector
from collectors.journald.normalize import Normalizer
from tests.stack.session import SSH_BASE, attempt_login, sftp_batch
from tests.system.journal_files import capture_entries, entry_like, write_journal

pytestmark = pytest.mark.stack
PROGRAMS = ["sshd", "sshd-session", "sudo", "su", "sftp-server"]


def _collector(tmp_path, **conf_over) -> JournaldCollector:
    agent = {k: o.default_value() for k, o in AGENT_OPTIONS.items()}
    agent["state_dir"] = str(tmp_path)
    conf = {k: o.default_value() for k, o in JournaldCollector.options.items()}
    conf.update(conf_over)
    return JournaldCollector("journald", conf, RunContext(agent, HostInfo.local()))


class Running:
    """The collector in its own thread, as the daemon runs it; emit just records."""

    def __init__(self, collector: JournaldCollector, position: Optional[dict] = None):
        self.collector = collector
        self.events: list = []
        self.positions: list = []
        self.stop = threading.Event()
        self.error: Optional[BaseException] = None
        self._lock = threading.Lock()
        self.thread = threading.Thread(target=self._run, args=(position,), daemon=True)
        self.thread.start()

    def _run(self, position):
        try:
            self.collector.run(self._emit, self.stop, position)
        except BaseException as e:  # surfaced by wait_for / close
            self.error = e

    def _emit(self, events, position):
        with self._lock:
            self.events.extend(events)
            self.positions.append(position)

    def docs(self) -> List[dict]:
        with self._lock:
            return [e.doc for e in self.events]

    def wait_for(self, pred: Callable[[List[dict]], object], timeout: float = 20.0):
        deadline = time.monotonic() + timeout
        while True:
            assert self.error is None, self.error
            got = pred(self.docs())
            if got:
                return got
            if time.monotonic() > deadline:
                seen = [(d["event"]["dataset"], d["event"].get("action"), d["message"]) for d in self.docs()[-20:]]
                raise AssertionError(f"condition not met in {timeout}s; last events: {seen}")
            time.sleep(0.1)

    def close(self) -> Optional[dict]:
        self.stop.set()
        self.thread.join(10)
        assert not self.thread.is_alive(), "collector did not stop within 10s"
        assert self.error is None, self.error
        return self.positions[-1] if self.positions else None


def _ssh_true(user: str, key: str, stack) -> None:
    subprocess.run([*SSH_BASE, "-i", key, "-o", "IdentitiesOnly=yes", "-o", "BatchMode=yes",
                    "-p", str(stack.jump_port), f"{user}@{stack.jump_host}", "true"],
                   check=True, stdin=subprocess.DEVNULL, capture_output=True, timeout=30)


def _find(docs, action, **want):
    out = []
    for d in docs:
        if d["event"].get("action") != action:
            continue
        if all(_get(d, k) == v for k, v in want.items()):
            out.append(d)
    return out


def _get(doc, dotted):
    cur = doc
    for p in dotted.split("."):
        cur = cur.get(p) if isinstance(cur, dict) else None
    return cur


def test_live_logins_sudo_and_sftp(stack, ssh_session, tmp_path):
    run = Running(_collector(tmp_path))
    try:
        run.wait_for(lambda docs: run.positions, 10)  # the first-run start point is committed first
        bogus = "nouser" + secrets.token_hex(3)
        # The two failed logins each sit out PAM's fail delay: run them side by side.
        failers = [threading.Thread(target=attempt_login, args=(u, p, stack.jump_host, stack.jump_port))
                   for u, p in (("carol", "wrong-" + secrets.token_hex(3)), (bogus, "whatever"))]
        for t in failers:
            t.start()
        s = ssh_session("alice")
        s.run("sudo /usr/bin/id")
        s.close()
        up = tmp_path / "up.bin"
        up.write_bytes(os.urandom(12345))
        remote = f"/home/alice/jtest-{secrets.token_hex(3)}.bin"
        key = stack.users["alice"]["key_path"]
        sftp_batch("alice", key, [f"put {up} {remote}", f"get {remote} {tmp_path / 'down.bin'}", f"rm {remote}"])
        for t in failers:
            t.join(30)

        docs = run.wait_for(lambda d: _find(d, "file-downloaded", **{"file.path": remote})
                            and _find(d, "invalid-user", **{"user.name": bogus})
                            and _find(d, "login-failed", **{"user.name": bogus})
                            and _find(d, "login-failed", **{"user.name": "carol"})
                            and _find(d, "logged-out", **{"user.name": "alice"}) and d)

        fp = subprocess.run(["ssh-keygen", "-lf", key + ".pub"], capture_output=True, text=True,
                            check=True).stdout.split()[1]
        logins = _find(docs, "logged-in", **{"user.name": "alice", "session.auth.key_fingerprint": fp})
        assert logins, "alice's publickey login with her key's fingerprint"
        li = logins[0]
        assert li["event"]["dataset"] == "sshd.auth" and li["event"]["outcome"] == "success"
        assert li["session"]["auth"]["method"] == "publickey" and li["session"]["auth"]["key_type"] == "ED25519"
        assert li["source"]["ip"] == "127.0.0.1" and isinstance(li["source"]["port"], int)
        assert li["process"]["pid"] > 1

        sudo = _find(docs, "sudo", **{"user.name": "alice", "process.command_line": "/usr/bin/id"})
        assert sudo and sudo[0]["event"]["outcome"] == "success"
        assert sudo[0]["user"]["target"]["name"] == "root"
        assert sudo[0]["auditd"]["session"]  # the login's audit session, for the join

        # Exactly one login-failed per failed attempt (per source port), one invalid-user.
        for user in ("carol", bogus):
            fails = _find(docs, "login-failed", **{"user.name": user})
            ports = [f["source"]["port"] for f in fails]
            assert len(ports) == len(set(ports)), fails
        assert len(_find(docs, "invalid-user", **{"user.name": bogus})) == 1
        assert _find(docs, "login-failed", **{"user.name": bogus})[0]["event"]["outcome"] == "failure"

        upl = _find(docs, "file-uploaded", **{"file.path": remote})
        assert len(upl) == 1
        assert upl[0]["transfer"] == {"protocol": "sftp", "direction": "upload", "bytes": 12345}
        assert upl[0]["event"]["dataset"] == "sshd.sftp" and upl[0]["user"]["name"] == "alice"
        assert upl[0]["process"]["name"] == "sftp-server" and upl[0]["auditd"]["session"]
        dl = _find(docs, "file-downloaded", **{"file.path": remote})[0]
        assert dl["transfer"]["direction"] == "download" and dl["transfer"]["bytes"] == 12345
        assert _find(docs, "file-deleted", **{"file.path": remote})
        # Every event carries its cursor's position and a unique id.
        ids = [d["event"]["id"] for d in docs]
        assert len(ids) == len(set(ids))
    finally:
        run.close()


JOURNALCTL_MATCHES = [f"SYSLOG_IDENTIFIER={p}" for p in PROGRAMS] + ["+"] + [f"_COMM={p}" for p in PROGRAMS]


def _reference_ids(after: str, until: str) -> List[str]:
    """What journalctl itself returns between two cursors, through the same normalizer:
    the ids a gap-free, duplicate-free reading must produce."""
    out = subprocess.run(["journalctl", "-o", "json", "--no-pager", "--after-cursor", after, *JOURNALCTL_MATCHES],
                         capture_output=True, text=True, check=True).stdout
    norm = Normalizer(HostInfo.local(), PROGRAMS)
    ids = []
    for line in out.splitlines():
        entry = json.loads(line)
        doc = norm.normalize(entry)
        if doc is not None:
            ids.append(doc["event"]["id"])
        if entry["__CURSOR"] == until:
            return ids
    raise AssertionError(f"journalctl never reached {until}")


def test_cursor_resume_across_restart_and_rotation(stack, tmp_path):
    key = stack.users["bob"]["key_path"]
    first = Running(_collector(tmp_path))
    try:
        first.wait_for(lambda docs: first.positions, 10)
        start = first.positions[0]["cursor"]
        _ssh_true("bob", key, stack)
        first.wait_for(lambda d: _find(d, "logged-out", **{"user.name": "bob"}))
        subprocess.run(["journalctl", "--rotate"], check=True, capture_output=True)  # while running
        _ssh_true("bob", key, stack)
        first.wait_for(lambda d: len(_find(d, "logged-out", **{"user.name": "bob"})) >= 2)
    finally:
        committed = first.close()

    # Between runs: more entries and another rotation, as across an agent upgrade.
    _ssh_true("bob", key, stack)
    subprocess.run(["journalctl", "--rotate"], check=True, capture_output=True)
    second = Running(_collector(tmp_path), committed)
    try:
        second.wait_for(lambda d: _find(d, "logged-out", **{"user.name": "bob"}))
    finally:
        last = second.close()

    got = [e.id for e in first.events] + [e.id for e in second.events]
    assert len(got) == len(set(got)), "an event was read twice"
    assert got == _reference_ids(start, last["cursor"]), "events missed or out of order"
    assert committed["cursor"] != last["cursor"]


def _journal_dir(tmp_path, entries=None, files: int = 1, name: str = "journal") -> str:
    """A journal directory of the test's own: the recorded capture's entries (or
    ``entries``), split over ``files`` .journal files, never this machine's journal."""
    entries = capture_entries() if entries is None else entries
    dst = tmp_path / name
    dst.mkdir()
    step = -(-len(entries) // files)
    for n in range(files):
        write_journal(dst / f"part{n}.journal", entries[n * step:(n + 1) * step])
    return str(dst)


def _run_to_end(collector, position) -> tuple:
    """Run the collector on its journal_dir until it has committed the newest entry."""
    from systemd import journal

    r = journal.Reader(path=collector.conf["journal_dir"])
    r.seek_tail()
    newest = r.get_previous()["__CURSOR"]  # one of the collector's programs in these journals
    r.close()
    run = Running(collector, position)
    try:
        run.wait_for(lambda d: run.positions and run.positions[-1]["cursor"] == newest, 30)
    finally:
        run.close()
    return run.docs(), run.positions


def _replayed(collector, path: str) -> list:
    out: list = []
    collector.replay(path, lambda events, pos: out.extend(events))
    return out


def test_vacuumed_cursor_falls_back_to_oldest_with_a_gap_event(stack, tmp_path):
    from systemd import journal

    from collectors.journald.normalize import cursor_parts

    path = _journal_dir(tmp_path)
    r = journal.Reader(path=path)
    r.seek_head()
    head = r.get_next()["__CURSOR"]
    r.close()
    # The cursor an entry older than the oldest one kept had: same sequence number space,
    # one lower (what a vacuumed entry's cursor looks like).
    p = cursor_parts(head)
    gone = f"s={p['s']};i={int(p['i'], 16) - 1:x};b={p['b']};m={int(p['m'], 16) - 1:x};t={int(p['t'], 16) - 1:x};x=0"
    docs, positions = _run_to_end(_collector(tmp_path, journal_dir=path), {"cursor": gone})
    gaps = [d for d in docs if d["event"]["dataset"] == "agentd.gap"]
    assert len(gaps) == 1 and gaps[0]["agentd"]["gap"]["reason"] == "cursor-not-found"
    assert gone in gaps[0]["message"]
    assert docs[0] is gaps[0]  # evidence first, then everything from the oldest entry on
    everything = [e.id for e in _replayed(_collector(tmp_path), path)]
    assert [d["event"]["id"] for d in docs[1:]] == everything and positions[-1]["cursor"]


def test_cursor_of_an_entry_no_longer_matched_is_not_a_gap(stack, tmp_path):
    from systemd import journal

    entries = capture_entries()
    # An entry of a program the collector does not read (as if `programs` had changed
    # since its cursor was committed), in the middle of the ones it does.
    marker = "agentd-test-" + secrets.token_hex(4)
    k = len(entries) // 2
    foreign = entry_like(entries[k - 1], SYSLOG_IDENTIFIER="cron", _COMM="cron", _EXE="/usr/sbin/cron",
                         _CMDLINE="/usr/sbin/cron -f", MESSAGE=marker)
    path = _journal_dir(tmp_path, entries[:k] + [foreign] + entries[k:])
    r = journal.Reader(path=path)
    r.add_match(f"MESSAGE={marker}")
    r.seek_head()
    cursor = r.get_next()["__CURSOR"]
    r.close()
    docs, _ = _run_to_end(_collector(tmp_path, journal_dir=path), {"cursor": cursor})
    assert docs and not [d for d in docs if d["event"]["dataset"] == "agentd.gap"]
    # Exactly what follows the foreign entry: the same as reading the second part alone.
    after = _journal_dir(tmp_path, entries[k:], name="after")
    want = [e.doc["message"] for e in _replayed(_collector(tmp_path), after)]
    assert [d["message"] for d in docs] == want


def test_replay_of_a_journal_directory_and_file(stack, tmp_path):
    path = _journal_dir(tmp_path, files=2)
    c = _collector(tmp_path)
    out = _replayed(c, path)
    ids = [e.id for e in out]
    assert out and len(ids) == len(set(ids))
    assert {e.doc["event"]["module"] for e in out} == {"journald"}
    assert any(e.doc["event"].get("action") == "logged-in" for e in out)
    singles = [[e.id for e in _replayed(_collector(tmp_path), os.path.join(path, f))]
               for f in sorted(os.listdir(path))]
    # Same entries, same ids, whichever way they are read: the files split the directory.
    assert all(singles) and singles[0] + singles[1] == ids
    with pytest.raises(FileNotFoundError):
        c.replay(str(tmp_path / "nope.journal"), lambda events, pos: None)


def _mapped_journal_files(under: str) -> set:
    """The journal files this process (the collector's reader) has mapped under a directory."""
    with open("/proc/self/maps") as f:
        paths = {fields[5] for fields in (line.split(None, 5) for line in f) if len(fields) == 6}
    paths = {p.strip() for p in paths}
    return {p for p in paths if p.startswith(under) and p.endswith((".journal", ".journal~"))}


def _newest_cursor(path: str) -> str:
    from systemd import journal

    r = journal.Reader(path=path)
    try:
        r.seek_tail()
        return r.get_previous()["__CURSOR"]
    finally:
        r.close()


def test_rotation_and_a_new_user_journal_lose_and_repeat_nothing(stack, tmp_path):
    # journald's moves, played on a directory of the test's own (rotating the real journal
    # would also hit every other reader on this machine): appends to the active file, a
    # rotation (renamed name@….journal, a new active file), a user's first entry into a
    # new user-UID.journal.
    entries = capture_entries()
    dst = tmp_path / "journal"
    dst.mkdir()
    q = len(entries) // 4
    write_journal(dst / "system.journal", entries[:q])
    run = Running(_collector(tmp_path, journal_dir=str(dst), start_at="beginning"))

    def caught_up(timeout=30):
        newest = _newest_cursor(str(dst))
        run.wait_for(lambda docs: run.positions and run.positions[-1]["cursor"] == newest, timeout)

    try:
        caught_up()
        write_journal(dst / "system.journal", entries[q:2 * q])  # appended while it follows
        caught_up()
        (dst / "system.journal").rename(dst / "system@0001-0001.journal")
        write_journal(dst / "system.journal", entries[2 * q:3 * q])
        caught_up()
        write_journal(dst / "user-1001.journal", entries[3 * q:])
        caught_up()
        # Read to the end, the reader keeps only the files journald would still write to.
        run.wait_for(lambda docs: _mapped_journal_files(str(dst)) == {str(dst / "system.journal"),
                                                                      str(dst / "user-1001.journal")}, 20)
    finally:
        run.close()
    want = [e.id for e in _replayed(_collector(tmp_path), str(dst))]
    assert want and [e.id for e in run.events] == want, "entries lost, repeated or out of order"
    assert run.collector.stats["reopens"] >= 2


def test_catch_up_over_archived_files_then_only_the_active_one_stays_mapped(stack, tmp_path):
    entries = capture_entries()
    dst = tmp_path / "journal"
    dst.mkdir()
    # As journald leaves them: archived files (name@….journal) and the active one.
    third = len(entries) // 3
    parts = {"system@0001-0001.journal": entries[:third], "system@0002-0002.journal": entries[third:2 * third],
             "system.journal": entries[2 * third:]}
    for name, part in parts.items():
        write_journal(dst / name, part)
    from systemd import journal

    r = journal.Reader(files=[str(dst / "system@0001-0001.journal")])
    r.seek_head()
    r.get_next()
    start = r.get_next()["__CURSOR"]  # the second entry of the oldest file
    r.close()
    collector = _collector(tmp_path, journal_dir=str(dst))
    docs, positions = _run_to_end(collector, {"cursor": start})
    # Everything after the cursor, once, in order: what a reader of the whole directory sees.
    everything = [e.doc["event"]["id"] for e in _replayed(_collector(tmp_path), str(dst))]
    ids = [d["event"]["id"] for d in docs]
    assert ids and ids == everything[-len(ids):] and len(ids) >= len(everything) - 2 * (third + 1)

    run = Running(_collector(tmp_path, journal_dir=str(dst)), positions[-1])
    try:
        # Read to its end, the reader keeps only the file journald would still write to.
        run.wait_for(lambda docs: _mapped_journal_files(str(dst)) == {str(dst / "system.journal")}, 20)
    finally:
        run.close()
    assert not run.docs()


def test_reopened_after_many_entries_without_losing_one(stack, tmp_path):
    from collectors.journald import follow

    template = capture_entries()[0]
    n = follow.REOPEN_ENTRIES + 700
    path = _journal_dir(tmp_path, [entry_like(template, MESSAGE=f"agentd-test line {i}") for i in range(n)])
    collector = _collector(tmp_path, journal_dir=path, start_at="beginning")
    docs, _ = _run_to_end(collector, None)
    assert [d["message"] for d in docs] == [f"agentd-test line {i}" for i in range(n)]
    assert collector.stats["reopens"] >= 1  # the pages of what it read were let go
