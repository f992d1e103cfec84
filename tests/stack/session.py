"""Drive real interactive ssh sessions through a pty, the way a person at a terminal does.

A pty matters: pam_tty_audit only records keystrokes typed on a tty, and sshd only logs
"Starting session: shell on pts/N" for a real interactive session.
"""

from __future__ import annotations

import errno
import fcntl
import os
import pty
import re
import select
import signal
import struct
import subprocess
import termios
import time
from typing import List, Optional, Sequence, Union

PROMPT = "AGENTD-PROMPT$ "
PROMPT_RE = re.compile(rb"AGENTD-PROMPT\$ $")
# The setup line typed after login. The prompt string is split by quotes so its echo does
# not look like a prompt; bracketed paste off so readline does not wrap every prompt in
# escape sequences; a wide terminal (set below) keeps readline from re-wrapping long lines.
SETUP_LINE = ("bind 'set enable-bracketed-paste off' 2>/dev/null; "
              "unset PROMPT_COMMAND; PS1='AGENTD''-PROMPT$ '")
ROWS, COLS = 50, 400

SSH_BASE = [
    "ssh", "-F", "/dev/null",
    "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null",
    "-o", "LogLevel=ERROR", "-o", "IdentityAgent=none", "-o", "SendEnv=LANG",
    "-o", "ConnectTimeout=10",
]
ANSI_RE = re.compile(rb"\x1b\[[0-9;?]*[A-Za-z]|\x1b[=>]")

Pattern = Union[str, bytes, "re.Pattern[bytes]"]


def _auth_opts(key: Optional[str], password: Optional[str]) -> List[str]:
    if key:
        return ["-i", key, "-o", "IdentitiesOnly=yes", "-o", "PreferredAuthentications=publickey",
                "-o", "BatchMode=yes"]
    if password is not None:
        # "password", not keyboard-interactive: sshd then logs "Failed password for ...",
        # the message every bastion parser knows. One prompt per connection.
        return ["-o", "PreferredAuthentications=password", "-o", "PubkeyAuthentication=no",
                "-o", "NumberOfPasswordPrompts=1"]
    return ["-o", "BatchMode=yes"]


def _compile(pattern: Pattern) -> "re.Pattern[bytes]":
    if isinstance(pattern, re.Pattern):
        return pattern
    if isinstance(pattern, str):
        pattern = pattern.encode()
    return re.compile(pattern)


class SessionError(RuntimeError):
    pass


class PtyProcess:
    """A child on the slave side of a new pty, with expect-style reading of the master."""

    def __init__(self, argv: Sequence[str], env: Optional[dict] = None):
        self.argv = list(argv)
        self.transcript = bytearray()   # everything ever read, for debugging failures
        self._buf = bytearray()
        self.eof = False
        self.exit_status: Optional[int] = None
        child_env = dict(os.environ if env is None else env)
        child_env.setdefault("LANG", "C.UTF-8")
        child_env["TERM"] = "xterm"
        self.pid, self.fd = pty.fork()
        if self.pid == 0:  # child
            try:
                fcntl.ioctl(0, termios.TIOCSWINSZ, struct.pack("HHHH", ROWS, COLS, 0, 0))
                os.execvpe(self.argv[0], self.argv, child_env)
            finally:
                os._exit(127)

    # -- reading
    def _read_some(self, timeout: float) -> bool:
        if self.eof:
            return False
        r, _, _ = select.select([self.fd], [], [], max(0.0, timeout))
        if not r:
            return False
        try:
            data = os.read(self.fd, 65536)
        except OSError as e:
            if e.errno != errno.EIO:
                raise
            data = b""
        if not data:
            self.eof = True
            return False
        self._buf += data
        self.transcript += data
        return True

    def expect(self, pattern: Pattern, timeout: float = 15.0) -> "re.Match[bytes]":
        """Wait until `pattern` matches the unread output; consume through the match."""
        rx = _compile(pattern)
        deadline = time.monotonic() + timeout
        while True:
            m = rx.search(self._buf)
            if m:
                self.before = bytes(self._buf[:m.start()])
                del self._buf[:m.end()]
                return m
            if self.eof or time.monotonic() >= deadline:
                tail = bytes(self.transcript[-600:]).decode(errors="replace")
                why = "EOF" if self.eof else f"timeout {timeout}s"
                raise SessionError(f"{why} waiting for {rx.pattern!r}; last output:\n{tail}")
            self._read_some(min(0.2, deadline - time.monotonic()))

    def read_quiet(self, quiet: float = 0.3, timeout: float = 10.0) -> bytes:
        """Read until nothing arrives for `quiet` seconds; return and consume it."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and self._read_some(quiet):
            pass
        out = bytes(self._buf)
        self._buf.clear()
        return out

    # -- writing
    def send(self, data: Union[str, bytes]) -> None:
        if isinstance(data, str):
            data = data.encode()
        while data:
            n = os.write(self.fd, data)
            data = data[n:]

    # -- ending
    def wait(self, timeout: float = 15.0) -> int:
        deadline = time.monotonic() + timeout
        while self.exit_status is None:
            self._read_some(0.1)  # drain, or the child may block writing to the pty
            pid, status = os.waitpid(self.pid, os.WNOHANG)
            if pid:
                self.exit_status = os.waitstatus_to_exitcode(status) if hasattr(
                    os, "waitstatus_to_exitcode") else (status >> 8)
                break
            if time.monotonic() >= deadline:
                os.kill(self.pid, signal.SIGKILL)
                os.waitpid(self.pid, 0)
                self.exit_status = -9
                break
        try:
            os.close(self.fd)
        except OSError:
            pass
        return self.exit_status


class SshSession:
    """An interactive login through the jump sshd (or any sshd), driven through a pty.

        with SshSession("alice", key=info.users["alice"]["key_path"]) as s:
            out = s.run("id")
    """

    def __init__(self, user: str, host: str = "127.0.0.1", port: int = 2222,
                 key: Optional[str] = None, password: Optional[str] = None,
                 timeout: float = 20.0, extra_args: Sequence[str] = ()):
        self.user, self.host, self.port = user, host, port
        argv = [*SSH_BASE, "-tt", *_auth_opts(key, password), *extra_args,
                "-p", str(port), f"{user}@{host}"]
        self.proc = PtyProcess(argv)
        self.depth = 1          # nested shells to exit from at close()
        self.closed = False
        if password is not None:
            self.proc.expect(rb"[Pp]assword: ?$", timeout)
            self.proc.send(password + "\n")
        self._wait_first_prompt(timeout)
        self.set_prompt(timeout)

    def _wait_first_prompt(self, timeout: float) -> None:
        # Unknown prompt (motd, skel PS1 with colours): wait for a shell prompt ending in
        # "$ " or "# ", then for output to go quiet.
        self.proc.expect(rb"[$#] (\x1b\[[0-9;?]*[A-Za-z])*$|[$#] $", timeout)
        self.proc.read_quiet(0.2, timeout)

    def set_prompt(self, timeout: float = 15.0) -> None:
        """(Re)establish the known prompt, e.g. after `sudo -i` or `su -` starts a shell."""
        self.proc.send(SETUP_LINE + "\r")
        self.proc.expect(PROMPT_RE, timeout)

    # -- the public driving API
    def send(self, raw: Union[str, bytes]) -> None:
        """Raw keystrokes: arrows b"\\x1b[A", backspace b"\\x7f", tab b"\\t", ctrl-c b"\\x03"."""
        self.proc.send(raw)

    def expect(self, pattern: Pattern, timeout: float = 15.0) -> str:
        """Wait for pattern; return the output before it (decoded)."""
        self.proc.expect(pattern, timeout)
        return self.proc.before.decode("utf-8", errors="replace")

    def wait_prompt(self, timeout: float = 15.0) -> str:
        return self.expect(PROMPT_RE, timeout)

    def run(self, cmd: Union[str, bytes], timeout: float = 15.0) -> str:
        """Type `cmd`, press Enter, wait for the prompt; return the command's output."""
        if isinstance(cmd, str):
            cmd = cmd.encode()
        self.proc.send(cmd + b"\r")
        self.proc.expect(PROMPT_RE, timeout)
        return self.clean(self.proc.before, echo=cmd)

    def type_line(self, keys: Union[str, bytes], timeout: float = 15.0) -> str:
        """Send keystrokes that end with Enter themselves (editing, history...) and wait for
        the prompt; return the raw screen output, escape sequences stripped."""
        self.proc.send(keys)
        self.proc.expect(PROMPT_RE, timeout)
        return self.clean(self.proc.before)

    @staticmethod
    def clean(raw: bytes, echo: Optional[bytes] = None) -> str:
        text = ANSI_RE.sub(b"", raw).replace(b"\r\n", b"\n").replace(b"\r", b"")
        if echo is not None:
            # drop the echoed command line (first line)
            nl = text.find(b"\n")
            text = text[nl + 1:] if nl >= 0 else b""
        return text.decode("utf-8", errors="replace")

    def read_quiet(self, quiet: float = 0.3, timeout: float = 10.0) -> str:
        return self.clean(self.proc.read_quiet(quiet, timeout))

    @property
    def transcript(self) -> bytes:
        return bytes(self.proc.transcript)

    def close(self, timeout: float = 20.0) -> int:
        """Log out (exiting nested shells first) and wait for ssh to end. The logout is what
        makes pam_tty_audit flush the session's keystrokes to the audit log."""
        if self.closed:
            return self.proc.exit_status or 0
        self.closed = True
        try:
            for _ in range(self.depth):
                if self.proc.eof:
                    break
                self.proc.send("exit\r")
                time.sleep(0.1)
        except OSError:
            pass
        return self.proc.wait(timeout)

    def __enter__(self) -> "SshSession":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def attempt_login(user: str, password: str, host: str = "127.0.0.1", port: int = 2222,
                  timeout: float = 20.0) -> bool:
    """One password login attempt (one prompt); True if it got in. Used for the failed
    password / invalid user cases, so it runs `true` and leaves immediately on success."""
    argv = [*SSH_BASE, *_auth_opts(None, password), "-p", str(port), f"{user}@{host}", "true"]
    p = PtyProcess(argv)
    try:
        p.expect(rb"[Pp]assword: ?$", timeout)
        p.send(password + "\n")
    except SessionError:
        pass
    return p.wait(timeout + 10) == 0


def _ssh_opts_for_copy(key: str) -> List[str]:
    return ["-F", "/dev/null", "-o", "StrictHostKeyChecking=no",
            "-o", "UserKnownHostsFile=/dev/null", "-o", "LogLevel=ERROR",
            "-o", "IdentityAgent=none", "-o", "IdentitiesOnly=yes",
            "-o", "BatchMode=yes", "-i", key]


def scp(user: str, key: str, src: str, dst: str, upload: bool = True,
        host: str = "127.0.0.1", port: int = 2222, legacy: bool = False) -> None:
    """scp a file to (upload) or from the host. OpenSSH 9 scp speaks SFTP by default (so
    sftp-server logs it); legacy=True (-O) runs `scp -t/-f` on the server instead, which
    shows up as an execve."""
    remote = f"{user}@{host}:"
    argv = ["scp", *_ssh_opts_for_copy(key), "-P", str(port)]
    if legacy:
        argv.append("-O")
    argv += [src, remote + dst] if upload else [remote + src, dst]
    subprocess.run(argv, check=True, stdin=subprocess.DEVNULL, capture_output=True, timeout=60)


def sftp_batch(user: str, key: str, commands: Sequence[str], host: str = "127.0.0.1",
               port: int = 2222) -> str:
    """Run an sftp session from a batch of commands (put/get/ls...); returns its stdout."""
    p = subprocess.run(["sftp", *_ssh_opts_for_copy(key), "-P", str(port), "-b", "-",
                        f"{user}@{host}"], input="\n".join(commands) + "\n",
                       capture_output=True, text=True, timeout=60, check=True)
    return p.stdout
