"""Session recording on the real stack, end to end.

erin is a recorded user of the test stack (login shell packaging/tlog/agentd-tlog-shell,
tlog-rec-session writing to the journal). One agent (`agentd run`, auditd + journald,
file and Splunk HEC shippers to the test SIEM) watches:

- an interactive session: ls, cat of a file, a vim edit, top for a few seconds, sudo -i,
  an ssh hop to the target host, an scp to it. Every recorded chunk is joined to the
  login, in order, shipped to the SIEM; `agentd sessions play` and `asciinema play` of
  `agentd sessions export` end on the same screen text (both read through pyte, a
  terminal emulator); the HTML report, opened in headless Chromium with networking off,
  shows who, the source IP, each command, the hop, the transfer and a player that
  advances when played;
- an scp and an sftp session of erin: not recorded;
- a flood of output: cut at the per-session cap, with a gap event in that session.
"""

# ruff: noqa: F811
from __future__ import annotations

import json
import os
import re
import shutil
import stat
import subprocess
import sys
import tempfile
import time
import uuid

import pytest

from tests.siem.hec import HecToken
from tests.siem.server import SiemServer
from tests.stack.session import PtyProcess, scp, sftp_batch
from tests.system.agentd_proc import AgentProc

pyte = pytest.importorskip("pyte")
pytestmark = pytest.mark.stack

TOKEN = str(uuid.uuid4())
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
SCREENSHOT = os.environ.get("AGENTD_REPORT_SCREENSHOT", "/work/report-screenshot.png")


def _agent(tmp_path, siem) -> AgentProc:
    shippers = (f"[shipper:file]\ntype = file\npath = {tmp_path}/out/events.jsonl\n\n"
                f"[shipper:hec]\ntype = splunk_hec\nurl = {siem.url}\ntoken = {TOKEN}\ntimeout = 5s\n")
    agent = AgentProc(tmp_path, shippers=shippers,
                      agent_extra="batch_linger = 50ms\nretry_max_backoff = 1s\nrecording_max_bytes = 256KiB\n",
                      collector_extra="\n[collector:journald]\ntype = journald\n")
    return agent.start()


def _cli(agent: AgentProc, *args, **kw) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "agent.app.cli", "sessions", "-c", agent.conf, *args],
                          capture_output=True, timeout=120, cwd=os.path.dirname(os.path.dirname(
                              os.path.dirname(os.path.abspath(__file__)))), **kw)


class _Screen(pyte.Screen if pyte else object):
    def select_graphic_rendition(self, *attrs, private=False, **kw):
        # pyte 0.8.2's stream passes private=True for vim's CSI > 4;2 m (modifyOtherKeys),
        # which its own Screen does not accept; colours do not matter here.
        if not private:
            super().select_graphic_rendition(*attrs)


def _screen(data: bytes, cols: int, rows: int) -> str:
    screen = _Screen(cols, rows)
    stream = pyte.ByteStream(screen)
    stream.feed(data)
    return "\n".join(line.rstrip() for line in screen.display)


def _ses(session) -> str:
    return session.run("cat /proc/self/sessionid").strip()


def _recorded_session(ssh_session, tok: str, target: str):
    s = ssh_session("erin")
    ses = _ses(s)
    s.run(f"printf 'line one {tok}\\nline two\\n' > notes-{tok}.txt")
    s.run("ls -la /etc/ssh")
    s.run(f"cat notes-{tok}.txt")
    # vim: open, append a line, save, quit
    s.send(f"vim -n -u NONE notes-{tok}.txt\r")
    s.expect("line two", timeout=20)
    s.send(f"Goedited in vim {tok}\x1b")
    time.sleep(0.3)
    s.send(":wq\r")
    s.wait_prompt(timeout=20)
    # top, a few seconds of refreshing screens
    s.send("top -d 1\r")
    s.expect("load average", timeout=20)
    s.expect("load average", timeout=20)  # a refresh
    s.send("q")
    s.wait_prompt(timeout=20)
    # sudo -i: the same login (and the same recording: tlog records a login once)
    s.send("sudo -i\r")
    s.read_quiet(0.5)
    s.set_prompt()
    s.run(f"echo root-{tok}")
    s.send("exit\r")
    s.read_quiet(0.5)
    s.set_prompt()
    # a hop to the internal host, then a copy to it
    s.run(f"ssh {target} echo hop-{tok}", timeout=40)
    s.run(f"scp notes-{tok}.txt {target}:copied-{tok}.txt", timeout=40)
    s.run(f"echo done-{tok}")
    s.close()
    return ses


def test_recorded_session_collected_played_exported_and_reported(stack, ssh_session, tmp_path):
    siem = SiemServer(hec_tokens={TOKEN: HecToken()})
    siem.start()
    agent = _agent(tmp_path, siem)
    try:
        tok = uuid.uuid4().hex[:8]
        ses = _recorded_session(ssh_session, tok, stack.target_host)

        # Transfers as erin's session command: never recorded.
        key = stack.users["erin"]["key_path"]
        src = tmp_path / f"up-{tok}.txt"
        src.write_text("transfer " * 500)
        scp("erin", key, str(src), f"up-{tok}.txt")
        scp("erin", key, str(src), f"up-legacy-{tok}.txt", legacy=True)
        sftp_batch("erin", key, [f"put {src} sftp-{tok}.txt"])

        # A flood of output in its own recorded session: cut at recording_max_bytes.
        flood = ssh_session("erin")
        flood_ses = _ses(flood)
        flood.run("head -c 600000 /dev/urandom | base64 -w 100", timeout=60)
        flood.close()

        def ended(evs, which):
            return [e for e in evs if e["event"].get("action") == "session-ended"
                    and str(e["session"]["id"]).endswith(f":{which}")]

        def chunks_of(evs, which):
            return [e for e in evs if e["event"]["dataset"] == "tlog.recording"
                    and str(e.get("auditd", {}).get("session")) == which]

        def complete(evs):
            # the logout, and tlog's last chunk (it writes at exit): the text ends in "logout"
            text = "".join(e["process"]["io"]["text"] for e in chunks_of(evs, ses))
            return ended(evs, ses) and ended(evs, flood_ses) and f"done-{tok}" in text and "logout" in text \
                and any(e["event"]["dataset"] == "agentd.gap" and e.get("session", {}).get("id", "").endswith(
                    f":{flood_ses}") for e in evs)

        agent.wait_for(complete, timeout=90)
        evs = agent.events()
        sid = ended(evs, ses)[0]["session"]["id"]
        chunks = chunks_of(evs, ses)
        # every chunk joined to the login, one recording, numbered 1..n without a hole
        assert chunks and all(c["session"]["id"] == sid and c["session"]["user"] == "erin" for c in chunks)
        assert all(c["session"]["source"]["ip"] == "127.0.0.1" for c in chunks)
        assert len({c["tlog"]["rec"] for c in chunks}) == 1
        assert sorted(c["tlog"]["id"] for c in chunks) == list(range(1, len(chunks) + 1))
        assert not [e for e in evs if e["event"]["dataset"] == "agentd.gap" and e.get("session", {}).get("id") == sid]
        text = "".join(c["process"]["io"]["text"] for c in sorted(chunks, key=lambda c: c["tlog"]["id"]))
        for what in (f"line one {tok}", "ssh_host_ed25519_key", f"root-{tok}", f"hop-{tok}", "load average"):
            assert what in text, what
        assert all(c["process"]["io"]["type"] == "tty" for c in chunks)

        # shipped: the SIEM holds the same chunks
        shipped = {o["event"]["event"]["id"] for o in siem.hec_events
                   if o["event"]["event"]["dataset"] == "tlog.recording"}
        agent_ids = {c["event"]["id"] for c in chunks}
        deadline = time.monotonic() + 30
        while not agent_ids <= shipped and time.monotonic() < deadline:
            time.sleep(0.2)
            shipped = {o["event"]["event"]["id"] for o in siem.hec_events
                       if o["event"]["event"]["dataset"] == "tlog.recording"}
        assert agent_ids <= shipped

        # the transfers were sessions of their own, none recorded
        transfer_sessions = {e["session"]["id"] for e in evs if e.get("session", {}).get("user") == "erin"
                             and e["event"].get("action") in ("file-uploaded", "exec")
                             and (e.get("process", {}).get("name") in ("scp", "sftp-server"))
                             and not e["session"].get("tty")}
        assert transfer_sessions
        recorded_sessions = {e["session"]["id"] for e in evs if e["event"]["dataset"] == "tlog.recording"
                             and e["process"]["io"]["text"]}
        assert not transfer_sessions & recorded_sessions

        # the flood: cut, with a gap event in that session saying so
        cut = [e for e in evs if e["event"]["dataset"] == "agentd.gap"
               and e.get("session", {}).get("id", "").endswith(f":{flood_ses}")]
        assert cut[0]["agentd"]["gap"]["reason"] == "recording-cut"
        assert sum(len(c["process"]["io"]["text"]) for c in chunks_of(evs, flood_ses)) <= 256 * 1024 + 4096

        # play and export: the same final screen
        agent.stop()
        played = _cli(agent, "play", sid, "--speed", "1000", "--max-idle", "0.001")
        assert played.returncode == 0, played.stderr
        cast_path = tmp_path / "session.cast"
        exported = _cli(agent, "export", sid, "--format", "asciicast", "-o", str(cast_path))
        assert exported.returncode == 0, exported.stderr
        header = json.loads(cast_path.read_text().splitlines()[0])
        cols, rows = header["width"], header["height"]
        asciinema_out = _asciinema_play(cast_path, cols, rows)
        final_play = _screen(played.stdout, cols, rows)
        final_cast = _screen(asciinema_out, cols, rows)
        assert f"done-{tok}" in final_play
        assert final_play == final_cast

        _check_report(agent, sid, tok, tmp_path)
        _check_index(agent, tmp_path)
    finally:
        agent.stop()
        siem.stop()


def _asciinema_play(cast_path, cols: int, rows: int) -> bytes:
    """`asciinema play` under a pty of the recording's size; everything it wrote."""
    p = PtyProcess(["sh", "-c", f"stty cols {cols} rows {rows}; exec asciinema play -i 0.01 '{cast_path}'"])
    assert p.wait(timeout=120) == 0
    return bytes(p.transcript)


def _check_report(agent, sid: str, tok: str, tmp_path) -> None:
    out = tmp_path / "report.html"
    r = _cli(agent, "report", sid, "-o", str(out))
    assert r.returncode == 0, r.stderr
    assert stat.S_IMODE(os.stat(out).st_mode) == 0o600
    page = out.read_text()
    assert "http://" not in page.replace("http://www.w3.org", "") and "https://" not in page
    if not CHROMIUM:
        pytest.skip("chromium not installed (apt-get install chromium)")
    dom = _chromium(["--dump-dom", f"file://{out}#autoplay"], virtual_ms=8000)
    body = re.sub(r"<script.*?</script>", "", dom, flags=re.S)
    for what in ("erin", "127.0.0.1", "ls -la /etc/ssh", f"cat notes-{tok}.txt", f"vim -n -u NONE notes-{tok}.txt",
                 "top -d 1", "sudo -i", "127.0.0.2", f"scp notes-{tok}.txt", "publickey"):
        assert what in body, what
    m = re.search(r'class="player" data-time="([0-9.]+)"[^>]*data-frame="(\d+)"', dom) or \
        re.search(r'class="player"[^>]*data-time="([0-9.]+)"[^>]*data-frame="(\d+)"', dom)
    assert m and float(m.group(1)) > 0 and int(m.group(2)) > 0, "the player did not advance"
    screen = re.search(r'<pre class="screen"[^>]*>(.*?)</pre>', dom, re.S).group(1)
    assert screen.strip(), "the player drew nothing"
    _chromium([f"--screenshot={SCREENSHOT}", "--window-size=1280,2400", f"file://{out}#end"], virtual_ms=3000)
    assert os.path.getsize(SCREENSHOT) > 10000


def _check_index(agent, tmp_path) -> None:
    out_dir = tmp_path / "reports"
    r = _cli(agent, "report", "--since", "1h", "-o", str(out_dir))
    assert r.returncode == 0, r.stderr
    index = (out_dir / "index.html").read_text()
    pages = re.findall(r'href="(session-[^"]+\.html)"', index)
    assert pages and all((out_dir / p).exists() for p in pages)
    assert all(stat.S_IMODE(os.stat(out_dir / p).st_mode) == 0o600 for p in pages + ["index.html"])


def _chromium(args, virtual_ms: int) -> str:
    profile = tempfile.mkdtemp(prefix="agentd-chromium-")
    try:
        p = subprocess.run([CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                            "--disable-component-update", "--disable-sync", "--no-first-run",
                            "--disable-dev-shm-usage", f"--user-data-dir={profile}",
                            f"--virtual-time-budget={virtual_ms}", *args],
                           capture_output=True, text=True, timeout=120)
        assert p.returncode == 0, p.stderr[-2000:]
        return p.stdout
    finally:
        shutil.rmtree(profile, ignore_errors=True)

