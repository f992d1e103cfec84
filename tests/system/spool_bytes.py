"""What a test that greps the agent's files for a secret must search in the spool.

The spool stores its rows zlib-compressed (agent/pipeline/spool_format.py), so a secret
that reached it would not appear as plain bytes: a grep of spool.db and its WAL alone
could not fail. ``readable`` adds the plaintext of every zlib stream found in the file,
live rows and the deleted ones still on free pages or in WAL frames alike. A row larger
than a page continues on overflow pages; its stream is then read up to the first page
boundary (the events of a test's small writes fit in one page).
"""

from __future__ import annotations

import zlib

HEADER = b"\x78\x01"  # zlib, level 1 (spool_format.LEVEL)


def inflate_from(data: memoryview) -> bytes:
    """Whatever a zlib stream starting at ``data`` yields before it ends or breaks."""
    d = zlib.decompressobj()
    out = []
    for i in range(0, len(data), 1024):
        try:
            out.append(d.decompress(data[i:i + 1024]))
        except zlib.error:
            break
        if d.eof:
            break
    return b"".join(out)


def readable(path: str) -> bytes:
    with open(path, "rb") as f:
        data = f.read()
    view = memoryview(data)
    parts = [data]
    i = data.find(HEADER)
    while i >= 0:
        parts.append(inflate_from(view[i:]))
        i = data.find(HEADER, i + 1)
    return b"\n".join(parts)
