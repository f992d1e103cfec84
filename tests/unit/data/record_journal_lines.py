"""Record real sshd / sudo / su / sftp-server journal entries for the parser tests.

    sudo .venv/bin/python tests/unit/data/record_journal_lines.py [--out PATH]

Runs each scenario below through the real test stack (tests/stack: the jump sshd on
127.0.0.1:2222 with UsePAM and LogLevel VERBOSE), then reads what journald stored for
it (`journalctl -o json`, by SYSLOG_IDENTIFIER) and appends the entries, labelled with
the scenario, to tests/unit/data/journal_lines.jsonl. The parser tests read only that
file, so they run anywhere; re-run this script to refresh it after an OpenSSH, sudo or
PAM upgrade. Other ssh/sudo activity on the machine during the run lands in the file
too (the tests look lines up by scenario and message, so that is harmless).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[3]
sys.path.insert(0, str(REPO))

from tests.stack import forwards  # noqa: E402
from tests.stack import stack as stackmod  # noqa: E402
from tests.stack.fixtures import journal_cursor  # noqa: E402
from tests.stack.session import SSH_BASE, PtyProcess, SshSession, attempt_login, sftp_batch  # noqa: E402

MATCHES = ["SYSLOG_IDENTIFIER=sshd", "SYSLOG_IDENTIFIER=sshd-session", "SYSLOG_IDENTIFIER=sudo",
           "SYSLOG_IDENTIFIER=su", "SYSLOG_IDENTIFIER=sftp-server"]
# __MONOTONIC_TIMESTAMP and the like say nothing a parser needs; the rest is kept as is.
FWD_USER = "agentd-fwd"  # created and removed by the forward scenarios
DROP = {"__MONOTONIC_TIMESTAMP", "_SOURCE_MONOTONIC_TIMESTAMP", "_CAP_EFFECTIVE"}


def entries_after(cursor: str) -> list:
    argv = ["journalctl", "-o", "json", "--no-pager", *(["--after-cursor", cursor] if cursor else []), *MATCHES]
    out = subprocess.run(argv, capture_output=True, text=True, check=True).stdout
    return [json.loads(line) for line in out.splitlines() if line.strip()]


def settle(cursor: str, want: str, timeout: float = 20.0) -> list:
    """Wait for a line containing `want`, then until nothing new arrives for a second
    (sshd's monitor logs "session closed" after the client has already gone)."""
    deadline = time.monotonic() + timeout
    while not any(want in str(e.get("MESSAGE")) for e in entries_after(cursor)):
        if time.monotonic() > deadline:
            raise SystemExit(f"journal never showed {want!r}")
        time.sleep(0.2)
    n = -1
    got: list = []
    while n != len(got):
        n = len(got)
        time.sleep(1.0)
        got = entries_after(cursor)
    return got


def kbd_login(user: str, password: str, info) -> bool:
    # SshSession(password=…) pins PreferredAuthentications=password; ssh keeps the first
    # -o it sees, so keyboard-interactive needs its own argv.
    argv = [*SSH_BASE, "-o", "PreferredAuthentications=keyboard-interactive", "-o", "PubkeyAuthentication=no",
            "-o", "NumberOfPasswordPrompts=1", "-p", str(info.jump_port), f"{user}@{info.jump_host}", "true"]
    p = PtyProcess(argv)
    p.expect(rb"[Pp]assword: ?$", 20)
    p.send(password + "\n")
    return p.wait(30) == 0


def sudo_three_wrong(s, user: str, command: str) -> None:
    """sudo COMMAND answered with three wrong passwords: "3 incorrect password attempts"."""
    s.send(f"sudo {command}\r".encode())
    for n in range(3):
        s.expect(f"password for {user}: ?$".encode(), 30)
        s.send(f"wrong-{n}\r".encode())
    s.wait_prompt(40)


def scenarios(info, work: Path):
    alice_key = info.users["alice"]["key_path"]
    bob_key = info.users["bob"]["key_path"]

    def alice_session():
        with SshSession("alice", key=alice_key, port=info.jump_port) as s:
            s.run("sudo /usr/bin/id")
            s.send(b"sudo -i\r")
            s.read_quiet(0.5)
            s.set_prompt()
            s.run("exit")
    yield "alice-publickey-sudo", alice_session, "session closed for user alice"

    yield ("carol-failed-password", lambda: attempt_login("carol", "wrong-pass", info.jump_host, info.jump_port),
           "Connection closed by authenticating user carol")
    yield ("invalid-user", lambda: attempt_login("nosuchuser", "whatever-1", info.jump_host, info.jump_port),
           "Connection closed by invalid user nosuchuser")
    yield ("carol-kbd-failed", lambda: kbd_login("carol", "wrong-pass-kbd", info),
           "Connection closed by authenticating user carol")
    yield "carol-kbd-accepted", lambda: kbd_login("carol", "carol-pass-123", info), "session closed for user carol"

    def carol_session():
        with SshSession("carol", password="carol-pass-123", port=info.jump_port) as s:
            s.send(b"sudo /usr/bin/id\r")
            s.expect(rb"password for carol: ?$", 20)
            s.send(b"carol-pass-123\r")
            s.wait_prompt(20)
            sudo_three_wrong(s, "carol", "/usr/bin/id")
            s.send(b"su - dave\r")
            s.expect(rb"Password: ?$", 20)
            s.send(b"dave-pass-123\r")
            s.read_quiet(0.5)
            s.set_prompt()
            s.run("exit")
            s.send(b"su - dave\r")
            s.expect(rb"Password: ?$", 20)
            s.send(b"not-daves\r")
            s.wait_prompt(30)
    yield "carol-password-sudo-su", carol_session, "session closed for user carol"

    def bob_session():
        with SshSession("bob", key=bob_key, port=info.jump_port) as s:
            s.run("sudo /usr/bin/id")
            # Not in bob's rule: sudo asks for a password bob does not have; ctrl-c at the
            # prompt makes it log "command not allowed".
            s.send(b"sudo /bin/ls /root\r")
            s.expect(rb"password for bob: ?$", 20)
            s.send(b"\x03")
            s.wait_prompt(20)
            # bob's password field is "*": three tries all fail -> "3 incorrect password attempts".
            sudo_three_wrong(s, "bob", "/bin/ls /root")
    yield "bob-sudo-not-allowed", bob_session, "session closed for user bob"

    def sftp():
        up = work / "upload.bin"
        up.write_bytes(bytes(range(256)) * 48)  # 12288 bytes
        sftp_batch("alice", alice_key, [f"put {up} /home/alice/journal-upload.bin", "ls -l",
                                        f"get /etc/hostname {work / 'hostname.dl'}", "mkdir jdir",
                                        "rename journal-upload.bin jdir/moved.bin", "rm jdir/moved.bin",
                                        "rmdir jdir"])
    yield "alice-sftp", sftp, "session closed for local user alice"

    # Forwards sshd refuses or cannot complete (tests/stack/forwards.py): a user of its own,
    # whose keys' options restrict forwarding.
    def fwd(run):
        def go():
            with forwards.restricted_user(FWD_USER) as keys:
                run(FWD_USER, keys["nofwd" if run is forwards.refused_local else "open"],
                    info.jump_host, info.jump_port)
        return go
    yield "forward-refused-local", fwd(forwards.refused_local), "refused local port forward"
    yield ("forward-denied-and-failed", fwd(forwards.denied_and_failed),
           f"session closed for user {FWD_USER}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", default=str(Path(__file__).with_name("journal_lines.jsonl")))
    ap.add_argument("--only", action="append", metavar="SCENARIO",
                    help="record only this scenario (repeatable), replacing its lines in --out and keeping the rest")
    args = ap.parse_args()
    info = stackmod.up()
    lines = []
    if args.only and Path(args.out).exists():
        lines = [x for x in Path(args.out).read_text().splitlines()
                 if x.strip() and json.loads(x)["scenario"] not in args.only]
    with tempfile.TemporaryDirectory() as tmp:
        for name, run, want in scenarios(info, Path(tmp)):
            if args.only and name not in args.only:
                continue
            cursor = journal_cursor()
            run()
            got = settle(cursor, want)
            print(f"{name}: {len(got)} entries", file=sys.stderr)
            for e in got:
                e = {k: v for k, v in e.items() if k not in DROP}
                lines.append(json.dumps({"scenario": name, "entry": e}, sort_keys=True))
    Path(args.out).write_text("\n".join(lines) + "\n")
    print(f"wrote {len(lines)} entries to {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
