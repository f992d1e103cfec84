"""The .deb as an admin meets it, in a clean Debian 12 root (debootstrap; see
debroot.py): `apt-get install ./agentd_*.deb`, the installed command and config,
the installed agent run with the installed unit's user, capabilities and system
call filter against the real stack for one SSH session, an upgrade over itself
that keeps an edited config, then remove and purge, and what is left.

The steps share one root and run in file order; `make install-test` runs them
after `make deb`. PID 1 is not systemd here (nor in the root), so the maintainer
scripts take their no-systemd branches, which the test checks they announce."""

from __future__ import annotations

import glob
import os
import sqlite3
import subprocess
import time
import uuid

import pytest
from artifacts import built
from debroot import DebRoot

from tests.system import unit_sandbox

pytestmark = pytest.mark.stack


@pytest.fixture(scope="module")
def deb() -> str:
    return built("agentd_*.deb")


@pytest.fixture(scope="module")
def root():
    with DebRoot() as r:
        yield r


@pytest.fixture(scope="module")
def state() -> dict:
    return {}


def _ids(root: DebRoot, name: str) -> tuple:
    line = root.run(f"getent passwd {name}").stdout.split(":")
    return int(line[2]), int(line[3])


def test_install(root, deb, state):
    state["before"] = root.files()
    subprocess.run(["cp", deb, root.path("/tmp/")], check=True)
    r = root.apt(f"install /tmp/{os.path.basename(deb)}")
    out = r.stdout + r.stderr
    print(out[-1500:])
    assert "agentd: systemd is not running here (container or chroot): agentd.service is enabled" in out
    assert "agentd doctor" in out and "/usr/share/agentd/" in out

    version = root.run("dpkg-query -W -f '${Version}' agentd").stdout
    assert root.run("/usr/bin/agentd --version").stdout.strip() == f"agentd {version}"
    check = root.run("agentd check-config")
    assert check.stdout.startswith("/etc/agentd/agentd.conf: OK")

    uid, gid = _ids(root, "agentd")
    st = os.stat(root.path("/etc/agentd/agentd.conf"))
    assert (st.st_mode & 0o777, st.st_uid, st.st_gid) == (0o640, 0, gid)
    for d in ("/var/lib/agentd", "/var/log/agentd"):
        st = os.stat(root.path(d))
        assert (st.st_mode & 0o777, st.st_uid, st.st_gid) == (0o750, uid, gid), d
    assert "/etc/agentd/agentd.conf" in root.run("cat /var/lib/dpkg/info/agentd.conffiles").stdout
    # enabled for the next boot, started by nobody (no systemd here)
    assert os.path.islink(root.path("/etc/systemd/system/multi-user.target.wants/agentd.service"))
    # the code in its private environment, nothing in the system's Python
    assert not glob.glob(root.path("/usr/lib/python3*/dist-packages/agent*"))
    assert glob.glob(root.path("/usr/lib/agentd/lib/python3.11/site-packages/agent/app/__pycache__/*.pyc"))
    # shipped, documented, and not turned on
    assert os.path.isfile(root.path("/usr/share/agentd/audit/agentd.rules"))
    assert not os.path.exists(root.path("/etc/audit/rules.d/agentd.rules"))
    for page in ("/usr/share/man/man8/agentd.8.gz", "/usr/share/man/man5/agentd.conf.5.gz"):
        assert os.path.getsize(root.path(page)) > 500


def test_installed_agent_sees_a_session(root, stack, ssh_session, state):
    """/usr/bin/agentd run -c /etc/agentd/agentd.conf (the installed default: audit log,
    journal, file output) as the installed unit runs it: user agentd, its capabilities,
    its system call filter (tests/system/unit_sandbox.py)."""
    # as an admin turns on the shipped Sigma rules
    conf = root.path("/etc/agentd/agentd.conf")
    with open(conf) as f:
        text = f.read()
    assert "#sigma_dirs =" in text
    with open(conf, "w") as f:
        f.write(text.replace("#sigma_dirs =", "sigma_dirs = /usr/share/agentd/sigma", 1))
    unit = root.path("/lib/systemd/system/agentd.service")
    argv = ["chroot", root.root] + unit_sandbox.sandbox_argv(
        unit, "/tmp/syscalls.allow", ["/usr/bin/agentd", "run", "-c", "/etc/agentd/agentd.conf"],
        root=root.root, python="/usr/bin/python3.11")
    with root.stack_sources():
        _run_installed_agent(root, argv, ssh_session)


def _run_installed_agent(root, argv, ssh_session) -> None:
    log = open(root.path("/tmp/agentd.log"), "wb")
    proc = subprocess.Popen(argv, stdout=log, stderr=log, stdin=subprocess.DEVNULL, env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin"})
    log.close()

    def log_text() -> str:
        with open(root.path("/tmp/agentd.log"), errors="replace") as f:
            return f.read()[-3000:]

    try:
        db = root.path("/var/lib/agentd/spool.db")
        deadline = time.monotonic() + 60
        while True:
            assert proc.poll() is None, f"agentd exited {proc.returncode}:\n{log_text()}"
            try:
                with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5) as c:
                    if c.execute("SELECT 1 FROM positions WHERE collector='auditd'").fetchone():
                        break
            except sqlite3.Error:
                pass
            assert time.monotonic() < deadline, f"no audit position in 60s:\n{log_text()}"
            time.sleep(0.1)

        tok = uuid.uuid4().hex[:10]
        alice = ssh_session("alice")
        port = int(alice.run("echo $SSH_CLIENT").split()[1])
        alice.run(f"/bin/echo installed-{tok} >/dev/null")
        alice.close()

        from agent.base.events import loads

        def found():
            try:
                with open(root.path("/var/log/agentd/events.jsonl"), "rb") as f:
                    evs = [loads(ln) for ln in f if ln.strip()]
            except FileNotFoundError:
                return None
            cmd = [e for e in evs if e["event"].get("action") == "exec"
                   and any(f"installed-{tok}" in a for a in (e.get("process") or {}).get("args") or [])]
            login = [e for e in evs if e["event"]["dataset"] == "sshd.auth"
                     and e["event"].get("action") == "logged-in" and (e.get("source") or {}).get("port") == port]
            return (cmd, login) if cmd and login else None

        deadline = time.monotonic() + 90
        while not (got := found()):
            assert proc.poll() is None, f"agentd exited {proc.returncode}:\n{log_text()}"
            assert time.monotonic() < deadline, f"no events of the session in 90s:\n{log_text()}"
            time.sleep(0.3)
        cmd, _login = got
        assert cmd[0]["session"]["user"] == "alice" and cmd[0]["session"]["source"]["port"] == port
        st = os.stat(root.path("/var/log/agentd/events.jsonl"))
        assert not st.st_mode & 0o007  # UMask=0027
        status = root.run("agentd status")
        assert "agentd: running" in status.stdout and "collector:auditd" in status.stdout, status.stdout
        print(status.stdout)
    finally:
        proc.terminate()
        try:
            code = proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            code = proc.wait()
    assert code == 0, log_text()
    assert "Permission denied" not in log_text()


def test_upgrade_keeps_an_edited_config(root, deb, state, tmp_path):
    conf = root.path("/etc/agentd/agentd.conf")
    with open(conf) as f:
        text = f.read()
    edited = text.replace("#log_level = info", "log_level = warning", 1) + "\n# edited by the install test\n"
    assert edited != text
    with open(conf, "w") as f:
        f.write(edited)
    # the same package with a higher version: an upgrade over itself
    subprocess.run(["dpkg-deb", "-R", deb, str(tmp_path / "pkg")], check=True)
    control = tmp_path / "pkg" / "DEBIAN" / "control"
    old = next(ln.split(": ")[1] for ln in control.read_text().splitlines() if ln.startswith("Version: "))
    new = f"{old}+upgrade1"
    control.write_text(control.read_text().replace(f"Version: {old}", f"Version: {new}"))
    newdeb = root.path(f"/tmp/agentd_{new}.deb")
    subprocess.run(["dpkg-deb", "--root-owner-group", "-b", str(tmp_path / "pkg"), newdeb], check=True,
                   capture_output=True)
    r = root.apt(f"install /tmp/{os.path.basename(newdeb)}")
    out = r.stdout + r.stderr
    assert f"Unpacking agentd ({new}) over ({old})" in out, out[-2000:]
    assert "agentd.service is enabled but was not started" in out
    assert root.run("dpkg-query -W -f '${Version}' agentd").stdout == new
    with open(conf) as f:
        assert f.read() == edited
    st = os.stat(conf)
    assert (st.st_mode & 0o777, st.st_gid) == (0o640, _ids(root, "agentd")[1])
    assert root.run("agentd check-config").returncode == 0


def test_remove_keeps_config_and_state_purge_deletes_them(root, state):
    r = root.apt("remove agentd")
    assert "agentd: systemd is not running here: nothing to stop" in r.stdout + r.stderr
    assert not os.path.exists(root.path("/usr/bin/agentd"))
    assert not os.path.exists(root.path("/usr/lib/agentd")), "remove left files in /usr/lib/agentd"
    with open(root.path("/etc/agentd/agentd.conf")) as f:
        assert "# edited by the install test" in f.read()
    assert os.path.exists(root.path("/var/lib/agentd/spool.db"))

    r = root.apt("purge --autoremove agentd")
    assert "agentd: purged /etc/agentd, /var/lib/agentd and /var/log/agentd" in r.stdout + r.stderr
    for p in ("/etc/agentd", "/var/lib/agentd", "/var/log/agentd",
              "/etc/systemd/system/multi-user.target.wants/agentd.service"):
        assert not os.path.lexists(root.path(p)), p
    assert "agentd" not in root.run("dpkg-statoverride --list", check=False).stdout
    assert root.run("dpkg-query -W -f '${db:Status-Abbrev}' agentd", check=False).stdout.strip() in ("", "un")
    # What is left: nothing named agentd and nothing the agentd user owns, only the
    # user itself (kept on purge, as Debian packages do). The dependencies apt chose
    # (python3.11, auditd, openssl, ...) are other packages' files.
    uid, gid = _ids(root, "agentd")
    new = root.files() - state["before"]
    left = sorted(p for p in new if "agentd" in p)
    for dirpath, dirnames, filenames in os.walk(root.root):
        rel = dirpath[len(root.root):] or "/"
        dirnames[:] = [d for d in dirnames if os.path.join(rel, d) not in ("/proc", "/dev")]
        for name in dirnames + filenames:
            st = os.lstat(os.path.join(dirpath, name))
            if st.st_uid == uid or st.st_gid == gid:
                left.append(os.path.join(rel, name))
    print(f"after purge: {len(new)} new paths of other packages; of agentd: {left}")
    assert left == [], left
    assert root.run("getent passwd agentd").returncode == 0

