"""agent/pipeline/procfs.py, ExecStat: live, an exec's /proc/PID/stat is read only while the
process is there; one listing of /proc answers for the processes that already exited.
Real processes (this test's children) and the real /proc."""

from __future__ import annotations

import os
import subprocess
import sys
import time

from agent.pipeline.procfs import LIST_EVERY, ExecStat


def _child(*code: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", ";".join(code)], stdin=subprocess.PIPE)


def test_a_running_process_is_read_an_exited_one_is_not_and_a_later_one_still_is():
    running = _child("import sys", "sys.stdin.read()")
    exited = _child("pass")
    exited.wait()  # reaped: its /proc entry is gone
    try:
        t_exec = time.time() - 1.0  # both exec'd before the listing the first call takes
        es = ExecStat()
        st = es.stat(running.pid, t_exec)
        assert st is not None and st[0] == os.getpid()  # (ppid, pgrp, session, tty, start)
        assert abs(st[4] - time.time()) < 60
        assert es.stat(exited.pid, t_exec) is None
        # A process exec'd after that listing is not in it: read directly, not taken for gone.
        later = _child("import sys", "sys.stdin.read()")
        try:
            st = es.stat(later.pid, time.time())
            assert st is not None and st[0] == os.getpid()
        finally:
            later.communicate(b"")
    finally:
        running.communicate(b"")


def test_the_listing_is_refreshed_so_a_pid_it_missed_is_found_later():
    es = ExecStat()
    es.stat(os.getpid(), time.time() - 1.0)  # takes a listing
    child = _child("import sys", "sys.stdin.read()")
    try:
        time.sleep(LIST_EVERY + 0.05)  # (the listing's age, not a wait on the machine)
        # exec'd before now but after the old listing: a new listing is taken, the child is in it
        assert es.stat(child.pid, time.time() - 0.05) is not None
    finally:
        child.communicate(b"")
