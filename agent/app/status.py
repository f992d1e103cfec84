"""Status: a JSON file the daemon rewrites every few seconds, `agentd status`
that prints it for a person, and an optional Prometheus text endpoint."""

from __future__ import annotations

import http.server
import logging
import os
import threading
import time

from agent.base.events import dumps, loads

log = logging.getLogger("agentd.status")


def write_file(path: str, snap: dict) -> None:
    tmp = f"{path}.tmp"
    with open(tmp, "wb") as f:
        f.write(dumps(snap))
    os.replace(tmp, path)


def read_file(path: str) -> dict:
    with open(path, "rb") as f:
        return loads(f.read())


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
        return True
    except (OSError, TypeError):
        return False


def _age(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f}s"
    if seconds < 7200:
        return f"{seconds / 60:.0f}m"
    return f"{seconds / 3600:.1f}h"


def render_text(snap: dict) -> str:
    if snap.get("stopped") or not _alive(snap.get("pid", 0)):
        when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(snap.get("time", 0)))
        head = f"agentd: not running (last status {when})"
    else:
        head = f"agentd: running, pid {snap['pid']}, up {_age(time.time() - snap['started'])}, config {snap['config']}"
    lines = [head]
    sp = snap.get("spool")
    if sp:
        lines.append(f"spool: {sp['events']} events, {sp['bytes']} of {sp['max_bytes']} bytes, "
                     f"oldest {_age(sp['oldest_age'])}, dropped {sp['dropped']}")
    for name, c in snap.get("collectors", {}).items():
        # Each collector counts what its source has (lines, journal entries…).
        extra = "".join(f", {k} {v}" for k, v in c.items() if k not in ("events", "last_error", "read_through"))
        if c.get("read_through"):  # auditd: how far behind the log the reading is
            extra += f", read through {_age(max(0.0, snap.get('time', time.time()) - c['read_through']))} ago"
        lines.append(f"collector:{name}: events in {c.get('events', 0)}{extra}, "
                     f"last error: {c.get('last_error') or '-'}")
    for name, s in snap.get("shippers", {}).items():
        lines.append(f"shipper:{name}: shipped {s.get('shipped', 0)}, rejected {s.get('rejected', 0)}, "
                     f"spool depth {s.get('depth', 0)}, oldest unshipped {_age(s.get('oldest_age', 0))}, "
                     f"last error: {s.get('last_error') or '-'}")
    return "\n".join(lines) + "\n"


def render_prometheus(snap: dict) -> str:
    out = []

    def metric(name: str, help_: str, kind: str, samples: list) -> None:
        out.append(f"# HELP agentd_{name} {help_}")
        out.append(f"# TYPE agentd_{name} {kind}")
        for labels, value in samples:
            lab = ",".join(f'{k}="{v}"' for k, v in labels.items())
            out.append(f"agentd_{name}{{{lab}}} {value}" if lab else f"agentd_{name} {value}")

    cols = snap.get("collectors", {})
    ships = snap.get("shippers", {})
    sp = snap.get("spool", {})
    metric("collector_events_total", "events read by a collector", "counter",
           [({"collector": n}, c.get("events", 0)) for n, c in cols.items()])
    metric("collector_malformed_total", "malformed source lines dead-lettered", "counter",
           [({"collector": n}, c.get("malformed", 0)) for n, c in cols.items()])
    metric("shipper_delivered_total", "events delivered", "counter",
           [({"shipper": n}, s.get("shipped", 0)) for n, s in ships.items()])
    metric("shipper_rejected_total", "events dead-lettered by the destination", "counter",
           [({"shipper": n}, s.get("rejected", 0)) for n, s in ships.items()])
    metric("shipper_spool_depth", "events not yet delivered", "gauge",
           [({"shipper": n}, s.get("depth", 0)) for n, s in ships.items()])
    metric("spool_bytes", "spooled event bytes", "gauge", [({}, sp.get("bytes", 0))])
    metric("spool_dropped_total", "events dropped by the spool cap", "counter", [({}, sp.get("dropped", 0))])
    return "\n".join(out) + "\n"


def serve(listen: str, snapshot):
    host, _, port = listen.rpartition(":")

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 - http.server's naming
            if self.path.split("?")[0] != "/metrics":
                self.send_error(404)
                return
            try:
                body = render_prometheus(snapshot()).encode()
            except Exception as e:  # a runtime stopping for a reload, between two snapshots
                self.send_error(503, f"agentd is reloading ({type(e).__name__})")
                return
            self.send_response(200)
            self.send_header("Content-Type", "text/plain; version=0.0.4")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer((host or "127.0.0.1", int(port)), Handler)
    threading.Thread(target=server.serve_forever, name="status-http", daemon=True).start()
    return server


class Endpoint:
    """The /metrics server, following the running configuration across reloads:
    ``snapshot`` looks up the runtime current at each request, and a changed
    ``status_listen`` moves the server."""

    def __init__(self, snapshot):
        self.snapshot = snapshot
        self.listen = ""
        self.server = None

    def set(self, listen: str) -> None:
        if listen == self.listen:
            return
        self.close()
        self.listen = listen
        if listen:
            try:
                self.server = serve(listen, self.snapshot)
            except OSError as e:  # the data path does not depend on it: say so and go on
                log.error("status_listen %s: cannot listen: %s", listen, e.strerror or e)

    def close(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
            self.server = None
