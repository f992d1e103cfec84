"""Run a command with the rights packaging/systemd/agentd.service gives the agent,
without systemd (PID 1 here is not systemd, so `systemctl start` cannot be used).

What is emulated, read from the unit file itself:
- User=, Group=, AmbientCapabilities=, CapabilityBoundingSet=, NoNewPrivileges=:
  `setpriv` (util-linux) switches to the user with exactly those capabilities;
- SystemCallFilter= (allow list minus the ~ lists, groups expanded by
  `systemd-analyze syscall-filter`, plus the calls systemd always allows),
  SystemCallArchitectures=native, MemoryDenyWriteExecute=, RestrictAddressFamilies=:
  seccomp filters loaded through libseccomp (ctypes), as systemd builds them;
- UMask=.
What is not: the mount-namespace settings (ProtectSystem, ProtectHome, PrivateTmp,
PrivateDevices, …). They take away write access and hide /tmp, /home and /dev,
none of which the agent reads; their syntax is checked by `systemd-analyze verify`.

A system call outside the filter gets the unit's SystemCallErrorNumber= (EPERM), as
under systemd; without that setting, systemd kills the process, and so does this.

Usage (stage 2 runs after setpriv dropped to the unit's user, stdlib only):
    python3 unit_sandbox.py seccomp ALLOW_FILE FAMILIES -- COMMAND...
"""

from __future__ import annotations

import ctypes
import ctypes.util
import errno
import os
import shutil
import socket
import subprocess
import sys

# Always allowed by systemd with an allow list (systemd.exec(5), SystemCallFilter=).
IMPLICIT = ("execve", "exit", "exit_group", "getrlimit", "rt_sigreturn", "sigreturn",
            "clock_gettime", "clock_getres", "gettimeofday", "time", "nanosleep", "clock_nanosleep")

SCMP_ACT_KILL_PROCESS = 0x80000000
SCMP_ACT_ALLOW = 0x7FFF0000
SCMP_CMP_EQ = 4
SCMP_CMP_MASKED_EQ = 7
PROT_WRITE, PROT_EXEC = 0x2, 0x4
SHM_EXEC = 0o100000


def SCMP_ACT_ERRNO(n: int) -> int:
    return 0x00050000 | (n & 0xFFFF)


def parse_unit(path: str) -> dict:
    """key -> list of values (a key given twice, like SystemCallFilter=, keeps both)."""
    out: dict = {}
    with open(path) as f:
        for line in f:
            line = line.strip()
            if not line or line[0] in "#;[" or "=" not in line:
                continue
            key, _, value = line.partition("=")
            out.setdefault(key.strip(), []).append(value.strip())
    return out


def _expand(names: list, cache: dict) -> set:
    out: set = set()
    for name in names:
        if not name.startswith("@"):
            out.add(name)
            continue
        if name not in cache:
            text = subprocess.run(["systemd-analyze", "syscall-filter", name], capture_output=True,
                                  text=True, check=True).stdout
            members = [ln.strip() for ln in text.splitlines()[1:]
                       if ln.strip() and not ln.strip().startswith("#")]
            cache[name] = set()
            cache[name] = _expand(members, cache)
        out |= cache[name]
    return out


def syscall_allowlist(unit: dict) -> set:
    """SystemCallFilter= as systemd reads it: the first setting is an allow list,
    later ~ settings take calls out of it."""
    allowed: set = set()
    cache: dict = {}
    for value in unit.get("SystemCallFilter", []):
        if value.startswith("~"):
            allowed -= _expand(value[1:].split(), cache)
        else:
            allowed |= _expand(value.split(), cache)
    return allowed | set(IMPLICIT)


def capabilities(unit: dict) -> list:
    caps = " ".join(unit.get("AmbientCapabilities", [])).split()
    return [c.lower().removeprefix("cap_") for c in caps]


def setpriv_argv(unit: dict, caps: list) -> list:
    user = unit["User"][-1]
    group = unit.get("Group", [user])[-1]
    capset = ",".join(["-all"] + [f"+{c}" for c in caps])
    argv = ["setpriv", f"--reuid={user}", f"--regid={group}", "--clear-groups",
            f"--inh-caps={capset}", f"--ambient-caps={capset}", f"--bounding-set={capset}"]
    if unit.get("NoNewPrivileges", ["no"])[-1] == "yes":
        argv.append("--no-new-privs")
    return argv


def sandbox_argv(unit_path: str, allow_file: str, command: list, caps: list | None = None,
                 root: str = "", python: str = "/usr/bin/python3") -> list:
    """The full command line: setpriv, then this file's seccomp stage, then `command`.
    With `root` (a chroot the caller enters), this file and the allow list are put
    inside it and `allow_file` and `python` are paths there."""
    unit = parse_unit(unit_path)
    script = os.path.abspath(__file__)
    if root:
        shutil.copy(script, os.path.join(root, "tmp", "unit_sandbox.py"))
        script = "/tmp/unit_sandbox.py"
    with open(root + allow_file, "w") as f:
        f.write("\n".join(sorted(syscall_allowlist(unit))) + "\n")
    families = " ".join(unit.get("RestrictAddressFamilies", [])) or "any"
    caps = capabilities(unit) if caps is None else caps
    umask = unit.get("UMask", ["0022"])[-1]
    mdwe = unit.get("MemoryDenyWriteExecute", ["no"])[-1]
    errno_name = unit.get("SystemCallErrorNumber", ["kill"])[-1]
    return setpriv_argv(unit, caps) + [python, "-I", script, "seccomp",
                                       allow_file, families, umask, mdwe, errno_name, "--"] + command


# ---------------------------------------------------------------- stage 2


class _ArgCmp(ctypes.Structure):
    _fields_ = [("arg", ctypes.c_uint), ("op", ctypes.c_int),
                ("datum_a", ctypes.c_uint64), ("datum_b", ctypes.c_uint64)]


class _Seccomp:
    def __init__(self) -> None:
        self.lib = ctypes.CDLL(ctypes.util.find_library("seccomp") or "libseccomp.so.2", use_errno=True)
        self.lib.seccomp_init.restype = ctypes.c_void_p
        self.lib.seccomp_init.argtypes = [ctypes.c_uint32]
        self.lib.seccomp_syscall_resolve_name.argtypes = [ctypes.c_char_p]
        self.lib.seccomp_rule_add_array.argtypes = [ctypes.c_void_p, ctypes.c_uint32, ctypes.c_int,
                                                    ctypes.c_uint, ctypes.POINTER(_ArgCmp)]
        self.lib.seccomp_load.argtypes = [ctypes.c_void_p]

    def filter(self, default: int, rules: list) -> None:
        """rules: (action, syscall name, [(arg, op, a, b), ...]); unknown names skipped."""
        ctx = self.lib.seccomp_init(default)
        for action, name, conds in rules:
            nr = self.lib.seccomp_syscall_resolve_name(name.encode())
            if nr < 0:
                continue
            arr = (_ArgCmp * max(1, len(conds)))(*[_ArgCmp(*c) for c in conds])
            rc = self.lib.seccomp_rule_add_array(ctx, action, nr, len(conds), arr)
            if rc < 0 and rc != -17:  # -EEXIST: same rule twice
                raise OSError(-rc, f"seccomp_rule_add {name}")
        rc = self.lib.seccomp_load(ctx)
        if rc < 0:
            raise OSError(-rc, "seccomp_load")


def _stage2(argv: list) -> None:
    allow_file, families, umask, mdwe, errno_name, sep, *command = argv
    assert sep == "--" and command
    os.umask(int(umask, 8))
    sc = _Seccomp()
    with open(allow_file) as f:
        allowed = [ln.strip() for ln in f if ln.strip()]
    if mdwe == "yes":  # systemd's MemoryDenyWriteExecute= rules
        eperm = SCMP_ACT_ERRNO(1)
        sc.filter(SCMP_ACT_ALLOW, [
            (eperm, "mmap", [(2, SCMP_CMP_MASKED_EQ, PROT_WRITE | PROT_EXEC, PROT_WRITE | PROT_EXEC)]),
            (eperm, "mprotect", [(2, SCMP_CMP_MASKED_EQ, PROT_EXEC, PROT_EXEC)]),
            (eperm, "pkey_mprotect", [(2, SCMP_CMP_MASKED_EQ, PROT_EXEC, PROT_EXEC)]),
            (eperm, "shmat", [(2, SCMP_CMP_MASKED_EQ, SHM_EXEC, SHM_EXEC)]),
        ])
    if families != "any":
        keep = {getattr(socket, name) for name in families.split()}
        eafnosupport = SCMP_ACT_ERRNO(97)
        sc.filter(SCMP_ACT_ALLOW, [(eafnosupport, "socket", [(0, SCMP_CMP_EQ, fam, 0)])
                                   for fam in range(46) if fam not in keep])
    # Filters stack (the kernel applies the strictest answer of all of them); the
    # allow list goes last because it does not allow seccomp() itself.
    denied = SCMP_ACT_KILL_PROCESS if errno_name == "kill" else SCMP_ACT_ERRNO(getattr(errno, errno_name))
    sc.filter(denied, [(SCMP_ACT_ALLOW, name, []) for name in allowed])
    os.execvp(command[0], command)


if __name__ == "__main__":
    if len(sys.argv) < 2 or sys.argv[1] != "seccomp":
        print(__doc__, file=sys.stderr)
        sys.exit(2)
    _stage2(sys.argv[2:])
