"""The built-in rules, one module per family; BUILTIN is every rule class, in config order."""

from __future__ import annotations

from agent.pipeline.detections.rules import activity, auth, network, tamper

BUILTIN: tuple = auth.RULES + tamper.RULES + activity.RULES + network.RULES
