"""`elasticsearch` shipper: ECS events into data streams through the _bulk API.

Every event is a ``create`` into ``logs-<dataset>-<namespace>`` with
``_id = event.id``. ``create`` is the only op a data stream takes, and together
with the deterministic id it makes re-sending safe: a document ES already holds
comes back 409 (version conflict) and counts as delivered, so a batch re-sent
after a crash or a lost response leaves no duplicate.

Per item: 2xx and 409 delivered; 429 and 5xx retried alone; any other 4xx
(mapping errors, a missing @timestamp…) rejected with ES's type and reason.
A whole request answered 413 is halved until it fits (a single event still too
large is rejected); 401/403/429/5xx, timeouts and connection errors retry the
whole batch, honouring Retry-After.
"""

from __future__ import annotations

import base64
import re
from collections import deque
from typing import Optional

import httpx
import orjson

from agent import __version__
from agent.base.docpath import get_path
from agent.base.options import Option
from shippers.base import SendResult
from shippers.http import (
    TLS_OPTIONS,
    BatchShipper,
    chunks,
    describe_exception,
    gzip_level_option,
    parse_retry_after,
    short_body,
    timeout_option,
)

_NOT_ALLOWED = re.compile(r"[^a-z0-9_.]")  # data stream dataset/namespace: no '-', no upper case


def _check_namespace(v: str) -> None:
    if not v or _NOT_ALLOWED.search(v) or len(v) > 100:
        raise ValueError(f"{v!r} is not a data stream namespace; use lower-case letters, digits, _ and ."
                         " (no '-'), at most 100 characters")


def _check_pattern(v: str) -> None:
    try:
        name = v.format(dataset="d", namespace="n", type="logs")
    except (KeyError, IndexError, ValueError) as e:
        raise ValueError(f"{v!r}: only {{dataset}}, {{namespace}} and {{type}} may be used ({e})") from None
    if name != name.lower() or any(c in name for c in ' \\/*?"<>|,#:') or name.startswith(("-", "_", "+")):
        raise ValueError(f"{v!r} does not make a valid index name (lower case, no spaces or \\/*?\"<>|,#:)")


def dataset_name(dataset: object) -> str:
    """event.dataset mapped to what a data stream name allows (``sshd.auth`` stays)."""
    if not isinstance(dataset, str) or not dataset:
        return "agentd.generic"
    return _NOT_ALLOWED.sub("_", dataset.lower())[:100]


def api_key_header(api_key: str) -> str:
    # Kibana shows the "encoded" form (base64 of id:key); accept id:key too.
    if ":" in api_key:
        api_key = base64.b64encode(api_key.encode()).decode()
    return f"ApiKey {api_key}"


class ElasticsearchShipper(BatchShipper):
    type_name = "elasticsearch"
    description = "send events to Elasticsearch data streams with the _bulk API"
    options = {
        "url": Option("url", None, "Elasticsearch URL, e.g. https://es.example.com:9200", required=True),
        "username": Option("str", "", "basic-auth user; empty = no basic auth"),
        "password": Option("str", "", "basic-auth password (or password_file = /path)", secret=True),
        "api_key": Option("str", "", "API key, base64 'encoded' form or id:key (or api_key_file = /path)",
                          secret=True),
        "data_stream_namespace": Option("str", "default", "namespace part of the data stream name",
                                        check=_check_namespace),
        "data_stream_pattern": Option("str", "logs-{dataset}-{namespace}",
                                      "data stream name; {dataset} is event.dataset made name-safe",
                                      check=_check_pattern),
        "gzip": Option("bool", "true", "gzip request bodies"),
        "gzip_level": gzip_level_option(),
        "batch_max_events": Option("int", "1000", "events per _bulk request", minimum=1, maximum=100000),
        "batch_max_bytes": Option("size", "5MiB", "uncompressed bytes per _bulk request (ES default cap: 100MB)",
                                  minimum=1024, maximum=1024 * 1024 * 1024),
        "timeout": timeout_option("30s"),
        **TLS_OPTIONS,
    }

    def __init__(self, name: str, conf: dict, context=None, transport: Optional[httpx.BaseTransport] = None):
        super().__init__(name, conf, context, transport)
        headers = {"Content-Type": "application/x-ndjson", "Accept": "application/json",
                   "User-Agent": f"agentd/{__version__}"}
        if conf.get("api_key"):
            headers["Authorization"] = api_key_header(_reveal(conf["api_key"]))
        elif conf.get("username"):
            cred = f"{conf['username']}:{_reveal(conf.get('password') or '')}".encode()
            headers["Authorization"] = f"Basic {base64.b64encode(cred).decode()}"
        self.connect(conf["url"], headers)
        self.namespace = conf.get("data_stream_namespace") or "default"
        self.pattern = conf.get("data_stream_pattern") or "logs-{dataset}-{namespace}"
        self._names: dict = {}
        self.stats = {"posts": 0, "splits": 0}

    @classmethod
    def validate_conf(cls, conf: dict) -> list:
        errors = super().validate_conf(conf)
        if conf.get("password") and not conf.get("username"):
            errors.append(("password", "password is set but username is not; set both"))
        if conf.get("api_key") and conf.get("username"):
            errors.append(("api_key", "set either api_key or username/password, not both"))
        return errors

    def index_for(self, doc: dict) -> str:
        ds = get_path(doc, "event.dataset")
        name = self._names.get(ds)
        if name is None:
            name = self.pattern.format(dataset=dataset_name(ds), namespace=self.namespace, type="logs")
            if len(self._names) < 1000:
                self._names[ds] = name
        return name

    def encode(self, doc: dict, raw: Optional[bytes] = None) -> bytes:
        """The _bulk action and source lines; ``raw`` is ``doc`` already serialized."""
        meta: dict = {"_index": self.index_for(doc)}
        eid = get_path(doc, "event.id")
        if isinstance(eid, str) and eid:
            meta["_id"] = eid
        source = raw if raw is not None else orjson.dumps(doc, option=orjson.OPT_NON_STR_KEYS)
        return b"".join((orjson.dumps({"create": meta}), b"\n", source, b"\n"))

    def send(self, events: list, raw: Optional[list] = None) -> SendResult:
        out = SendResult()
        if not events:
            return out
        lines = [self.encode(e, raw[i] if raw is not None else None) for i, e in enumerate(events)]
        groups = chunks([len(x) for x in lines], self.conf.get("batch_max_events") or 1000,
                        self.conf.get("batch_max_bytes") or 5 * 1024 * 1024)
        for g, idxs in enumerate(groups):
            if not self._ship(idxs, lines, out):
                for rest in groups[g + 1:]:
                    out.retry.extend(rest)
                break
        if out.error and out.retry:
            self.condition.error(out.error)
        elif not out.retry:
            self.condition.clear()
        return out

    def _ship(self, idxs: list, lines: list, out: SendResult) -> bool:
        work = deque([idxs])
        while work:
            cur = work.popleft()
            try:
                resp = self.post("/_bulk", b"".join(lines[i] for i in cur))
            except httpx.HTTPError as e:
                return self._stop(cur, work, out, f"Elasticsearch {describe_exception(e)}", None)
            st = resp.status_code
            if st == 200:
                if not self._items(cur, resp, out):
                    return self._stop(cur, work, out, f"Elasticsearch _bulk: unreadable answer: {short_body(resp)}",
                                      None)
                continue
            if st == 413 or (st == 400 and len(cur) > 1):
                # 400 on the whole request means ES could not parse it; halving finds the event.
                if len(cur) == 1:
                    out.rejected.append((cur[0], f"Elasticsearch {st}: {_reason(resp)}"))
                else:
                    self.stats["splits"] += 1
                    half = len(cur) // 2
                    work.appendleft(cur[half:])
                    work.appendleft(cur[:half])
                continue
            if st == 400:
                out.rejected.append((cur[0], f"Elasticsearch 400: {_reason(resp)}"))
                continue
            hint = " (check username/password or api_key)" if st == 401 else (
                " (the user may not write to the data stream)" if st == 403 else "")
            return self._stop(cur, work, out, f"Elasticsearch {st}: {_reason(resp)}{hint}",
                              parse_retry_after(resp.headers.get("Retry-After")))
        return True

    @staticmethod
    def _stop(cur: list, work: deque, out: SendResult, error: str, retry_after: Optional[float]) -> bool:
        out.retry.extend(cur)
        while work:
            out.retry.extend(work.popleft())
        out.error = error
        out.retry_after = retry_after
        return False

    def _items(self, cur: list, resp: httpx.Response, out: SendResult) -> bool:
        try:
            body = orjson.loads(resp.content)
            items = body["items"]
        except (orjson.JSONDecodeError, KeyError, TypeError):
            return False
        if not isinstance(items, list):
            return False
        retry_reason = ""
        for pos, i in enumerate(cur):
            if pos >= len(items):
                out.retry.append(i)  # ES answered fewer items than sent: never assume success
                retry_reason = retry_reason or "fewer _bulk items than sent"
                continue
            item = items[pos]
            res = next(iter(item.values()), {}) if isinstance(item, dict) and item else {}
            st = res.get("status", 0) if isinstance(res, dict) else 0
            if 200 <= st < 300 or st == 409:
                out.delivered.append(i)
            elif st == 429 or st >= 500 or not st:
                out.retry.append(i)
                retry_reason = retry_reason or f"item {st}: {_item_reason(res)}"
            else:
                out.rejected.append((i, f"Elasticsearch {st}: {_item_reason(res)}"))
        if retry_reason and not out.error:
            out.error = f"Elasticsearch _bulk {retry_reason}"
        return True

    def health(self) -> tuple:
        try:
            resp = self.client.get("/")
        except httpx.HTTPError as e:
            return False, f"Elasticsearch {describe_exception(e)}"
        if resp.status_code != 200:
            return False, f"Elasticsearch {resp.status_code}: {_reason(resp)}"
        if resp.headers.get("X-Elastic-Product") != "Elasticsearch":
            return False, "the server did not identify itself as Elasticsearch (no X-Elastic-Product header)"
        try:
            info = orjson.loads(resp.content)
            version = info["version"]["number"]
            cluster = info.get("cluster_name", "?")
        except (orjson.JSONDecodeError, KeyError, TypeError):
            return False, "GET / did not return Elasticsearch cluster information"
        return True, f"Elasticsearch {version}, cluster {cluster}"


def _reveal(v) -> str:
    return v.reveal() if hasattr(v, "reveal") else str(v)


def _item_reason(res: dict) -> str:
    err = res.get("error") if isinstance(res, dict) else None
    if isinstance(err, dict):
        reason = f"{err.get('type', 'error')}: {err.get('reason', '')}"
        cause = err.get("caused_by")
        if isinstance(cause, dict) and cause.get("reason"):
            reason += f" (caused by {cause.get('type')}: {cause.get('reason')})"
        return reason
    return str(err or "no reason given")


def _reason(resp: httpx.Response) -> str:
    try:
        body = orjson.loads(resp.content)
        err = body.get("error")
        if isinstance(err, dict):
            return f"{err.get('type', 'error')}: {err.get('reason', '')}"
        if isinstance(err, str):
            return err
    except (orjson.JSONDecodeError, AttributeError):
        pass
    return short_body(resp) or resp.reason_phrase
