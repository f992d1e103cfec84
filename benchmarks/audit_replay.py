"""Time our audit pipeline against ``ausearch -i`` on the same real capture.

    .venv/bin/python benchmarks/audit_replay.py [capture.log.xz] [--profile]

(a) parse + reassemble + normalize + orjson-serialize every event, pure, one process;
(b) ``ausearch -i -if FILE > /dev/null`` (the audit project's interpreting reader).
Prints records/s for both and the ratio (ours / ausearch; >= 1 means we are not slower).
"""

from __future__ import annotations

import argparse
import cProfile
import lzma
import os
import pstats
import shutil
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from agent.base.events import HostInfo, dumps  # noqa: E402
from collectors.auditd.normalize import Normalizer  # noqa: E402
from collectors.auditd.parse import ParseError, parse_line  # noqa: E402
from collectors.auditd.reassemble import Gap, Reassembler  # noqa: E402

DEFAULT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data", "exec_storm.log.xz")


def pipeline(path: str) -> tuple:
    """Returns (records, events, bytes of JSON)."""
    reasm = Reassembler()
    norm = Normalizer(HostInfo("bench", "bench-id"), keep_original=False, resolve_ids=True)
    records = events = out = 0
    with open(path, "rb") as f:
        data = f.read()
    offset = 0

    def emit(items: list) -> None:
        nonlocal events, out
        for it in items:
            docs = [norm.gap(it)] if isinstance(it, Gap) else norm.normalize(it)
            for d in docs:
                out += len(dumps(d))
                events += 1

    for line in data.split(b"\n"):
        if not line:
            offset += 1
            continue
        try:
            rec = parse_line(line, offset)
        except ParseError:
            offset += len(line) + 1
            continue
        offset += len(line) + 1
        records += 1
        items = reasm.push(rec)
        if items:
            emit(items)
    emit(reasm.flush())
    return records, events, out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("capture", nargs="?", default=DEFAULT)
    ap.add_argument("--profile", action="store_true")
    ap.add_argument("--repeat", type=int, default=3, help="best of N runs for each side")
    a = ap.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "audit.log")
        opener = lzma.open if a.capture.endswith(".xz") else open
        with opener(a.capture, "rb") as src, open(path, "wb") as dst:
            shutil.copyfileobj(src, dst)
        if a.profile:
            cProfile.runctx("pipeline(path)", globals(), {"path": path}, os.path.join(tmp, "prof"))
            pstats.Stats(os.path.join(tmp, "prof")).sort_stats("tottime").print_stats(25)
        ours = []
        for _ in range(a.repeat):
            t = time.perf_counter()
            records, events, nbytes = pipeline(path)
            ours.append(time.perf_counter() - t)
        theirs = []
        ausearch = shutil.which("ausearch") or "/usr/sbin/ausearch"
        for _ in range(a.repeat):
            t = time.perf_counter()
            p = subprocess.run([ausearch, "-i", "-if", path], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            theirs.append(time.perf_counter() - t)
        ours_rate = records / min(ours)
        theirs_rate = records / min(theirs)
        print(f"capture: {a.capture}: {records} records -> {events} events, {nbytes} bytes of JSON")
        print(f"agentd  parse+reassemble+normalize+json: {min(ours):.3f} s  {ours_rate:,.0f} records/s")
        print(f"ausearch -i (exit {p.returncode}):            {min(theirs):.3f} s  {theirs_rate:,.0f} records/s")
        print(f"ratio agentd/ausearch: {ours_rate / theirs_rate:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
