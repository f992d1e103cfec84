"""Dead-letter files: what could not be parsed or was refused, with the reason.

One JSON object per line so the file can be grepped, re-fed or shipped by other
means. The raw input is kept exactly: as text when it is valid UTF-8, otherwise
base64 as well, so nothing is lost by being kept.
"""

from __future__ import annotations

import base64
import os
import threading
import time
from typing import Optional

from agent.base.events import dumps

MAX_BYTES = 64 * 1024 * 1024


class DeadLetter:
    def __init__(self, path: str, max_bytes: int = MAX_BYTES):
        self.path = path
        self.max_bytes = max_bytes
        self.count = 0
        self._f = None
        self._lock = threading.Lock()

    def _open(self):
        if self._f is None:
            os.makedirs(os.path.dirname(self.path), mode=0o750, exist_ok=True)
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o640)
            self._f = os.fdopen(fd, "ab")
        return self._f

    def write(self, reason: str, raw, context: Optional[dict] = None) -> None:
        entry: dict = {"time": time.time(), "reason": reason}
        if context:
            entry.update(context)
        if isinstance(raw, bytes):
            try:
                entry["raw"] = raw.decode("utf-8")
            except UnicodeDecodeError:
                entry["raw"] = raw.decode("utf-8", "backslashreplace")
                entry["raw_b64"] = base64.b64encode(raw).decode("ascii")
        else:
            entry["event"] = raw
        data = dumps(entry) + b"\n"
        with self._lock:
            f = self._open()
            if f.tell() + len(data) > self.max_bytes and f.tell() > 0:
                f.close()
                self._f = None
                os.replace(self.path, self.path + ".1")
                f = self._open()
            f.write(data)
            f.flush()
            self.count += 1

    def close(self) -> None:
        with self._lock:
            if self._f is not None:
                self._f.close()
                self._f = None
