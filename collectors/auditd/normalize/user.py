"""Builders for user-space and daemon records (auditd.auth, auditd.login, auditd.config),
the kernel's LOGIN and CONFIG_CHANGE (with their SYSCALL) and everything else
(auditd.other, fields under ``auditd.data``).

In user-space records (USER_*, CRED_*, …) ``pid``/``uid``/``auid``/``ses`` describe the
*sender* (sshd, sudo, login); the account acted on is ``acct`` (or ``id``). So ``user.*`` is
the account and the sender's uid goes to ``process.user.*``.
"""

from __future__ import annotations

from collectors.auditd import decode
from collectors.auditd.normalize.document import (
    Documents,
    finish,
    record_data,
    res_outcome,
    tags_from_key,
    valid_ip,
)

# type -> (dataset, category, type, action on success, action on failure)
_AUTH = {
    "USER_AUTH": ("auditd.auth", ["authentication"], ["info"], "authenticated", "authentication-failed"),
    "USER_ACCT": ("auditd.auth", ["authentication"], ["info"], "was-authorized", "authorization-failed"),
    "USER_MGMT": ("auditd.auth", ["iam"], ["change"], "changed-user", "change-user-failed"),
    "USER_CHAUTHTOK": ("auditd.auth", ["iam"], ["user", "change"], "changed-password", "change-password-failed"),
    "USER_ERR": ("auditd.auth", ["authentication"], ["info"], "error", "error"),
    "USER_CMD": ("auditd.auth", ["process"], ["start"], "ran-command", "ran-command"),
    "USER_ROLE_CHANGE": ("auditd.auth", ["iam"], ["change"], "changed-role", "change-role-failed"),
    "CRED_ACQ": ("auditd.auth", ["authentication"], ["info"], "acquired-credentials", "acquire-credentials-failed"),
    "CRED_REFR": ("auditd.auth", ["authentication"], ["info"], "refreshed-credentials", "refresh-credentials-failed"),
    "CRED_DISP": ("auditd.auth", ["authentication"], ["info"], "disposed-credentials", "dispose-credentials-failed"),
    "ADD_USER": ("auditd.auth", ["iam"], ["user", "creation"], "added-user", "add-user-failed"),
    "DEL_USER": ("auditd.auth", ["iam"], ["user", "deletion"], "deleted-user", "delete-user-failed"),
    "ADD_GROUP": ("auditd.auth", ["iam"], ["group", "creation"], "added-group", "add-group-failed"),
    "DEL_GROUP": ("auditd.auth", ["iam"], ["group", "deletion"], "deleted-group", "delete-group-failed"),
    "GRP_MGMT": ("auditd.auth", ["iam"], ["group", "change"], "changed-group", "change-group-failed"),
    "USER_LOGIN": ("auditd.login", ["authentication", "session"], ["start"], "logged-in", "login-failed"),
    "USER_LOGOUT": ("auditd.login", ["session"], ["end"], "logged-out", "logged-out"),
    "USER_START": ("auditd.login", ["session"], ["start"], "started-session", "start-session-failed"),
    "USER_END": ("auditd.login", ["session"], ["end"], "ended-session", "end-session-failed"),
    "ANOM_LOGIN_FAILURES": ("auditd.login", ["authentication"], ["info"], "login-failures", "login-failures"),
}
_DAEMON = {
    "DAEMON_START": "audit-daemon-started", "DAEMON_END": "audit-daemon-stopped",
    "DAEMON_ABORT": "audit-daemon-aborted", "DAEMON_ROTATE": "audit-log-rotated",
    "DAEMON_RESUME": "audit-daemon-resumed", "DAEMON_CONFIG": "audit-daemon-reconfigured",
    "DAEMON_RECONFIG": "audit-daemon-reconfigured", "DAEMON_ERR": "audit-daemon-error",
}


def build(docs: Documents, ev, by_type: dict) -> dict:
    sc = by_type.get("SYSCALL", [None])[0]
    if "CONFIG_CHANGE" in by_type:
        return _config(docs, ev, by_type, by_type["CONFIG_CHANGE"][0], sc)
    if "LOGIN" in by_type:
        return _login_id(docs, ev, by_type, by_type["LOGIN"][0], sc)
    rec = ev.records[0]
    if rec.type in _AUTH:
        return _auth(docs, ev, rec, _AUTH[rec.type])
    if rec.type.startswith("DAEMON_"):
        return _config(docs, ev, by_type, rec, None)
    return _generic(docs, ev, rec)


def _sender(docs: Documents, doc: dict, rec, users: list) -> None:
    """pid/uid of the sending program -> process.*; auid/ses kept for the session join."""
    f = rec.fields
    proc = doc.setdefault("process", {})
    pid = f.get("pid")
    if pid is not None and pid.isdecimal():
        proc["pid"] = int(pid)
    pu = docs.user_of(rec, "uid", "UID")  # the sender's: not a related.user
    if pu is not None:
        proc["user"] = pu
    exe = decode.value_text(rec, "exe")
    if exe is not None:
        proc["executable"] = exe
    docs.add_audit_ids(doc, rec, users)


def _auth(docs: Documents, ev, rec, spec) -> dict:
    dataset, cat, typ, ok_action, fail_action = spec
    outcome = res_outcome(rec)
    doc = docs.start(ev, dataset, category=cat, type=typ,
                     action=fail_action if outcome == "failure" else ok_action, outcome=outcome)
    users: list = []
    ips: list = []
    _sender(docs, doc, rec, users)
    f = rec.fields
    user = doc.setdefault("user", {})
    acct = decode.value_text(rec, "acct")
    if acct is not None and acct not in decode.NO_VALUE:
        user["name"] = acct
        users.append(acct)
    elif "id" in f and f["id"] not in decode.NO_VALUE:
        user.update(docs.user_of(rec, "id", "ID", users))
    addr = f.get("addr")
    src: dict = {}
    if valid_ip(addr):
        src["ip"] = addr
        ips.append(addr)
    host = f.get("hostname")
    if host and host not in decode.NO_VALUE:
        src["address"] = host
    if src:
        doc["source"] = src
    a = doc.setdefault("auditd", {})
    data = record_data(rec)
    term = f.get("terminal")
    if term and term not in decode.NO_VALUE:
        a["terminal"] = term
    if rec.type == "USER_CMD":
        cmd = decode.value_text(rec, "cmd")
        if cmd is not None:
            doc["process"]["command_line"] = cmd
        cwd = decode.value_text(rec, "cwd")
        if cwd is not None:
            doc["process"]["working_directory"] = cwd
    a["data"] = data
    return finish(doc, users, ips, [])


def _login_id(docs: Documents, ev, by_type, rec, sc) -> dict:
    """Kernel LOGIN: a process got its login uid (auid) and session id (ses)."""
    doc = docs.start(ev, "auditd.login", category=["authentication", "session"], type=["start"],
                     action="changed-login-id", outcome=res_outcome(rec))
    users: list = []
    if sc is not None:
        docs.add_process(doc, sc, by_type, users)
    else:
        _sender(docs, doc, rec, users)
    docs.add_audit_ids(doc, rec, users)   # the new auid/ses win over the syscall's
    doc.setdefault("auditd", {})["data"] = record_data(rec)
    return finish(doc, users, [], [])


def _config(docs: Documents, ev, by_type, rec, sc) -> dict:
    action = _DAEMON.get(rec.type, "audit-config-changed")
    doc = docs.start(ev, "auditd.config", category=["configuration"], type=["change"],
                     action=action, outcome=res_outcome(rec))
    users: list = []
    tags: list = []
    if sc is not None:
        docs.add_process(doc, sc, by_type, users)
        docs.add_audit_ids(doc, rec, users)
    else:
        _sender(docs, doc, rec, users)
    doc.setdefault("auditd", {})["data"] = record_data(rec)
    tags_from_key(rec, tags)
    return finish(doc, users, [], tags)


def _generic(docs: Documents, ev, rec) -> dict:
    doc = docs.start(ev, "auditd.other", category=["host"], type=["info"],
                     action=rec.type.lower().replace("_", "-"), outcome=res_outcome(rec))
    users: list = []
    docs.add_audit_ids(doc, rec, users)
    doc.setdefault("auditd", {})["data"] = record_data(rec)
    doc.setdefault("auditd", {})["record_type"] = rec.type
    if len(ev.records) > 1:
        doc.setdefault("auditd", {})["records"] = [{"type": r.type, "data": record_data(r)} for r in ev.records[1:]]
    return finish(doc, users, [], [])
