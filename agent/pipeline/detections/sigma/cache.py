"""The compiled form of Sigma rule files, kept on disk between starts and replays.

pySigma's parse (the compiling child, compile_rules.py) costs 0.5-0.8 s of CPU per start,
and a retro-hunt runs again and again with the same rules. So the compiled form is kept
in a file named after the rule directories, under a key over everything it depends on:
each rule file's path and content, the compiler's own source, agentd's and pySigma's
versions. The file is used only when its key matches, its body is intact (its digest)
and it is the user's own and writable by nobody else; anything else (stale, corrupt,
planted) is compiled again and rewritten. A cache can never give other rules than a
compile would: at worst it costs the compile.

`agentd run` keeps the file in its state directory; `agentd replay` in its state directory
when the config names an existing one, else in the user's cache directory
(``$XDG_CACHE_HOME/agentd``, default ``~/.cache/agentd``).
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
from typing import Callable, Optional

from agent import __version__

FORMAT = 1
# What the compact form depends on besides the rule files themselves (beside this module).
_COMPILER = ("compiler.py", "compile_rules.py", "fields.py", "../attack.py")
_HERE = os.path.dirname(os.path.abspath(__file__))


def user_cache_dir() -> Optional[str]:
    """$XDG_CACHE_HOME/agentd, or ~/.cache/agentd (a relative XDG_CACHE_HOME is ignored, as the
    XDG spec says); None when there is no home to put it in."""
    base = os.environ.get("XDG_CACHE_HOME", "")
    if not os.path.isabs(base):
        home = os.path.expanduser("~")
        if not os.path.isabs(home):
            return None
        base = os.path.join(home, ".cache")
    return os.path.join(base, "agentd")


def pysigma_release() -> str:
    """The installed pySigma's name and version, as its ``.dist-info`` directory on the path
    says (the one importlib.metadata would find first). Not ``importlib.metadata.version``:
    importing it and parsing the METADATA file through the email package cost ~45 ms, most
    of a start with the compiled rules cached."""
    for d in sys.path:
        try:
            names = os.listdir(d or ".")
        except OSError:
            continue
        for n in sorted(names):
            if n.endswith(".dist-info") and n.lower().startswith("pysigma-"):
                return n[: -len(".dist-info")]
    from importlib.metadata import version  # another kind of install: ask the slow way

    return "pySigma-" + version("pySigma")


def cache_key(paths: list) -> str:
    """The digest of everything the compiled form of ``paths`` depends on (OSError: a file
    could not be read)."""
    h = hashlib.sha256(f"{FORMAT}\0{__version__}\0{pysigma_release()}\0".encode())
    for p in [os.path.join(_HERE, c) for c in _COMPILER] + list(paths):
        h.update(p.encode() + b"\0")
        with open(p, "rb") as f:
            data = f.read()
        h.update(len(data).to_bytes(8, "big") + data)
    return h.hexdigest()


def cache_file(cache_dir: str, dirs: list) -> str:
    """One file per set of rule directories: a user hunting with two rule sets keeps both."""
    name = hashlib.sha256("\0".join(os.path.abspath(d) for d in dirs).encode()).hexdigest()[:16]
    return os.path.join(cache_dir, f"sigma-compiled-{name}.json")


def load(path: str, key: str, paths: list) -> Optional[list]:
    """The compiled answers kept in ``path`` for ``key``, or None (missing, stale, corrupt, not ours)."""
    try:
        with open(path, "rb") as f:
            st = os.fstat(f.fileno())
            if st.st_uid != os.geteuid() or st.st_mode & 0o022:
                return None  # someone else could have written it: compile instead
            header = json.loads(f.readline())
            body = f.read()
        if header.get("format") != FORMAT or header.get("key") != key or \
                header.get("sha256") != hashlib.sha256(body).hexdigest():
            return None
        answers = json.loads(body)
    except (OSError, ValueError, AttributeError):
        return None
    if not isinstance(answers, list) or [a.get("path") if isinstance(a, dict) else None
                                         for a in answers] != list(paths):
        return None
    return answers


def save(path: str, key: str, answers: list) -> None:
    """Write atomically (a reader sees the old file or the new one); no error if it cannot."""
    body = json.dumps(answers, separators=(",", ":")).encode()
    header = json.dumps({"format": FORMAT, "key": key, "sha256": hashlib.sha256(body).hexdigest()}).encode()
    tmp = f"{path}.{os.getpid()}.tmp"
    try:
        os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(header + b"\n" + body)
        os.replace(tmp, path)
    except OSError:
        try:
            os.unlink(tmp)
        except OSError:
            pass


def compile_cached(paths: list, dirs: list, cache_dir: Optional[str], compile_files: Callable) -> list:
    """``compile_files(paths)``, or its answer kept in ``cache_dir`` for the same files, compiler
    and versions: a restart, a SIGHUP without rule changes or a replay then skips the child."""
    if not cache_dir:
        return compile_files(paths)
    try:
        key = cache_key(paths)
    except OSError:  # a file went away meanwhile: the child reports it
        return compile_files(paths)
    path = cache_file(cache_dir, dirs)
    answers = load(path, key, paths)
    if answers is None:
        answers = compile_files(paths)
        save(path, key, answers)
    return answers
