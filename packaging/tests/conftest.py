from __future__ import annotations

from tests.stack.fixtures import *  # noqa: F401,F403
