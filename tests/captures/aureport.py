"""Reading ``aureport --tty`` output, the oracle of the keystroke rendering tests."""

from __future__ import annotations


def tty_rows(text: bytes) -> dict:
    """serial -> aureport's data column (everything after the comm column)."""
    rows = {}
    for line in text.split(b"\n"):
        parts = line.split(b" ", 8)
        if len(parts) == 9 and parts[0].endswith(b".") and parts[0][:-1].isdigit():
            rows[int(parts[3])] = parts[8].decode("latin-1")
    return rows
