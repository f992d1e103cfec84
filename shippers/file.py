"""`file` shipper: JSON lines appended to a local file, fsynced per batch, rotated by size.

It is the default output so `make run` works with no SIEM, and a sane last-resort
sink for forwarders that already tail files (Filebeat, the Splunk UF).
"""

from __future__ import annotations

import os
from typing import Optional

from agent.base.events import dumps
from agent.base.options import Option
from shippers.base import SendResult, Shipper


class FileShipper(Shipper):
    type_name = "file"
    description = "append events as JSON lines to a local file"
    takes_raw = True
    options = {
        "path": Option("path", "/var/log/agentd/events.jsonl", "file the events are appended to"),
        "max_bytes": Option("size", "100MiB", "rotate when the file would grow past this size", minimum=1024),
        "keep_files": Option("int", "5", "rotated files kept (path.1 … path.N)", minimum=0, maximum=1000),
        "fsync": Option("bool", "true", "fsync after every batch so a delivered batch survives power loss"),
        "mode": Option("str", "0640", "permissions of new files, octal", check=lambda v: int(v, 8)),
    }

    def __init__(self, name: str, conf: dict, context=None):
        super().__init__(name, conf, context)
        self.path = conf["path"]
        self._fd = -1

    def _open(self) -> None:
        if self._fd < 0:
            os.makedirs(os.path.dirname(self.path) or ".", exist_ok=True)
            self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC,
                               int(self.conf["mode"], 8))

    def _rotate_if_needed(self, incoming: int) -> None:
        size = os.fstat(self._fd).st_size
        if size == 0 or size + incoming <= self.conf["max_bytes"]:
            return
        self.close()
        keep = self.conf["keep_files"]
        if keep == 0:
            os.unlink(self.path)
        else:
            for i in range(keep - 1, 0, -1):
                src = f"{self.path}.{i}"
                if os.path.exists(src):
                    os.replace(src, f"{self.path}.{i + 1}")
            os.replace(self.path, f"{self.path}.1")
        self._open()

    def send(self, events: list, raw: Optional[list] = None) -> SendResult:
        # The spool's bytes are already this file's format (events.dumps): written as they are.
        data = b"".join(x + b"\n" for x in raw) if raw is not None else b"".join(dumps(e) + b"\n" for e in events)
        try:
            self._open()
            self._rotate_if_needed(len(data))
            view = memoryview(data)
            while view:
                n = os.write(self._fd, view)
                view = view[n:]
            if self.conf["fsync"]:
                os.fsync(self._fd)
        except OSError as e:
            # A full disk or a removed directory is transient from our point of
            # view: retry the batch later, keep it in the spool meanwhile.
            self.close()
            return SendResult.all_retry(len(events), f"{self.path}: {e.strerror}")
        return SendResult.all_delivered(len(events))

    def health(self) -> tuple:
        d = os.path.dirname(self.path)
        if os.access(d if os.path.isdir(d) else os.path.dirname(d), os.W_OK):
            return True, f"{self.path} is writable"
        return False, f"{d} is not writable"

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1
