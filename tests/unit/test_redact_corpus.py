"""Precision and recall of redaction on a corpus of real bastion command lines.

tests/unit/data/redaction/clean.txt: lines that hold no secret and must stay exactly as typed.
tests/unit/data/redaction/secrets.txt: lines with a secret between ⟦ and ⟧; the line without the
brackets must come out with exactly the bracketed parts replaced by ******** (the rest as typed).
tests/unit/data/redaction/typed_secrets.txt: the same for lines typed inside interactive clients.
Each line is checked as text (command_line, keystroke lines) and, split like a shell does, as an
argument vector (process.args).
"""

from __future__ import annotations

import os
import re
import shlex

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agent.pipeline.redact import MASK, Redactor

DATA = os.path.join(os.path.dirname(__file__), "data", "redaction")
R = Redactor()


def _lines(name: str) -> list:
    with open(os.path.join(DATA, name), encoding="utf-8") as f:
        return [line.rstrip("\n") for line in f if line.strip() and not line.startswith("#")]


CLEAN = _lines("clean.txt")
COMMAND_SECRETS = _lines("secrets.txt")
SECRETS = COMMAND_SECRETS + _lines("typed_secrets.txt")


def _plain(marked: str) -> str:
    return marked.replace("⟦", "").replace("⟧", "")


def _expected(marked: str) -> str:
    return re.sub("⟦.*?⟧", MASK, marked)


def _argv(line: str):
    """The argument vector of a single command line (None for pipelines and substitutions,
    whose parts are separate processes)."""
    if any(x in line for x in ("|", "<<<", "$(", ";")):
        return None
    try:
        return shlex.split(line)
    except ValueError:
        return None


def test_corpus_size():
    assert len(CLEAN) >= 150 and len(SECRETS) >= 100
    assert len(set(CLEAN)) == len(CLEAN) and len(set(SECRETS)) == len(SECRETS)


def test_precision_and_recall_on_the_corpus():
    false_pos = [line for line in CLEAN if R.redact_text(line)[0] != line]
    misses = [line for line in SECRETS if R.redact_text(_plain(line))[0] != _expected(line)]
    masked_right = len(SECRETS) - len(misses)
    precision = masked_right / max(1, masked_right + len(false_pos))
    recall = masked_right / len(SECRETS)
    print(f"\nredaction corpus: {len(CLEAN)} clean, {len(SECRETS)} with secrets; "
          f"precision {precision:.1%}, recall {recall:.1%}")
    assert not false_pos, "changed although clean:\n" + "\n".join(
        f"  {line}\n  -> {R.redact_text(line)[0]}" for line in false_pos)
    assert not misses, "not masked as expected:\n" + "\n".join(
        f"  {_plain(line)}\n  -> {R.redact_text(_plain(line))[0]}\n  want {_expected(line)}" for line in misses)


@pytest.mark.parametrize("line", CLEAN)
def test_clean_args_untouched(line):
    argv = _argv(line)
    if argv is not None:
        assert R.redact_args(argv) == (argv, False)


@pytest.mark.parametrize("line", SECRETS)
def test_mask_is_stable(line):
    expected = _expected(line)
    assert R.redact_text(expected) == (expected, False), "masking twice changes nothing"


@pytest.mark.parametrize("line", COMMAND_SECRETS)
def test_secret_args_masked(line):
    expected = _expected(line)
    argv = _argv(_plain(line))
    if argv is None:
        return
    masked, changed = R.redact_args(argv)
    assert changed
    joined = " ".join(masked)
    for secret in re.findall("⟦(.*?)⟧", line):
        secret = secret.strip("'\"")
        # the secret may also be an ordinary word of the line (ipmitool -U ADMIN -P ADMIN)
        assert len(secret) < 5 or joined.count(secret) <= expected.count(secret), f"{secret!r} left in {masked}"


def test_rules_can_be_disabled_and_names_added():
    line = "mysql -u root -pS3cr3tPw -h db01"
    assert Redactor(disabled=["mysql"]).redact_text(line) == (line, False)
    assert Redactor(disabled=["secret-name"]).redact_text("export DB_PASS=x1") == ("export DB_PASS=x1", False)
    corp = Redactor(extra_names=["CORP_CRED", "x-corp-auth"])
    assert corp.redact_text("CORP_CRED=abc123 ./deploy")[0] == "CORP_CRED=******** ./deploy"
    assert corp.redact_text("curl -H 'X-Corp-Auth: abc' https://h")[0] == "curl -H 'X-Corp-Auth: ********' https://h"
    assert corp.redact_text("deploy --corp-cred abc123")[0] == "deploy --corp-cred ********"


def _argvs():
    for line in CLEAN + [_plain(x) for x in SECRETS]:
        argv = _argv(line)
        yield from ([argv] if argv else [])
        yield ["bash", "-c", line]          # a whole line as one argument
        yield ["/usr/bin/env", line]


def test_quick_clean_check_agrees_with_the_full_walk():
    """Rules.argv_clean lets an argument vector skip both passes: it may say "clean" only when
    the passes would change nothing, and it must not wave through the corpus's secrets."""
    rules = R.rules
    passed = 0
    for argv in _argvs():
        if rules.argv_clean(argv):
            passed += 1
            assert rules.mask_argv(argv) == {} and all(rules.mask_text(a) == a for a in argv), argv
    assert passed > 20, "the quick check never applies: it saves nothing"
    for line in COMMAND_SECRETS:
        argv = _argv(_plain(line))
        assert argv is None or not rules.argv_clean(argv), line


_TOKENS = sorted({w for line in CLEAN + [_plain(x) for x in SECRETS] for w in line.split()}
                 | {"echo", "(mysql", "-----BEGIN", "RSA", "PRIVATE", "KEY-----", "private", "key-----",
                    "<<<", "x", ""})


def _clean_line_agrees(argv: list) -> bool:
    rules = R.rules
    if not rules.argv_clean(argv):
        return False
    line = rules.clean_line(argv)
    if line is not None:
        assert line == " ".join(argv) and rules.mask_text(line) == line, argv
    return line is not None


def test_a_clean_vector_makes_a_clean_command_line():
    """The redaction stage skips an exec's command_line and title when they are its clean
    arguments joined by spaces: Rules.clean_line may give the line only when mask_text would
    leave it as it is. Whole corpus lines as vectors, and a vector whose joined line holds a
    gate with a space in it (no shortcut then)."""
    used = sum(_clean_line_agrees(argv) for argv in _argvs())
    assert used > 20, "the shortcut never applies: it saves nothing"
    # a gate holding a space (here from a configured name) can span two clean arguments
    spaced = Redactor(extra_names=["corp zebra"]).rules
    assert spaced.argv_clean(["corp", "zebra=abc"]) and spaced.clean_line(["corp", "zebra=abc"]) is None


@settings(max_examples=400, deadline=None)
@given(st.lists(st.sampled_from(_TOKENS), min_size=1, max_size=6))
def test_clean_line_holds_for_any_mix_of_corpus_words(argv):
    """Any vector made of the corpus's words, secrets' words included."""
    _clean_line_agrees(argv)


def test_every_secret_name_holds_a_gate():
    """The quick checks skip the secret-name rules of a text without any gate substring: that is
    right only while every name the rules call secret contains a gate."""
    from agent.pipeline import redact_rules as rules

    gates = R.rules.gates
    words = [*rules.SECRET_NAMES, *rules.SECRET_NAME_PREFIXES, *rules.SECRET_SUFFIXES, *rules.SECRET_PARTS,
             *(p + "key" for p in rules.COMPOUND_KEY_PREFIXES), "passwd"]
    assert [w for w in words if not any(g in w.lower() for g in gates)] == []
