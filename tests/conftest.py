"""Fixtures every test folder may use: the recorded capture tests/captures/bastion1, replayed."""

from __future__ import annotations

import json
import os

import pytest

from tests.captures.replay import CAPTURE, replay


@pytest.fixture(scope="module")
def replayed(tmp_path_factory):
    """The events `agentd replay` makes of the capture (once per test module: tests only read them)."""
    return replay(tmp_path_factory.mktemp("replay") / "events.jsonl")


@pytest.fixture(scope="module")
def manifest():
    """What the recording script did: its sessions, users, ports and keys."""
    with open(os.path.join(CAPTURE, "manifest.json")) as f:
        return json.load(f)
