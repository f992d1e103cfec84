"""The real test stack: daemons, users and a pty-driven ssh client (see stack.py)."""

from __future__ import annotations
