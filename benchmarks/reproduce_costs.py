"""What a run cost and kept, as the tables report it: time, memory, files between cycles.

Read from the run's timing.json (one entry per finished process) where those processes ran
exactly the cycles a table reads, else from the per-cycle columns of its metrics.csv.
"""

from __future__ import annotations

import csv
import glob
import os
from typing import NamedTuple

import numpy as np

from benchmarks.registry import PAPER_MODEL, retrains_on_all_periods, uses_teacher
from benchmarks.reproduce_options import ReproduceOptions
from benchmarks.reproduce_runs import (
    completed,
    cycles_done,
    process_spans,
    run_dir,
    source_dir,
    whole_run_timing,
)


class CycleTiming(NamedTuple):
    """One cycle's row of a run's metrics.csv, as the timing tables read it."""

    epochs: int
    train: float
    selection: float
    test: float
    cpu: float | None  # None in cycles run before the column existed
    peak_rss_gb: float | None

    @property
    def phase_seconds(self) -> float:
        """Wall seconds of the cycle's phases: train + selection + test."""
        return self.train + self.selection + self.test


def cycle_timings(options: ReproduceOptions, method: str, seed: str,
                  model: str = PAPER_MODEL) -> dict[int, CycleTiming]:
    """Per cycle: its `CycleTiming` from a run's metrics.csv."""
    path = os.path.join(source_dir(options, method, seed, model), "metrics.csv")
    if not os.path.isfile(path):
        return {}
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))

    def optional(row: dict, key: str) -> float | None:
        return float(row[key]) if row.get(key) else None

    return {int(r["cycle"]): CycleTiming(
                int(r["epochs_run"]), float(r["train_seconds"]), float(r["selection_seconds"]),
                float(r["test_seconds"]), optional(r, "cpu_seconds"), optional(r, "peak_rss_gb"))
            for r in rows if not options.cycles or int(r["cycle"]) <= options.cycles}


def cycle_costs(options: ReproduceOptions, method: str, seed: str,
                model: str = PAPER_MODEL) -> tuple[float, float] | None:
    """(CPU seconds summed, largest peak RSS in GB) over the table's cycles of a run, from the
    per-cycle columns of its metrics.csv; None unless every one of those cycles has both
    (cycles run before the columns existed leave them empty)."""
    path = os.path.join(source_dir(options, method, seed, model), "metrics.csv")
    if not os.path.isfile(path):
        return None
    cycles = completed(options, method, seed, model)
    with open(path, newline="") as f:
        rows = [r for r in csv.DictReader(f) if int(r["cycle"]) in cycles]
    if not rows or not all(r.get("cpu_seconds") and r.get("peak_rss_gb") for r in rows):
        return None
    return (sum(float(r["cpu_seconds"]) for r in rows),
            max(float(r["peak_rss_gb"]) for r in rows))


def run_time(options: ReproduceOptions, method: str, seed: str,
             model: str = PAPER_MODEL) -> tuple[float, str, str]:
    """(minutes, how they were counted, peak RSS) of the cycles a table reads from a run.

    A run that ran exactly those cycles, every one in a timed process, has its wall clock
    and peak RSS (timing.json). Otherwise (unfinished, a process killed on the way, or a
    longer run read for its first cycles) the minutes are the sum of its cycles' phase
    times from metrics.csv, and the RSS is that of the timed processes, with their cycles.
    """
    folder = source_dir(options, method, seed, model)
    total_cycles = cycles_done(folder)
    spans = process_spans(folder, total_cycles)
    whole = whole_run_timing(spans, total_cycles)
    if whole and (not options.cycles or total_cycles <= options.cycles):
        return whole[0] / 60, "", f"{whole[1]:.2f} GB"
    cycles = cycle_timings(options, method, seed, model)
    minutes = sum(c.phase_seconds for c in cycles.values()) / 60
    if cycles and total_cycles > max(cycles):
        return minutes, "its cycles", "-"
    costs = cycle_costs(options, method, seed, model)
    if costs is not None:  # every cycle recorded its process's peak: their largest is the run's
        rss = f"{costs[1]:.2f} GB"
    else:
        rss = "; ".join(f"{t['peak_rss_gb']:.2f} GB (cycles {b + 1}-{a})"
                        for b, a, t in spans if a > b)
    how = ("sum of phases" if total_cycles >= (options.cycles or 0)
           else "unfinished; phases so far")
    return minutes, how, rss or "-"


def cpu_minutes(options: ReproduceOptions, method: str, seed: str) -> str:
    """CPU minutes of the run's timed processes (when they ran exactly the table's cycles),
    else the sum of its cycles' own CPU times (metrics.csv, in runs since it records them)."""
    folder = source_dir(options, method, seed)
    total = cycles_done(folder)
    spans = process_spans(folder, total)
    if (not options.cycles or total <= options.cycles) and whole_run_timing(spans, total) and all(
            "cpu_seconds" in t for _, _, t in spans):
        return f"{sum(t['cpu_seconds'] for _, _, t in spans) / 60:.1f} min"
    costs = cycle_costs(options, method, seed)
    return "-" if costs is None else f"sum of cycles {costs[0] / 60:.1f} min"


def ndcg20(options: ReproduceOptions, method: str, seed: str) -> str:
    """Mean NDCG@20 (percent) over the cycles a table reads, or "-" for runs without it."""
    path = os.path.join(source_dir(options, method, seed), "metrics.csv")
    cycles = completed(options, method, seed)
    with open(path, newline="") as f:
        values = [float(r["ndcg20"]) for r in csv.DictReader(f)
                  if int(r["cycle"]) in cycles and r.get("ndcg20")]
    return f"{100 * np.mean(values):.2f}" if values and len(values) == len(cycles) else "-"


def kept_between_cycles(options: ReproduceOptions, method: str, seed: str) -> str:
    """What a run keeps after its last cycle (in the table) for the next one, beyond the model
    and its optimizer state, which every method keeps: exemplars and the method's own files
    (importance, stored scores) on disk; the teacher, a frozen copy of the model's weights,
    is rebuilt from the model's checkpoint (its size: a third of the checkpoint, which also
    holds Adam's two moments); Joint keeps every past period."""
    folder = run_dir(options, method, seed)
    if source_dir(options, method, seed) != folder:
        return "- (read from its record: the run folder is not on this machine)"
    last = max(completed(options, method, seed))
    files = glob.glob(os.path.join(folder, "*", f"cycle_{last}.*"))
    files = [f for f in files if os.sep + "checkpoints" + os.sep not in f]
    parts = [f"{sum(os.path.getsize(f) for f in files) / 2**20:.1f} MB of files"]
    if uses_teacher(method):
        data = glob.glob(os.path.join(folder, "checkpoints", f"cycle_{last}", "*", "ckpt.data-*"))
        if data:
            parts.append(f"teacher {os.path.getsize(data[0]) / 3 / 2**20:.1f} MB")
    if retrains_on_all_periods(method):
        periods = [os.path.join(options.data_dir, options.dataset, f"period_{p}.txt")
                   for p in range(last)]
        size = sum(os.path.getsize(p) for p in periods if os.path.isfile(p))
        parts.append(f"all past periods ({size / 2**20:.1f} MB of period files)")
    return " + ".join(parts)
