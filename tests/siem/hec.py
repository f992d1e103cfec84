"""The Splunk HTTP Event Collector half of the test SIEM: strict about what real HEC
is strict about (token, channel, event shape, indexes), with its real codes and
texts, indexer acknowledgement per channel, and "events before
invalid-event-number are indexed" on a partially bad batch.
"""

from __future__ import annotations

import json
import re
import threading
import time
from typing import Optional

# Splunk's HEC status codes: code -> (HTTP status, text), as the product answers.
CODES = {
    0: (200, "Success"),
    1: (403, "Token disabled"),
    2: (401, "Token is required"),
    3: (401, "Invalid authorization"),
    4: (403, "Invalid token"),
    5: (400, "No data"),
    6: (400, "Invalid data format"),
    7: (400, "Incorrect index"),
    8: (500, "Internal server error"),
    9: (503, "Server is busy"),
    10: (400, "Data channel is missing"),
    11: (400, "Invalid data channel"),
    12: (400, "Event field is required"),
    13: (400, "Event field cannot be blank"),
    14: (400, "ACK is disabled"),
    15: (400, "Error in handling indexed fields"),
    17: (200, "HEC is healthy"),
    18: (503, "HEC is unhealthy, queues are full"),
}
_GUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
_DECODER = json.JSONDecoder()
_WS = re.compile(r"[ \t\r\n]*")


def reply(code: int, **extra) -> tuple:
    status, text = CODES[code]
    body = {"text": text, "code": code}
    body.update(extra)
    return status, {"Content-Type": "application/json; charset=UTF-8"}, json.dumps(body).encode()


class HecToken:
    def __init__(self, ack: bool = False, indexes: Optional[list] = None, default_index: str = "main",
                 disabled: bool = False):
        self.ack = ack
        self.indexes = indexes  # None = any index the server knows
        self.default_index = default_index
        self.disabled = disabled


class Hec:
    """State and request handling for /services/collector/*."""

    def __init__(self, tokens: dict, indexes: tuple, faults):
        self.tokens = tokens
        self.indexes = set(indexes)
        self.faults = faults
        self.lock = threading.Lock()
        self.events: list = []  # accepted HEC objects, in order, with "index" filled in
        self.channels: dict = {}  # (token, channel) -> {"next": int, "acks": {id: ready_at | None}}
        self.requests = 0

    def reset(self) -> None:
        with self.lock:
            self.events.clear()
            self.channels.clear()

    # -- helpers --------------------------------------------------------------

    def _auth(self, headers) -> tuple:
        value = headers.get("Authorization")
        if not value:
            return None, reply(2)
        scheme, _, token = value.partition(" ")
        if scheme != "Splunk" or not token.strip():
            return None, reply(3)
        tok = self.tokens.get(token.strip())
        if tok is None:
            return None, reply(4)
        if tok.disabled:
            return None, reply(1)
        return (token.strip(), tok), None

    @staticmethod
    def _channel(headers, query: dict) -> tuple:
        ch = headers.get("X-Splunk-Request-Channel") or query.get("channel")
        if not ch:
            return None, reply(10)
        if not _GUID.match(ch):
            return None, reply(11)
        return ch.lower(), None

    def _check(self, obj, tok: HecToken) -> int:
        """0 if ``obj`` is an event HEC would index, else its error code."""
        if not isinstance(obj, dict):
            return 6
        if "event" not in obj:
            return 12
        ev = obj["event"]
        if ev is None or (isinstance(ev, str) and not ev.strip()):
            return 13
        t = obj.get("time")
        if t is not None and not isinstance(t, (int, float)):
            try:
                float(t)
            except (TypeError, ValueError):
                return 6
        fields = obj.get("fields")
        if fields is not None:
            if not isinstance(fields, dict):
                return 15
            for v in fields.values():
                if isinstance(v, dict) or (isinstance(v, list) and any(isinstance(x, (dict, list)) for x in v)):
                    return 15
        index = obj.get("index")
        if index is not None:
            if not isinstance(index, str) or index not in self.indexes:
                return 7
            if tok.indexes is not None and index not in tok.indexes:
                return 7
        return 0

    # -- endpoints ------------------------------------------------------------

    def handle(self, method: str, path: str, query: dict, headers, body: Optional[bytes]) -> tuple:
        path = path.rstrip("/")
        if path in ("/services/collector/health", "/services/collector/health/1.0"):
            return reply(18) if self.faults.busy_next > 0 else reply(17)
        if method != "POST":
            return 405, {"Content-Type": "text/plain"}, b"Method Not Allowed"
        if path in ("/services/collector/event", "/services/collector/event/1.0", "/services/collector"):
            return self.event(query, headers, body)
        if path in ("/services/collector/ack", "/services/collector/ack/1.0"):
            return self.ack(query, headers, body)
        return 404, {"Content-Type": "application/json"}, b'{"text":"The requested URL was not found on this server.","code":404}'

    def busy(self) -> tuple:
        return reply(9)

    def event(self, query: dict, headers, body: Optional[bytes]) -> tuple:
        with self.lock:
            self.requests += 1
        who, err = self._auth(headers)
        if err:
            return err
        token, tok = who
        channel = None
        if tok.ack:
            channel, err = self._channel(headers, query)
            if err:
                return err
        if body is None:  # undecodable gzip
            return reply(6, **{"invalid-event-number": 0})
        try:
            text = body.decode("utf-8")
        except UnicodeDecodeError:
            return reply(6, **{"invalid-event-number": 0})
        if not text.strip():
            return reply(5)
        good: list = []
        bad = None
        pos = _WS.match(text, 0).end()
        n = 0
        while pos < len(text):
            try:
                obj, end = _DECODER.raw_decode(text, pos)
            except ValueError:
                bad = (n, 6)
                break
            code = self._check(obj, tok)
            if code:
                bad = (n, code)
                break
            obj.setdefault("index", tok.default_index)
            good.append(obj)
            n += 1
            pos = _WS.match(text, end).end()
        with self.lock:
            # Real HEC has already indexed the events before the bad one.
            self.events.extend(good)
            if bad is not None:
                return reply(bad[1], **{"invalid-event-number": bad[0]})
            if not tok.ack:
                return reply(0)
            ch = self.channels.setdefault((token, channel), {"next": 0, "acks": {}})
            ack_id = ch["next"]
            ch["next"] += 1
            ch["acks"][ack_id] = None if self.faults.lost_acks else time.monotonic() + self.faults.ack_delay
            return reply(0, ackId=ack_id)

    def ack(self, query: dict, headers, body: Optional[bytes]) -> tuple:
        who, err = self._auth(headers)
        if err:
            return err
        token, tok = who
        if not tok.ack:
            return reply(14)
        channel, err = self._channel(headers, query)
        if err:
            return err
        try:
            ids = json.loads(body or b"")["acks"]
            if not isinstance(ids, list) or not all(isinstance(i, int) for i in ids):
                raise ValueError
        except (ValueError, KeyError, TypeError):
            return reply(6)
        now = time.monotonic()
        out = {}
        with self.lock:
            acks = self.channels.get((token, channel), {"acks": {}})["acks"]
            for i in ids:
                ready = acks.get(i)
                done = ready is not None and ready <= now and not self.faults.lost_acks
                if done:
                    del acks[i]  # HEC forgets an ack once it has reported it true
                out[str(i)] = done
        return 200, {"Content-Type": "application/json; charset=UTF-8"}, json.dumps({"acks": out}).encode()
