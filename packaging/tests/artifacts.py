"""What `make deb rpm splunk-ta` left in build/, for the packaging tests."""

from __future__ import annotations

import glob
import os
import re

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def built(pattern: str) -> str:
    """The newest build/<pattern>; a clear failure when it was not built."""
    found = sorted(glob.glob(os.path.join(REPO, "build", pattern)), key=os.path.getmtime)
    if not found:
        pytest.fail(f"no build/{pattern}: run `make deb rpm splunk-ta` (make install-test does)")
    return found[-1]


def version() -> str:
    with open(os.path.join(REPO, "agent", "__init__.py")) as f:
        return re.search(r'__version__ = "(.*)"', f.read()).group(1)
