"""The detection stage on built documents, through the real Pipeline and a real spool:
attempt counting across journal + audit, throttling with a count, alerts counted in
the session, state surviving a restart, config sections with their defaults."""

from __future__ import annotations

import pytest

from agent.base.config import ConfigError, parse_config_text
from agent.base.events import Event, HostInfo, base_doc, make_event_id
from agent.pipeline.detections import options as dopts
from agent.pipeline.pipeline import Pipeline
from agent.pipeline.spool import Spool

HOST = HostInfo("bastion", "hid", "boot")
T0 = 1_800_000_000.0
BASE_CONF = "[collector:a]\ntype = auditd\n[shipper:f]\ntype = file\npath = /tmp/x.jsonl\n"


def _doc(n, ts, module, dataset, action, outcome="success", **fields):
    d = base_doc(host=HOST, timestamp=ts, event_id=make_event_id("t", n, ts), module=module, dataset=dataset,
                 action=action, outcome=outcome)
    d.update(fields)
    return d


def journal_fail(n, ts, ip="198.51.100.7", user="alice", pid=4000):
    return _doc(n, ts, "journald", "sshd.auth", "login-failed", "failure", source={"ip": ip, "port": 5000 + n},
                user={"name": user}, process={"pid": pid})


def audit_fail(n, ts, ip="198.51.100.7", user="alice", pid=4000):
    return _doc(n, ts, "auditd", "auditd.auth", "authentication-failed", "failure", source={"ip": ip},
                user={"name": user}, process={"pid": pid, "executable": "/usr/sbin/sshd"})


def run(pipeline, docs):
    return [e.doc for e in pipeline.apply([Event(d) for d in docs])]


def alerts(docs, rule_id=None):
    return [d for d in docs if d["event"]["kind"] == "alert" and (rule_id is None or d["rule"]["id"] == rule_id)]


def test_one_failed_login_is_one_failure_across_journal_and_audit():
    p = Pipeline({"redact": True}, HOST)
    docs = []
    for i in range(4):  # both sources report each attempt: still 4 attempts
        docs += [audit_fail(2 * i, T0 + i * 10, pid=4000 + i), journal_fail(2 * i + 1, T0 + i * 10 + 0.5, pid=4000 + i)]
    assert alerts(run(p, docs)) == []
    out = run(p, [journal_fail(99, T0 + 50, pid=4010), audit_fail(98, T0 + 50.2, pid=4010)])
    [a] = alerts(out)
    assert a["rule"]["id"] == "agentd-ssh-brute-force" and a["rule"]["ruleset"] == "agentd"
    assert a["agentd"]["alert"]["count"] == 5 and len(a["agentd"]["alert"]["evidence"]) == 5
    assert a["event"]["dataset"] == "agentd.alert" and a["event"]["severity"] == 73
    assert a["threat"]["framework"] == "MITRE ATT&CK" and "T1110" in a["threat"]["technique"]["id"]
    assert a["source"]["ip"] == "198.51.100.7"


def test_unknown_users_count_and_a_burst_gives_one_alert_with_the_next_counting_it():
    p = Pipeline({}, HOST)
    out = run(p, [journal_fail(i, T0 + i, user=f"nouser{i}") for i in range(12)])
    brute = alerts(out, "agentd-ssh-brute-force")
    assert len(brute) == 1  # throttled: one per burst
    assert len(alerts(out, "agentd-ssh-password-spraying")) == 1
    later = run(p, [journal_fail(100 + i, T0 + 700 + i) for i in range(5)])
    [again] = alerts(later, "agentd-ssh-brute-force")
    assert again["agentd"]["alert"]["suppressed_before"] == 7


def login_docs(ses="7", user="alice", ip="203.0.113.9", ts=T0, pid=5000):
    login = _doc(int(ses) * 10, ts, "auditd", "auditd.login", "changed-login-id",
                 auditd={"session": ses, "data": {"auid": "1001", "interpreted": {"AUID": user}}},
                 process={"pid": pid})
    start = _doc(int(ses) * 10 + 1, ts + 0.1, "auditd", "auditd.login", "started-session",
                 auditd={"session": ses, "data": {"exe": "/usr/sbin/sshd", "grantors": "pam_unix,pam_tty_audit"}},
                 process={"pid": pid}, source={"ip": ip})
    return [login, start]


def test_alert_joins_its_session_and_counts_in_the_summary(tmp_path):
    p = Pipeline({}, HOST, sections={"detection:root_or_shared_login": {"accounts": ["root"]}})
    out = run(p, login_docs(user="root"))
    [a] = alerts(out, "agentd-root-or-shared-login")
    assert a["session"]["user"] == "root" and a["session"]["id"] == "hid:boot:7"
    typed = _doc(500, T0 + 5, "auditd", "auditd.tty", "typed", auditd={"session": "7"},
                 keystrokes={"lines": ["history -c", "exit"]})
    [wipe] = alerts(run(p, [typed]), "agentd-history-wipe")
    assert wipe["session"]["id"] == "hid:boot:7" and wipe["agentd"]["alert"]["evidence"] == [typed["event"]["id"]]
    end = _doc(600, T0 + 9, "auditd", "auditd.login", "ended-session", auditd={"session": "7"},
               process={"pid": 5000})
    [summary] = [d for d in run(p, [end]) if d["event"].get("action") == "session-ended"]
    assert summary["agentd"]["session"]["alerts"] == 2


def test_state_survives_a_restart_and_disabled_rule_stays_quiet(tmp_path):
    spool = Spool(str(tmp_path / "spool.db"))
    p = Pipeline({}, HOST, store=spool)
    run(p, [journal_fail(i, T0 + i) for i in range(3)])
    p.commit(force=True)
    p2 = Pipeline({}, HOST, store=spool)
    [a] = alerts(run(p2, [journal_fail(10 + i, T0 + 10 + i) for i in range(2)]), "agentd-ssh-brute-force")
    assert a["agentd"]["alert"]["count"] == 5
    p3 = Pipeline({}, HOST, store=spool, sections={"detection:ssh_brute_force": {"enabled": False}})
    assert alerts(run(p3, [journal_fail(20 + i, T0 + 20 + i) for i in range(5)]), "agentd-ssh-brute-force") == []
    spool.close()


def test_detections_section_absent_means_defaults_and_bad_values_are_reported():
    cfg = parse_config_text(BASE_CONF, "/etc/agentd/agentd.conf")
    assert cfg.sections["detections"]["enabled"] is True
    assert cfg.sections["detection:ssh_brute_force"]["threshold"] == 5
    assert cfg.sections["detection:ssh_brute_force"]["window"] == 600
    with pytest.raises(ConfigError) as e:
        parse_config_text(BASE_CONF + "[detection:ssh_brute_force]\nthreshold = many\n"
                          "[detection:egress_policy]\nallowed_destination_cidrs = 10.0.0.0/33\n"
                          "[detection:nope]\n", "/etc/agentd/agentd.conf")
    text = "\n".join(e.value.lines)
    assert "[detection:ssh_brute_force] threshold: 'many' is not a whole number" in text
    assert "[detection:egress_policy] allowed_destination_cidrs: '10.0.0.0/33' is not an IP network" in text
    assert "[detection:nope]: unknown section" in text


def test_every_builtin_rule_has_a_section_and_att_ck_names():
    from agent.pipeline.detections.attack import TECHNIQUES
    from agent.pipeline.detections.rules import BUILTIN

    schemas = dopts.section_schemas()
    for cls in BUILTIN:
        assert f"detection:{cls.key}" in schemas
        assert cls.techniques and all(t in TECHNIQUES for t in cls.techniques), cls.id


def test_rules_the_stack_cannot_stage_cheaply():
    """Another user's connect to a forwarded agent socket (the audit PATH owner differs),
    auditd stopping, and loss during a session (the join names the sessions of a gap)."""
    p = Pipeline({}, HOST)
    run(p, login_docs(ses="9", user="alice"))
    sock = "/tmp/ssh-XXXXab12/agent.4242"
    conn = _doc(700, T0 + 3, "auditd", "auditd.network", "connected-to", user={"id": "0", "name": "root"},
                auditd={"session": "9", "data": {"socket": {"family": "unix", "path": sock}},
                        "paths": [{"name": sock, "ouid": "1001"}]},
                process={"executable": "/usr/bin/ssh-add", "pid": 77})
    own = _doc(701, T0 + 4, "auditd", "auditd.network", "connected-to", user={"id": "1001", "name": "alice"},
               auditd={"session": "9", "data": {"socket": {"family": "unix", "path": sock}},
                       "paths": [{"name": sock, "ouid": "1001"}]})
    stop = _doc(702, T0 + 5, "auditd", "auditd.config", "audit-daemon-stopped")
    out = run(p, [conn, own, stop])
    [hijack] = alerts(out, "agentd-ssh-agent-hijack")
    assert hijack["session"]["user"] == "alice" and "uid 1001" in hijack["message"]
    assert alerts(out, "agentd-auditd-stopped")
    gap = _doc(703, T0 + 6, "agentd", "agentd.gap", "events-lost", "failure", message="auditd: lost 3")
    gap["agentd"] = {"gap": {"source": "auditd", "reason": "lost", "detail": "3"}}
    [loss] = alerts(run(p, [gap]), "agentd-session-loss")
    assert loss["session"]["id"] == "hid:boot:9"
