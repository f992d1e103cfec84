"""The Elasticsearch half of the test SIEM: the _bulk API as ES 8 answers it.

Strict where ES is: NDJSON with the final newline, Content-Type, auth (basic and
ApiKey) with the security_exception bodies, data streams (``logs-*-*``) that take
only ``create`` and require a parseable ``@timestamp``, 409 on a duplicate
``_id``, 413 over ``http.max_content_length``, per-item statuses with a top-level
``errors`` flag, and ``X-Elastic-Product: Elasticsearch`` on authenticated answers.
"""

from __future__ import annotations

import base64
import datetime as dt
import fnmatch
import json
import random
import re
import threading
import time
import uuid
from typing import Optional

VERSION = "8.13.4"
_JSON = {"Content-Type": "application/json", "X-Elastic-Product": "Elasticsearch"}
_BAD_INDEX = re.compile(r'[A-Z\\/*?"<>| ,#:]')
_DATE = re.compile(r"^\d{4}-\d\d-\d\d([T ]\d\d:\d\d(:\d\d(\.\d{1,9})?)?(Z|[+-]\d\d:?\d\d)?)?$")


def error_body(status: int, etype: str, reason: str, **extra) -> bytes:
    cause = {"type": etype, "reason": reason, **extra}
    return json.dumps({"error": {"root_cause": [cause], **cause}, "status": status}).encode()


class Elasticsearch:
    def __init__(self, users: dict, api_keys: dict, max_body: int, data_streams: tuple, faults, seed: int = 0):
        self.users = users  # name -> password
        self.api_keys = api_keys  # id -> key
        self.max_body = max_body
        self.data_streams = data_streams
        self.faults = faults
        self.rand = random.Random(seed)
        self.lock = threading.Lock()
        self.docs: dict = {}  # index name -> {_id: {"_version", "_seq_no", "_source"}}
        self.accepted: list = []  # {"_index", "_id", "op", "_source"} in the order ES took them
        self.seq = 0
        self.day = dt.datetime.now(dt.timezone.utc).strftime("%Y.%m.%d")
        self.uuid = uuid.uuid4().hex[:22]

    def reset(self) -> None:
        with self.lock:
            self.docs.clear()
            self.accepted.clear()

    def _auth(self, headers, path: str) -> Optional[tuple]:
        if not self.users and not self.api_keys:
            return None
        www = {"WWW-Authenticate": 'Basic realm="security" charset="UTF-8", ApiKey'}
        value = headers.get("Authorization") or ""
        scheme, _, cred = value.partition(" ")
        if scheme == "Basic":
            user, pw = _credentials(cred)
            if user in self.users and self.users[user] == pw:
                return None
            reason = f"unable to authenticate user [{user}] for REST request [{path}]"
        elif scheme == "ApiKey":
            kid, key = _credentials(cred)
            if kid in self.api_keys and self.api_keys[kid] == key:
                return None
            reason = "unable to authenticate with provided credentials and anonymous access is not allowed for this request"
        else:
            reason = f"missing authentication credentials for REST request [{path}]"
        # No X-Elastic-Product here: ES only sends it on authenticated answers.
        return 401, {"Content-Type": "application/json", **www}, error_body(
            401, "security_exception", reason,
            header={"WWW-Authenticate": ['Basic realm="security" charset="UTF-8"', "ApiKey"]})

    def handle(self, method: str, path: str, query: dict, headers, body: Optional[bytes]) -> tuple:
        denied = self._auth(headers, path)
        if denied:
            return denied
        if path == "/" and method in ("GET", "HEAD"):
            info = {"name": "siem-test-node", "cluster_name": "agentd-test", "cluster_uuid": self.uuid,
                    "version": {"number": VERSION, "build_flavor": "default", "build_type": "tar",
                                "lucene_version": "9.10.0", "minimum_wire_compatibility_version": "7.17.0",
                                "minimum_index_compatibility_version": "7.0.0"},
                    "tagline": "You Know, for Search"}
            return 200, dict(_JSON), b"" if method == "HEAD" else json.dumps(info).encode()
        if path == "/_cluster/health" and method == "GET":
            h = {"cluster_name": "agentd-test", "status": "green", "timed_out": False, "number_of_nodes": 1,
                 "number_of_data_nodes": 1, "active_primary_shards": len(self.docs), "active_shards": len(self.docs),
                 "relocating_shards": 0, "initializing_shards": 0, "unassigned_shards": 0,
                 "active_shards_percent_as_number": 100.0}
            return 200, dict(_JSON), json.dumps(h).encode()
        m = re.fullmatch(r"(?:/([^/_][^/]*))?/_bulk/?", path)
        if m and method in ("POST", "PUT"):
            return self.bulk(m.group(1), headers, body)
        if m:
            return 405, dict(_JSON), error_body(405, "illegal_argument_exception",
                                                f"Incorrect HTTP method for uri [{path}] and method [{method}], allowed: [POST, PUT]")
        return 400, dict(_JSON), json.dumps({"error": f"no handler found for uri [{path}] and method [{method}]"}).encode()

    def busy(self) -> tuple:
        reason = ("rejected execution of coordinating operation [coordinating_and_primary_bytes=0, replica_bytes=0, "
                  "all_bytes=0, coordinating_operation_bytes=1024, max_coordinating_and_primary_bytes=1024]")
        return 429, dict(_JSON), error_body(429, "es_rejected_execution_exception", reason)

    def too_large(self, length: int) -> bool:
        return length > self.max_body

    def bulk(self, path_index: Optional[str], headers, body: Optional[bytes]) -> tuple:
        ctype = (headers.get("Content-Type") or "").split(";")[0].strip().lower()
        if ctype not in ("application/x-ndjson", "application/json"):
            return 406, dict(_JSON), json.dumps({"error": f"Content-Type header [{headers.get('Content-Type')}] "
                                                          "is not supported", "status": 406}).encode()
        if body is None:
            return 400, dict(_JSON), error_body(400, "parse_exception", "request body is not valid gzip")
        if len(body) > self.max_body:
            return 413, {"Content-Type": "text/plain"}, b""
        if not body.strip():
            return 400, dict(_JSON), error_body(400, "action_request_validation_exception",
                                                "Validation Failed: 1: no requests added;")
        if not body.endswith(b"\n"):
            return 400, dict(_JSON), error_body(400, "illegal_argument_exception",
                                                "The bulk request must be terminated by a newline [\\n]")
        lines = body.split(b"\n")[:-1]
        ops = []
        i = 0
        while i < len(lines):
            try:
                action = json.loads(lines[i])
            except ValueError:
                return 400, dict(_JSON), error_body(400, "x_content_parse_exception",
                                                    f"[1:1] Unexpected character in action line [{i + 1}]")
            if not isinstance(action, dict) or len(action) != 1:
                return 400, dict(_JSON), error_body(400, "illegal_argument_exception",
                                                    f"Malformed action/metadata line [{i + 1}], expected START_OBJECT")
            op, meta = next(iter(action.items()))
            if op not in ("index", "create", "update", "delete") or not isinstance(meta, dict):
                return 400, dict(_JSON), error_body(400, "illegal_argument_exception",
                                                    f"Malformed action/metadata line [{i + 1}], expected field [create], "
                                                    f"[delete], [index] or [update] but found [{op}]")
            index = meta.get("_index") or path_index
            if not index:
                return 400, dict(_JSON), error_body(400, "action_request_validation_exception",
                                                    "Validation Failed: 1: index is missing;")
            source = None
            if op != "delete":
                i += 1
                if i >= len(lines):
                    return 400, dict(_JSON), error_body(400, "illegal_argument_exception",
                                                        "The bulk request must be terminated by a newline [\\n]")
                source = lines[i]
            ops.append((op, index, meta.get("_id"), source))
            i += 1
        t0 = time.monotonic()
        items = []
        with self.lock:
            for op, index, _id, source in ops:
                items.append({op: self._item(op, index, _id, source)})
        errors = any("error" in next(iter(it.values())) for it in items)
        resp = {"errors": errors, "took": int((time.monotonic() - t0) * 1000), "items": items}
        return 200, dict(_JSON), json.dumps(resp).encode()

    def _item(self, op: str, index: str, _id: Optional[str], source: Optional[bytes]) -> dict:
        is_ds = any(fnmatch.fnmatchcase(index, p) for p in self.data_streams)
        concrete = f".ds-{index}-{self.day}-000001" if is_ds else index
        _id = _id if isinstance(_id, str) and _id else base64.urlsafe_b64encode(uuid.uuid4().bytes)[:20].decode()

        def fail(status: int, etype: str, reason: str) -> dict:
            return {"_index": concrete, "_id": _id, "status": status,
                    "error": {"type": etype, "reason": reason, "index_uuid": self.uuid, "index": concrete}}

        if _BAD_INDEX.search(index) or index.startswith(("-", "_", "+")):
            return fail(400, "invalid_index_name_exception", f"Invalid index name [{index}], must be lowercase")
        if op in ("update", "delete"):
            return fail(400, "illegal_argument_exception", f"{op} is not supported by the agentd test SIEM")
        if is_ds and op != "create":
            return fail(400, "illegal_argument_exception",
                        "only write ops with an op_type of create are allowed in data streams")
        try:
            doc = json.loads(source)
            if not isinstance(doc, dict):
                raise ValueError
        except ValueError:
            return fail(400, "document_parsing_exception", "[1:1] failed to parse: source is not a JSON object")
        if is_ds:
            ts = doc.get("@timestamp")
            if ts is None:
                return fail(400, "document_parsing_exception",
                            f"[1:{len(source)}] failed to parse: data stream timestamp field [@timestamp] is missing")
            if not (isinstance(ts, (int, float)) or (isinstance(ts, str) and _DATE.match(ts))):
                return fail(400, "document_parsing_exception",
                            f"[1:15] failed to parse field [@timestamp] of type [date] in document with id "
                            f"'{_id}'. Preview of field's value: '{ts}'")
        conflict = self.faults.es_mapping_conflict
        if conflict:
            value = _mapping_conflict(doc, conflict)
            if value is not None:
                err = fail(400, "document_parsing_exception",
                           f"[1:{len(source)}] failed to parse field [{conflict['field']}] of type [long] in document "
                           f"with id '{_id}'. Preview of field's value: '{value}'")
                err["error"]["caused_by"] = {"type": "illegal_argument_exception",
                                             "reason": f'For input string: "{value}"'}
                return err
        if self.faults.es_item_429_pct and self.rand.random() * 100 < self.faults.es_item_429_pct:
            return fail(429, "es_rejected_execution_exception",
                        "rejected execution of primary operation [coordinating_and_primary_bytes=0, "
                        "replica_bytes=0, all_bytes=0, primary_operation_bytes=512, "
                        "max_coordinating_and_primary_bytes=512]")
        store = self.docs.setdefault(index, {})
        old = store.get(_id)
        if old is not None and op == "create":
            return fail(409, "version_conflict_engine_exception",
                        f"[{_id}]: version conflict, document already exists (current version [{old['_version']}])")
        self.seq += 1
        version = 1 if old is None else old["_version"] + 1
        store[_id] = {"_version": version, "_seq_no": self.seq, "_source": doc}
        self.accepted.append({"_index": index, "_id": _id, "op": op, "_source": doc})
        return {"_index": concrete, "_id": _id, "_version": version, "result": "created" if old is None else "updated",
                "_shards": {"total": 2, "successful": 1, "failed": 0}, "_seq_no": self.seq, "_primary_term": 1,
                "status": 201 if old is None else 200}


def _mapping_conflict(doc: dict, conflict: dict) -> Optional[str]:
    """The value of ``conflict["field"]`` that contains ``conflict["contains"]``, if any."""
    value = doc.get(conflict["field"])  # a flattened "a.b" key, else the nested path
    if value is None:
        value = doc
        for part in conflict["field"].split("."):
            value = value.get(part) if isinstance(value, dict) else None
    for v in value if isinstance(value, list) else [value]:
        if isinstance(v, str) and conflict["contains"] in v:
            return v
    return None


def _credentials(cred: str) -> tuple:
    """("name", "secret") of base64("name:secret") (Basic and ApiKey); ("", None) when not that."""
    try:
        name, _, secret = base64.b64decode(cred, validate=True).decode().partition(":")
    except (ValueError, UnicodeDecodeError):
        return "", None
    return name, secret
