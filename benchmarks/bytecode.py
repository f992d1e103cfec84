"""Byte-compile a source tree's packages before it is measured.

The installed agent runs from bytecode (the .deb's postinst runs compileall), so a figure
that includes start-up must too. A development shell may set PYTHONDONTWRITEBYTECODE (this
machine's does), and then every `agentd replay` from the tree compiles all of agentd's
modules again: about 0.2 s of CPU per start here, 7% of a replay of the exec storm, that
no installed agent pays and `ausearch` has no counterpart for.
"""

from __future__ import annotations

import compileall
import os

PACKAGES = ("agent", "collectors", "shippers")


def compile_tree(tree: str) -> None:
    for pkg in PACKAGES:
        path = os.path.join(tree, pkg)
        if os.path.isdir(path):
            compileall.compile_dir(path, quiet=1)
