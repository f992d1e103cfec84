"""Mask secrets in events before anything is written (config: [agent] redact, redact_patterns,
redact_names, redact_disable).

What is masked is data, in redact_rules.py (per-tool conventions, secret names, token shapes);
how, in redact_engine.py. This module walks an event: the fields scanned are keystrokes
(text, lines, line_details), process.args (argument-aware), process.command_line,
process.title, process.io.text (recorded terminal output), the same of process.parent,
message, string values of auditd.data and event.original. The raw forms of a source (auditd's hex arguments, PROCTITLE, TTY data,
aureport-quoted keystrokes) are decoded and re-encoded by that source's own raw-text
redactor, found through agent.base.registry by event.module: the pipeline knows no wire format.

Keystrokes, in addition (rule "prompt-line"): a typed line that follows a line running a
password-prompting program (su, sudo, passwd, ssh, mysql -p, kinit ...) in the same record,
when it is a single word that is neither a shell builtin nor a program in the standard PATH.
pam_tty_audit does not log input read with echo off, so such a line is there only if echo was
on or log_passwd set: it is then most likely the password. The same holds for the first line
of a record whose reader is itself such a program. Lines inside a pasted private key block
(BEGIN ... PRIVATE KEY to END) are masked whole (rule "private-key-block").

An event with anything masked gets the tag ``redacted`` (and only then); an auditd.tty event
also ``keystrokes.redacted`` (true/false). A secret split by line editing (``Hunt``,
<backspace>, ``er2``) is masked in the replayed lines but only run by run in keystrokes.text.
"""

from __future__ import annotations

import os
import re
from functools import lru_cache
from typing import Iterable, Optional

from agent.base import registry
from agent.pipeline import redact_rules
from agent.pipeline.redact_engine import MASK, WORD, Rules, unquote

__all__ = ["MASK", "Redactor", "rule_names"]


def rule_names() -> set:
    """Every name ``redact_disable`` accepts."""
    return ({t.name for t in redact_rules.TOOLS} | {name for name, _, _ in redact_rules.TEXT_RULES}
            | {"secret-name", "secret-option", "stdin-feed", "prompt-line"})

_BUILTINS = set("""alias bg bind break builtin caller cd command compgen complete compopt continue
declare dirs disown echo enable eval exec exit export false fc fg getopts hash help history jobs
kill let local logout mapfile popd printf pushd pwd read readarray readonly return set shift
shopt source suspend test times trap true type typeset ulimit umask unalias unset wait clear
if then else elif fi case esac for while until do done function time select""".split())
_PATH_DIRS = ("/usr/local/sbin", "/usr/local/bin", "/usr/sbin", "/usr/bin", "/sbin", "/bin")
_MYSQL = re.compile(r"(?:mysql\w*|mariadb[\w-]*)$")
_PEM_BEGIN = re.compile(r"-----BEGIN [A-Z0-9 ]*PRIVATE KEY(?: BLOCK)?-----")
_PEM_END = re.compile(r"-----END [A-Z0-9 ]*PRIVATE KEY(?: BLOCK)?-----")


@lru_cache(maxsize=4096)
def _is_command_word(w: str) -> bool:
    if w in _BUILTINS or "/" in w or "=" in w:
        return True
    return any(os.access(os.path.join(d, w), os.X_OK) for d in _PATH_DIRS)


class Redactor:
    def __init__(self, enabled: bool = True, extra_patterns: Iterable[str] = (),
                 disabled: Iterable[str] = (), extra_names: Iterable[str] = ()):
        self.enabled = enabled
        self.rules = Rules(disabled, extra_names)
        self._prompt_lines = "prompt-line" not in self.rules.disabled
        self._pem_lines = "private-key-block" not in self.rules.disabled
        self._extra = [re.compile(p) for p in extra_patterns]
        self._text = lru_cache(maxsize=8192)(self._mask_text)

    # --- strings
    def _mask_text(self, s: str) -> str:
        new = self.rules.mask_text(s)
        for rx in self._extra:
            new = rx.sub(_mask_extra, new)
        return new

    def redact_text(self, s: str) -> tuple:
        """(masked text, whether anything was masked)."""
        if not self.enabled or not s:
            return s, False
        new = self._text(s)
        return new, new != s

    def redact_args(self, args: list) -> tuple:
        """(masked argument list, whether anything was masked)."""
        if not self.enabled or (not self._extra and self.rules.argv_clean(args)):
            return args, False
        new = list(args)
        for i, v in self.rules.mask_argv(new).items():
            new[i] = v
        new = [self._text(a) if isinstance(a, str) and a else a for a in new]
        return new, new != list(args)

    # --- events
    def apply(self, doc: dict) -> bool:
        """Mask secrets in place; True when anything was masked."""
        if not self.enabled:
            return False
        changed = False
        event = doc.get("event") or {}
        proc = doc.get("process")
        if proc.__class__ is not dict:
            proc = None
        ks = doc.get("keystrokes")
        # the source's raw-text redactor is needed only for keystrokes and event.original:
        # looked up then, not for every exec
        raw = _raw_text(event.get("module")) if ks is not None or "original" in event else None
        if isinstance(ks, dict):
            ks_changed = self._keystrokes(ks, proc.get("name", "") if proc is not None else "", raw)
            ks["redacted"] = ks_changed
            changed |= ks_changed
        if proc is not None:
            # the process's own fields and those of the processes it names (filled after this
            # stage from already-masked events, scanned too so no order can leak)
            changed |= self._process(proc)
            for key in _RELATIVES:
                obj = proc.get(key)
                if obj is not None and obj.__class__ is dict:
                    changed |= self._process(obj)
            io = proc.get("io")
            if isinstance(io, dict):  # terminal output (tlog recordings)
                changed |= self._field(io, "text")
        if "message" in doc:
            changed |= self._field(doc, "message")
        auditd = doc.get("auditd")
        data = auditd.get("data") if isinstance(auditd, dict) else None
        if isinstance(data, dict):
            for key in list(data):
                changed |= self._field(data, key)
        orig = event.get("original")
        if isinstance(orig, str):
            if raw is not None:
                new = raw.original(orig, self.redact_args, self.redact_text, bool(ks and ks.get("redacted")))
                new = self.redact_text(new)[0]
            else:
                new = self.redact_text(orig)[0]
            if new != orig:
                event["original"] = new
                changed = True
        if changed:
            tags = doc.setdefault("tags", [])
            if "redacted" not in tags:
                tags.append("redacted")
        return changed

    def _process(self, obj: dict) -> bool:
        """Mask one process object's args, command_line and title."""
        changed = False
        joined = None
        args = obj.get("args")
        if isinstance(args, list):
            if not self._extra and self.rules.argv_clean(args):
                # the exec's command line and title are most often its arguments joined by
                # spaces: then a clean vector makes a clean text, without a second scan
                # (tests/unit/test_redact_corpus.py checks the claim)
                joined = self.rules.clean_line(args)
            else:
                obj["args"], changed = self.redact_args(args)
        for key in ("command_line", "title"):
            v = obj.get(key)
            if v is not None and v != joined:
                changed |= self._field(obj, key)
        return changed

    def _field(self, obj: dict, key: str) -> bool:
        v = obj.get(key)
        if not isinstance(v, str) or not v:
            return False
        new = self._text(v)
        if new == v:
            return False
        obj[key] = new
        return True

    # --- keystrokes
    def _prompts(self, line: str) -> bool:
        for m in WORD.finditer(line):
            if m.lastgroup != "w":
                continue
            base = unquote(m.group()).rsplit("/", 1)[-1]
            if base in redact_rules.PROMPTERS:
                return not (base == "sudo" and re.search(r"\s(-n|--non-interactive)\b", line))
            if _MYSQL.match(base):
                return bool(re.search(r"\s(-p|--password)(\s|$)", line))
        return False

    def _is_password_line(self, prev: Optional[str], line: str) -> bool:
        if not self._prompt_lines or prev is None or not line or len(line.split()) != 1 or line == MASK:
            return False
        return self._prompts(prev) and not _is_command_word(line)

    def mask_lines(self, lines: list, first_prev: Optional[str]) -> list:
        """Masked copies of consecutive typed lines: None for a line that is a secret as a whole."""
        out = []
        prev = first_prev
        in_key = False
        heredoc = None          # (delimiter, separator) of a here-document holding secrets
        for line in lines:
            if heredoc is not None:
                if line.strip() == heredoc[0]:
                    heredoc = None
                    out.append(line)
                else:
                    sep = heredoc[1]
                    out.append(line.split(sep, 1)[0] + sep + MASK if sep and sep in line else None)
                prev = line
                continue
            if in_key:
                out.append(None)
                in_key = not _PEM_END.search(line)
            elif self._is_password_line(prev, line):
                out.append(None)
            else:
                out.append(self.redact_text(line)[0])
                in_key = self._pem_lines and bool(_PEM_BEGIN.search(line)) and not _PEM_END.search(line)
                heredoc = self.rules.heredoc_secret(line) if "<<" in line else None
            prev = line
        return out

    def _keystrokes(self, ks: dict, proc_name: str, raw) -> bool:
        changed = False
        first_prev = proc_name if proc_name in redact_rules.PROMPTERS else None
        lines = ks.get("lines")
        if isinstance(lines, list) and all(isinstance(x, str) for x in lines):
            new = [MASK if m is None else m for m in self.mask_lines(lines, first_prev)]
            changed |= new != lines
            ks["lines"] = new
        details = ks.get("line_details")
        if isinstance(details, list):
            ended = [d for d in details if isinstance(d, dict) and d.get("end") in ("ret", "nl")]
            masked = self.mask_lines([d.get("line", "") for d in ended], first_prev)
            done = {id(d): m for d, m in zip(ended, masked, strict=False)}
            for d in details:
                if not isinstance(d, dict) or not isinstance(d.get("line"), str):
                    continue
                line = d["line"]
                m = done[id(d)] if id(d) in done else self.redact_text(line)[0]
                d["line"] = MASK if m is None else m
                changed |= d["line"] != line
        text = ks.get("text")
        if isinstance(text, str):
            if raw is not None:
                new_text = raw.keystrokes_text(text, lambda runs: self.mask_lines(runs, first_prev))
            else:
                new_text = self.redact_text(text)[0]
            changed |= new_text != text
            ks["text"] = new_text
        return changed


# the processes a process object names, whose fields are masked too
_RELATIVES = ("parent", "entry_leader", "session_leader", "group_leader")


def _raw_text(module):
    if not isinstance(module, str):
        return None
    return registry.raw_text(module)


def _mask_extra(m: re.Match) -> str:
    if not m.re.groups or m.start(1) < 0:
        return MASK
    whole, at = m.group(), m.start()
    return whole[:m.start(1) - at] + MASK + whole[m.end(1) - at:]
