"""Issue 18, target 1: the whole `agentd replay` process against ``ausearch`` on one capture.

    .venv/bin/python benchmarks/audit_replay.py [--capture FILE] [--runs 5] [--no-sigma]
    .venv/bin/python benchmarks/audit_replay.py --stages [--runs 5]     # collector path, µs/event
    .venv/bin/python benchmarks/audit_replay.py --profile [DIR]         # cProfile of one replay
    .venv/bin/python benchmarks/audit_replay.py --compiled [--no-sigma]  # + the mypyc build (make compiled)

The capture (default ``data/exec_storm.log.xz``) is decompressed once into a temporary file;
every side reads that same file, each as a whole process:

* ``agentd``: ``python -m agent.app.cli replay --audit-log FILE -o OUT``, no config: the
  defaults, redaction and the built-in detections on;
* ``agentd+sigma``: the same with a config holding ``[detections] sigma_dirs = rules/sigma``
  (the shipped SigmaHQ set on top of the built-in rules);
* ``ausearch -i``: ``ausearch -i -if FILE`` (the audit project's interpreting reader);
* ``ausearch csv``: ``ausearch --format csv -if FILE``;
* ``agentd compiled`` (``--compiled``; by default when ``make compiled`` has built
  ``.venv/compiled``, ``--no-compiled`` skips it): the default replay with the auditd
  collector's hot modules compiled by mypyc (``.venv/compiled`` first on the path, run from
  outside the tree, whose directory would otherwise come first); its output must be the
  pure replay's, byte for byte.

After one uncounted warm-up run each, the sides run in rounds, each round in a rotated order
(so that a slow spell of the shared machine hits every side alike). For each side it prints
the median wall time, the median CPU time (user+sys of the child) and the least CPU time, and
the ratios of the agentd sides to both ausearch sides (ratio <= 1 is issue 18's target), then
one ``BENCH-RESULT {json}`` line with the same figures and the rows of `make bench`'s table.

``--stages`` times the collector path in this process, each stage alone over the output of
the one before (read+split, parse, reassemble, normalize, JSON), least of ``--runs`` each,
printed in µs per event and per record; ``--stages --compiled``: the same with the mypyc
build's modules.

Exit status: 0 measured, 1 a run failed, 2 ausearch is not installed.
"""

from __future__ import annotations

import argparse
import cProfile
import json
import lzma
import os
import pstats
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
DEFAULT_CAPTURE = os.path.join(HERE, "data", "exec_storm.log.xz")
SIGMA_CONF = ("[agent]\nstate_dir = {tmp}/state\n[collector:a]\ntype = auditd\n"
              "[shipper:f]\ntype = file\npath = {tmp}/unused\n"
              "[detections]\nenabled = true\nsigma_dirs = " + os.path.join(REPO, "rules", "sigma") + "\n")


def _decompress(capture: str, tmp: str) -> str:
    path = os.path.join(tmp, "audit.log")
    opener = lzma.open if capture.endswith(".xz") else open
    with opener(capture, "rb") as src, open(path, "wb") as dst:
        shutil.copyfileobj(src, dst)
    return path


COMPILED = os.path.join(REPO, ".venv", "compiled")


def compiled_path() -> str:
    """PYTHONPATH of the compiled build (make compiled), checked: its auditd parser must be
    the extension module, imported from outside the tree as the benchmark runs it."""
    path = COMPILED + os.pathsep + REPO
    probe = subprocess.run([sys.executable, "-c", "import collectors.auditd.parse as m; print(m.__file__)"],
                           cwd=tempfile.gettempdir(), env=dict(os.environ, PYTHONPATH=path),
                           capture_output=True, text=True)
    if probe.returncode != 0 or not probe.stdout.strip().endswith(".so"):
        raise RuntimeError(f"no compiled build in {COMPILED} (make compiled): {probe.stdout}{probe.stderr}")
    return path


def _sides(log: str, tmp: str, sigma: bool, before: str = "", compiled: str = "") -> dict:
    """name -> (argv, tree it runs in[, PYTHONPATH]); every side reads ``log``. ``before``:
    also the default replay of that git revision, checked out into a temporary worktree;
    ``compiled``: also the default replay on that PYTHONPATH, run in ``tmp``."""
    agentd = [sys.executable, "-m", "agent.app.cli", "replay", "--audit-log", log, "-o", os.path.join(tmp, "out.jsonl")]
    ausearch = shutil.which("ausearch") or "/usr/sbin/ausearch"
    sides = {"agentd": (agentd, REPO)}
    if before:
        tree = os.path.join(tmp, "before")
        subprocess.run(["git", "-C", REPO, "worktree", "add", "--quiet", "--detach", tree, before], check=True)
        sides[f"agentd@{before}"] = (agentd[:-1] + [os.path.join(tmp, "out-before.jsonl")], tree)
    if compiled:
        sides["agentd compiled"] = (agentd[:-1] + [os.path.join(tmp, "out-compiled.jsonl")], tmp, compiled)
    if sigma:
        conf = os.path.join(tmp, "sigma.conf")
        with open(conf, "w") as f:
            f.write(SIGMA_CONF.format(tmp=tmp))
        sides["agentd+sigma"] = (agentd[:4] + ["-c", conf] + agentd[4:-1] + [os.path.join(tmp, "out-sigma.jsonl")],
                                 REPO)
    sides["ausearch -i"] = ([ausearch, "-i", "-if", log], REPO)
    sides["ausearch csv"] = ([ausearch, "--format", "csv", "-if", log], REPO)
    return sides


def _env(tmp: str) -> dict:
    """The children's environment: Python may cache bytecode (in ``tmp``, not the tree), as
    an installed agent has its .pyc files; with PYTHONDONTWRITEBYTECODE set (this sandbox
    sets it) every replay would compile agentd's modules again, ~0.2 s CPU per run."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env["PYTHONPYCACHEPREFIX"] = os.path.join(tmp, "pycache")
    return env


def _one(side: tuple, env: dict) -> tuple:
    """(wall seconds, CPU seconds) of one whole process; its stdout goes to /dev/null."""
    argv, tree = side[:2]
    env = dict(env, PYTHONPATH=side[2] if len(side) > 2 else tree)
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t = time.perf_counter()
    p = subprocess.run(argv, cwd=tree, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    wall = time.perf_counter() - t
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    # ausearch exits 1 when it finds nothing (not the case here); anything else is a failure.
    if p.returncode != 0:
        raise RuntimeError(f"{' '.join(argv[:4])} exited {p.returncode}: {p.stderr.decode(errors='replace')[-2000:]}")
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def measure(log: str, tmp: str, runs: int, sigma: bool, before: str = "", compiled: str = "") -> dict:
    sides = _sides(log, tmp, sigma, before, compiled)
    try:
        names = list(sides)
        env = _env(tmp)
        for name in names:  # warm-up: byte-compiles, fills the page cache
            _one(sides[name], env)
        times: dict = {n: [] for n in names}
        for i in range(runs):
            k = i % len(names)
            for name in names[k:] + names[:k]:
                times[name].append(_one(sides[name], env))
    finally:
        if before:
            subprocess.run(["git", "-C", REPO, "worktree", "remove", "--force", os.path.join(tmp, "before")],
                           check=False)
    return times


def _summary(times: dict) -> dict:
    out = {}
    for name, ts in times.items():
        out[name] = {"wall_s": round(statistics.median(w for w, _ in ts), 3),
                     "cpu_s": round(statistics.median(c for _, c in ts), 3),
                     "cpu_min_s": round(min(c for _, c in ts), 3),
                     "walls": [round(w, 3) for w, _ in ts], "cpus": [round(c, 3) for _, c in ts]}
    return out


def _ratio(a: float, b: float):
    return round(a / b, 2) if b else None


def report(capture: str, records: int, events: int, runs: int, s: dict) -> dict:
    print(f"capture {capture}: {records} records, {events} agentd events; {runs} runs each, rotated order")
    for name, f in s.items():
        print(f"{name:>16}: median wall {f['wall_s']:.3f} s, median CPU {f['cpu_s']:.3f} s "
              f"(least {f['cpu_min_s']:.3f})  [walls: {' '.join(map(str, f['walls']))}]")
    res: dict = {"records": records, "events": events, "runs": runs, "sides": s, "table": []}
    for ours in (n for n in s if n.startswith("agentd")):
        for peer in ("ausearch -i", "ausearch csv"):
            key = f"{ours} / {peer}"
            wall_r = _ratio(s[ours]["wall_s"], s[peer]["wall_s"])
            cpu_r = _ratio(s[ours]["cpu_min_s"], s[peer]["cpu_min_s"])
            res[key] = {"wall_ratio": wall_r, "cpu_min_ratio": cpu_r}
            print(f"{key:>30}: wall ratio {wall_r}, least-CPU ratio {cpu_r}  (target: <= 1)")
            if "@" in ours:
                continue  # --before: for the comparison, not a figure of this tree
            what = "built-in rules" if ours != "agentd+sigma" else "built-in + SigmaHQ rules"
            if ours == "agentd compiled":
                what += ", auditd collector compiled (mypyc)"
            res["table"].append({
                "figure": f"1 replay: {ours} vs {peer}", "value": s[ours]["wall_s"], "unit": "s",
                "baseline": s[peer]["wall_s"], "baseline_name": peer, "target": "ratio <= 1",
                "note": f"{ours}: redaction + {what}; median wall of {runs}, least CPU {s[ours]['cpu_min_s']} s "
                        f"vs {s[peer]['cpu_min_s']} s ({records} records, {events} events)",
            })
    return res


def _same(a: str, b: str) -> bool:
    with open(a, "rb") as fa, open(b, "rb") as fb:
        return fa.read() == fb.read()


# -- the collector path, stage by stage, in this process ---------------------------------

STAGES = ("read+split lines", "parse_line", "reassemble", "normalize", "JSON (orjson)")


def _stage_runs(log: str) -> dict:
    """One pass of each stage alone over the output of the one before (made untimed):
    stage name -> process seconds; plus the record and event counts."""
    from agent.base.events import HostInfo, dumps
    from collectors.auditd.normalize import Normalizer
    from collectors.auditd.parse import ParseError, parse_line
    from collectors.auditd.reassemble import Gap, Reassembler
    from collectors.auditd.tail import LogFollower

    clock = time.process_time
    out: dict = {}
    t = clock()
    follower = LogFollower(log, start_at="beginning", follow=False, max_line=1 << 30)
    lines = list(follower.lines(max_bytes=1 << 40))
    follower.close()
    out[STAGES[0]] = clock() - t

    def parsed() -> list:
        recs = []
        for line, off in lines:
            try:
                recs.append(parse_line(line, off))
            except ParseError:
                pass
        return recs

    t = clock()
    recs = parsed()
    out[STAGES[1]] = clock() - t
    reasm = Reassembler()
    push = reasm.push
    t = clock()
    for rec in recs:
        push(rec)
    out[STAGES[2]] = clock() - t
    # Records parse their fields on first read and keep them: normalize fresh ones.
    reasm = Reassembler()
    items: list = []
    for rec in parsed():
        items += reasm.push(rec)
    items += reasm.flush()
    norm = Normalizer(HostInfo("bench", "bench-id"), keep_original=False, resolve_ids=True)
    t = clock()
    docs = []
    for it in items:
        if isinstance(it, Gap):
            docs.append(norm.gap(it))
        else:
            docs += norm.normalize(it)
    out[STAGES[3]] = clock() - t
    t = clock()
    for d in docs:
        dumps(d)
    out[STAGES[4]] = clock() - t
    out["records"], out["events"] = len(recs), len(docs)
    return out


def stages(log: str, runs: int, compiled: bool = False) -> dict:
    """Least process time of each stage over ``runs`` passes, as `agentd replay` runs the
    GC; per stage µs/event and µs/record. Each stage is timed alone, so a slow spell of
    the shared machine spoils one figure of one pass, not the differences of all.
    ``compiled``: the modules of the mypyc build (make compiled)."""
    sys.path.insert(0, REPO)
    if compiled:
        compiled_path()
        sys.path.insert(0, COMPILED)
    from agent.app.replay import quiet_gc
    from collectors.auditd import parse

    print(f"collector modules from {os.path.dirname(os.path.dirname(parse.__file__))} "
          f"({'compiled' if parse.__file__.endswith('.so') else 'pure'})")

    best = dict.fromkeys(STAGES, float("inf"))
    restore_gc = quiet_gc()
    try:
        for _ in range(runs):
            one = _stage_runs(log)
            for name in STAGES:
                best[name] = min(best[name], one[name])
    finally:
        restore_gc()
    records, events = one["records"], one["events"]
    total = sum(best.values())
    out: dict = {"records": records, "events": events, "total_s": round(total, 3), "stages": {}}
    print(f"collector path, least of {runs} per stage: {records} records, {events} events, {total:.3f} s CPU")
    for name in STAGES:
        d = best[name]
        out["stages"][name] = {"s": round(d, 3), "us_per_event": round(d / events * 1e6, 1),
                               "us_per_record": round(d / records * 1e6, 2)}
        print(f"  {name:<18} {d:6.3f} s  {d / events * 1e6:7.1f} µs/event  {d / records * 1e6:6.2f} µs/record")
    print(f"  {'total':<18} {total:6.3f} s  {total / events * 1e6:7.1f} µs/event")
    return out


def profile(log: str, tmp: str, out_dir: str) -> None:
    """cProfile of one default replay in this process (times inflated by the profiler)."""
    sys.path.insert(0, REPO)
    from agent.app.cli import main as cli_main

    os.makedirs(out_dir, exist_ok=True)
    prof = os.path.join(out_dir, "replay.prof")
    argv = ["replay", "--audit-log", log, "-o", os.path.join(tmp, "out.jsonl")]
    cProfile.runctx("cli_main(argv)", {"cli_main": cli_main, "argv": argv}, {}, prof)
    st = pstats.Stats(prof)
    st.sort_stats("tottime").print_stats(30)
    print(f"profile kept in {prof} (py-spy/snakeviz can read it)")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--capture", default=DEFAULT_CAPTURE, help="audit log, .xz allowed")
    ap.add_argument("--runs", type=int, default=5, help="counted runs of each side (median reported)")
    ap.add_argument("--no-sigma", action="store_true", help="skip the agentd run with the SigmaHQ set")
    ap.add_argument("--before", default="", metavar="REV",
                    help="also the default replay of git revision REV (before/after in one run)")
    ap.add_argument("--compiled", action="store_true", default=None,
                    help="also the default replay with the mypyc build (make compiled; default: when it is "
                         "built); output must be identical")
    ap.add_argument("--no-compiled", dest="compiled", action="store_false", help="not the mypyc build")
    ap.add_argument("--stages", action="store_true", help="collector path stage by stage, in process")
    ap.add_argument("--profile", nargs="?", const=os.path.join(HERE, "out"), metavar="DIR",
                    help="cProfile one default replay (kept in DIR, default benchmarks/out)")
    a = ap.parse_args(argv)
    if a.compiled is None:
        a.compiled = not a.stages and os.path.exists(os.path.join(COMPILED, ".built"))
    with tempfile.TemporaryDirectory(prefix="audit_replay-") as tmp:
        log = _decompress(a.capture, tmp)
        if a.stages:
            res = stages(log, a.runs, a.compiled)
            print("BENCH-RESULT " + json.dumps({"collector_stages": res}, sort_keys=True))
            return 0
        if a.profile:
            profile(log, tmp, a.profile)
            return 0
        if not (shutil.which("ausearch") or os.path.exists("/usr/sbin/ausearch")):
            print("ausearch is not installed (Debian: auditd)", file=sys.stderr)
            return 2
        try:
            times = measure(log, tmp, a.runs, not a.no_sigma, a.before, compiled_path() if a.compiled else "")
            if a.compiled and not _same(os.path.join(tmp, "out.jsonl"), os.path.join(tmp, "out-compiled.jsonl")):
                raise RuntimeError("the compiled build's output differs from the pure one's")
        except RuntimeError as e:
            print(f"failed: {e}", file=sys.stderr)
            return 1
        with open(log, "rb") as f:
            records = sum(1 for line in f if line.strip())
        with open(os.path.join(tmp, "out.jsonl"), "rb") as f:
            events = sum(1 for _ in f)
        res = report(a.capture, records, events, a.runs, _summary(times))
    print("BENCH-RESULT " + json.dumps(res, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
