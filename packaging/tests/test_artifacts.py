"""What `make deb rpm splunk-ta` built, checked as a packager would: lintian on
the .deb (no errors; each remaining warning listed in the README), the rpm's
file list, scriptlets and config flags with `rpm -qp`, the add-on's archive."""

from __future__ import annotations

import os
import re
import subprocess
import tarfile

from artifacts import REPO, built, version


def _q(rpm: str, *args: str) -> str:
    return subprocess.run(["rpm", "-qp", *args, rpm], capture_output=True, text=True, check=True).stdout


# ---------------------------------------------------------------- deb


def test_deb_lintian_has_no_errors_and_the_readme_lists_its_warnings():
    deb = built("agentd_*.deb")
    r = subprocess.run(["lintian", "--no-tag-display-limit", deb], capture_output=True, text=True)
    tags = [ln for ln in r.stdout.splitlines() if re.match(r"^[EW]: agentd", ln)]
    print("\n" + "\n".join(tags))
    errors = [t for t in tags if t.startswith("E:")]
    assert not errors, errors
    with open(os.path.join(REPO, "README.md")) as f:
        readme = f.read()
    for tag in {t.split()[2] for t in tags}:
        assert f"`{tag}`" in readme, f"lintian warning {tag} is not listed in README.md"


def test_deb_layout_and_control():
    deb = built("agentd_*.deb")
    assert os.path.basename(deb) == f"agentd_{version()}_amd64.deb"
    listing = subprocess.run(["dpkg-deb", "-c", deb], capture_output=True, text=True, check=True).stdout
    paths = {ln.split()[5].rstrip("/") for ln in listing.splitlines()}
    for p in ("./usr/bin/agentd", "./etc/agentd/agentd.conf", "./lib/systemd/system/agentd.service",
              "./usr/share/agentd/audit/agentd.rules", "./usr/lib/agentd/pyvenv.cfg",
              "./usr/lib/agentd/lib/python3.11/site-packages/agent/app/cli.py",
              "./usr/share/man/man8/agentd.8.gz", "./usr/share/man/man5/agentd.conf.5.gz",
              "./usr/share/doc/agentd/copyright", "./usr/share/doc/agentd/changelog.gz",
              "./usr/share/agentd/pam/agentd-tty-audit", "./usr/share/agentd/sshd/agentd-sftp-logging.conf"):
        assert p in paths, p
    assert not [p for p in paths if "dist-packages" in p or p.startswith("./opt")]
    assert not [p for p in paths if "__pycache__" in p or p.endswith(".pyc")]
    assert not [p for p in paths if p.startswith("./etc/audit") or p.startswith("./etc/pam.d")
                or p.startswith("./etc/ssh")], "the package must not turn anything on"
    conf = next(ln for ln in listing.splitlines() if ln.endswith("./etc/agentd/agentd.conf"))
    assert conf.startswith("-rw-r----- root/root")
    depends = subprocess.run(["dpkg-deb", "-f", deb, "Depends"], capture_output=True, text=True).stdout
    assert "python3.11" in depends and "python3-" not in depends, depends
    ctrl = subprocess.run(["dpkg-deb", "--ctrl-tarfile", deb], capture_output=True, check=True).stdout
    assert b"/etc/agentd/agentd.conf" in ctrl


# ---------------------------------------------------------------- rpm


def test_rpm_file_list_and_config_flags():
    rpm = built("agentd-*.rpm")
    v = version()
    assert re.fullmatch(rf"agentd-{re.escape(v)}-1\.x86_64\.rpm", os.path.basename(rpm))
    files = _q(rpm, "-l").split()
    for p in ("/usr/bin/agentd", "/etc/agentd/agentd.conf", "/usr/lib/systemd/system/agentd.service",
              "/usr/lib/agentd/lib/python3.11/site-packages/agent/app/cli.py", "/usr/share/agentd/audit/agentd.rules",
              "/usr/share/man/man8/agentd.8.gz", "/usr/share/man/man5/agentd.conf.5.gz",
              "/var/lib/agentd", "/var/log/agentd"):
        assert p in files, p
    assert not [p for p in files if "site-packages" in p and not p.startswith("/usr/lib/agentd/")]
    assert not [p for p in files if "__pycache__" in p or "/.build-id" in p]
    assert _q(rpm, "--configfiles").split() == ["/etc/agentd/agentd.conf"]
    # --dump: path size mtime digest mode owner group isconfig isdoc rdev symlink
    dump = {ln.split()[0]: ln.split() for ln in _q(rpm, "--dump").splitlines()}
    conf = dump["/etc/agentd/agentd.conf"]
    assert (conf[4], conf[5], conf[6], conf[7]) == ("0100640", "root", "agentd", "1")
    assert _q(rpm, "--qf", "[%{FILEFLAGS:fflags} %{FILENAMES}\n]").count("cn /etc/agentd/agentd.conf") == 1
    for d in ("/var/lib/agentd", "/var/log/agentd"):
        assert (dump[d][4], dump[d][5], dump[d][6]) == ("040750", "agentd", "agentd"), d
    assert dump["/usr/lib/agentd/bin/python3.11"][10] == "../../../bin/python3.11"


def test_rpm_requires_and_scripts():
    rpm = built("agentd-*.rpm")
    requires = _q(rpm, "--requires")
    assert "python3.11" in requires and "python3-" not in requires
    scripts = _q(rpm, "--scripts")
    assert "useradd -r -g agentd" in scripts
    assert "systemctl --no-reload enable agentd.service" in scripts            # enabled on install
    assert "systemctl try-restart agentd.service" in scripts                   # restarted on upgrade
    assert "systemctl --no-reload disable --now agentd.service" in scripts     # stopped on remove
    assert scripts.count("systemd is not running here") == 2
    for tag in ("PREIN", "POSTIN", "PREUN", "POSTUN"):
        body = _q(rpm, "--qf", f"%{{{tag}}}")
        subprocess.run(["sh", "-n"], input=body, text=True, check=True)


# ---------------------------------------------------------------- Splunk add-on


def test_splunk_ta_archive():
    tgz = built("TA-agentd-*.tgz")
    assert os.path.basename(tgz) == f"TA-agentd-{version()}.tgz"
    with tarfile.open(tgz) as t:
        names = t.getnames()
        app = t.extractfile("TA-agentd/default/app.conf").read().decode()
    for n in ("TA-agentd/default/props.conf", "TA-agentd/default/eventtypes.conf", "TA-agentd/default/tags.conf",
              "TA-agentd/metadata/default.meta"):
        assert n in names
    assert f"version = {version()}" in app and "@VERSION@" not in app
