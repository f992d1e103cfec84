"""Record a real exec-heavy audit capture for benchmarks/audit_replay.py.

    sudo .venv/bin/python benchmarks/record_big_capture.py [--records 100000] [--out benchmarks/data/exec_storm.log.xz]

Needs root and a running auditd with the project's rules (execve logged for processes
with a login uid). A child gets a login uid the way pam_loginuid gives one (writing
/proc/self/loginuid as root, allowed while loginuid_immutable is off) and then runs a
tight shell loop of execs, a few with non-ASCII, non-UTF-8 and >8 KiB arguments so the
capture exercises every argument encoding. Meanwhile we follow audit.log (across a
rotation: the old file is read to its end before switching) and keep every line written
from the start until enough records are in; the result is stored xz-compressed.
"""

from __future__ import annotations

import argparse
import lzma
import os
import subprocess
import sys
import time

LOG = "/var/log/audit/audit.log"
LOOP = r"""
i=0
while [ $i -lt {n} ]; do
  /bin/true
  /bin/echo "x $i" > /dev/null
  case $((i % 500)) in
    0) /bin/echo héllo wörld 日本 > /dev/null ;;
    1) /bin/echo "$(printf '\377\376')" > /dev/null ;;
    2) /bin/echo "$(head -c 9000 /dev/zero | tr '\0' A)" > /dev/null ;;
  esac
  i=$((i+1))
done
"""


def _child_with_loginuid(uid: int, script: str) -> subprocess.Popen:
    def pre() -> None:
        os.setsid()
        with open("/proc/self/loginuid", "w") as f:
            f.write(str(uid))
    return subprocess.Popen(["/bin/bash", "-c", script], preexec_fn=pre)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--records", type=int, default=100_000)
    ap.add_argument("--loginuid", type=int, default=1001)
    ap.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "data", "exec_storm.log.xz"))
    a = ap.parse_args(argv)
    if os.geteuid() != 0:
        print("needs root (to set a login uid and read audit.log)", file=sys.stderr)
        return 2
    f = open(LOG, "rb")
    f.seek(0, os.SEEK_END)
    ino = os.fstat(f.fileno()).st_ino
    # Each loop turn makes two exec events of ~6 records; overshoot, we stop reading early.
    child = _child_with_loginuid(a.loginuid, LOOP.format(n=a.records // 10 + 500))
    lines: list = []
    buf = b""
    deadline = time.time() + 600
    while len(lines) < a.records and time.time() < deadline:
        chunk = f.read(1 << 20)
        if chunk:
            buf += chunk
            *done, buf = buf.split(b"\n")
            lines.extend(done)
            continue
        try:
            st = os.stat(LOG)
        except FileNotFoundError:
            st = None
        if st is not None and st.st_ino != ino:
            f.close()
            f = open(LOG, "rb")      # rotated: the old file was read to its end
            ino = os.fstat(f.fileno()).st_ino
            continue
        if child.poll() is not None and not chunk:
            time.sleep(0.5)
            rest = f.read()
            if not rest:
                break
            buf += rest
            *done, buf = buf.split(b"\n")
            lines.extend(done)
            continue
        time.sleep(0.05)
    if child.poll() is None:
        child.terminate()
    child.wait()
    f.close()
    data = b"\n".join(lines) + b"\n"
    os.makedirs(os.path.dirname(os.path.abspath(a.out)), exist_ok=True)
    with lzma.open(a.out, "wb", preset=9 | lzma.PRESET_EXTREME) as out:
        out.write(data)
    print(f"{len(lines)} records captured, {len(data)} bytes -> {a.out} ({os.path.getsize(a.out)} bytes xz)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
