"""`agentd replay` of the recorded capture (audit log + journal), as a user would run it."""

from __future__ import annotations

import json
import os
import subprocess
import sys

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CAPTURE = os.path.join(REPO, "tests", "captures", "bastion1")


def replay(out) -> list:
    """Replays tests/captures/bastion1 into the file ``out``; returns its events."""
    proc = subprocess.run(
        [sys.executable, "-m", "agent.app.cli", "replay", "--audit-log", os.path.join(CAPTURE, "audit.log"),
         "--journal", os.path.join(CAPTURE, "journal.json"), "-o", str(out),
         "--dead-letter", str(out) + ".dead"], cwd=REPO, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    with open(out, "rb") as f:
        return [json.loads(line) for line in f]
