"""Redaction: what a user checks is that the secret is nowhere in the serialized event."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agent.base.events import dumps
from agent.pipeline.redact import MASK, Redactor
from collectors.auditd.keystrokes import keystrokes_fields

R = Redactor()


def tty_event(data: bytes, comm: str = "bash") -> dict:
    return {"event": {"module": "auditd", "dataset": "auditd.tty", "original": "type=TTY msg=audit(1.0:1): tty pid=1 comm=\"%s\" data=%s"
                      % (comm, data.hex().upper())},
            "process": {"name": comm}, "keystrokes": keystrokes_fields(data)}


def exec_event(args: list) -> dict:
    return {"event": {"module": "auditd", "dataset": "auditd.process", "original": "type=EXECVE msg=audit(1.0:2): argc=%d %s" % (
        len(args), " ".join('a%d="%s"' % (i, a) if " " not in a else "a%d=%s" % (i, a.encode().hex().upper())
                            for i, a in enumerate(args)))},
            "process": {"args": list(args), "command_line": " ".join(args), "title": " ".join(args)}}


@pytest.mark.parametrize("args,secret", [
    (["mysql", "-pHunter2", "-e", "select 1"], "Hunter2"),
    (["mysqldump", "-uroot", "-pS3cr3t!", "db"], "S3cr3t!"),
    (["mysqladmin", "--password=Hunter2", "status"], "Hunter2"),
    (["sshpass", "-p", "pa55word", "ssh", "host"], "pa55word"),
    (["sshpass", "-ppa55word", "ssh", "host"], "pa55word"),
    (["curl", "-u", "bob:tiger99", "https://example.com/"], "tiger99"),
    (["curl", "--user", "bob:tiger99", "https://example.com/"], "tiger99"),
    (["curl", "-ubob:tiger99", "https://example.com/"], "tiger99"),
    (["redis-cli", "-a", "r3dispass", "ping"], "r3dispass"),
    (["env", "PGPASSWORD=pgsecret1", "psql", "-h", "db"], "pgsecret1"),
    (["git", "clone", "https://bob:ghtok123@example.com/r.git"], "ghtok123"),
    (["curl", "-H", "Authorization: Bearer abcdef123456", "https://x/"], "abcdef123456"),
    (["aws", "configure", "set", "aws_secret_access_key", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"],
     "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"),
    (["openssl", "enc", "-aes256", "-pass", "pass:opensslpw"], "opensslpw"),
    (["deploy", "--token", "tok-998877"], "tok-998877"),
    (["sudo", "mysql", "-p'two words'", "db"], "two words"),
])
def test_secret_is_nowhere_in_the_exec_event(args, secret):
    doc = exec_event(args)
    assert R.apply(doc)
    out = dumps(doc).decode()
    assert secret not in out and secret.encode().hex().upper() not in out
    assert "redacted" in doc["tags"]
    assert MASK in " ".join(doc["process"]["args"])


def test_mask_keeps_the_key_and_has_fixed_length():
    assert R.redact_text("mysql -pHunter2 -e 'select 1'") == ("mysql -p******** -e 'select 1'", True)
    assert R.redact_text("export API_TOKEN=abc123") == ("export API_TOKEN=********", True)
    assert R.redact_text("export API_TOKEN=" + "x" * 300)[0] == "export API_TOKEN=********"
    assert R.redact_text("curl -u bob:pw https://h/")[0] == "curl -u bob:******** https://h/"
    assert R.redact_text("psql postgresql://app:pw@db/x")[0] == "psql postgresql://app:********@db/x"


@pytest.mark.parametrize("text", [
    "echo AKIAIOSFODNN7EXAMPLE",
    "echo ghp_0123456789abcdefghijABCDEFGHIJ012345",
    "echo github_pat_11ABCDEFG0123456789_abcdefghijklmnopqrstuvwxyz",
    "echo xoxb-123456789012-abcdefghijkl",
    "echo eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U",
    "cat <<EOF\n-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAA\n-----END OPENSSH PRIVATE KEY-----\nEOF",
    "DB_PASSWD=x1y2z3 ./run", "my_secret=abc ./x", "GITHUB_TOKEN='t o k' gh api", "passphrase=zz9",
])
def test_token_shapes_are_masked(text):
    out, changed = R.redact_text(text)
    assert changed and MASK in out
    for secret in ("IOSFODNN7", "0123456789abcdefghij", "abcdefghijkl", "dozjgNry", "b3BlbnNz", "x1y2z3",
                   "=abc", "t o k", "zz9"):
        assert secret not in out


@pytest.mark.parametrize("text", [
    "ls -p /tmp", "mkdir -p /srv/app/logs", "grep -p pattern file", "ssh -p 2222 10.0.0.5",
    "mysql -p mydb", "mysql --password -u root", "curl -u bob https://example.com/",
    "LANG=C sort file", "make -j4 CC=gcc", "ssh-keygen -t ed25519 -f ~/.ssh/id_ed25519",
    "cat ~/.ssh/id_rsa.pub", "git log --oneline", "echo https://example.com/a:b", "sudo -i", "su - dave",
    "python3 -m pip install keyring", "sort -k2 file",
])
def test_lookalikes_are_not_masked(text):
    assert R.redact_text(text) == (text, False)
    assert R.redact_args(text.split()) == (text.split(), False)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from(list("abc -=:/@'\"pP_xKEYTOKN") + ["mysql ", "curl -u ", "--password",
                                                                    "TOKEN=", "://u:"]), max_size=30).map("".join))
def test_idempotent(s):
    once, _ = R.redact_text(s)
    assert R.redact_text(once) == (once, False)


def test_keystrokes_secret_absent_everywhere():
    data = b"mysql -pHunter2 -e 'select 1'\rexport API_TOKEN=abc123\rls\r"
    doc = tty_event(data)
    assert R.apply(doc)
    out = dumps(doc).decode()
    for secret in ("Hunter2", "abc123", data.hex().upper()):
        assert secret not in out
    assert doc["keystrokes"]["redacted"] is True
    assert doc["keystrokes"]["lines"] == ["mysql -p******** -e 'select 1'", "export API_TOKEN=********", "ls"]
    assert doc["keystrokes"]["text"].startswith('"mysql -p******** -e \'select 1\'",<ret>')
    assert "redacted" in doc["tags"]


def test_clean_keystrokes_are_untouched():
    doc = tty_event(b"ls -la\rcd /tmp\r")
    before = dumps(doc)
    assert not R.apply(doc)
    assert doc["keystrokes"]["redacted"] is False
    del doc["keystrokes"]["redacted"]
    assert dumps(doc) == before and "tags" not in doc


def test_line_after_password_prompt_is_masked_when_echoed():
    doc = tty_event(b"su - root\rhunter2\rid\r")
    assert R.apply(doc)
    assert doc["keystrokes"]["lines"] == ["su - root", MASK, "id"]
    assert "hunter2" not in dumps(doc).decode()
    # the real capture: the next line is a command, and commands stay visible
    doc = tty_event(b"sudo id\rsudo -i\rsu - dave\rsu - dave\rexit\r")
    assert not R.apply(doc)
    # mysql -p prompts; mysql without -p does not
    assert tty_event(b"mysql -p\rs3cret\r")["keystrokes"]["lines"][1] == "s3cret"
    doc = tty_event(b"mysql -p\rs3cret\r")
    R.apply(doc)
    assert doc["keystrokes"]["lines"] == ["mysql -p", MASK] and "s3cret" not in dumps(doc).decode()
    doc = tty_event(b"mysql\rs3cret\r")
    assert not R.apply(doc)


def test_first_line_read_by_a_prompting_program():
    doc = tty_event(b"topsecret\rls\r", comm="ssh")
    assert R.apply(doc)
    assert doc["keystrokes"]["lines"][0] == MASK


def test_disabled_and_extra_patterns():
    off = Redactor(enabled=False)
    doc = exec_event(["mysql", "-pHunter2"])
    assert not off.apply(doc) and "Hunter2" in dumps(doc).decode()
    extra = Redactor(extra_patterns=[r"corp-[0-9]{6}", r"pin=(\d+)"])
    assert extra.redact_text("use corp-123456 now") == ("use ******** now", True)
    assert extra.redact_text("card pin=1234 ok") == ("card pin=******** ok", True)


def test_message_and_auditd_data_fields():
    doc = {"event": {}, "message": "sudo: bob : COMMAND=/usr/bin/mysql -pHunter2",
           "auditd": {"data": {"cmd": "curl -u a:zz1122 x", "n": 3}}}
    assert R.apply(doc)
    assert "Hunter2" not in dumps(doc).decode() and "zz1122" not in dumps(doc).decode()


def test_proctitle_hex_in_original_is_masked():
    title = b"mysql\x00-pHunter2\x00db".hex().upper()
    doc = {"event": {"module": "auditd", "original": "type=PROCTITLE msg=audit(1.0:3): proctitle=" + title}}
    assert R.apply(doc)
    assert title not in doc["event"]["original"]
    assert bytes.fromhex(doc["event"]["original"].split("proctitle=")[1]) == b"mysql\x00-p********\x00db"


def test_ssh_options_left_as_typed_and_not_tagged():
    line = "ssh -o StrictHostKeyChecking=no -o PubkeyAuthentication=yes admin@10.0.0.5"
    doc = exec_event(line.split())
    before = dumps(doc)
    assert not R.apply(doc) and dumps(doc) == before and "tags" not in doc
    doc = tty_event(line.encode() + b"\r")
    assert not R.apply(doc) and doc["keystrokes"]["lines"] == [line] and "tags" not in doc


def test_keep_original_raw_records_are_not_masked_by_their_keys():
    # SYSCALL's a0..a3 are hex numbers (odd length too), not EXECVE arguments; key="exec" is a rule key
    orig = ('type=SYSCALL msg=audit(1.0:7): arch=c000003e syscall=59 success=yes exit=0 a0=5 a1=7ffd2 '
            'a2=3 a3=0 items=2 ppid=1 pid=2 auid=1000 uid=0 comm="id" exe="/usr/bin/id" key="exec"\n'
            'type=EXECVE msg=audit(1.0:7): argc=1 a0="id"')
    doc = {"event": {"module": "auditd", "original": orig}, "process": {"args": ["id"]}}
    assert not R.apply(doc) and doc["event"]["original"] == orig and "tags" not in doc


def test_hex_execve_argument_is_masked_and_reencoded():
    doc = exec_event(["sshpass", "-p", "pass word9", "ssh", "-p", "2222", "h"])
    assert R.apply(doc)
    orig = doc["event"]["original"]
    assert "pass word9".encode().hex().upper() not in orig and 'a2="********"' in orig and 'a5="2222"' in orig
    assert doc["process"]["args"] == ["sshpass", "-p", MASK, "ssh", "-p", "2222", "h"]


def test_pasted_private_key_is_masked_line_by_line():
    data = (b"cat > k <<'EOF'\r-----BEGIN OPENSSH PRIVATE KEY-----\rb3BlbnNzaC1rZXktdjEAAAAABG5vbmU\r"
            b"QyNTUxOQAAACDExampleKeyBody\r-----END OPENSSH PRIVATE KEY-----\rEOF\rls\r")
    doc = tty_event(data)
    assert R.apply(doc)
    lines = doc["keystrokes"]["lines"]
    assert lines[2] == MASK and lines[3] == MASK and lines[-1] == "ls"
    out = dumps(doc).decode()
    assert "b3BlbnNz" not in out and "ExampleKeyBody" not in out


def test_here_document_fed_to_a_password_reader_is_masked():
    doc = tty_event(b"sudo chpasswd <<EOF\rbob:S3cretHd\rcarol:0therHd\rEOF\rcat <<EOF\rplain text\rEOF\r")
    assert R.apply(doc)
    assert doc["keystrokes"]["lines"] == ["sudo chpasswd <<EOF", "bob:" + MASK, "carol:" + MASK, "EOF",
                                          "cat <<EOF", "plain text", "EOF"]
    assert "S3cretHd" not in dumps(doc).decode() and "0therHd" not in dumps(doc).decode()
