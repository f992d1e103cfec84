"""Mask secrets in events before they reach the spool (config: [agent] redact, redact_patterns).

What is masked, keeping what names it visible and replacing the secret by a fixed
``********`` (so its length does not leak, and masking twice changes nothing):

* options: ``--password=…`` / ``--passwd`` / ``--passphrase`` / ``--secret`` / ``--token`` /
  ``--api-key`` (``=`` form anywhere; space form ``--password VALUE`` except for the mysql
  family, where ``--password`` alone prompts and the next word is a database name);
  mysql/mysqladmin/mysqldump/mariadb* ``-pVALUE`` (``-p VALUE`` is a prompt plus a database:
  left alone); sshpass ``-p VALUE`` / ``-pVALUE``; redis-cli ``-a VALUE`` / ``--pass VALUE``;
  curl ``-u user:pass`` / ``--user user:pass`` (user kept; ``-u user`` prompts: left alone);
  openssl ``pass:VALUE``;
* assignments ``NAME=VALUE`` / ``export NAME=VALUE`` whose NAME contains PASSWORD, PASSWD,
  PASSPHRASE, SECRET, TOKEN or KEY (any case), e.g. ``PGPASSWORD=…``, ``API_TOKEN=…``;
* token shapes: AWS key ids (AKIA…/ASIA…), the value after ``aws_secret_access_key``, GitHub
  (ghp_/gho_/ghs_/ghu_/ghr_/github_pat_), Slack (xox?-), ``Authorization: …`` and
  ``Bearer …``, JWTs, the body of PEM private key blocks, ``scheme://user:PASS@`` in URLs;
* ``redact_patterns`` from the config: the whole match, or only group 1 if it has groups;
* keystrokes: additionally, a typed line that follows a line running a password-prompting
  command (su, sudo, passwd, ssh, scp, sftp, mysql -p, psql, kinit …) in the same record,
  when it is a single word that is neither a shell builtin nor a program in the standard
  PATH. pam_tty_audit does not log input read with echo off, so such a line is there only
  if echo was on or log_passwd set: it is then most likely the password. The single-word
  test keeps ordinary next commands ("sudo -i", "exit") visible, which the real capture
  shows is what usually follows. The same holds for the first line of a record whose reader
  is itself such a program (its own prompt). In ``keystrokes.text`` the whole rendered
  segment of that line is masked.

An event with anything masked gets the tag ``redacted``; an auditd.tty event also
``keystrokes.redacted: true`` (false when nothing was masked). Fields scanned:
keystrokes.text/lines/line_details, process.args (argument-aware), process.command_line,
process.title, process.parent.command_line, message, event.original and string values of
auditd.data. In event.original, hex-encoded EXECVE/PROCTITLE arguments are decoded, masked
and re-encoded, and a TTY ``data=`` value is replaced by ``********`` when its keystrokes
had anything masked.

A secret split by line editing (``Hunt``, <backspace>, ``er2``) is masked in the replayed
lines but only run by run in keystrokes.text, where pieces may stay visible.
"""

from __future__ import annotations

import os
import re
from typing import Iterable, Optional

from collectors.auditd.tty import render

MASK = "********"

_SHELL_VALUE = r"""(?:'[^']*'|"(?:\\.|[^"\\])*"|[^\s;&|'"`<>()])+"""
_OPT_NAME = r"--(?:[\w-]*[-_])?(?:password|passwd|passphrase|secret|token|api[-_]?key)"
# (gates, rule): a rule runs only when the lower-cased text contains one of its gates.
# Each rule's groups are (keep-before, secret, keep-after). Substring gates instead of one
# combined regex: Python's re has no multi-literal prefilter, and a case-insensitive
# alternation of these words costs ~14 us on an 80-character line; the gates cost ~1 us.
_KEYWORDS = ("pass", "secret", "token", "key")
_RULES = [
    (("private key-----",),
     r"(-----BEGIN [A-Z0-9 ]*PRIVATE KEY-----)([\s\S]*?)(-----END [A-Z0-9 ]*PRIVATE KEY-----|$)"),
    # any NAME=VALUE; _sub keeps those whose NAME is not secret-like
    (_KEYWORDS, r"((?<![A-Za-z0-9_])[A-Za-z_][A-Za-z0-9_]*=)(" + _SHELL_VALUE + r")()"),
    (("authorization",), r"(?i)(\bauthorization:\s*(?:bearer|basic|token|digest)?\s*)([^\s'\"]+)()"),
    (("bearer",), r"(?i)(\bbearer\s+)([A-Za-z0-9._~+/=-]{8,})()"),
    (("aws_secret_access_key",), r"(?i)(\baws_secret_access_key[\s\"'=:]+)([A-Za-z0-9/+=]{16,})()"),
    (("eyj",), r"()(\beyJ[A-Za-z0-9_-]{5,}\.eyJ[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]*)()"),
    (("akia", "asia"), r"()(\b(?:AKIA|ASIA)[A-Z0-9]{16}\b)()"),
    (("ghp_", "gho_", "ghs_", "ghu_", "ghr_", "github_pat_"),
     r"()(\b(?:gh[pousr]_[A-Za-z0-9]{20,}|github_pat_[A-Za-z0-9_]{20,}))()"),
    (("xox",), r"()(\bxox[abposr]-[A-Za-z0-9-]{10,})()"),
    (("://",), r"(\b[a-zA-Z][a-zA-Z0-9+.-]*://[^\s/:@'\"]+:)([^\s@/'\"]+)(@)"),
    (("pass:",), r"(\bpass:)([^\s'\"]+)()"),
]
_SECRET_NAME_RE = re.compile(r"(?i)(?:PASSWORD|PASSWD|PASSPHRASE|SECRET|TOKEN|KEY)[A-Za-z0-9_]*=$")
_CMD_GATES = ("mysql", "mariadb", "sshpass", "curl", "redis-cli")
_MYSQL = re.compile(r"(?:mysql\w*|mariadb[\w-]*)$")
_PROMPTERS = {"su", "sudo", "passwd", "ssh", "scp", "sftp", "psql", "kinit", "login", "doas",
              "pkexec", "ftp", "telnet", "smbpasswd", "htpasswd", "ldappasswd", "gpg"}
_BUILTINS = set("""alias bg bind break builtin caller cd command compgen complete compopt continue
declare dirs disown echo enable eval exec exit export false fc fg getopts hash help history jobs
kill let local logout mapfile popd printf pushd pwd read readarray readonly return set shift
shopt source suspend test times trap true type typeset ulimit umask unalias unset wait clear
if then else elif fi case esac for while until do done function time select""".split())
_PATH_DIRS = ("/usr/local/sbin", "/usr/local/bin", "/usr/sbin", "/usr/bin", "/sbin", "/bin")
_WORD = re.compile(r"""(?P<sep>[;&|\n\r()]+)|(?P<w>(?:'[^']*'|"(?:\\.|[^"\\])*"|\\.|[^\s;&|()'"\\])+)""")
_UNQUOTE = re.compile(r"""'([^']*)'|"((?:\\.|[^"\\])*)"|\\(.)""")
_ARG_RE = re.compile(r'(\ba\d+=)("[^"]*"|[0-9A-F]+)(?=\s|$)')
_PROCTITLE_RE = re.compile(r"(\bproctitle=)([0-9A-F]+)(?=\s|$)")
_TTY_DATA_RE = re.compile(r"(\bdata=)([0-9A-F]+)(?=\s|$|\x1d)")
_RUN_RE = re.compile(r'"((?:[^"\\]|\\.)*)"')
_OCT_RE = re.compile(r'\\([0-7]{3}|["\\])')


def _unquote(word: str) -> str:
    return _UNQUOTE.sub(lambda m: m.group(1) if m.group(1) is not None else (
        re.sub(r"\\(.)", r"\1", m.group(2)) if m.group(2) is not None else m.group(3)), word)


def _argv_masks(argv: list) -> dict:
    """index -> masked value for the arguments of one command (possibly behind sudo/env)."""
    out: dict = {}
    prog = ""
    take_next: Optional[str] = None       # "all" / "userpass": how to mask the next arg
    for i, a in enumerate(argv):
        if take_next is not None:
            if take_next == "userpass":
                if ":" in a:
                    out[i] = a.split(":", 1)[0] + ":" + MASK
            elif not a.startswith("-") or prog == "sshpass":
                out[i] = MASK
            take_next = None
            continue
        base = a.rsplit("/", 1)[-1]
        if not a.startswith("-") and (base in ("sshpass", "curl", "redis-cli") or _MYSQL.match(base)):
            prog = "mysql" if _MYSQL.match(base) else base
            continue
        low = a.lower()
        if (re.fullmatch(_OPT_NAME, low) and prog != "mysql") or low in ("aws_secret_access_key", "aws_session_token"):
            take_next = "all"
        elif prog == "mysql" and a.startswith("-p") and len(a) > 2:
            out[i] = "-p" + MASK
        elif prog == "sshpass" and a.startswith("-p"):
            if len(a) > 2:
                out[i] = "-p" + MASK
            else:
                take_next = "all"
        elif prog == "redis-cli" and (a == "-a" or a == "--pass"):
            take_next = "all"
        elif prog == "curl" and (a == "-u" or a == "--user"):
            take_next = "userpass"
        elif prog == "curl" and (a.startswith("-u") or a.startswith("--user=")) and ":" in a:
            head = "-u" if a.startswith("-u") else "--user="
            out[i] = head + a[len(head):].split(":", 1)[0] + ":" + MASK
    return {i: v for i, v in out.items() if v != argv[i]}


def _is_command_word(w: str) -> bool:
    if w in _BUILTINS or "/" in w or "=" in w:
        return True
    return any(os.access(os.path.join(d, w), os.X_OK) for d in _PATH_DIRS)


class Redactor:
    def __init__(self, enabled: bool = True, extra_patterns: Iterable[str] = ()):
        self.enabled = enabled
        self._rules = [(gates, re.compile(rule)) for gates, rule in _RULES]
        self._extra = [re.compile(p) for p in extra_patterns]
        self._cmd_cache: dict = {}

    # --- strings
    def redact_text(self, s: str) -> tuple:
        """(masked text, whether anything was masked)."""
        if not self.enabled or not s:
            return s, False
        low = s.lower()
        new = s
        for gates, rx in self._rules:
            for g in gates:
                if g in low:
                    new = rx.sub(_sub, new)
                    break
        for rx in self._extra:
            new = rx.sub(_mask_extra, new)
        if any(g in low for g in _CMD_GATES) or ("--" in low and any(k in low for k in _KEYWORDS)):
            new = self._redact_commands(new)
        return new, new != s

    def _redact_commands(self, s: str) -> str:
        words: list = []
        edits: list = []
        for m in _WORD.finditer(s + "\n"):
            if m.lastgroup == "w":
                words.append(m)
                continue
            if words:
                argv = [_unquote(w.group()) for w in words]
                for i, v in _argv_masks(argv).items():
                    w = words[i].group()
                    q = w[0] if w[0] in "'\"" and w[-1] == w[0] else ""
                    edits.append((words[i].start(), words[i].end(), q + v + q))
            words = []
        for start, end, v in reversed(edits):
            s = s[:start] + v + s[end:]
        return s

    def redact_args(self, args: list) -> tuple:
        if not self.enabled:
            return args, False
        new = list(args)
        for i, v in _argv_masks(new).items():
            new[i] = v
        low = " ".join(a for a in new if isinstance(a, str)).lower()
        if self._extra or any(g in low for gates, _ in _RULES for g in gates):
            new = [self.redact_text(a)[0] if isinstance(a, str) else a for a in new]
        return new, new != list(args)

    # --- events
    def apply(self, doc: dict) -> bool:
        """Mask secrets in place; True when anything was masked."""
        if not self.enabled:
            return False
        changed = False
        ks = doc.get("keystrokes")
        if isinstance(ks, dict):
            proc_name = (doc.get("process") or {}).get("name", "")
            ks_changed = self._keystrokes(ks, proc_name)
            ks["redacted"] = ks_changed
            changed |= ks_changed
        for obj in (doc.get("process"), (doc.get("process") or {}).get("parent")):
            if not isinstance(obj, dict):
                continue
            if isinstance(obj.get("args"), list):
                obj["args"], c = self.redact_args(obj["args"])
                changed |= c
            for key in ("command_line", "title"):
                changed |= self._field(obj, key)
        changed |= self._field(doc, "message")
        data = (doc.get("auditd") or {}).get("data")
        if isinstance(data, dict):
            for key in list(data):
                changed |= self._field(data, key)
        event = doc.get("event") or {}
        if isinstance(event.get("original"), str):
            orig = self._original(event["original"], bool(ks and ks.get("redacted")))
            if orig != event["original"]:
                event["original"] = orig
                changed = True
        if changed:
            tags = doc.setdefault("tags", [])
            if "redacted" not in tags:
                tags.append("redacted")
        return changed

    def _field(self, obj: dict, key: str) -> bool:
        v = obj.get(key)
        if not isinstance(v, str):
            return False
        obj[key], c = self.redact_text(v)
        return c

    def _original(self, s: str, tty_masked: bool) -> str:
        args = _ARG_RE.findall(s)
        if args:
            argv = [_decode_arg(v) for _, v in args]
            masked, c = self.redact_args(argv)
            if c:
                it = iter(masked)
                s = _ARG_RE.sub(lambda m: m.group(1) + _encode_arg(next(it)), s)
        s = _PROCTITLE_RE.sub(lambda m: m.group(1) + self._proctitle(m.group(2)), s)
        if tty_masked:
            s = _TTY_DATA_RE.sub(lambda m: m.group(1) + MASK, s)
        return self.redact_text(s)[0]

    def _proctitle(self, hexval: str) -> str:
        argv = bytes.fromhex(hexval).decode("utf-8", "surrogateescape").split("\0")
        masked, c = self.redact_args(argv)
        return "\0".join(masked).encode("utf-8", "surrogateescape").hex().upper() if c else hexval

    # --- keystrokes
    def _prompts(self, line: str) -> bool:
        for m in _WORD.finditer(line):
            if m.lastgroup != "w":
                continue
            base = _unquote(m.group()).rsplit("/", 1)[-1]
            if base in _PROMPTERS:
                return not (base == "sudo" and re.search(r"\s(-n|--non-interactive)\b", line))
            if _MYSQL.match(base):
                return bool(re.search(r"\s(-p|--password)(\s|$)", line))
        return False

    def _is_password_line(self, prev: Optional[str], line: str) -> bool:
        if prev is None or not line or len(line.split()) != 1 or line == MASK:
            return False
        if not self._prompts(prev):
            return False
        hit = self._cmd_cache.get(line)
        if hit is None:
            if len(self._cmd_cache) > 4096:
                self._cmd_cache.clear()
            hit = self._cmd_cache[line] = _is_command_word(line)
        return not hit

    def _keystrokes(self, ks: dict, proc_name: str) -> bool:
        changed = False
        first_prev = proc_name if proc_name in _PROMPTERS else None
        lines = ks.get("lines")
        secret_lines: set = set()
        if isinstance(lines, list):
            prev = first_prev
            new = []
            for line in lines:
                if self._is_password_line(prev, line):
                    secret_lines.add(line)
                    new.append(MASK)
                else:
                    new.append(self.redact_text(line)[0])
                prev = line
            changed |= new != lines
            ks["lines"] = new
        details = ks.get("line_details")
        if isinstance(details, list):
            prev = first_prev
            for d in details:
                line = d.get("line", "")
                if d.get("end") in ("ret", "nl") and self._is_password_line(prev, line):
                    d["line"] = MASK
                else:
                    d["line"] = self.redact_text(line)[0]
                changed |= d["line"] != line
                if d.get("end") in ("ret", "nl"):
                    prev = line
        if isinstance(ks.get("text"), str):
            text = self._redact_rendered(ks["text"], secret_lines)
            changed |= text != ks["text"]
            ks["text"] = text
        return changed

    def _redact_rendered(self, text: str, secret_lines: set) -> str:
        """Mask inside each quoted run of aureport-style text; whole runs for password lines."""
        def run(m: re.Match) -> str:
            raw = _OCT_RE.sub(lambda o: chr(int(o.group(1), 8)) if len(o.group(1)) == 3 else o.group(1),
                              m.group(1))
            plain = raw.encode("latin-1").decode("utf-8", "surrogateescape")
            if plain in secret_lines:
                return '"%s"' % MASK
            new, c = self.redact_text(plain)
            if not c:
                return m.group()
            return render(new.encode("utf-8", "surrogateescape"))   # aureport's quoting again
        return _RUN_RE.sub(run, text)


def _sub(m: re.Match) -> str:
    before = m.group(1)
    if before.endswith("=") and not _SECRET_NAME_RE.search(before):
        return m.group()           # NAME=VALUE with an ordinary NAME
    return before + MASK + m.group(3)


def _mask_extra(m: re.Match) -> str:
    if not m.re.groups or m.start(1) < 0:
        return MASK
    whole, at = m.group(), m.start()
    return whole[:m.start(1) - at] + MASK + whole[m.end(1) - at:]


def _decode_arg(v: str) -> str:
    if v.startswith('"'):
        return v[1:-1]
    return bytes.fromhex(v).decode("utf-8", "surrogateescape")


def _encode_arg(v: str) -> str:
    if re.fullmatch(r'[\x21-\x7e]*', v) and '"' not in v:
        return '"%s"' % v
    return v.encode("utf-8", "surrogateescape").hex().upper()
