"""agentd doctor: the loaded audit rules compared with the recommended ones by meaning.

The listings are real `auditctl -l` output: auditctl-l.stack.txt is the test stack with
packaging/audit/agentd.rules loaded; auditctl-l.extra.txt is the same with other
spellings appended for one capture (a CIS-style auid>=1000 rule, a syscall given by
number, execve and execveat in two rules, -F path=/-F dir= watches, a never rule, a
-C comparison) and removed again.
"""

from __future__ import annotations

import os
import tempfile

from agent.app.doctor import audit, auditrules
from agent.app.doctor.context import Context
from agent.app.doctor.finding import FAIL, OK, WARN

HERE = os.path.dirname(__file__)
DATA = os.path.join(HERE, "data", "doctor")
RULES_FILE = os.path.join(HERE, "..", "..", "packaging", "audit", "agentd.rules")


def _read(name: str) -> str:
    with open(os.path.join(DATA, name)) as f:
        return f.read()


def _wanted() -> auditrules.Ruleset:
    with open(RULES_FILE) as f:
        return auditrules.parse_rules(f.read())


def _by_key(rules: list, key: str) -> list:
    return [r for r in rules if r.key == key]


def test_the_stack_listing_covers_every_recommended_rule_though_no_line_is_equal_as_text():
    wanted, loaded = _wanted(), auditrules.parse_rules(_read("auditctl-l.stack.txt"))
    assert not wanted.errors and not loaded.errors
    assert len(wanted.rules) == len(loaded.rules) == 26
    texts = {r.text for r in loaded.rules}
    # auditctl prints auid!=-1 and -F key=: a text compare would call the exec rules missing.
    assert not any(r.text in texts for r in wanted.rules if not r.is_watch)
    for r in wanted.rules:
        c = auditrules.coverage(r, loaded.rules)
        assert c.covered and not c.other_keys and not c.never, r.text
    assert wanted.controls == {"-D": "", "-b": "8192", "--backlog_wait_time": "15000", "-f": "1"}


def test_spellings_normalize_to_the_same_rule():
    a = auditrules.parse_rule("-a always,exit -F arch=b64 -S execve,execveat -F auid!=unset -k exec")
    b = auditrules.parse_rule("-a exit,always -S execveat -S execve -F arch=x86_64 -F auid!=4294967295 -F key=exec")
    c = auditrules.parse_rule("-a always,exit -F arch=b64 -S execve,execveat -F auid!=-1 -F key=exec")
    assert a == b == c
    w1 = auditrules.parse_rule("-w /etc/sudoers.d/ -p aw -k sudoers")
    w2 = auditrules.parse_rule("-a always,exit -F dir=/etc/sudoers.d -F perm=wa -F key=sudoers")
    assert w1 == w2 and w1.is_watch


def test_a_deleted_connect_rule_is_named_with_its_arch():
    listing = [ln for ln in _read("auditctl-l.stack.txt").splitlines() if "arch=b64 -S connect" not in ln]
    loaded = auditrules.parse_rules("\n".join(listing)).rules
    results = {r.arch: auditrules.coverage(r, loaded) for r in _by_key(_wanted().rules, "net_connect")}
    assert results["b64"].missing == {"connect"} and results["b32"].covered


def test_a_cis_style_auid_ge_1000_rule_does_not_cover_root_logins():
    extra = auditrules.parse_rules(_read("auditctl-l.extra.txt")).rules
    cis_only = _by_key(extra, "cis_exec")
    assert cis_only and ("auid", ">=", "1000") in cis_only[0].fields
    b64 = next(r for r in _by_key(_wanted().rules, "exec") if r.arch == "b64")
    assert auditrules.coverage(b64, cis_only).missing == {"execve", "execveat"}


def test_execve_and_execveat_in_two_rules_with_other_keys_still_cover():
    extra = auditrules.parse_rules(_read("auditctl-l.extra.txt")).rules
    split = _by_key(extra, "numeric") + _by_key(extra, "split")  # -S 59 was printed as execve
    assert {s for r in split for s in r.syscalls} == {"execve", "execveat"}
    b64 = next(r for r in _by_key(_wanted().rules, "exec") if r.arch == "b64")
    c = auditrules.coverage(b64, split)
    assert c.covered and c.other_keys == {"numeric", "split"}
    b32 = next(r for r in _by_key(_wanted().rules, "exec") if r.arch == "b32")
    assert auditrules.coverage(b32, split).missing == {"execve", "execveat"}


def test_watch_permissions_must_include_the_recommended_ones():
    extra = auditrules.parse_rules(_read("auditctl-l.extra.txt")).rules
    wanted = {next(f[2] for f in r.fields if f[0] == "watch"): r for r in _wanted().rules if r.is_watch}
    passwd = auditrules.coverage(wanted["/etc/passwd"], _by_key(extra, "pathform"))  # -F path= printed as -w
    assert passwd.covered and passwd.other_keys == {"pathform"}
    sudoers_d = auditrules.coverage(wanted["/etc/sudoers.d"], _by_key(extra, "dirform"))  # -p w only
    assert not sudoers_d.covered


def test_an_earlier_never_rule_and_a_narrowing_comparison_are_reported():
    extra = auditrules.parse_rules(_read("auditctl-l.extra.txt")).rules
    b64 = next(r for r in _by_key(_wanted().rules, "net_connect") if r.arch == "b64")
    compare = _by_key(extra, "withcompare")
    assert ("uid", "!=", "euid") in compare[0].fields
    assert not auditrules.coverage(b64, compare).covered
    broad = auditrules.parse_rule("-a always,exit -F arch=b64 -S connect -F key=any")
    c = auditrules.coverage(b64, _by_key(extra, "nev") + [broad])
    assert c.covered and [r.key for r in c.never] == ["nev"]


def test_bad_lines_are_errors_not_crashes():
    rs = auditrules.parse_rules("-a always,exit -F arch=b99 -S x\n-a bogus\n-F\n-w /etc/passwd -p wa\n-e 2\n")
    assert [e[0] for e in rs.errors] == [1, 2, 3]
    assert len(rs.rules) == 1 and rs.controls == {"-e": "2"}


def _ctx(listing: str, enabled: str = "1") -> Context:
    with tempfile.NamedTemporaryFile("w", suffix=".conf", delete=False) as f:
        f.write("[collector:auditd]\ntype = auditd\n[shipper:file]\ntype = file\npath = /tmp/x.jsonl\n")
    ctx = Context(f.name, online=False)
    os.unlink(f.name)
    ctx._memo["audit.rules"] = auditrules.parse_rules(listing)
    ctx._memo["audit.status"] = {"enabled": enabled, "pid": str(os.getpid()), "failure": "1", "lost": "0",
                                 "backlog": "0", "backlog_limit": "8192", "rate_limit": "0"}
    return ctx


def test_findings_name_the_gap_and_give_the_exact_fix():
    listing = "\n".join(ln for ln in _read("auditctl-l.stack.txt").splitlines() if "-S connect" not in ln)
    found = {f.check: f for f in audit.check_rules(_ctx(listing))}
    assert found["audit.rules.exec"].status == OK and found["audit.rules.watches"].status == OK
    gap = found["audit.rules.net_connect"]
    assert gap.status == FAIL and "connect on b64" in gap.summary and "connect on b32" in gap.summary
    assert "outbound connections" in gap.hides
    assert "auditctl -a always,exit -F arch=b64 -S connect -F auid!=unset -k net_connect" in gap.fix
    assert "augenrules --load" in gap.fix
    immutable = audit.check_rules(_ctx(listing, enabled="2"))
    assert "reboot" in next(f for f in immutable if f.check == "audit.rules.net_connect").fix


def test_exclude_rules_on_needed_record_types_fail():
    listing = _read("auditctl-l.stack.txt") + "-a always,exclude -F msgtype=EXECVE\n"
    found = {f.check: f for f in audit.check_rules(_ctx(listing))}
    assert found["audit.rules.exclude"].status == FAIL and "msgtype=EXECVE" in found["audit.rules.exclude"].summary
    harmless = _read("auditctl-l.stack.txt") + "-a always,exclude -F msgtype=SERVICE_START\n"
    assert {f.check: f for f in audit.check_rules(_ctx(harmless))}["audit.rules.exclude"].status == OK


def test_immutable_and_status_findings():
    ctx = _ctx(_read("auditctl-l.stack.txt"))
    assert audit.check_immutable(ctx).status == WARN
    assert "6.2.3.20" in audit.check_immutable(ctx).cis
    ctx._memo["audit.status"].update(lost="12", failure="0", backlog_limit="64")
    found = {f.check: f.status for f in audit.check_status(ctx)}
    assert found == {"audit.backlog": WARN, "audit.lost": WARN, "audit.failure": WARN}


def test_rules_that_auditd_loads_at_start_are_checked_too(tmp_path):
    ctx = _ctx(_read("auditctl-l.stack.txt"))
    (tmp_path / "rules.d").mkdir()
    (tmp_path / "audit.rules").write_text("-D\n-b 8192\n")
    (tmp_path / "rules.d" / "audit.rules").write_text("-D\n-b 8192\n")
    f = audit.check_boot(ctx, str(tmp_path))
    assert f.status == WARN and "exec, net_connect, watches would be missing after a reboot" in f.summary
    assert f"{tmp_path}/rules.d/agentd.rules && augenrules --load" in f.fix
    with open(RULES_FILE) as src:
        (tmp_path / "rules.d" / "agentd.rules").write_text(src.read())
    assert audit.check_boot(ctx, str(tmp_path)).status == OK


def test_a_near_miss_says_which_filter_makes_it_narrower():
    extra = auditrules.parse_rules(_read("auditctl-l.extra.txt")).rules
    b64 = next(r for r in _by_key(_wanted().rules, "exec") if r.arch == "b64")
    assert auditrules.coverage(b64, _by_key(extra, "cis_exec")).narrower == [["auid>=1000"]]
    ctx = _ctx("\n".join(r.text for r in _by_key(extra, "cis_exec")))
    gap = next(f for f in audit.check_rules(ctx) if f.check == "audit.rules.exec")
    assert "a loaded rule also requires auid>=1000, which is narrower" in gap.summary
    sudoers_d = next(r for r in _wanted().rules if r.is_watch and ("watch", "=", "/etc/sudoers.d") in r.fields)
    near = auditrules.coverage(sudoers_d, _by_key(extra, "dirform")).narrower
    assert near == [["perm=w"]]


def test_a_directory_watch_covers_the_files_below_it(tmp_path):
    (tmp_path / "ssh").mkdir()
    wanted = auditrules.parse_rule(f"-w {tmp_path}/ssh/sshd_config -p wa -k sshd_config")
    parent = auditrules.parse_rule(f"-w {tmp_path}/ssh -p wa -k ssh")
    assert auditrules.coverage(wanted, [parent]).covered
    sibling = auditrules.parse_rule(f"-w {tmp_path}/ss -p wa -k ssh")
    assert not auditrules.coverage(wanted, [sibling]).covered


def test_audit_retention_warns_when_auditd_deletes_logs_soon(tmp_path):
    conf = tmp_path / "auditd.conf"
    conf.write_text("log_file = /var/log/audit/audit.log\nmax_log_file = 8\nnum_logs = 5\n"
                    "max_log_file_action = ROTATE\n")  # Debian's and RHEL's defaults
    f = audit.check_retention(None, str(conf))
    assert f.status == WARN and "5 x 8 MB = 40 MB" in f.summary
    assert "agentd.gap" in f.hides and "num_logs = 10 and max_log_file = 100" in f.fix
    conf.write_text("max_log_file = 100\nnum_logs = 10\nmax_log_file_action = rotate\n")
    assert audit.check_retention(None, str(conf)).status == OK
    conf.write_text("max_log_file = 8\nmax_log_file_action = KEEP_LOGS\n")
    assert audit.check_retention(None, str(conf)).status == OK
    conf.write_text("max_log_file_action = SUSPEND\n")
    assert audit.check_retention(None, str(conf)).status == WARN
    assert audit.check_retention(None, str(tmp_path / "missing.conf")).status == WARN
