"""The session report's HTML from a stored session: escaped, self-contained, commands beside
the typed line, a player with the recording; written 0600 whatever the umask."""

from __future__ import annotations

import json
import os
import re
import stat

from agent.app.session_report import report
from agent.pipeline.session_store import Chunk, SessionStore, TimelineRow
from agent.pipeline.spool import Spool

SID = "host:boot:7"


def _store(tmp_path):
    spool = Spool(str(tmp_path / "spool.db"))
    store = SessionStore(spool)
    summary = {"id": SID, "ses": "7", "user": "erin", "start": 1000.0, "end": 1060.0,
               "source": {"ip": "192.0.2.7", "port": 50123}, "tty": "pts/1",
               "auth": {"method": "publickey", "key_type": "ED25519", "key_fingerprint": "SHA256:abc"},
               "commands": 2, "hosts": ["127.0.0.2"], "bytes": 0, "alerts": 1}
    store.save({}, [summary], [
        TimelineRow(SID, 1000.0, "session-started", "erin from 192.0.2.7 port 50123 publickey pts/1"),
        TimelineRow(SID, 1001.0, "executed", "ls -la"),
        TimelineRow(SID, 1002.0, "executed", "cat <script>alert(1)</script>"),
        TimelineRow(SID, 1003.0, "connected-to", "127.0.0.2:2222 (ssh)"),
        TimelineRow(SID, 1004.0, "rule-matched", "sudo to a shell [T1548.003]"),
        TimelineRow(SID, 1060.0, "typed", "ls -la | cd /tmp | cat <script>alert(1)</script>"),
        TimelineRow(SID, 1060.0, "session-ended", "erin"),
    ], now=1100.0)
    store.save_chunks([Chunk(SID, "r", 1, 0, 1000.0, "=80x24+10>14", "$ ls -la\r\nx\r\n", 14)])
    spool.close()


def test_report_page(tmp_path):
    _store(tmp_path)
    os.umask(0o022)
    out = tmp_path / "r.html"
    assert report.write_one(str(tmp_path), "7", str(out)) == 0
    assert stat.S_IMODE(os.stat(out).st_mode) == 0o600
    page = out.read_text()
    assert "<script>alert(1)</script>" not in page and "cat &lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "192.0.2.7" in page and "SHA256:abc" in page and "T1548.003" in page and "127.0.0.2:2222 (ssh)" in page
    # the typed line beside its command; the builtin listed on its own
    assert re.search(r'typed">ls -la</code></td><td><code>ls -la</code>', page)
    assert re.search(r'typed">cd /tmp</code></td><td>\(no program', page)
    frames = json.loads(re.search(r'class="frames">(.*?)</script>', page, re.S).group(1))
    assert frames["cols"] == 80 and frames["frames"][0][1] == "$ ls -la\r\nx\r\n"
    assert "http://" not in page and "https://" not in page


def test_index(tmp_path):
    _store(tmp_path)
    assert report.write_index(str(tmp_path), "100000d", str(tmp_path / "rep")) == 0
    index = (tmp_path / "rep" / "index.html").read_text()
    name = re.search(r'href="([^"]+)"', index).group(1)
    assert (tmp_path / "rep" / name).exists() and "erin" in index
    assert report.write_one(str(tmp_path), "99", str(tmp_path / "x.html")) == 1
