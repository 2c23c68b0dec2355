"""benchmarks/reproduce.py: a run's wall clock is reported only where every cycle was timed."""

from __future__ import annotations

import json

from benchmarks.reproduce_runs import cycles_done, process_spans, whole_run_timing

HEADER = "cycle,mrr20,recall20,mrr10,recall10\n"


def _run(folder, cycles: int, timings: list[dict], log: str = "") -> str:
    folder.mkdir()
    rows = "".join(f"{c},0.1,0.3,0.1,0.2\n" for c in range(1, cycles + 1))
    (folder / "metrics.csv").write_text(HEADER + rows)
    (folder / "timing.json").write_text(json.dumps(timings))
    (folder / "stdout.txt").write_text(log)
    return str(folder)


def _whole(folder: str):
    cycles = cycles_done(folder)
    return whole_run_timing(process_spans(folder, cycles), cycles)


def _timed(seconds: float, rss: float, **span) -> dict:
    return {"wall_seconds": seconds, "peak_rss_gb": rss, **span}


def test_processes_that_cover_every_cycle_add_up(tmp_path):
    folder = _run(tmp_path / "run", 4, [_timed(60, 1.5, cycles_before=0, cycles_after=2),
                                         _timed(90, 2.0, cycles_before=2, cycles_after=4)])
    assert _whole(folder) == (150, 2.0)


def test_a_process_that_left_no_timing_voids_the_wall_clock(tmp_path):
    # cycles 3-4 ran in a process that was killed: its time is unknown
    folder = _run(tmp_path / "run", 6, [_timed(60, 1.5, cycles_before=0, cycles_after=2),
                                         _timed(90, 2.0, cycles_before=4, cycles_after=6)])
    assert _whole(folder) is None


def test_an_unlabelled_entry_is_placed_by_the_log(tmp_path):
    one_process = _run(tmp_path / "a", 4, [_timed(100, 2.0)], log="cycle 1 ...\n")
    assert _whole(one_process) == (100, 2.0)
    resumed = _run(tmp_path / "b", 16, [_timed(3606, 2.37)],
                   log="resuming after cycle 8\n...\nresuming after cycle 10\n")
    assert [span[:2] for span in process_spans(resumed, 16)] == [(10, 16)]
    assert _whole(resumed) is None
