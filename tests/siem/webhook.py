"""A loopback webhook receiver for tests: records every POST body, answers the status
codes queued with ``answer(503, 503)`` (then 200). Stdlib only."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class WebhookServer:
    def __init__(self):
        self.received: list = []  # (path, headers, body as JSON) of the 2xx answered
        self.refused: list = []
        self._answers: list = []
        self._lock = threading.Lock()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:
                pass

            def do_POST(self) -> None:
                n = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(n)
                with outer._lock:
                    code = outer._answers.pop(0) if outer._answers else 200
                    (outer.received if code < 300 else outer.refused).append(
                        (self.path, dict(self.headers), json.loads(body)))
                self.send_response(code)
                if code == 503:
                    self.send_header("Retry-After", "0")
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"{}")

        self.http = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.http.daemon_threads = True
        self.thread = threading.Thread(target=self.http.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.http.server_address[1]}/hook"

    def answer(self, *codes: int) -> None:
        with self._lock:
            self._answers.extend(codes)

    def __enter__(self) -> WebhookServer:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.http.shutdown()
        self.http.server_close()
