"""Transfers from the bastion: scp / sftp / rsync clients run in a session.

One ``transfer`` event per command: direction, remote host, remote and local paths
from argv, and bytes. The client is watched from its exec (the proc connector says
when): its /proc/PID/io is read every ``watch_interval`` and once more at its exit,
while the exited process is still a zombie. ``transfer.bytes_source`` says which
reading the count is: ``process-io-at-exit`` (rchar for a copy out, wchar for a copy
in: what the client read from the file, or wrote to it), ``process-io-last-sample``
(the parent reaped it first: the last reading), or ``local-file-size`` (no reading
after any data moved: the size of the local file(s) the command names).
"""

from __future__ import annotations

import os
import re
from typing import Optional

from agent.base.events import HostInfo, add_related, base_doc, make_event_id
from collectors.snapshots.processes import Proc, common

# Options that take a value in the next argument (only these matter for finding operands).
_SCP_ARG = set("cDFiJlOoPSX")
_RSYNC_ARG = set("eBfMT")
_RSYNC_LONG_ARG = {"--rsh", "--rsync-path", "--exclude", "--include", "--filter", "--files-from", "--port",
                   "--password-file", "--log-file", "--temp-dir", "--partial-dir", "--backup-dir", "--suffix",
                   "--chmod", "--chown", "--usermap", "--groupmap", "--compare-dest", "--copy-dest", "--link-dest"}
_REMOTE = re.compile(r"^(?:(?P<user>[^@/:]+)@)?(?P<host>\[[^\]]+\]|[^/:]+):(?P<path>.*)$")
_URL = re.compile(r"^(?:scp|sftp|rsync)://(?:(?P<user>[^@/]+)@)?(?P<host>\[[^\]]+\]|[^/:]+)(?::\d+)?(?P<path>/.*)?$")


def _remote(arg: str) -> Optional[dict]:
    m = _URL.match(arg) or _REMOTE.match(arg)
    if not m or (m.re is _REMOTE and arg.startswith(("/", "./"))):
        return None
    path = (m.group("path") or "").lstrip(":")  # rsync's host::module
    return {"host": m.group("host").strip("[]"), "user": m.group("user"), "path": path}


def _operands(args: list, short_arg: set, long_arg: set) -> list:
    out, i = [], 1
    while i < len(args):
        a = args[i]
        if a == "--":
            out += args[i + 1:]
            break
        if a.startswith("--"):
            if "=" not in a and a in long_arg:
                i += 1
        elif a.startswith("-") and len(a) > 1:
            flags = a[1:]
            for j, ch in enumerate(flags):
                if ch in short_arg:
                    if j == len(flags) - 1:
                        i += 1  # the value is the next argument
                    break
        else:
            out.append(a)
        i += 1
    return out


def parse(args: list) -> Optional[dict]:
    """What a transfer command line says: protocol, direction, remote, paths; None if not one."""
    if not args:
        return None
    prog = os.path.basename(args[0])
    if prog == "sftp":
        ops = _operands(args, _SCP_ARG | set("BbPRs"), set())
        r = _remote(ops[0]) if ops else None
        if r is None and ops:
            r = {"host": ops[0].split("@")[-1], "user": ops[0].split("@")[0] if "@" in ops[0] else None,
                 "path": ""}
        if r is None:
            return None
        return {"protocol": "sftp", "direction": "unknown", "remote": r, "local_paths": [],
                "remote_paths": [r["path"]] if r["path"] else []}
    if prog not in ("scp", "rsync"):
        return None
    ops = (_operands(args, _SCP_ARG, set()) if prog == "scp" else _operands(args, _RSYNC_ARG, _RSYNC_LONG_ARG))
    if len(ops) < 2:
        return None
    srcs, dst = ops[:-1], ops[-1]
    rdst = _remote(dst)
    rsrcs = [_remote(s) for s in srcs]
    if rdst is not None and not any(rsrcs):
        return {"protocol": prog, "direction": "outbound", "remote": rdst, "local_paths": srcs,
                "remote_paths": [rdst["path"]]}
    if rdst is None and all(rsrcs):
        return {"protocol": prog, "direction": "inbound", "remote": rsrcs[0], "local_paths": [dst],
                "remote_paths": [r["path"] for r in rsrcs]}
    return None  # remote to remote, or local to local: nothing crosses the bastion's own files


def local_size(paths: list, cwd: str) -> Optional[int]:
    total, found = 0, False
    for p in paths:
        full = p if os.path.isabs(p) else os.path.join(cwd, p)
        try:
            st = os.stat(full)
        except OSError:
            continue
        if os.path.isfile(full):
            total += st.st_size
            found = True
    return total if found else None


class Watch:
    __slots__ = ("proc", "spec", "cwd", "sampled")

    def __init__(self, proc: Proc, spec: dict, cwd: str):
        self.proc = proc
        self.spec = spec
        self.cwd = cwd
        self.sampled = False


def event(host: HostInfo, w: Watch, now: float, at_exit: bool, exit_code: Optional[int]) -> dict:
    spec, p = w.spec, w.proc
    out = spec["direction"] == "outbound"
    action = {"outbound": "file-sent", "inbound": "file-received"}.get(spec["direction"], "file-transferred")
    doc = base_doc(host=host, timestamp=now, module="psutil", dataset="agentd.transfer",
                   event_id=make_event_id(host.id, host.boot_id, "transfer", p.pid, p.start, " ".join(p.args)),
                   category=["network", "file"], type=["connection", "info"], action=action,
                   outcome="unknown" if exit_code is None else ("success" if exit_code == 0 else "failure"))
    common(doc, p)
    t: dict = {"protocol": spec["protocol"], "direction": spec["direction"], "remote_host": spec["remote"]["host"],
               "remote_paths": spec["remote_paths"], "local_paths": spec["local_paths"]}
    if spec["remote"].get("user"):
        t["remote_user"] = spec["remote"]["user"]
    rchar, wchar = p.io.get("rchar"), p.io.get("wchar")
    size = local_size(spec["local_paths"], w.cwd) if spec["direction"] != "unknown" else None
    counted = (rchar if out else wchar) if spec["direction"] != "unknown" else (wchar or 0) + (rchar or 0)
    if counted is not None and (at_exit or size is None or counted >= size):
        t["bytes"] = counted
        t["bytes_source"] = "process-io-at-exit" if at_exit else "process-io-last-sample"
    elif size is not None:
        t["bytes"] = size
        t["bytes_source"] = "local-file-size"
    if size is not None:
        t["local_size"] = size
    t["process_io"] = {"read_chars": rchar, "write_chars": wchar}
    doc["transfer"] = t
    paths = spec["local_paths"] + spec["remote_paths"]
    if paths:
        doc["file"] = {"path": paths[0]}
    doc["destination"] = {"address": spec["remote"]["host"]}
    if re.fullmatch(r"[0-9.]+|[0-9a-fA-F:]+", spec["remote"]["host"]):
        doc["destination"]["ip"] = spec["remote"]["host"]
        add_related(doc, ips=(spec["remote"]["host"],))
    doc["message"] = (f"{spec['protocol']} {spec['direction']} {', '.join(paths)} "
                      f"{'to' if out else 'from'} {spec['remote']['host']}: {t.get('bytes', '?')} bytes")
    return doc
