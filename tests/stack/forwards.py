"""Forwards that the jump sshd refuses or cannot complete, driven for real.

A user of its own is created for them (and removed after), with two keys whose
authorized_keys options restrict forwarding, so the stack's sshd config stays as it is:

- ``nofwd``: ``no-port-forwarding``: ``-L`` is refused outright
  ("refused local port forward: originator … target …");
- ``open``: ``permitopen`` 127.0.0.2:2222 and 127.0.0.2:9, ``permitlisten`` 127.0.0.1:15990:
  ``-L`` to 127.0.0.9:22 is outside permitopen ("Received request from … to connect to host …,
  but the request was denied."), ``-L`` to 127.0.0.2:9 is allowed but nothing listens there
  ("connect_to 127.0.0.2 port 9: failed."), and ``-R`` on another port is outside permitlisten
  ("… to remote forward to host …, but the request was denied.").

Every address is on loopback.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from typing import Dict, Iterator

from tests.stack.session import SSH_BASE

DENIED_TARGET = ("127.0.0.9", 22)  # outside permitopen
CLOSED_TARGET = ("127.0.0.2", 9)  # inside permitopen, nothing listens (the target host's discard port)
KEY_OPTIONS = {
    "nofwd": "no-port-forwarding",
    "open": 'permitopen="127.0.0.2:2222",permitopen="127.0.0.2:9",permitlisten="127.0.0.1:15990"',
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def restricted_user(name: str) -> Iterator[Dict[str, str]]:
    """Create ``name`` with the two keys of KEY_OPTIONS; yields {key name: private key path}."""
    subprocess.run(["useradd", "--create-home", "--shell", "/bin/bash", name], check=True)
    keydir = tempfile.mkdtemp(prefix="agentd-fwd-keys-")
    try:
        pw = pwd.getpwnam(name)
        subprocess.run(["usermod", "-p", "*", name], check=True)  # no password: keys only
        ssh_dir = os.path.join(pw.pw_dir, ".ssh")
        os.makedirs(ssh_dir, mode=0o700, exist_ok=True)
        keys, lines = {}, []
        for key, opts in KEY_OPTIONS.items():
            path = os.path.join(keydir, key)
            subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", f"{name}-{key}", "-f", path],
                           check=True)
            with open(path + ".pub") as f:
                lines.append(f"{opts} {f.read().strip()}")
            keys[key] = path
        auth = os.path.join(ssh_dir, "authorized_keys")
        with open(auth, "w") as f:
            f.write("\n".join(lines) + "\n")
        for p in (ssh_dir, auth):
            os.chown(p, pw.pw_uid, pw.pw_gid)
        os.chmod(auth, 0o600)
        yield keys
    finally:
        # Let the logins end by themselves first (sshd logs their close), then clear up.
        deadline = time.monotonic() + 10
        while subprocess.run(["pgrep", "-u", name], capture_output=True).returncode == 0 \
                and time.monotonic() < deadline:
            time.sleep(0.2)
        subprocess.run(["pkill", "-KILL", "-u", name], capture_output=True)
        time.sleep(0.2)
        subprocess.run(["userdel", "--remove", name], capture_output=True)
        shutil.rmtree(keydir, ignore_errors=True)


def _forwarding(user: str, key: str, host: str, port: int, *forwards: str) -> subprocess.Popen:
    argv = [*SSH_BASE, "-o", "IdentitiesOnly=yes", "-o", "BatchMode=yes", "-o", "ExitOnForwardFailure=no",
            "-i", key, "-p", str(port), "-N", *forwards, f"{user}@{host}"]
    return subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def _client_port(p: subprocess.Popen, port: int, timeout: float = 20.0) -> int:
    """The local port of the ssh client's connection to sshd (the login's session.source.port)."""
    import psutil

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for c in psutil.Process(p.pid).net_connections(kind="tcp"):
            if c.raddr and c.raddr.port == port and c.status == psutil.CONN_ESTABLISHED:
                return c.laddr.port
        time.sleep(0.1)
    raise TimeoutError(f"ssh (pid {p.pid}) never connected: {p.stderr.read() if p.poll() is not None else ''}")


def connect_when_up(local_port: int, timeout: float = 30.0) -> socket.socket:
    """A connection to the client's end of a -L, once the ssh client listens there."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return socket.create_connection(("127.0.0.1", local_port), timeout=5)
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def _use(local_port: int) -> None:
    """Use a -L once and wait for sshd's answer (the channel refused or failed: the
    client closes the connection)."""
    with connect_when_up(local_port) as c:
        c.settimeout(10)
        try:
            c.recv(64)
        except OSError:
            pass


def _stop(p: subprocess.Popen) -> None:
    p.terminate()
    try:
        p.wait(15)
    except subprocess.TimeoutExpired:
        p.kill()
        p.wait(5)


def refused_local(user: str, key: str, host: str, port: int) -> int:
    """The ``nofwd`` key: a -L, used once, refused by sshd. Returns the login's client port."""
    lp = free_port()
    p = _forwarding(user, key, host, port, "-L", f"127.0.0.1:{lp}:127.0.0.2:2222")
    try:
        cport = _client_port(p, port)
        _use(lp)
        return cport
    finally:
        _stop(p)


def denied_and_failed(user: str, key: str, host: str, port: int) -> int:
    """The ``open`` key: one login with a -L outside permitopen, a -L to a closed port and a
    -R outside permitlisten (refused when the client asks, at login). Returns the login's
    client port."""
    lp_denied, lp_closed, rp = free_port(), free_port(), free_port()
    p = _forwarding(user, key, host, port,
                    "-L", f"127.0.0.1:{lp_denied}:{DENIED_TARGET[0]}:{DENIED_TARGET[1]}",
                    "-L", f"127.0.0.1:{lp_closed}:{CLOSED_TARGET[0]}:{CLOSED_TARGET[1]}",
                    "-R", f"127.0.0.1:{rp}:127.0.0.1:9")
    try:
        cport = _client_port(p, port)
        _use(lp_denied)
        _use(lp_closed)
        time.sleep(0.5)
        return cport
    finally:
        _stop(p)
