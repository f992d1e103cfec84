"""Produce the audit project's own readings of a capture, to test our parser against.

    /usr/bin/python3 tests/captures/oracles.py tests/captures/bastion1

Must run under the system python: the `auparse` module comes from the python3-audit
package. Writes, next to the capture's audit.log:
  auparse.json      per event: serial, timestamp, records (type, every field's raw and
                    interpreted value); for EXECVE also the argv as auparse interprets it
  aureport_tty.txt  aureport --tty -if audit.log
  ausearch_i.txt    ausearch -i -if audit.log
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import auparse

ARG_RE = re.compile(r"^a(\d+)$")
SPLIT_RE = re.compile(r"^a(\d+)\[(\d+)\]$")


def _text(fn):
    """auparse's binding returns str; undecodable bytes surface as errors, so keep both."""
    try:
        return fn(), None
    except (UnicodeDecodeError, RuntimeError, OSError) as e:  # pragma: no cover - data
        return None, f"{type(e).__name__}: {e}"


def execve_argv(fields):
    """argv from auparse's interpretations. auparse interprets each aN and each piece
    aN[i] separately; it does not join split arguments (nor argv spread over several
    EXECVE records), so we join the pieces here and say so in `execve_split_args`.
    A value auparse could not hand over (its binding raises on non-UTF-8) is None."""
    argc = None
    plain, pieces = {}, {}
    for f in fields:
        if f["name"] == "argc":
            argc = int(f["raw"])
        m = ARG_RE.match(f["name"])
        if m:
            plain[int(m.group(1))] = f["interpreted"]
            continue
        m = SPLIT_RE.match(f["name"])
        if m:
            pieces.setdefault(int(m.group(1)), []).append((int(m.group(2)), f["interpreted"]))
    argv, split = [], {}
    for i in range(argc or 0):
        if i in plain:
            argv.append(plain[i])
        elif i in pieces:
            parts = [p for _, p in sorted(pieces[i])]
            split[str(i)] = {"pieces": len(parts), "piece_lengths": [len(p or "") for p in parts]}
            argv.append("".join(p or "" for p in parts))
        else:
            argv.append(None)  # missing from the record (e.g. truncated)
    return argv, split


def read_events(log: Path):
    au = auparse.AuParser(auparse.AUSOURCE_FILE, str(log))
    # Raw escaping: interpreted values are the decoded bytes themselves, not the
    # terminal-safe (octal-escaped) rendering ausearch prints.
    au.set_escape_mode(auparse.AUPARSE_ESC_RAW)
    events = []
    while au.parse_next_event():
        ts = au.get_timestamp()
        ev = {"serial": ts.serial, "timestamp": f"{ts.sec}.{ts.milli:03d}",
              "host": ts.host, "records": []}
        au.first_record()
        while True:
            rec = {"type": au.get_type_name(), "fields": []}
            if au.first_field():
                while True:
                    name = au.get_field_name()
                    raw, raw_err = _text(au.get_field_str)
                    interp, int_err = _text(au.interpret_field)
                    f = {"name": name, "raw": raw, "interpreted": interp}
                    if raw_err or int_err:
                        f["error"] = raw_err or int_err
                    rec["fields"].append(f)
                    if not au.next_field():
                        break
            ev["records"].append(rec)
            if not au.next_record():
                break
        # A long argv spans several EXECVE records of one event (argc only in the first),
        # so argv is computed over all of them and attached to the event.
        ex = [r for r in ev["records"] if r["type"] == "EXECVE"]
        if ex:
            fields = [f for r in ex for f in r["fields"]]
            ev["execve_argv"], split = execve_argv(fields)
            ev["execve_records"] = len(ex)
            if split:
                ev["execve_split_args"] = split
        events.append(ev)
    return events


def main(argv):
    if len(argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    cap = Path(argv[1])
    log = cap / "audit.log"
    events = read_events(log)
    # One event per line: small enough to commit, still diffable and greppable.
    with open(cap / "auparse.json", "w", encoding="utf-8", errors="surrogateescape") as f:
        f.write('{"source": "auparse (python3-audit)", "escape_mode": "AUPARSE_ESC_RAW",\n'
                ' "field_format": "[name, raw, interpreted] (+ error)",\n "events": [\n')
        for i, ev in enumerate(events):
            for rec in ev["records"]:
                rec["fields"] = [[x["name"], x["raw"], x["interpreted"]] + (
                    [x["error"]] if "error" in x else []) for x in rec["fields"]]
            sep = ",\n" if i + 1 < len(events) else "\n"
            f.write(json.dumps(ev, ensure_ascii=False, separators=(",", ":")) + sep)
        f.write("]}\n")
    for name, cmd in (("aureport_tty.txt", ["aureport", "--tty", "-if", str(log)]),
                      ("ausearch_i.txt", ["ausearch", "-i", "-if", str(log)])):
        p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        # ausearch exits 1 when nothing matched; the output is still the oracle.
        (cap / name).write_bytes(p.stdout)
    nrec = sum(len(e["records"]) for e in events)
    print(f"oracles: {len(events)} events, {nrec} records -> {cap}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
