"""pytest fixtures for the test SIEM. Import them into a test module or conftest:

    from tests.siem.fixtures import siem, siem_ack  # noqa: F401
"""

from __future__ import annotations

import pytest

from tests.siem.hec import HecToken
from tests.siem.server import SiemServer

HEC_TOKEN = "11111111-2222-3333-4444-555555555555"
HEC_ACK_TOKEN = "aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee"
ES_USER = ("agentd", "s3cret-pw")
ES_API_KEY = ("VuaCfGcBCdbkQm-e5aOx", "ui2lp2axTNmsyakw9tvNnw")


def make_server(**kw) -> SiemServer:
    kw.setdefault("hec_tokens", {HEC_TOKEN: HecToken(), HEC_ACK_TOKEN: HecToken(ack=True)})
    kw.setdefault("es_users", {ES_USER[0]: ES_USER[1]})
    kw.setdefault("es_api_keys", {ES_API_KEY[0]: ES_API_KEY[1]})
    return SiemServer(**kw)


@pytest.fixture
def siem():
    """A fresh test SIEM on an ephemeral loopback port, stopped after the test."""
    with make_server() as server:
        yield server


@pytest.fixture
def siem_small():
    """A test SIEM whose Elasticsearch takes at most 64 KiB per request (413 beyond)."""
    with make_server(es_max_body=64 * 1024) as server:
        yield server
