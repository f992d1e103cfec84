"""`make bench`'s one table (benchmarks/results_table.py): the convention the benchmarks of
issue 18 write their figures in; a wrong verdict here would print "yes" beside a missed target."""

from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))),
                                "benchmarks"))

import results_table  # noqa: E402


def test_ratio_target_is_checked_on_value_over_baseline():
    row = results_table.check({"figure": "cpu", "value": 3.0, "baseline": 2.0, "target": "ratio <= 1"})
    assert row["ratio"] == 1.5 and row["met"] is False
    row = results_table.check({"figure": "cpu", "value": 1.0, "baseline": 2.0, "target": "ratio <= 1"})
    assert row["ratio"] == 0.5 and row["met"] is True


def test_value_target_and_given_verdict():
    assert results_table.check({"figure": "rss", "value": 51, "target": "value <= 50"})["met"] is False
    assert results_table.check({"figure": "rss", "value": 50, "target": "value<=50"})["met"] is True
    # A target that is not a comparison keeps the benchmark's own verdict.
    assert results_table.check({"figure": "lag", "value": 0.2, "target": "lag does not grow",
                                "met": False})["met"] is False
    # Nothing to compare: neither yes nor no.
    assert results_table.check({"figure": "x", "value": None, "target": "value <= 1"})["met"] is None
    assert results_table.check({"figure": "x", "value": 2, "baseline": 0, "target": "ratio <= 1"})["met"] is None


def test_collect_and_render_keep_run_order_and_skip_bad_rows():
    recs = [
        {"name": "a", "results": {"table": [{"figure": "a1", "value": 1.0, "unit": "s", "baseline": 2.0,
                                             "baseline_name": "peer", "target": "ratio <= 1"}]}},
        {"name": "b", "status": "failed", "results": {}},
        {"name": "c", "results": {"table": [{"value": 3}, "junk", {"figure": "c1", "value": 60, "unit": "MB",
                                                                    "target": "value <= 50", "note": "why"}]}},
        {"name": "d", "results": {"table": "not a list"}},
    ]
    rows = results_table.collect(recs)
    assert [(r["bench"], r["figure"], r["met"]) for r in rows] == [("a", "a1", True), ("c", "c1", False)]
    text = results_table.render(rows)
    lines = text.splitlines()
    assert lines[0].split(" | ")[0].strip() == "figure"
    assert "2 s (peer)" in lines[2] and lines[2].rstrip().endswith("yes")
    assert lines[3].rstrip().endswith("NO") and "c1: why" in text
