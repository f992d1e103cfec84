"""Fuzz: parse_line raises only ParseError; what it accepts never breaks later stages."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agent.base.events import HostInfo, dumps
from collectors.auditd.normalize import Normalizer
from collectors.auditd.parse import ParseError, parse_line
from collectors.auditd.reassemble import Gap, Reassembler

NORM = Normalizer(HostInfo("h", "id"))
TYPES = ["SYSCALL", "EXECVE", "PROCTITLE", "SOCKADDR", "PATH", "CWD", "USER_LOGIN", "USER_CMD",
         "CONFIG_CHANGE", "TTY", "USER_TTY", "LOGIN", "DAEMON_START", "EOE", "UNKNOWN[1334]", "X"]
NAMES = ["a0", "a1", "a1[0]", "a1_len", "argc", "saddr", "proctitle", "uid", "auid", "ses", "pid",
         "key", "exe", "comm", "name", "cwd", "data", "lost", "old", "op", "res", "acct", "addr",
         "success", "syscall", "arch", "nametype", "msg"]
value = st.one_of(st.text(alphabet="0123456789ABCDEFabcdef", max_size=20),
                  st.sampled_from(["(null)", "?", "(none)", "", "set", "4294967295", "-115", "yes"]),
                  st.text(max_size=12).map(lambda s: '"' + s + '"'),
                  st.text(max_size=12).map(lambda s: "'" + s + "'"))
field = st.tuples(st.sampled_from(NAMES), value).map(lambda kv: f"{kv[0]}={kv[1]}")
line = st.builds(
    lambda node, t, sec, ms, serial, fields, enr: (
        (f"node={node} " if node else "") + f"type={t} msg=audit({sec}.{ms:03d}:{serial}): "
        + " ".join(fields) + (("\x1d" + enr) if enr else "")).encode("utf-8", "surrogateescape"),
    st.sampled_from(["", "n1"]), st.sampled_from(TYPES), st.integers(0, 10), st.integers(0, 999),
    st.integers(0, 12), st.lists(field, max_size=8), st.text(max_size=30))


@settings(max_examples=400, deadline=None)
@given(st.binary(max_size=300))
def test_parse_line_only_raises_parse_error(data):
    try:
        rec = parse_line(data)
    except ParseError:
        return
    rec.fields, rec.enriched  # noqa: B018 - lazy parsing must not raise either


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(line, min_size=1, max_size=12))
def test_pipeline_never_raises_on_accepted_records(lines):
    r = Reassembler(timeout=2.0)
    items = []
    for i, raw in enumerate(lines):
        try:
            rec = parse_line(raw, i)
        except ParseError:
            continue
        items += r.push(rec)
        r.pending_min_offset()
    items += r.flush()
    for it in items:
        docs = [NORM.gap(it)] if isinstance(it, Gap) else NORM.normalize(it)
        for d in docs:
            dumps(d)
