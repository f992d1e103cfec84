"""POST events (alerts, by default) to a URL as JSON, or in Slack's incoming-webhook form.

One request per event: alerts are few and each should reach people at once; an
incident platform or chat channel takes single objects. Durable like every shipper:
an event leaves the spool for this shipper only on a 2xx; 429, 5xx and transport
failures are retried (Retry-After honoured); any other 4xx is dead-lettered with the
answer, since sending the same body again cannot succeed.
"""

from __future__ import annotations

from typing import Optional

import httpx
import orjson

from agent import __version__
from agent.base.docpath import get_path
from agent.base.options import Option
from shippers.base import SendResult
from shippers.http import (
    TLS_OPTIONS,
    HttpShipper,
    describe_exception,
    parse_retry_after,
    short_body,
    timeout_option,
)


def text_of(doc: dict) -> str:
    """The one-line human form (Slack's ``text``)."""
    sev = get_path(doc, "agentd.alert.severity") or get_path(doc, "event.severity") or ""
    head = get_path(doc, "rule.name") or get_path(doc, "event.dataset") or "event"
    where = get_path(doc, "host.name") or "?"
    parts = [f"[agentd] {str(sev).upper()} {head} on {where}: {doc.get('message') or get_path(doc, 'event.action')}"]
    user = get_path(doc, "session.user")
    if user:
        src = get_path(doc, "session.source.ip") or "?"
        parts.append(f"session of {user} from {src} ({get_path(doc, 'session.id')})")
    techs = get_path(doc, "threat.technique.id")
    if techs:
        parts.append("ATT&CK " + ", ".join(techs if isinstance(techs, list) else [techs]))
    rid = get_path(doc, "rule.id")
    if rid:
        parts.append(f"rule {rid}")
    return " | ".join(parts)


class WebhookShipper(HttpShipper):
    type_name = "webhook"
    description = "Webhook: POST each event (by default each alert) as JSON or as a Slack-compatible message"
    default_events = ("alerts",)  # what `events =` left empty means for this shipper
    options = {
        "url": Option("url", None, "where to POST, e.g. https://hooks.slack.com/services/… or an IR platform's URL",
                      required=True),
        "format": Option("choice", "json", "json: the ECS event as is; slack: {\"text\": one line}; "
                         "both: the event with a text field added", choices=("json", "slack", "both")),
        "token": Option("str", None, "sent as Authorization: Bearer <token>; empty = none", secret=True),
        "timeout": timeout_option(),
        **TLS_OPTIONS,
    }

    def __init__(self, name: str, conf: dict, context=None, transport: Optional[httpx.BaseTransport] = None):
        super().__init__(name, conf, context, transport)
        headers = {"Content-Type": "application/json", "User-Agent": f"agentd/{__version__}"}
        token = conf.get("token")
        if token:
            headers["Authorization"] = f"Bearer {getattr(token, 'reveal', lambda: token)()}"
        self.url = conf["url"]
        self.format = conf.get("format") or "json"
        self.connect("", headers, max_connections=1)

    def _body(self, doc: dict) -> bytes:
        if self.format == "slack":
            return orjson.dumps({"text": text_of(doc)})
        if self.format == "both":
            return orjson.dumps(dict(doc, text=text_of(doc)))
        return orjson.dumps(doc)

    def send(self, events: list) -> SendResult:
        result = SendResult()
        for i, doc in enumerate(events):
            try:
                resp = self.client.post(self.url, content=self._body(doc))
            except httpx.HTTPError as e:
                rest = list(range(i, len(events)))
                result.retry += rest
                result.error = describe_exception(e)
                return result
            code = resp.status_code
            if 200 <= code < 300:
                result.delivered.append(i)
            elif code == 429 or code >= 500 or code == 408:
                result.retry += list(range(i, len(events)))
                result.error = f"HTTP {code}: {short_body(resp)}"
                result.retry_after = parse_retry_after(resp.headers.get("Retry-After"))
                return result
            else:
                result.rejected.append((i, f"HTTP {code}: {short_body(resp)}"))
        return result

    def health(self) -> tuple:
        # No probe: a POST would be a message in someone's channel. Say so.
        return True, f"webhook {self.format} to {httpx.URL(self.url).host}: not probed (a probe would post)"
