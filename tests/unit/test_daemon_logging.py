"""The agent's log at its default level says what the agent does, not every HTTP request a
shipper makes (httpx logs each at INFO: several lines a second under load)."""

from __future__ import annotations

import logging

from agent.app.daemon import setup_logging


def test_http_requests_are_not_logged_at_info_but_at_debug():
    root = logging.getLogger()
    saved = (list(root.handlers), root.level, logging.getLogger("httpx").level)
    try:
        setup_logging("info")
        assert logging.getLogger("agentd").isEnabledFor(logging.INFO)
        assert not logging.getLogger("httpx").isEnabledFor(logging.INFO)
        assert logging.getLogger("httpx").isEnabledFor(logging.WARNING)
        setup_logging("debug")
        assert logging.getLogger("httpx").isEnabledFor(logging.INFO)
    finally:
        root.handlers[:] = saved[0]
        root.setLevel(saved[1])
        logging.getLogger("httpx").setLevel(saved[2])
