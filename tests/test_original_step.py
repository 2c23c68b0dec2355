"""benchmarks/original_step.py's pure parts: the round order, the summary, the workers' protocol.

The benchmark itself needs a checkout of the original ADER and is not run here.
"""

from __future__ import annotations

import io
import json

import pytest

from benchmarks.interleaved import format_table, round_schedule, summarize
from benchmarks.original_worker import PREFIX, serve


def test_rounds_alternate_which_implementation_runs_first():
    order = [name for pair in round_schedule(4) for name in pair]
    assert order == ["original", "ours", "ours", "original"] * 2
    assert round_schedule(0) == []


def test_summary_pairs_rates_by_round():
    summary = summarize([400.0, 500.0, 450.0], [2800.0, 2500.0, 3600.0])
    assert summary["original"] == {"median": 450.0, "min": 400.0, "max": 500.0,
                                   "rounds": [400.0, 500.0, 450.0]}
    assert summary["ours"]["median"] == 2800.0
    # Per-round ratios 7, 5, 8: their median, not the ratio of the medians (2800 / 450).
    assert summary["ratio"] == {"median": 7.0, "min": 5.0, "max": 8.0, "rounds": [7.0, 5.0, 8.0]}


def test_summary_needs_one_rate_per_round_from_each():
    with pytest.raises(ValueError):
        summarize([400.0], [2800.0, 2900.0])
    with pytest.raises(ValueError):
        summarize([], [])


def test_table_states_the_target():
    summary = summarize([400.0, 400.0], [2800.0, 2000.0])  # per-round ratios 7 and 5
    table = format_table("cycle1", 256, summary)
    assert "ratio ours/original" in table and "6.00" in table
    assert "target 6x: met" in table
    below = summarize([400.0, 400.0], [2000.0, 2200.0])
    assert "target 6x: NOT met" in format_table("cycle1", 256, below)
    assert "target" not in format_table("cycle2", 520, summary)


def test_worker_answers_each_command(monkeypatch):
    calls = []

    def setup(cycle):
        calls.append(("setup", cycle))
        return {"rows_per_step": 256 if cycle == 1 else 520}

    def run():
        calls.append(("run",))
        return {"seconds": 1.0, "rows": 256}

    out = io.StringIO()
    monkeypatch.setattr("sys.stdin", io.StringIO("run\ncycle2\nbogus\nquit\nrun\n"))
    monkeypatch.setattr("sys.stdout", out)
    serve(setup, run)
    answers = [json.loads(line[len(PREFIX):]) for line in out.getvalue().splitlines()]
    assert calls == [("setup", 1), ("run",), ("setup", 2)]  # nothing after quit
    assert answers[0] == {"ready": 1, "rows_per_step": 256}
    assert answers[1] == {"seconds": 1.0, "rows": 256}
    assert answers[2] == {"ready": 2, "rows_per_step": 520}
    assert "unknown command" in answers[3]["error"]
