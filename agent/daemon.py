"""`agentd run`: placeholder until the pipeline lands (issue 4)."""

from __future__ import annotations
