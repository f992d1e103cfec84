"""The whole agent (`agentd run`) on the real stack, shipping to the strict test SIEM.

One agent runs three shippers over the same spool: `file`, `splunk_hec` (token
from a token_file, gzip) and `elasticsearch` (password_file or api_key_file),
the last two against the test SIEM (tests/siem) in this process on an ephemeral
127.0.0.1 port. Real SSH sessions on the jump host make the audit events.

- What HEC and ES accepted is exactly what the file shipper wrote: same event
  ids, same order, nothing else.
- With a SIEM fault on for a few seconds while a session runs commands, nothing
  is lost once it clears; ES never stores an _id twice; HEC duplicates exist
  only where acks were lost, or (reset after store, down) at most the one batch
  whose answer the server dropped after storing it.
- An event ES rejects (400, mapping conflict) is dead-lettered with ES's reason,
  every other event is delivered.
- The HEC token, the ES password and API key never appear in the agent's log,
  status file, spool or argv.
"""

# ruff: noqa: F811  (pytest fixtures are used as arguments)
from __future__ import annotations

import base64
import collections
import glob
import json
import os
import subprocess
import time
import uuid
from typing import Callable, Optional

import pytest

from tests.siem.hec import HecToken
from tests.siem.server import SiemServer
from tests.system import spool_bytes
from tests.system.agentd_proc import AgentProc, tokens_in

pytestmark = pytest.mark.stack

# Fresh secrets per run: finding one anywhere can only mean the agent leaked it.
HEC_TOKEN = str(uuid.uuid4())
HEC_ACK_TOKEN = str(uuid.uuid4())
ES_USER = "agentd"
ES_PASSWORD = f"pw-{uuid.uuid4().hex}"
ES_KEY_ID, ES_KEY = uuid.uuid4().hex[:20], uuid.uuid4().hex
WRONG_PASSWORD = f"wrong-{uuid.uuid4().hex}"
SECRETS = {
    "HEC token": HEC_TOKEN,
    "HEC ack token": HEC_ACK_TOKEN,
    "ES password": ES_PASSWORD,
    "ES API key": ES_KEY,
    "wrong ES password": WRONG_PASSWORD,
    "ES basic header": base64.b64encode(f"{ES_USER}:{ES_PASSWORD}".encode()).decode(),
    "ES ApiKey header": base64.b64encode(f"{ES_KEY_ID}:{ES_KEY}".encode()).decode(),
}


class Siem:
    """The test SIEM plus a record of every HEC ingest request: the event ids it
    stored, and its Content-Encoding."""

    def __init__(self):
        self.server = SiemServer(hec_tokens={HEC_TOKEN: HecToken(), HEC_ACK_TOKEN: HecToken(ack=True)},
                                 es_users={ES_USER: ES_PASSWORD}, es_api_keys={ES_KEY_ID: ES_KEY})
        self.hec_requests: list = []  # [(content-encoding, [event ids stored])]
        hec = self.server.hec
        orig = hec.event

        def event(query, headers, body):
            # One HEC shipper sends one request at a time, so the events appended
            # during this call are this request's.
            with hec.lock:
                n0 = len(hec.events)
            out = orig(query, headers, body)
            with hec.lock:
                stored = [o["event"]["event"]["id"] for o in hec.events[n0:]]
            self.hec_requests.append((headers.get("Content-Encoding"), stored))
            return out

        hec.event = event

    @property
    def url(self) -> str:
        return self.server.url

    def hec_docs(self) -> list:
        return [o["event"] for o in self.server.hec_events]

    def es_docs(self) -> list:
        return [d["_source"] for d in self.server.es_docs]


@pytest.fixture
def siem():
    s = Siem()
    s.server.start()
    try:
        yield s
    finally:
        s.server.stop()


def secret_file(tmp_path, name: str, value: str) -> str:
    path = tmp_path / name
    path.write_text(value + "\n")
    path.chmod(0o600)
    return str(path)


def start_agent(tmp_path, siem: Siem, es_auth: str = "basic", use_ack: bool = False,
                extra_shippers: str = "") -> AgentProc:
    out = tmp_path / "out" / "events.jsonl"
    token = secret_file(tmp_path, "hec.token", HEC_ACK_TOKEN if use_ack else HEC_TOKEN)
    if es_auth == "basic":
        auth = f"username = {ES_USER}\npassword_file = {secret_file(tmp_path, 'es.password', ES_PASSWORD)}\n"
    else:
        auth = f"api_key_file = {secret_file(tmp_path, 'es.api_key', f'{ES_KEY_ID}:{ES_KEY}')}\n"
    ack = "use_ack = true\nack_timeout = 1s\n" if use_ack else ""
    shippers = (f"[shipper:file]\ntype = file\npath = {out}\n\n"
                f"[shipper:hec]\ntype = splunk_hec\nurl = {siem.url}\ntoken_file = {token}\ngzip = true\n"
                f"timeout = 5s\n{ack}\n"
                f"[shipper:es]\ntype = elasticsearch\nurl = {siem.url}\n{auth}gzip = true\ntimeout = 5s\n\n"
                f"{extra_shippers}")
    agent = AgentProc(tmp_path, agent_extra="retry_max_backoff = 1s\nbatch_linger = 50ms\n", shippers=shippers)
    assert agent.out == str(out)
    return agent.start()


def ids(docs: list) -> list:
    return [d["event"]["id"] for d in docs]


def first_seen(seq: list) -> list:
    seen: set = set()
    return [x for x in seq if not (x in seen or seen.add(x))]


def wait_until(what: str, predicate: Callable, agent: AgentProc, timeout: float = 30.0):
    return agent.until(what, predicate, timeout)


def caught_up(agent: AgentProc, siem: Siem, sent: list, prefix: str, es_missing: frozenset = frozenset()):
    """A predicate: every sent token is in the file, and HEC and ES hold every event
    the file does (ES: but ``es_missing``), and nothing the file does not."""
    def check():
        f, h, e = agent.events(), siem.hec_docs(), siem.es_docs()
        if not set(sent) <= set(tokens_in(f, prefix)):
            return None
        fid = set(ids(f))
        if set(ids(h)) == fid and set(ids(e)) == fid - es_missing:
            return f, h, e
        return None
    return check


def assert_no_secrets(agent: AgentProc) -> None:
    """No secret in the agent's log, status file, dead letters, outputs or spool."""
    places = [agent.log, agent.out, os.path.join(agent.state, "status.json")]
    places += glob.glob(os.path.join(agent.state, "dead-letter", "*"))
    places += glob.glob(os.path.join(agent.state, "spool.db*"))
    for path in places:
        try:
            if "spool.db" in os.path.basename(path):
                data = spool_bytes.readable(path)  # its rows are compressed
            else:
                with open(path, "rb") as fh:
                    data = fh.read()
        except FileNotFoundError:
            continue
        for what, value in SECRETS.items():
            assert value.encode() not in data, f"the {what} is in {path}"


def run_window(s, prefix: str, n: int, seconds: float) -> list:
    """The session runs ``n`` commands spread over about ``seconds``."""
    toks = [f"{prefix}{i}" for i in range(n)]
    t0 = time.monotonic()
    s.run(f"for t in {' '.join(toks)}; do /bin/echo $t >/dev/null; sleep 0.02; done", timeout=60)
    left = seconds - (time.monotonic() - t0)
    if left > 0:
        time.sleep(left)
    return toks


# -- 1. both SIEMs get exactly what the file shipper wrote ---------------------

def test_hec_and_es_hold_exactly_what_the_file_shipper_wrote(stack, ssh_session, tmp_path, siem):
    agent = start_agent(tmp_path, siem, es_auth="basic")
    prefix = f"siem-both-{uuid.uuid4().hex[:6]}-"
    s = ssh_session("alice")
    sent = [f"{prefix}{i}" for i in range(40)]
    s.run(f"cd /tmp && for t in {' '.join(sent)}; do /bin/echo $t >/dev/null; done")
    s.close()

    # All three shippers read the same spool; wait for a moment they agree exactly.
    def agree():
        f, h, e = agent.events(), siem.hec_docs(), siem.es_docs()
        if set(sent) <= set(tokens_in(f, prefix)) and ids(f) == ids(h) == ids(e):
            return f, h, e
        return None

    f, h, e = wait_until("HEC, ES and the file hold the same events", agree, agent)
    assert tokens_in(f, prefix) == sent, "each command once, in the order it ran"
    assert len(set(ids(f))) == len(f), "no duplicate in the file"
    assert h == f and e == f, "HEC and ES got the very documents the file shipper wrote"
    assert {d["event"]["dataset"] for d in f} >= {"auditd.process"}
    token_evs = [d for d in h if set(d.get("process", {}).get("args") or []) & set(sent)]
    assert len(token_evs) == len(sent)
    assert all(d["agentd"]["user"]["audit"]["name"] == "alice" and d["process"]["working_directory"] == "/tmp"
               for d in token_evs)

    # HEC metadata and transport: every request gzip, the HEC envelope filled in.
    assert siem.hec_requests and all(enc == "gzip" for enc, _ in siem.hec_requests)
    for obj in siem.server.hec_events:
        assert obj["sourcetype"] == "agentd:ecs" and obj["source"] == "agentd" and obj["index"] == "main"
        assert obj["host"] == obj["event"]["host"]["name"] and isinstance(obj["time"], float)
    # ES: a create into the event's data stream, _id = event.id.
    for d in siem.server.es_docs:
        assert d["op"] == "create" and d["_id"] == d["_source"]["event"]["id"]
        assert d["_index"] == f"logs-{d['_source']['event']['dataset']}-default"

    assert agent.stop() == 0
    # Stopped: each output is still a prefix of the others (events may have come
    # in just before the stop), never a different sequence.
    f, h, e = ids(agent.events()), ids(siem.hec_docs()), ids(siem.es_docs())
    longest = max((f, h, e), key=len)
    assert all(x == longest[:len(x)] for x in (f, h, e))
    assert not os.path.exists(os.path.join(agent.state, "dead-letter", "shipper-hec.jsonl"))
    assert not os.path.exists(os.path.join(agent.state, "dead-letter", "shipper-es.jsonl"))
    assert "ERROR agentd.ship" not in agent.log_text()
    assert_no_secrets(agent)


# -- 2. faults: nothing lost, ES no duplicate, HEC duplicates only where allowed --

FAULTS = {
    # name: (fault settings during the window, use_ack)
    "down": ({}, False),  # connection refused; open connections closed
    "slow": ({"slow": 0.4}, False),  # every answer 0.4 s late (below the 5 s timeout)
    "busy": ({"busy_next": 8, "retry_after": "1"}, False),  # HEC 503 code 9 / ES 429, Retry-After: 1
    "item_429": ({"es_item_429_pct": 30}, False),  # 30 % of the _bulk items answered 429
    "reset": ({"reset_next": 6}, False),  # read the request, then RST before processing it
    "reset_after_store": ({"reset_after_store_next": 1}, False),  # store it, then RST instead of answering
    "lost_acks": ({"lost_acks": True}, True),  # HEC with use_ack: acks never turn true
}
WINDOW = 3.0


def whole_batches_lost(siem: Siem, counts: collections.Counter) -> list:
    """The HEC requests whose events were stored twice, as (request's ids, all twice?)."""
    dups = {k for k, c in counts.items() if c > 1}
    batches, covered = [], set()
    for _, stored in siem.hec_requests:
        if set(stored) & dups and not set(stored) <= covered:
            batches.append(stored)
            covered |= set(stored)
    assert covered >= dups
    return batches


@pytest.mark.parametrize("fault", list(FAULTS))
def test_fault_window_loses_nothing_and_duplicates_only_what_it_may(stack, ssh_session, tmp_path, siem, fault):
    settings, use_ack = FAULTS[fault]
    agent = start_agent(tmp_path, siem, es_auth="api_key", use_ack=use_ack)
    prefix = f"siem-{fault.replace('_', '')}-{uuid.uuid4().hex[:6]}-"
    s = ssh_session("alice")
    s.run("true")  # the login's own events go out before the fault

    if fault == "down":
        siem.server.down()
    else:
        siem.server.set_faults(**settings)
    sent = run_window(s, prefix, 80, WINDOW)
    if fault == "down":
        siem.server.up()
    else:
        siem.server.clear_faults()
    with siem.server.hec.lock:
        hec_at_clear = len(siem.server.hec.events)
    sent += run_window(s, prefix + "after-", 10, 0)
    s.close()

    f, h, e = wait_until("every event in HEC and ES after the fault", caught_up(agent, siem, sent, prefix), agent,
                         timeout=40)
    assert agent.stop() == 0
    log = agent.log_text()

    # Nothing lost: every command of the session, in every output.
    for name, docs in (("file", f), ("HEC", h), ("ES", e)):
        assert set(tokens_in(docs, prefix)) == set(sent), f"{name} lost a command"

    # ES: never an _id twice, whatever the fault.
    es_ids = [d["_id"] for d in siem.server.es_docs]
    es_dups = len(es_ids) - len(set(es_ids))
    assert es_dups == 0

    hec_counts = collections.Counter(ids(h))
    hec_dups = sum(c - 1 for c in hec_counts.values())
    print(f"\n{fault}: {len(f)} events; HEC duplicate copies {hec_dups}, ES duplicate _ids {es_dups}")

    # Order per shipper: the first copy of each event arrives in spool order; ES
    # too, except that items answered 429 are re-sent after the rest of their batch.
    assert first_seen(ids(h)) == ids(f)
    if fault != "item_429":
        assert ids(e) == ids(f)

    if fault == "lost_acks":
        # Events sent while acks were lost are re-sent after ack_timeout: they may
        # come several times; nothing first stored after the fault cleared does.
        assert hec_dups > 0, "acks were lost, so HEC saw re-sends"
        first = {}
        for pos, k in enumerate(ids(h)):
            first.setdefault(k, pos)
        assert all(first[k] < hec_at_clear for k, c in hec_counts.items() if c > 1)
    elif fault in ("reset_after_store", "down"):
        # HEC stored a request and its answer was lost (RST after storing; or the
        # server going down closed the connection between storing and answering):
        # the agent cannot know and re-sends that batch. At most that one batch
        # (the HEC shipper has one request in flight), each of its events twice.
        batches = whole_batches_lost(siem, hec_counts)
        assert len(batches) <= 1
        for batch in batches:
            assert all(hec_counts[k] == 2 for k in batch)
        assert hec_dups == sum(len(b) for b in batches)
    else:
        # The request was refused, answered with an error, or not processed at
        # all: HEC did not store it, so the re-send is the only copy.
        assert hec_dups == 0

    # The fault was really met.
    if fault in ("busy",):
        assert siem.server.counts["busy"] >= 1
    if fault in ("reset", "reset_after_store"):
        assert siem.server.counts["reset"] >= 1
    if fault == "reset_after_store":
        assert siem.server.counts["reset"] == 1
    if fault == "item_429":
        assert "item 429" in log
    if fault == "slow":
        assert "ERROR agentd.ship" not in log, "slow answers within the timeout are not an error"
    if fault in ("down", "busy", "reset"):
        assert "ERROR agentd.ship: shipper:hec:" in log and "ERROR agentd.ship: shipper:es:" in log
        assert "shipper:hec: recovered after" in log and "shipper:es: recovered after" in log
    assert not glob.glob(os.path.join(agent.state, "dead-letter", "shipper-*"))
    assert_no_secrets(agent)


# -- 3. an event ES rejects goes to the dead-letter file with ES's reason --------

def test_es_rejected_event_is_dead_lettered_with_the_reason_and_the_rest_delivered(stack, ssh_session, tmp_path,
                                                                                  siem):
    agent = start_agent(tmp_path, siem)
    prefix = f"siem-dl-{uuid.uuid4().hex[:6]}-"
    bad = f"{prefix}conflict"
    # The ES side maps process.args as long (an index template conflict): the one
    # event whose args hold `bad` cannot be indexed there.
    siem.server.set_faults(es_mapping_conflict={"field": "process.args", "contains": bad})
    sent = [f"{prefix}{i}" for i in range(10)] + [bad] + [f"{prefix}{i}" for i in range(10, 20)]
    s = ssh_session("alice")
    s.run(f"for t in {' '.join(sent)}; do /bin/echo $t >/dev/null; done")
    s.close()

    def bad_event():
        evs = [d for d in agent.events() if bad in (d.get("process", {}).get("args") or [])]
        return evs[0] if evs else None

    bad_ev = wait_until("the conflicting event in the file", bad_event, agent)
    bad_id = bad_ev["event"]["id"]
    f, h, e = wait_until("every other event delivered",
                         caught_up(agent, siem, sent, prefix, es_missing=frozenset([bad_id])), agent)
    dl_path = os.path.join(agent.state, "dead-letter", "shipper-es.jsonl")
    wait_until("the dead letter", lambda: os.path.exists(dl_path) and os.path.getsize(dl_path), agent, 10)
    assert agent.stop() == 0

    with open(dl_path) as fh:
        (entry,) = [json.loads(line) for line in fh]
    assert entry["shipper"] == "es" and entry["event"] == bad_ev and isinstance(entry["seq"], int)
    reason = entry["reason"]
    assert reason.startswith("Elasticsearch 400: document_parsing_exception: "), reason
    assert f"failed to parse field [process.args] of type [long] in document with id '{bad_id}'" in reason
    assert f"Preview of field's value: '{bad}'" in reason
    assert f'(caused by illegal_argument_exception: For input string: "{bad}")' in reason

    assert bad not in tokens_in(e, prefix) and bad_id not in ids(e)
    assert sorted(tokens_in(e, prefix)) == sorted(set(sent) - {bad})
    assert ids(h) == ids(f) and tokens_in(h, prefix) == sent, "HEC took it: only ES rejected it"
    es_ids = [d["_id"] for d in siem.server.es_docs]
    assert len(es_ids) == len(set(es_ids))
    assert f"WARNING agentd.ship: shipper:es rejected event {bad_id}: Elasticsearch 400" in agent.log_text()
    assert not os.path.exists(os.path.join(agent.state, "dead-letter", "shipper-hec.jsonl"))
    assert_no_secrets(agent)


# -- 4. secrets stay out of the log and argv -----------------------------------

def ps_args(pid: Optional[int] = None) -> str:
    argv = ["ps", "-ww", "-o", "pid=,args="] + (["-p", str(pid)] if pid else ["-e"])
    return subprocess.run(argv, capture_output=True, text=True, check=True).stdout


def test_secrets_never_in_the_log_or_argv(stack, ssh_session, tmp_path, siem):
    # Also an ES shipper with a wrong password (401 on every try) and a SIEM
    # outage: the error paths are where a careless agent would print a header.
    wrong = secret_file(tmp_path, "wrong.password", WRONG_PASSWORD)
    bad_es = (f"[shipper:es_badpw]\ntype = elasticsearch\nurl = {siem.url}\nusername = {ES_USER}\n"
              f"password_file = {wrong}\n")
    agent = start_agent(tmp_path, siem, es_auth="api_key", extra_shippers=bad_es)
    prefix = f"siem-sec-{uuid.uuid4().hex[:6]}-"

    own = ps_args(agent.proc.pid)
    assert agent.conf in own and "agent.app.cli run" in own
    with open(f"/proc/{agent.proc.pid}/cmdline", "rb") as fh:
        cmdline = fh.read()
    everyone = ps_args()
    for what, value in SECRETS.items():
        assert value not in own and value.encode() not in cmdline, f"the {what} is in the agent's argv"
        assert value not in everyone, f"the {what} is in some process's argv"

    s = ssh_session("alice")
    sent = [f"{prefix}{i}" for i in range(10)]
    s.run(f"for t in {' '.join(sent)}; do /bin/echo $t >/dev/null; done")
    siem.server.down()
    sent += run_window(s, prefix + "down-", 10, 2.0)
    siem.server.up()
    s.close()

    def delivered():
        h, e = siem.hec_docs(), siem.es_docs()
        return set(sent) <= set(tokens_in(h, prefix)) and set(sent) <= set(tokens_in(e, prefix))

    wait_until("delivered after the outage", delivered, agent)
    time.sleep(2.5)  # status.json is rewritten every 2 s
    assert agent.stop() == 0

    log = agent.log_text()
    # The log does talk about these shippers and their failures...
    assert "ERROR agentd.ship: shipper:hec:" in log and "shipper:hec: recovered after" in log
    assert "shipper:es_badpw:" in log and "401" in log and "security_exception" in log
    # ...and never shows a secret, not even the wrong one or an encoded header.
    for what, value in SECRETS.items():
        assert value not in log, f"the {what} is in the agent's log"
    assert_no_secrets(agent)
    with open(agent.conf) as fh:
        conf = fh.read()
    assert HEC_TOKEN not in conf and ES_KEY not in conf, "the test itself keeps secrets in files only"

