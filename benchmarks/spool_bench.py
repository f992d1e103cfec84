"""Spool throughput: events/s written (in collector-sized transactions, with a
position each) and read back + cursor-advanced + purged, on a real SQLite file."""

from __future__ import annotations

import os
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from agent.base.events import Event, HostInfo, base_doc, make_event_id  # noqa: E402
from agent.pipeline.spool import Spool  # noqa: E402

HOST = HostInfo("bastion1", "0123456789abcdef0123456789abcdef")


def realistic(i: int) -> Event:
    doc = base_doc(host=HOST, timestamp=1700000000 + i / 100, event_id=make_event_id("bench", i), module="auditd",
                   dataset="auditd.process", category=["process"], type=["start"], action="exec",
                   outcome="success", sequence=i)
    doc["process"] = {"pid": 1000 + i % 5000, "parent": {"pid": 999}, "executable": "/usr/bin/ls", "name": "ls",
                      "args": ["ls", "-la", f"/home/alice/dir{i % 50}"], "args_count": 3,
                      "command_line": f"ls -la /home/alice/dir{i % 50}", "working_directory": "/home/alice",
                      "tty": "pts/1"}
    doc["user"] = {"id": "1001", "name": "alice", "audit": {"id": "1001", "name": "alice"}}
    doc["session"] = {"id": f"{HOST.id}:boot:{i % 7}", "user": "alice", "source": {"ip": "10.0.0.5", "port": 51234},
                      "auth": {"method": "publickey", "key_type": "ED25519",
                               "key_fingerprint": "SHA256:koIXZIWQfdPe4RrMpIWBOsxBHLPWCdQLHXgLQf4drZ4"}}
    return Event(doc)


def main(n: int = 200_000, batch: int = 500) -> dict:
    events = [realistic(i) for i in range(n)]
    with tempfile.TemporaryDirectory() as d:
        spool = Spool(os.path.join(d, "spool.db"), max_bytes=4 << 30)
        t0 = time.perf_counter()
        for i in range(0, n, batch):
            spool.write("auditd", events[i:i + batch], {"dev": 1, "ino": 2, "offset": i})
        t_write = time.perf_counter() - t0
        stored = spool.stats([])["bytes"]
        t0 = time.perf_counter()
        cur = spool.cursor("out")
        got = 0
        while True:
            rows = spool.read(cur, batch)
            if not rows:
                break
            got += len(rows)
            cur = rows[-1][0]
            spool.set_cursor("out", cur)
            spool.purge(["out"])
        t_read = time.perf_counter() - t0
        assert got == n, (got, n)
        size = os.path.getsize(os.path.join(d, "spool.db"))
        spool.close()
    res = {"events": n, "write_eps": n / t_write, "read_purge_eps": n / t_read, "db_bytes_peak": size,
           "stored_bytes_per_event": round(stored / n, 1)}
    print(f"spool: {n} events, write {res['write_eps']:,.0f} ev/s (batches of {batch} + position), "
          f"read+cursor+purge {res['read_purge_eps']:,.0f} ev/s; {res['stored_bytes_per_event']} bytes/event stored "
          f"(the cap counts these), file {size / n:.0f} bytes/event")
    return res


if __name__ == "__main__":
    main()
