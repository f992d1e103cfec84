"""A/B: `agentd replay` throughput of two revisions on the same capture, paired in one run.

    .venv/bin/python benchmarks/replay_ab.py [--a REV] [--b REV] [--runs 5] [--capture FILE]

Each revision is checked out into a temporary git worktree (``.`` means this working tree
as it is, uncommitted changes included) and run as a whole process,
``python -m agent.app.cli replay --audit-log CAPTURE -o OUT`` with this venv's Python and
the worktree first on sys.path. After one uncounted warm-up run each, the runs alternate
A B, B A, A B … so that a slow spell of the (shared, loaded) machine hits both sides alike.
For each side it prints, over ``--runs`` runs, the median wall time with the records/s it
means, the median CPU time (user+sys of the child) and the least CPU time (on a loaded
machine the steadiest figure); then B relative to A. The outputs of A and B must be
byte-identical unless
``--allow-different-output`` is given (a restructuring must not change what is written).

Exit status: 0 measured (and the outputs equal), 1 the outputs differ or a run failed.
Prints one ``BENCH-RESULT {json}`` line for benchmarks/run.py.
"""

from __future__ import annotations

import argparse
import filecmp
import json
import lzma
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

from bytecode import compile_tree  # benchmarks/ is this script's directory, first on sys.path

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
DEFAULT_CAPTURE = os.path.join(HERE, "data", "exec_storm.log.xz")


def _checkout(rev: str, tmp: str, label: str) -> str:
    if rev == ".":
        return REPO
    path = os.path.join(tmp, label)
    subprocess.run(["git", "-C", REPO, "worktree", "add", "--quiet", "--detach", path, rev], check=True)
    return path


def _remove(path: str) -> None:
    if path != REPO:
        subprocess.run(["git", "-C", REPO, "worktree", "remove", "--force", path], check=False)


def _one(tree: str, capture: str, out: str) -> tuple:
    """(wall seconds, child CPU seconds) of one whole replay process."""
    env = dict(os.environ, PYTHONPATH=tree)
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t = time.perf_counter()
    p = subprocess.run([sys.executable, "-m", "agent.app.cli", "replay", "--audit-log", capture, "-o", out],
                       cwd=tree, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    wall = time.perf_counter() - t
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if p.returncode != 0:
        raise RuntimeError(f"replay in {tree} exited {p.returncode}: {p.stderr.decode(errors='replace')[-2000:]}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu


def _records(capture: str) -> int:
    with open(capture, "rb") as f:
        return sum(1 for line in f if line.strip())


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--a", default="main", help="baseline revision (default main; '.' = this working tree)")
    ap.add_argument("--b", default=".", help="candidate revision (default '.', this working tree)")
    ap.add_argument("--runs", type=int, default=5, help="runs of each side (median reported)")
    ap.add_argument("--capture", default=DEFAULT_CAPTURE, help="audit log, .xz allowed")
    ap.add_argument("--allow-different-output", action="store_true")
    a = ap.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="replay_ab-") as tmp:
        capture = os.path.join(tmp, "audit.log")
        opener = lzma.open if a.capture.endswith(".xz") else open
        with opener(a.capture, "rb") as src, open(capture, "wb") as dst:
            shutil.copyfileobj(src, dst)
        records = _records(capture)
        trees = {}
        try:
            trees["A"] = _checkout(a.a, tmp, "A")
            trees["B"] = _checkout(a.b, tmp, "B")
            outs = {s: os.path.join(tmp, f"out-{s}.jsonl") for s in trees}
            for side in trees:  # warm-up, not counted: fills the page cache
                compile_tree(trees[side])  # as installed; PYTHONDONTWRITEBYTECODE would recompile each run
                _one(trees[side], capture, outs[side])
            times: dict = {"A": [], "B": []}
            for i in range(a.runs):
                for side in ("AB" if i % 2 == 0 else "BA"):
                    times[side].append(_one(trees[side], capture, outs[side]))
            same = filecmp.cmp(outs["A"], outs["B"], shallow=False)
        finally:
            for path in trees.values():
                _remove(path)
    res: dict = {"records": records, "runs": a.runs, "a": a.a, "b": a.b, "output_identical": same}
    print(f"capture {a.capture}: {records} records; {a.runs} runs each, paired (A B, B A, …)")
    for side, rev in (("A", a.a), ("B", a.b)):
        wall = statistics.median(w for w, _ in times[side])
        cpu = statistics.median(c for _, c in times[side])
        cpu_min = min(c for _, c in times[side])
        res[f"{side}_wall_s"], res[f"{side}_cpu_s"] = round(wall, 3), round(cpu, 3)
        res[f"{side}_cpu_min_s"] = round(cpu_min, 3)
        res[f"{side}_records_per_s"] = round(records / wall)
        walls = " ".join(f"{w:.2f}" for w, _ in times[side])
        cpus = " ".join(f"{c:.2f}" for _, c in times[side])
        print(f"{side} {rev:>12}: median wall {wall:.3f} s ({records / wall:,.0f} records/s), "
              f"median CPU {cpu:.3f} s (min {cpu_min:.3f})   [walls: {walls}] [CPU: {cpus}]")
    change = res["A_wall_s"] and (res["B_wall_s"] / res["A_wall_s"] - 1) * 100
    cpu_change = res["A_cpu_s"] and (res["B_cpu_s"] / res["A_cpu_s"] - 1) * 100
    min_change = res["A_cpu_min_s"] and (res["B_cpu_min_s"] / res["A_cpu_min_s"] - 1) * 100
    res["B_vs_A_wall_pct"], res["B_vs_A_cpu_pct"] = round(change, 1), round(cpu_change, 1)
    res["B_vs_A_cpu_min_pct"] = round(min_change, 1)
    print(f"B vs A: wall {change:+.1f} %, CPU {cpu_change:+.1f} % (min {min_change:+.1f} %) (negative = B faster); "
          f"outputs {'byte-identical' if same else 'DIFFERENT'}")
    print("BENCH-RESULT " + json.dumps(res, sort_keys=True))
    return 0 if same or a.allow_different_output else 1


if __name__ == "__main__":
    sys.exit(main())
