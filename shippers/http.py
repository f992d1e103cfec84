"""What the HTTP shippers share: the client, TLS, Retry-After, error wording and
the once-per-condition ERROR log.

Secrets (HEC token, ES password or API key) only ever travel in request headers
set here or by the shipper; nothing in this module formats a header or a URL
with credentials into a message, so `SendResult.error` and the log stay clean.
"""

from __future__ import annotations

import email.utils
import gzip
import logging
import ssl
import time
from typing import Any, Optional

import httpx
import orjson

from agent.base.conditions import ConditionLog
from agent.base.events import parse_rfc3339
from agent.base.options import Option
from shippers.base import Shipper

log = logging.getLogger("agentd.ship")

# Levels 1-3 are zlib's fast strategy (deflate_fast). On the exec-storm capture's ECS
# events (2.6 KB of JSON each, 500 per request) level 3 deflates ~7 us per event to 4.3%
# of the bytes, level 6 (zlib's default) ~21 us to 3.2%: three times the CPU for a quarter
# fewer bytes, about 115 against 85 bytes per event on the wire. At 1,000 events/s that is
# 1.4% of a core saved for 0.25 Mbit/s more uplink; `gzip_level` trades it the other way.
GZIP_LEVEL = 3

# Options both HTTP shippers declare; kept here so their docs cannot drift apart.
TLS_OPTIONS: dict = {
    "tls_verify": Option("bool", "true", "verify the server certificate and host name (keep on outside a lab)"),
    "ca_file": Option("str", "", "PEM bundle of CAs to trust instead of the system store; empty = system store"),
    "client_cert": Option("str", "", "PEM client certificate for mutual TLS; empty = none"),
    "client_key": Option("str", "", "PEM private key of client_cert (if not inside client_cert)"),
}


def timeout_option(default: str = "10s") -> Option:
    return Option("duration", default, "connect, read and write timeout of one HTTP request", minimum=0.1, maximum=600)


def gzip_level_option() -> Option:
    return Option("int", str(GZIP_LEVEL), "gzip level of request bodies: 1-3 fast, up to 9 ~25% smaller for "
                  "~3x the CPU", minimum=1, maximum=9)


def check_tls_conf(conf: dict) -> list:
    """Cross-option TLS checks, offline: only whether the combination makes sense."""
    errors = []
    if conf.get("client_key") and not conf.get("client_cert"):
        errors.append(("client_key", "client_key is set but client_cert is not; set both"))
    for key in ("ca_file", "client_cert", "client_key"):
        v = conf.get(key) or ""
        if v and not v.startswith("/"):
            errors.append((key, f"{v!r} is not an absolute path; paths must start with /"))
    return errors


def ssl_context(conf: dict) -> Any:
    """``verify`` argument for httpx: False, or an SSLContext with our CA and client cert."""
    if not conf.get("tls_verify", True):
        return False
    ctx = ssl.create_default_context(cafile=conf.get("ca_file") or None)
    if conf.get("client_cert"):
        ctx.load_cert_chain(conf["client_cert"], conf.get("client_key") or None)
    return ctx


def build_client(conf: dict, *, base_url: str, headers: dict, transport: Optional[httpx.BaseTransport] = None,
                 max_connections: int = 4) -> httpx.Client:
    """One client per shipper, reused for every request (keep-alive, one TLS handshake).

    Every phase of a request has an explicit timeout so a silent SIEM (or a
    half-open TCP connection) turns into a retry instead of a stuck worker.
    ``transport`` is the seam the unit tests use (httpx.MockTransport).
    """
    t = float(conf.get("timeout") or 10.0)
    timeout = httpx.Timeout(connect=min(t, 10.0), read=t, write=t, pool=t)
    limits = httpx.Limits(max_connections=max_connections, max_keepalive_connections=max_connections,
                          keepalive_expiry=30.0)
    kwargs: dict = {"base_url": base_url, "headers": headers, "timeout": timeout, "limits": limits,
                    "follow_redirects": False, "trust_env": False}
    if transport is not None:
        kwargs["transport"] = transport
    elif base_url.startswith("http://"):
        # No TLS on this connection: the certificate store ssl_context() loads would cost
        # ~1 MB and tens of ms for nothing (redirects are not followed, so none to https).
        kwargs["verify"] = False
    else:
        kwargs["verify"] = ssl_context(conf)
    return httpx.Client(**kwargs)


def compress(body: bytes, level: int = GZIP_LEVEL) -> bytes:
    return gzip.compress(body, compresslevel=level, mtime=0)


class HttpShipper(Shipper):
    """A shipper that POSTs over one httpx client: the test seam, the client, TLS checks,
    the once-per-condition ERROR log, close()."""

    transport: Optional[httpx.BaseTransport] = None  # test seam; a constructor kwarg wins

    def __init__(self, name: str, conf: dict, context=None, transport: Optional[httpx.BaseTransport] = None):
        super().__init__(name, conf, context)
        self._transport = transport or self.transport
        self.condition = ConditionLog(f"shipper:{name}")

    def connect(self, base_url: str, headers: dict, max_connections: int = 4) -> None:
        self.client = build_client(self.conf, base_url=base_url, headers=headers, transport=self._transport,
                                   max_connections=max_connections)

    @classmethod
    def validate_conf(cls, conf: dict) -> list:
        return check_tls_conf(conf)

    def close(self) -> None:
        self.client.close()


class BatchShipper(HttpShipper):
    """An HTTP shipper that POSTs batches of the spool's serialized events (HEC, _bulk)."""

    logs_conditions = True  # the worker leaves the ERROR lines of send() to us
    takes_raw = True
    stats: dict

    def post(self, path: str, body: bytes) -> httpx.Response:
        """POST a body, gzipped unless the config turns gzip off; counted in stats["posts"]."""
        headers = {}
        if self.conf.get("gzip", True):
            body = compress(body, self.conf.get("gzip_level") or GZIP_LEVEL)
            headers["Content-Encoding"] = "gzip"
        self.stats["posts"] += 1
        return self.client.post(path, content=body, headers=headers)


def parse_retry_after(value: Optional[str], now: Optional[float] = None, cap: float = 3600.0) -> Optional[float]:
    """Seconds to wait from a Retry-After header (delta-seconds or HTTP-date, RFC 9110).

    Garbage gives None (the worker's own backoff applies); the result is capped so
    a broken proxy cannot park the shipper for a day.
    """
    if not value:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
        if when is None:
            return None
        seconds = when.timestamp() - (time.time() if now is None else now)
    if seconds != seconds:  # NaN
        return None
    return max(0.0, min(seconds, cap))


def describe_exception(exc: BaseException) -> str:
    """One line for a transport failure. httpx puts the URL in some messages; ours
    never carry credentials (no user:pass@ URLs are accepted), but keep it short."""
    kind = type(exc).__name__
    msg = str(exc).splitlines()[0] if str(exc) else ""
    if isinstance(exc, httpx.TimeoutException):
        return f"timed out ({kind})"
    if isinstance(exc, httpx.ConnectError):
        return f"cannot connect: {msg or kind}"
    return f"{kind}: {msg}" if msg else kind


def short_body(resp: httpx.Response, limit: int = 300) -> str:
    """The start of a response body for an error line; servers do not echo secrets."""
    try:
        text = resp.text
    except Exception:  # undecodable body: the status line alone must do
        return ""
    text = " ".join(text.split())
    return text[:limit] + ("…" if len(text) > limit else "")


def chunks(sizes: list, max_events: int, max_bytes: int) -> list:
    """Split positions 0..len(sizes)-1 into runs within both limits, in order.

    An item bigger than ``max_bytes`` travels alone: the server, not us, decides
    whether it is too large, and its answer is what gets dead-lettered.
    """
    out: list = []
    cur: list = []
    size = 0
    for i, n in enumerate(sizes):
        if cur and (len(cur) >= max_events or size + n > max_bytes):
            out.append(cur)
            cur, size = [], 0
        cur.append(i)
        size += n
    if cur:
        out.append(cur)
    return out


def epoch(ts: object) -> Optional[float]:
    """RFC 3339 text to epoch seconds rounded to ms (what HEC ``time`` indexes)."""
    secs = parse_rfc3339(ts)
    return None if secs is None else round(secs, 3)


def json_body(resp: httpx.Response) -> dict:
    """A JSON object answer, or {} for anything else (HTML from a proxy, empty 413…)."""
    try:
        body = orjson.loads(resp.content)
    except (orjson.JSONDecodeError, httpx.HTTPError):
        return {}
    return body if isinstance(body, dict) else {}
