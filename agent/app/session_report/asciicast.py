"""asciicast v2 (what `asciinema play` plays): a JSON header line, then one
``[seconds, "o", text]`` line per output frame (``"r"`` ones would be resizes, which
asciinema 2.2 does not play, so the header carries the first size)."""

from __future__ import annotations

import json
from typing import List

from agent.app.session_report.frames import Frame, size_of


def asciicast(fr: List[Frame], start: float = 0.0, title: str = "", term: str = "xterm") -> str:
    cols, rows = size_of(fr)
    header = {"version": 2, "width": cols, "height": rows, "env": {"TERM": term or "xterm", "SHELL": "/bin/bash"}}
    if start:
        header["timestamp"] = int(start)
    if title:
        header["title"] = title
    lines = [json.dumps(header)]
    lines += [json.dumps([round(f.t, 6), "o", f.text], ensure_ascii=False) for f in fr if f.text]
    return "\n".join(lines) + "\n"
