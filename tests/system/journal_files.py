"""Journal files a test makes for itself, so what it reads never depends on this
machine's journal history: the recorded capture's entries (journalctl -o export),
written into a real .journal file by systemd-journal-remote, the tool journald's
own project ships for exactly this."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import List

CAPTURE_EXPORT = Path(__file__).resolve().parents[1] / "captures" / "bastion1" / "journal.export"
# Another machine's id: the files look as they would when copied from elsewhere.
FOREIGN_MACHINE_ID = "0badc0ffee0ddf00d0badc0ffee0ddf0"
_REMOTE = ("/lib/systemd/systemd-journal-remote", "/usr/lib/systemd/systemd-journal-remote")


def journal_remote() -> str:
    for p in _REMOTE:
        if os.access(p, os.X_OK):
            return p
    raise AssertionError("systemd-journal-remote is not installed (Debian/RHEL package systemd-journal-remote; "
                         "`make deps` installs it)")


def capture_entries() -> List[List[str]]:
    """The capture's entries, each a list of FIELD=value lines (all text in this capture)."""
    entries = []
    for block in CAPTURE_EXPORT.read_text().split("\n\n"):
        lines = [line for line in block.splitlines() if line]
        if lines:
            entries.append([f"_MACHINE_ID={FOREIGN_MACHINE_ID}" if line.startswith("_MACHINE_ID=") else line
                            for line in lines])
    return entries


def entry_like(template: List[str], **fields: str) -> List[str]:
    """A new entry at the template's time and boot with some fields replaced or added."""
    out = [line for line in template if line.split("=", 1)[0] not in fields and not line.startswith("__CURSOR=")]
    return out + [f"{k}={v}" for k, v in fields.items()]


def write_journal(path: Path, entries: List[List[str]]) -> Path:
    """A .journal file at ``path`` holding ``entries`` in order."""
    stream = "".join("\n".join(e) + "\n\n" for e in entries).encode()
    p = subprocess.run([journal_remote(), "-o", str(path), "-"], input=stream, capture_output=True, timeout=60)
    assert p.returncode == 0 and path.exists(), p.stderr.decode(errors="replace")
    return path
