"""Reading a value at a path in a nested event document: the one path reader that the
pipeline's stages and the shippers share."""

from __future__ import annotations

from typing import Any


def get(doc: Any, *path: str) -> Any:
    """The value at ``doc[path[0]][path[1]]…``, or None where a step is missing or not an object."""
    cur = doc
    for p in path:
        if not isinstance(cur, dict):
            return None
        cur = cur.get(p)
    return cur


def get_path(doc: Any, dotted: str) -> Any:
    """get() with an ECS dotted path (``session.user``)."""
    return get(doc, *dotted.split("."))
