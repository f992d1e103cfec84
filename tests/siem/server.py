"""A strict test SIEM: Splunk HEC and Elasticsearch _bulk on one loopback port,
with faults on demand. Stdlib only.

    python -m tests.siem.server --port 8088 --hec-token T --es-user elastic:changeme

Faults are set from Python (``server.set_faults(busy_next=3)``, ``server.down(2)``)
or over HTTP by a test driving a separate agent process:

    POST /_siem/faults  {"busy_next": 3, "retry_after": "1", "slow": 0.5, "down": 2,
                         "reset_next": 1, "reset_after_store_next": 1,
                         "es_item_429_pct": 20, "lost_acks": true, "ack_delay": 0.2,
                         "es_mapping_conflict": {"field": "process.args", "contains": "x"}}
    POST /_siem/faults  {"clear": true}
    GET  /_siem/accepted   -> {"hec": [...HEC objects...], "es": [{"_index","_id","op","_source"}]}
    POST /_siem/reset      (forget everything accepted, clear faults)

``down`` stops listening (connection refused) and closes open connections; it
comes back after the given seconds (the admin endpoint is down too, so over HTTP
a duration is required). ``reset_next`` closes the socket after reading the
request, before processing it; ``reset_after_store_next`` after storing it (the
client cannot know it was taken: the duplicate-making case).
``es_mapping_conflict`` answers 400 ``document_parsing_exception``, as ES does
for a value its mapping cannot take, on every _bulk item whose ``field`` (a
dotted path; a string, or a list with a string element) contains ``contains``.
"""

from __future__ import annotations

import argparse
import gc
import gzip
import json
import socket
import struct
import threading
import time
import zlib
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Optional
from urllib.parse import parse_qsl, urlsplit

from tests.siem.es import Elasticsearch
from tests.siem.hec import Hec, HecToken

_FAULTS = ("slow", "busy_next", "retry_after", "es_item_429_pct", "reset_next", "reset_after_store_next",
           "lost_acks", "ack_delay", "es_mapping_conflict")


class Faults:
    def __init__(self):
        self.clear()

    def clear(self) -> None:
        self.slow = 0.0  # seconds before every protocol answer
        self.busy_next = 0  # next N ingest requests: HEC 503 code 9 / ES 429
        self.retry_after: Optional[str] = None  # Retry-After header on busy answers
        self.es_item_429_pct = 0.0  # share of _bulk items answered 429
        self.reset_next = 0  # next N ingest requests: read, then reset the connection
        self.reset_after_store_next = 0  # next N: process and store, then reset
        self.lost_acks = False  # HEC acks never turn true
        self.ack_delay = 0.0  # seconds before an HEC ack turns true
        self.es_mapping_conflict: Optional[dict] = None  # {"field": dotted path, "contains": text}: item 400

    def as_dict(self) -> dict:
        return {k: getattr(self, k) for k in _FAULTS}


class _Http(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 64

    def handle_error(self, request, client_address) -> None:
        pass  # resets and `down` break connections on purpose; tracebacks would be noise


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "agentd-test-siem"
    siem: SiemServer  # set on the per-server subclass

    def log_message(self, *args) -> None:  # quiet: pytest shows failures, not traffic
        pass

    def setup(self) -> None:
        super().setup()
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.siem._conns.add(self.connection)

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            self.siem._conns.discard(self.connection)

    def do_GET(self) -> None:
        self._dispatch()

    do_POST = do_PUT = do_HEAD = do_DELETE = do_GET

    def _read_body(self) -> bytes:
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            parts = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return b"".join(parts)
                parts.append(self.rfile.read(size))
                self.rfile.readline()
        n = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(n) if n else b""

    def _send(self, status: int, headers: dict, body: bytes) -> None:
        self.send_response(status)
        for k, v in headers.items():
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        # Head and body in one write: two small writes meet Nagle + delayed ACK
        # and cost ~40 ms per answer on loopback.
        self._headers_buffer.append(b"\r\n" + (body if self.command != "HEAD" else b""))
        self.flush_headers()

    def _reset(self) -> None:
        # SO_LINGER 0: close() sends RST, the client sees a reset, not a clean EOF.
        self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.close_connection = True
        self.connection.close()

    def _dispatch(self) -> None:
        siem = self.siem
        url = urlsplit(self.path)
        path = url.path or "/"
        query = dict(parse_qsl(url.query))
        raw = self._read_body()
        if path.startswith("/_siem/"):
            self._send(*siem.admin(self.command, path, raw))
            return
        proto = siem.hec if path.startswith("/services/collector") else siem.es
        ingest = self.command in ("POST", "PUT") and (path.endswith("/event") or path.endswith("/event/1.0")
                                                       or path == "/services/collector" or "_bulk" in path)
        f = siem.faults
        if f.slow:
            time.sleep(f.slow)
        with siem.lock:
            siem.requests += 1
            action = None
            if ingest and f.reset_next > 0:
                f.reset_next -= 1
                action = "reset"
            elif ingest and f.busy_next > 0:
                f.busy_next -= 1
                action = "busy"
            elif ingest and f.reset_after_store_next > 0:
                f.reset_after_store_next -= 1
                action = "reset_after_store"
        if action == "reset":
            siem.counts["reset"] += 1
            self._reset()
            return
        if action == "busy":
            siem.counts["busy"] += 1
            status, headers, body = proto.busy()
            if f.retry_after is not None:
                headers["Retry-After"] = str(f.retry_after)
            self._send(status, headers, body)
            return
        body: Optional[bytes] = raw
        if raw and (self.headers.get("Content-Encoding") or "").lower() == "gzip":
            try:
                body = gzip.decompress(raw)
            except (OSError, EOFError, zlib.error):
                body = None
        status, headers, out = proto.handle(self.command, path, query, self.headers, body)
        if action == "reset_after_store":
            siem.counts["reset"] += 1
            self._reset()
            return
        self._send(status, headers, out)


class SiemServer:
    """The test SIEM. ``start()`` binds (port 0 = ephemeral), ``stop()`` ends it."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0, hec_tokens: Optional[dict] = None,
                 hec_indexes: tuple = ("main", "agentd", "security"), es_users: Optional[dict] = None,
                 es_api_keys: Optional[dict] = None, es_max_body: int = 100 * 1024 * 1024,
                 es_data_streams: tuple = ("logs-*-*", "metrics-*-*", "traces-*-*"), seed: int = 0):
        self.host = host
        self.port = port
        self.faults = Faults()
        self.lock = threading.Lock()
        self.requests = 0
        self.counts = {"reset": 0, "busy": 0}
        tokens = hec_tokens if hec_tokens is not None else {"test-token": HecToken()}
        self.hec = Hec(tokens, hec_indexes, self.faults)
        self.es = Elasticsearch(es_users or {}, es_api_keys or {}, es_max_body, es_data_streams, self.faults, seed)
        self._httpd: Optional[_Http] = None
        self._thread: Optional[threading.Thread] = None
        self._conns: set = set()
        self._timer: Optional[threading.Timer] = None
        self._updown = threading.Lock()

    # -- lifecycle ------------------------------------------------------------

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def is_up(self) -> bool:
        return self._httpd is not None

    def start(self) -> SiemServer:
        with self._updown:
            if self._httpd is None:
                handler = type("BoundHandler", (Handler,), {"siem": self})
                self._httpd = _Http((self.host, self.port), handler)
                self.port = self._httpd.server_address[1]
                self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05},
                                                name=f"siem-{self.port}", daemon=True)
                self._thread.start()
        return self

    def _close(self) -> None:
        with self._updown:
            httpd, self._httpd = self._httpd, None
            if httpd is not None:
                httpd.shutdown()
                httpd.server_close()
            for conn in list(self._conns):
                try:
                    conn.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def stop(self) -> None:
        if self._timer:
            self._timer.cancel()
        self._close()

    def down(self, seconds: Optional[float] = None) -> None:
        """Stop listening (clients get connection refused); back after ``seconds`` if given."""
        if self._timer:
            self._timer.cancel()
        self._close()
        if seconds:
            self._timer = threading.Timer(seconds, self.start)
            self._timer.daemon = True
            self._timer.start()

    def up(self) -> None:
        if self._timer:
            self._timer.cancel()
        self.start()

    def __enter__(self) -> SiemServer:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    # -- faults and what was accepted ----------------------------------------

    def set_faults(self, **kw) -> None:
        with self.lock:
            if kw.pop("clear", False):
                self.faults.clear()
            for k, v in kw.items():
                if k not in _FAULTS:
                    raise ValueError(f"unknown fault {k!r}; known: {', '.join(_FAULTS)}, down, clear")
                if k == "es_mapping_conflict" and v is not None and not (
                        isinstance(v, dict) and isinstance(v.get("field"), str) and isinstance(v.get("contains"), str)):
                    raise ValueError('es_mapping_conflict takes {"field": "a.b", "contains": "text"} or null')
                setattr(self.faults, k, v)

    def clear_faults(self) -> None:
        self.set_faults(clear=True)

    @property
    def hec_events(self) -> list:
        with self.hec.lock:
            return list(self.hec.events)

    @property
    def es_docs(self) -> list:
        with self.es.lock:
            return list(self.es.accepted)

    def accepted(self) -> dict:
        return {"hec": self.hec_events, "es": self.es_docs}

    def reset(self) -> None:
        self.clear_faults()
        self.hec.reset()
        self.es.reset()

    def admin(self, method: str, path: str, raw: bytes) -> tuple:
        js = {"Content-Type": "application/json"}
        try:
            if path == "/_siem/faults" and method == "POST":
                kw = json.loads(raw or b"{}")
                down = kw.pop("down", None)
                self.set_faults(**kw)
                if down:
                    # After this answer is written: the admin connection goes down too.
                    threading.Timer(0.05, self.down, args=(float(down),)).start()
                return 200, js, json.dumps(self.faults.as_dict()).encode()
            if path == "/_siem/faults":
                return 200, js, json.dumps(self.faults.as_dict()).encode()
            if path == "/_siem/accepted":
                return 200, js, json.dumps(self.accepted()).encode()
            if path == "/_siem/stats":
                return 200, js, json.dumps({"requests": self.requests, **self.counts,
                                            "hec_events": len(self.hec.events),
                                            "es_docs": len(self.es.accepted)}).encode()
            if path == "/_siem/reset" and method == "POST":
                self.reset()
                return 200, js, b'{"reset":true}'
        except (ValueError, TypeError) as e:
            return 400, js, json.dumps({"error": str(e)}).encode()
        return 404, js, b'{"error":"unknown admin endpoint"}'


def main(argv: Optional[list] = None) -> None:
    p = argparse.ArgumentParser(description="strict test SIEM: Splunk HEC + Elasticsearch _bulk on one port")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--hec-token", action="append", default=[], help="token accepted without acks (repeatable)")
    p.add_argument("--hec-ack-token", action="append", default=[], help="token with indexer acknowledgement")
    p.add_argument("--es-user", action="append", default=[], help="user:password for basic auth")
    p.add_argument("--es-api-key", action="append", default=[], help="id:key for ApiKey auth")
    p.add_argument("--es-max-body", type=int, default=100 * 1024 * 1024, help="bytes, like http.max_content_length")
    a = p.parse_args(argv)
    # Everything accepted is kept as parsed JSON; with default thresholds the
    # cyclic GC rescans those millions of objects ever more often and becomes
    # the bottleneck of a benchmark. Nothing kept here forms cycles.
    gc.set_threshold(200_000, 50, 1000)
    tokens = {t: HecToken() for t in a.hec_token} or {"test-token": HecToken()}
    tokens.update({t: HecToken(ack=True) for t in a.hec_ack_token})
    server = SiemServer(a.host, a.port, hec_tokens=tokens,
                        es_users=dict(u.split(":", 1) for u in a.es_user),
                        es_api_keys=dict(k.split(":", 1) for k in a.es_api_key), es_max_body=a.es_max_body)
    server.start()
    print(f"test SIEM listening on {server.url} (HEC tokens: {len(tokens)}, ES auth: "
          f"{'on' if a.es_user or a.es_api_key else 'off'})", flush=True)
    serve_until_interrupted(server)


def serve_until_interrupted(server: SiemServer) -> None:
    """The main thread of a SIEM process: idle (the server has its own thread) until ^C."""
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        server.stop()


if __name__ == "__main__":
    main()
