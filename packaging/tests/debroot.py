"""A clean Debian 12 root for the install test: made once with debootstrap and
kept as a tar in /var/cache/agentd-ci (rebuilt after a week), unpacked fresh for
every run. PID 1 here is not systemd, so the root is entered with chroot; the
host's audit log and journal are bind-mounted into it read-only so the agent
installed in the root reads the real stack."""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import subprocess
import tempfile
import time

CACHE = os.environ.get("AGENTD_CI_CACHE", "/var/cache/agentd-ci")
MIRROR = os.environ.get("AGENTD_CI_MIRROR", "http://deb.debian.org/debian")
SUITE = "bookworm"
MAX_AGE = 7 * 86400
ENV = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C.UTF-8", "DEBIAN_FRONTEND": "noninteractive",
       "HOME": "/root"}
# Read-only views of the real stack's sources, and what apt needs.
RO_BINDS = ("/var/log/audit", "/var/log/journal", "/run/log/journal")


def _base_tar() -> str:
    """The cached root (with apt lists), made under a lock so parallel runs share it."""
    os.makedirs(CACHE, exist_ok=True)
    tar = os.path.join(CACHE, f"{SUITE}-minbase.tar")
    with open(os.path.join(CACHE, "lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if os.path.exists(tar) and time.time() - os.path.getmtime(tar) < MAX_AGE:
            return tar
        tmp = tempfile.mkdtemp(prefix="debootstrap-", dir=CACHE)
        try:
            subprocess.run(["debootstrap", "--variant=minbase", SUITE, tmp, MIRROR], check=True,
                           capture_output=True, timeout=1200)
            shutil.copy("/etc/resolv.conf", os.path.join(tmp, "etc", "resolv.conf"))
            subprocess.run(["chroot", tmp, "apt-get", "update", "-qq"], check=True, env=ENV, timeout=600)
            subprocess.run(["tar", "-C", tmp, "-cf", tar + ".new", "."], check=True)
            os.replace(tar + ".new", tar)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        return tar


class DebRoot:
    def __init__(self) -> None:
        self.dir = tempfile.mkdtemp(prefix="agentd-install-", dir="/var/tmp")
        self.root = os.path.join(self.dir, "root")
        self.mounts: list = []

    def setup(self) -> DebRoot:
        os.makedirs(self.root)
        subprocess.run(["tar", "-C", self.root, "-xf", _base_tar()], check=True)
        for name in ("resolv.conf", "machine-id"):  # the agent describes this host
            shutil.copy(f"/etc/{name}", os.path.join(self.root, "etc", name))
        self._mount(["-t", "proc", "proc"], "/proc")
        self._mount(["--bind", "/dev"], "/dev")
        archives = os.path.join(CACHE, "apt-archives")  # downloaded .debs kept between runs
        os.makedirs(os.path.join(archives, "partial"), exist_ok=True)
        self._mount(["--bind", archives], "/var/cache/apt/archives")
        return self

    @contextlib.contextmanager
    def stack_sources(self):
        """The host's audit log and journal, read-only, only while the agent runs:
        package scripts (auditd's postrm deletes /var/log/audit) never see them."""
        mounted = []
        try:
            for path in RO_BINDS:
                if os.path.isdir(path):
                    self._mount(["--bind", path], path)
                    mounted.append(self.mounts[-1])
                    subprocess.run(["mount", "-o", "remount,bind,ro", self.root + path], check=True)
            yield
        finally:
            for target in reversed(mounted):
                subprocess.run(["umount", target], check=True)
                self.mounts.remove(target)

    def _mount(self, args: list, path: str) -> None:
        target = self.root + path
        os.makedirs(target, exist_ok=True)
        subprocess.run(["mount", *args, target], check=True)
        self.mounts.append(target)

    def run(self, cmd: str, timeout: float = 300, check: bool = True) -> subprocess.CompletedProcess:
        r = subprocess.run(["chroot", self.root, "sh", "-c", cmd], capture_output=True, text=True,
                           env=ENV, timeout=timeout, stdin=subprocess.DEVNULL)
        if check and r.returncode != 0:
            raise AssertionError(f"`{cmd}` exited {r.returncode}:\n{r.stdout[-3000:]}\n{r.stderr[-3000:]}")
        return r

    def apt(self, args: str, timeout: float = 600) -> subprocess.CompletedProcess:
        """apt-get in the root; a stale cached package list is refreshed once."""
        r = self.run(f"apt-get -y -q {args}", timeout=timeout, check=False)
        if r.returncode != 0 and ("404" in r.stdout + r.stderr or "Unable to locate" in r.stderr):
            self.run("apt-get update -qq", timeout=timeout)
            r = self.run(f"apt-get -y -q {args}", timeout=timeout, check=False)
        assert r.returncode == 0, f"apt-get {args}:\n{r.stdout[-3000:]}\n{r.stderr[-3000:]}"
        return r

    def path(self, p: str) -> str:
        return self.root + p

    def files(self, skip: tuple = ()) -> set:
        """Every path in the root except the mounts and what apt/dpkg keep for themselves."""
        out: set = set()
        prune = {"/proc", "/dev", "/tmp", "/var/cache", "/var/lib/apt", "/var/lib/dpkg", "/var/log",
                 "/run/log"} | set(skip)
        for dirpath, dirnames, filenames in os.walk(self.root):
            rel = dirpath[len(self.root):] or "/"
            dirnames[:] = [d for d in dirnames if os.path.join(rel, d) not in prune]
            for name in dirnames + filenames:
                out.add(os.path.join(rel, name))
        return out

    def __enter__(self) -> DebRoot:
        return self.setup()

    def __exit__(self, *exc) -> None:
        self.teardown()

    def teardown(self) -> None:
        for target in reversed(self.mounts):
            subprocess.run(["umount", "-l", target], check=False)
        with open("/proc/mounts") as f:
            left = [ln.split()[1] for ln in f if ln.split()[1].startswith(self.root)]
        if left:  # never delete through a mount into the host
            raise RuntimeError(f"still mounted, {self.dir} kept: {left}")
        shutil.rmtree(self.dir, ignore_errors=True)
