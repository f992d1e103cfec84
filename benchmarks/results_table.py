"""The one table `make bench` ends with (issue 18): every figure beside its baseline measured
in the same run, the ratio between them, the target and whether it is met.

Benchmarks feed it through their `BENCH-RESULT {json}` line: the object may carry a
"table" list of rows (the convention is in benchmarks/README.md, "The table"):

    {"figure": "2 live cost 1000/s: agent CPU", "value": 3.1, "unit": "s",
     "baseline": 3.4, "baseline_name": "auditd CPU", "target": "ratio <= 1"}

`target` is "<ratio|value> <op> <number>" (op one of <= < >= > ==), checked here; a
benchmark whose target is not such a comparison (e.g. "lag does not grow") writes it as
text and gives "met": true/false itself. Stdlib only: run.py imports it.
"""

from __future__ import annotations

import operator
import re
from typing import Dict, List, Optional

_OPS = {"<=": operator.le, "<": operator.lt, ">=": operator.ge, ">": operator.gt, "==": operator.eq}
_TARGET = re.compile(r"^\s*(ratio|value)\s*(<=|>=|==|<|>)\s*(-?[0-9.]+(?:e-?[0-9]+)?)\s*$")
COLUMNS = ("figure", "value", "baseline", "ratio", "target", "met?")


def _num(v: object) -> Optional[float]:
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        return None
    return float(v)


def check(row: Dict[str, object]) -> Dict[str, object]:
    """The row with `ratio` (value / baseline) and `met` (True, False, or None when it cannot
    be told) filled in; a `met` the benchmark gave itself is kept."""
    out = dict(row)
    value, base = _num(row.get("value")), _num(row.get("baseline"))
    ratio = value / base if value is not None and base else None
    out["ratio"] = round(ratio, 3) if ratio is not None else None
    if isinstance(row.get("met"), bool):
        return out
    m = _TARGET.match(str(row.get("target") or ""))
    if not m:
        out["met"] = None
        return out
    lhs = ratio if m.group(1) == "ratio" else value
    out["met"] = None if lhs is None else bool(_OPS[m.group(2)](lhs, float(m.group(3))))
    return out


def collect(recs: List[Dict[str, object]]) -> List[Dict[str, object]]:
    """Every benchmark's rows in run order, checked; a benchmark that failed or was skipped
    and promised rows contributes nothing (its status is in the summary above the table)."""
    rows: List[Dict[str, object]] = []
    for r in recs:
        res = r.get("results")
        table = res.get("table") if isinstance(res, dict) else None
        for row in table if isinstance(table, list) else []:
            if isinstance(row, dict) and row.get("figure"):
                rows.append({"bench": r.get("name"), **check(row)})
    return rows


def _fmt(v: object, unit: str = "") -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        s = f"{v:.1f}" if abs(v) >= 100 else f"{v:.3g}"
    else:
        s = str(v)
    return f"{s} {unit}".rstrip()


def render(rows: List[Dict[str, object]]) -> str:
    """A plain-text table, one line per figure; the baseline names follow it as a legend."""
    cells = []
    for r in rows:
        unit = str(r.get("unit") or "")
        base = _fmt(r.get("baseline"), unit)
        if r.get("baseline_name") and r.get("baseline") is not None:
            base += f" ({r['baseline_name']})"
        met = {True: "yes", False: "NO", None: "-"}[r.get("met")]
        cells.append((str(r["figure"]), _fmt(r.get("value"), unit), base,
                      _fmt(r.get("ratio")), str(r.get("target") or "-"), met))
    if not cells:
        return "(no benchmark reported table rows)\n"
    widths = [max(len(c[i]) for c in [COLUMNS, *cells]) for i in range(len(COLUMNS))]
    line = " | ".join("{:<%d}" % w for w in widths)
    out = [line.format(*COLUMNS).rstrip(), "-+-".join("-" * w for w in widths)]
    out += [line.format(*c).rstrip() for c in cells]
    notes = [f"  {r['figure']}: {r['note']}" for r in rows if r.get("note")]
    if notes:
        out += ["", "notes:", *notes]
    return "\n".join(out) + "\n"
