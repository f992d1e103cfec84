"""Shipper throughput: events/s delivered to the test HEC and the test ES (gzip on).

The test SIEM runs as its own process (python -m tests.siem.server) so its JSON
parsing does not share our GIL; events are sent in pipeline-sized batches (500)
through ``send`` exactly as the shipper worker does. Also prints the client-side
ceiling (encode + gzip only), which is what a real, faster SIEM would leave us.

    .venv/bin/python benchmarks/ship.py [N]
"""

from __future__ import annotations

import gzip
import os
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from agent.base.events import HostInfo, base_doc, make_event_id  # noqa: E402
from agent.base.options import Secret  # noqa: E402
from shippers import http as shttp  # noqa: E402
from shippers.elasticsearch import ElasticsearchShipper  # noqa: E402
from shippers.splunk_hec import SplunkHecShipper  # noqa: E402

HOST = HostInfo("bastion1", "0123456789abcdef0123456789abcdef")
TOKEN = "11111111-2222-3333-4444-555555555555"
SESSION = {"user": "alice", "source": {"ip": "10.0.0.5", "port": 51234}, "tty": "pts/1",
           "auth": {"method": "publickey", "key_type": "ED25519",
                    "key_fingerprint": "SHA256:koIXZIWQfdPe4RrMpIWBOsxBHLPWCdQLHXgLQf4drZ4"},
           "start": "2024-05-01T09:58:00.000000Z"}


def synthetic(i: int) -> dict:
    """A mix like a busy bastion: mostly execs, some keystrokes, logins, connections."""
    kind = i % 10
    if kind < 6:
        doc = base_doc(host=HOST, timestamp=1714557600 + i / 100, event_id=make_event_id("b", i), module="auditd",
                       dataset="auditd.process", category=["process"], type=["start"], action="exec",
                       outcome="success", sequence=i)
        doc["process"] = {"pid": 1000 + i % 5000, "parent": {"pid": 999}, "executable": "/usr/bin/ssh",
                          "name": "ssh", "args": ["ssh", "-p", "22", f"admin@db{i % 40}.internal"], "args_count": 4,
                          "command_line": f"ssh -p 22 admin@db{i % 40}.internal",
                          "working_directory": "/home/alice", "tty": "pts/1"}
        doc["user"] = {"id": "1001", "name": "alice", "audit": {"id": "1001", "name": "alice"},
                       "effective": {"id": "1001", "name": "alice"}}
        doc["tags"] = ["exec"]
    elif kind < 8:
        doc = base_doc(host=HOST, timestamp=1714557600 + i / 100, event_id=make_event_id("b", i), module="auditd",
                       dataset="auditd.tty", category=["process"], type=["info"], action="typed", outcome="success")
        doc["keystrokes"] = {"text": '"sudo systemctl restart nginx",<ret>,"journalctl -u nginx -n 50",<ret>',
                             "lines": ["sudo systemctl restart nginx", "journalctl -u nginx -n 50"],
                             "redacted": False}
        doc["process"] = {"pid": 2000 + i % 100, "name": "bash"}
    elif kind == 8:
        doc = base_doc(host=HOST, timestamp=1714557600 + i / 100, event_id=make_event_id("b", i), module="journald",
                       dataset="sshd.auth", category=["authentication", "session"], type=["start"],
                       action="logged-in", outcome="success")
        doc["user"] = {"name": "alice"}
        doc["source"] = {"ip": "10.0.0.5", "port": 51234}
        doc["process"] = {"pid": 777}
    else:
        doc = base_doc(host=HOST, timestamp=1714557600 + i / 100, event_id=make_event_id("b", i), module="auditd",
                       dataset="auditd.network", category=["network"], type=["connection"], action="connected-to",
                       outcome="success")
        doc["destination"] = {"ip": f"10.1.0.{i % 250}", "port": 5432}
        doc["process"] = {"pid": 1000 + i % 5000, "name": "psql", "executable": "/usr/bin/psql"}
    doc["session"] = dict(SESSION, id=f"{HOST.id}:boot:{i % 7}")
    doc["related"] = {"user": ["alice"], "ip": ["10.0.0.5"]}
    return doc


def start_server() -> tuple:
    proc = subprocess.Popen([sys.executable, "-m", "tests.siem.server", "--port", "0", "--hec-token", TOKEN],
                            cwd=ROOT, stdout=subprocess.PIPE, text=True)
    url = proc.stdout.readline().split(" on ")[1].split()[0]
    return proc, url


def run(shipper, evs: list, batch: int = 500) -> float:
    t0 = time.perf_counter()
    for s in range(0, len(evs), batch):
        chunk = evs[s:s + batch]
        r = shipper.send(chunk)
        if r.retry or r.rejected:
            raise SystemExit(f"{shipper.type_name}: not all delivered: {r}")
    return time.perf_counter() - t0


def conf(cls, **kw) -> dict:
    c = {k: o.default_value() for k, o in cls.options.items()}
    c.update(kw)
    return c


def main(n: int = 100_000) -> None:
    evs = [synthetic(i) for i in range(n)]
    proc, url = start_server()
    try:
        hec = SplunkHecShipper("hec", conf(SplunkHecShipper, url=url, token=Secret(TOKEN)))
        es = ElasticsearchShipper("es", conf(ElasticsearchShipper, url=url))
        raw = sum(len(hec.encode(e)) + 1 for e in evs[:5000]) * n / 5000
        sample = b"\n".join(hec.encode(e) for e in evs[:5000])
        ratio = len(sample) / len(gzip.compress(sample, shttp.GZIP_LEVEL))
        print(f"{n} events, ~{raw / n:.0f} B each as HEC JSON, gzip level {shttp.GZIP_LEVEL} ratio {ratio:.1f}x")
        for name, sh in (("splunk_hec", hec), ("elasticsearch", es)):
            dt = run(sh, evs)
            enc0 = time.perf_counter()
            for s in range(0, n, 500):
                shttp.compress(b"".join(sh.encode(e) for e in evs[s:s + 500]))
            enc = time.perf_counter() - enc0
            print(f"{name:14s} delivered {n / dt:9.0f} events/s ({dt:.2f}s, {sh.stats['posts']} requests); "
                  f"client-side encode+gzip alone {n / enc:9.0f} events/s")
            sh.close()
    finally:
        proc.terminate()
        proc.wait(5)


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 100_000)
