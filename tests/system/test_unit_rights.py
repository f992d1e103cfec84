"""The unit's rights, worked out on the real stack.

packaging/systemd/agentd.service runs the agent as the `agentd` user with two
capabilities and a system call filter. PID 1 is not systemd here, so the rights
are applied by tests/system/unit_sandbox.py (setpriv + seccomp, read from the
unit file) to the packaged private environment (packaging/stage/venv.sh on
/usr/bin/python3.11). The probe test shows what each capability is needed for
(and that neither is superfluous); the agent test runs `agentd run` under
exactly the unit's rights against one SSH session and sees its events."""

from __future__ import annotations

import json
import os
import pwd
import shutil
import subprocess
import tempfile
import uuid

import psutil
import pytest

from tests.system import unit_sandbox
from tests.system.agentd_proc import REPO, AgentProc, args_of

pytestmark = pytest.mark.stack

UNIT = os.path.join(REPO, "packaging", "systemd", "agentd.service")

PROBE = r"""
import json, sys
import psutil
from systemd import journal
sshd_pid, other_pid = int(sys.argv[1]), int(sys.argv[2])
out = {}
def attempt(name, fn):
    try:
        out[name] = fn()
    except Exception as e:  # what the agent would see
        out[name] = type(e).__name__
attempt("audit_log", lambda: len(open("/var/log/audit/audit.log", "rb").read(64)) > 0)
def sshd_journal():
    r = journal.Reader()
    r.add_match(_COMM="sshd")
    return any(True for _ in r)
attempt("journal", sshd_journal)
attempt("connections", lambda: len(psutil.Process(sshd_pid).net_connections(kind="inet")) > 0)
attempt("proc_io", lambda: psutil.Process(other_pid).io_counters().read_bytes >= 0)
attempt("proc_exe", lambda: bool(psutil.Process(other_pid).exe()))
print(json.dumps(out))
"""


@pytest.fixture(scope="module")
def unit_env():
    """The agentd user (created if missing, removed again) and the packaged private
    environment built at a path that user can read."""
    created = False
    try:
        pwd.getpwnam("agentd")
    except KeyError:
        subprocess.run(["useradd", "--system", "--user-group", "--no-create-home", "--home-dir", "/nonexistent",
                        "--shell", "/usr/sbin/nologin", "agentd"], check=True)
        created = True
    base = tempfile.mkdtemp(prefix="agentd-unit-", dir="/var/tmp")
    os.chmod(base, 0o755)
    env = os.path.join(base, "env")
    build = subprocess.run([os.path.join(REPO, "packaging", "stage", "venv.sh"), "", env, "/usr/bin/python3.11"],
                           capture_output=True, text=True, timeout=600)
    assert build.returncode == 0, build.stderr[-3000:]
    try:
        yield base, env
    finally:
        shutil.rmtree(base, ignore_errors=True)
        if created:
            subprocess.run(["userdel", "agentd"], check=False)


def _sandboxed(base: str, command: list, caps=None) -> list:
    return unit_sandbox.sandbox_argv(UNIT, os.path.join(base, "syscalls.allow"), command, caps)


def test_unit_rights_match_the_capabilities(unit_env, stack):
    base, env = unit_env
    unit = unit_sandbox.parse_unit(UNIT)
    caps = unit_sandbox.capabilities(unit)
    assert unit["User"] == ["agentd"] and sorted(caps) == ["dac_read_search", "sys_ptrace"]
    assert unit_sandbox.parse_unit(UNIT)["CapabilityBoundingSet"] == unit["AmbientCapabilities"]
    probe = os.path.join(base, "probe.py")
    with open(probe, "w") as f:
        f.write(PROBE)
    sshd_pid = next(c.pid for c in psutil.net_connections(kind="tcp")
                    if c.status == psutil.CONN_LISTEN and c.laddr.port == stack.jump_port and c.pid)
    # a process of another (unprivileged) user, as a logged-in user's shell would be
    other = subprocess.Popen(["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups", "sleep", "60"])
    try:
        def run(with_caps):
            r = subprocess.run(_sandboxed(base, [f"{env}/bin/python", "-I", probe, str(sshd_pid), str(other.pid)],
                                          with_caps), capture_output=True, text=True, timeout=120)
            assert r.returncode == 0, r.stderr[-3000:]
            return json.loads(r.stdout)

        full = run(caps)
        no_dac = run([c for c in caps if c != "dac_read_search"])
        no_ptrace = run([c for c in caps if c != "sys_ptrace"])
    finally:
        other.kill()
        other.wait()
    print(f"\nunit caps {caps}: {full}\nwithout dac_read_search: {no_dac}\nwithout sys_ptrace: {no_ptrace}")
    assert full == {"audit_log": True, "journal": True, "connections": True, "proc_io": True, "proc_exe": True}
    # CAP_DAC_READ_SEARCH is what reads the audit log and the system journal ...
    assert no_dac["audit_log"] == "PermissionError" and no_dac["journal"] is False
    # ... CAP_SYS_PTRACE what reads other users' /proc/PID/{fd,io,exe} (psutil AccessDenied)
    assert {no_ptrace[k] for k in ("connections", "proc_io", "proc_exe")} == {"AccessDenied"}


class UnitAgent(AgentProc):
    """`agentd run` of the private environment under the unit's rights."""

    def __init__(self, base: str, env: str, workdir: str, **kw):
        super().__init__(workdir, **kw)
        self.base, self.env = base, env

    def start(self, wait_ready: bool = True) -> UnitAgent:
        logf = open(self.log, "ab")
        argv = _sandboxed(self.base, [f"{self.env}/bin/agentd", "run", "-c", self.conf])
        self.proc = subprocess.Popen(argv, stdout=logf, stderr=logf, cwd=self.dir, stdin=subprocess.DEVNULL)
        logf.close()
        if wait_ready:
            self.wait_position(timeout=60)
        return self


def _every_other_collector() -> str:
    """Every collector besides auditd that runs without required options (journald, and
    whatever lands later, e.g. snapshots), so the unit's rights are proven for all."""
    from agent.base import registry

    out = ""
    for t in registry.all_types("collector"):
        if t != "auditd" and not any(o.required for o in registry.load("collector", t).options.values()):
            out += f"[collector:{t}]\ntype = {t}\n"
    return out


def test_agent_under_unit_rights_sees_a_session(unit_env, stack, ssh_session):
    base, env = unit_env
    work = tempfile.mkdtemp(prefix="run-", dir=base)
    agentd = pwd.getpwnam("agentd")
    os.chown(work, agentd.pw_uid, agentd.pw_gid)
    # snapshots=None: the snapshots section comes from _every_other_collector, enabled.
    agent = UnitAgent(base, env, work, snapshots=None, collector_extra=_every_other_collector()
                      + f"[detections]\nsigma_dirs = {os.path.join(REPO, 'rules', 'sigma')}\n")
    os.chown(agent.conf, 0, agentd.pw_gid)
    os.chmod(agent.conf, 0o640)  # as the package installs it
    agent.start()
    try:
        tok = uuid.uuid4().hex[:10]
        alice = ssh_session("alice")
        port = int(alice.run("echo $SSH_CLIENT").split()[1])
        alice.run(f"/bin/echo unit-{tok} >/dev/null")
        alice.close()

        def ready(evs):
            cmds = [e for e in evs if any(f"unit-{tok}" in a for a in args_of(e) if isinstance(a, str))
                    and e["event"].get("action") == "exec"]
            logins = [e for e in evs if e["event"]["dataset"] == "sshd.auth" and e["event"].get("action") == "logged-in"
                      and e["user"]["name"] == "alice" and (e.get("source") or {}).get("port") == port]
            ended = [e for e in evs if e["event"].get("action") == "session-ended"
                     and e["session"]["user"] == "alice" and e["session"]["source"].get("port") == port]
            return (cmds, logins, ended) if cmds and logins and ended else None

        cmds, logins, ended = agent.wait_for(ready, timeout=90)
        assert cmds[0]["session"]["user"] == "alice" and cmds[0]["session"]["source"]["port"] == port
        assert agent.stop(timeout=30) == 0, agent.log_text()[-3000:]
        # UMask=0027 (and the agent's own umask): nothing it wrote is world-readable
        for root, _dirs, files in os.walk(work):
            for name in files:
                st = os.stat(os.path.join(root, name))
                if st.st_uid == agentd.pw_uid:
                    assert not st.st_mode & 0o007, (name, oct(st.st_mode))
        assert "Permission denied" not in agent.log_text()
        # what the start-up host checks (agentd doctor) could not see with the unit's rights
        print("\n".join(ln for ln in agent.log_text().splitlines() if "WARN" in ln or "FAIL" in ln or "INFO" in ln))
    finally:
        if agent.proc and agent.proc.poll() is None:
            agent.proc.kill()
            agent.proc.wait()
