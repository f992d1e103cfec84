"""Build hook: the metadata is in setup.cfg; this file only adds the opt-in compiled build.

``AGENTD_MYPYC=1`` compiles the auditd collector's hot modules with mypyc from the same
source files (benchmarks/README.md, "audit_replay.py": what it gains), next to the pure
modules, which stay in the package and are the default everywhere else:

    make compiled        # .venv/compiled: the package with those modules compiled
    make test-compiled   # the unit and golden tests against it

It needs mypy in the building environment (``pip install --no-build-isolation``); the
packages (.deb, .rpm) are built without it.
"""

from __future__ import annotations

import os

from setuptools import setup

# The collector's path from a log line to a document: parse, reassemble, decode and the
# normalizer (names.py: its uid/gid cache). tail.py (I/O), collector.py (the loop),
# raw_redact.py and keystrokes/ stay pure: they are not per-record work.
COMPILED = [
    "collectors/auditd/parse.py",
    "collectors/auditd/reassemble.py",
    "collectors/auditd/decode.py",
    "collectors/auditd/names.py",
    "collectors/auditd/normalize/__init__.py",
    "collectors/auditd/normalize/dispatch.py",
    "collectors/auditd/normalize/document.py",
    "collectors/auditd/normalize/fastpath.py",
    "collectors/auditd/normalize/syscall.py",
    "collectors/auditd/normalize/tty.py",
    "collectors/auditd/normalize/user.py",
]


def _ext_modules() -> list:
    if os.environ.get("AGENTD_MYPYC", "") in ("", "0"):
        return []
    try:
        from mypyc.build import mypycify
    except ImportError:
        raise SystemExit("AGENTD_MYPYC=1 needs mypy in the building environment: "
                         "pip install mypy, then pip install --no-build-isolation") from None
    # mypy checks the compiled modules (and reads, silently, what they import); the
    # untyped helpers' locals are not an error.
    return mypycify(["--follow-imports=silent", "--ignore-missing-imports",
                     "--disable-error-code=annotation-unchecked", *COMPILED],
                    opt_level="3", group_name="agentd_auditd")


setup(ext_modules=_ext_modules())
