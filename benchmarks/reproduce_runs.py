"""Launching and resuming reproduce.py's runs, their records, and reading what they left.

Each run is ``python main.py`` in its own process, so it resumes where it stopped when the
same command runs again. A finished process's small files (``RECORD_FILES``) are copied into
``options.records_dir`` (committed with RESULTS.md): on a machine without the run folders the
tables are rebuilt from the records, and finished runs are not run again. Several processes
may run one command (on one machine, or several sharing --results_dir): a run that another
process is running is passed over (main.py refuses it, exit status `RUN_IN_USE`), and the last
process to finish writes the whole table.
"""

from __future__ import annotations

import datetime
import glob
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import time

from ader_tf.errors import RUN_IN_USE
from ader_tf.io_utils import atomic_path, write_json_atomic
from ader_tf.report import read_metrics_csv
from ader_tf.tuned import tuned_values
from benchmarks.registry import (
    PAPER_MODEL,
    RUN_METHODS,
    applies,
    dataset_flags,
    is_tunable,
    method_flags,
    model_flags,
    shares_first_cycle,
)
from benchmarks.reproduce_options import REPO, ReproduceOptions

# What a record keeps of a run: its config, per-cycle metrics, means, process timings and
# the original's log format; a few kB, where the run folder holds checkpoints of many MB.
RECORD_FILES = ("config.json", "metrics.csv", "summary.json", "timing.json", "Training_logs.txt")

# Per-cycle metrics of one run: cycle -> metric name -> value (a fraction, not percent).
Run = dict[int, dict[str, float]]
# (cycles before, cycles after, timing.json entry) of one finished process of a run.
Span = tuple[int, int, dict]


# === Names and folders ===


def run_name(options: ReproduceOptions, method: str, seed: str,
             model: str = PAPER_MODEL) -> str:
    """``[<model>-]<method>[-e<epochs>][-tuned]-seed<seed>``: main.py's --save_dir for the
    run (``-tuned`` with ``--tuned``: its values differ from the paper's defaults)."""
    suffix = "" if options.paper_length else f"-e{options.num_epochs}"
    suffix += "-tuned" if options.tuned else ""
    prefix = "" if model == PAPER_MODEL else f"{model}-"  # SASRec keeps the published names
    return f"{prefix}{method}{suffix}-seed{seed}"


def run_dir(options: ReproduceOptions, method: str, seed: str, model: str = PAPER_MODEL) -> str:
    """The run's folder under --results_dir."""
    return os.path.join(options.results_dir,
                        f"{options.dataset}-{run_name(options, method, seed, model)}")


def record_dir(options: ReproduceOptions, method: str, seed: str,
               model: str = PAPER_MODEL) -> str:
    """The run's record under --records_dir."""
    return os.path.join(options.records_dir,
                        f"{options.dataset}-{run_name(options, method, seed, model)}")


def source_dir(options: ReproduceOptions, method: str, seed: str,
               model: str = PAPER_MODEL) -> str:
    """The folder a run's tables are read from: its --results_dir folder, unless its record
    holds more finished cycles (the run folder is gone, or a new attempt is still short)."""
    folder = run_dir(options, method, seed, model)
    record = record_dir(options, method, seed, model)
    return record if cycles_done(record) > cycles_done(folder) else folder


def keep_record(folder: str, record: str) -> None:
    """Copies the run's RECORD_FILES from ``folder`` into ``record``, each file atomically."""
    for name in RECORD_FILES:
        source = os.path.join(folder, name)
        if os.path.isfile(source):
            with atomic_path(os.path.join(record, name)) as tmp:
                shutil.copyfile(source, tmp)


# === Launching ===


def cycles_asked(options: ReproduceOptions) -> int:
    """--cycles, or with --cycles=0 every cycle the dataset's period files give (one fewer
    than the files: period 0 only trains); 0 when the period files are not here."""
    if options.cycles:
        return options.cycles
    periods = glob.glob(os.path.join(options.data_dir, options.dataset, "period_*.txt"))
    return max(len(periods) - 1, 0)


def command(options: ReproduceOptions, method: str, seed: str,
            model: str = PAPER_MODEL) -> list[str]:
    """The main.py command line of one run.

    With ``--tuned``, the dataset's paper settings that the file tunes for the method are
    left to it (given on the command line, they would win over it).
    """
    tuned = (tuned_values(options.tuned, options.dataset, RUN_METHODS[method][0])
             if options.tuned else {})
    dataset = [f for f in dataset_flags(options.dataset) if f[2:].split("=")[0] not in tuned]
    return [sys.executable, os.path.join(REPO, "main.py"), f"--dataset={options.dataset}",
            f"--save_dir={run_name(options, method, seed, model)}",
            f"--data_dir={options.data_dir}", f"--results_dir={options.results_dir}",
            f"--cycles={options.cycles}", f"--num_epochs={options.num_epochs}",
            f"--random_seed={seed}", "--noprogress", *model_flags(model),
            *dataset, *method_flags(method),
            *([f"--tuned={options.tuned}"] if options.tuned else []),
            *(["--warm_start=shared"] if options.share_first_cycle
              and shares_first_cycle(model, method) else []),
            *options.extra_flags]


def finished(options: ReproduceOptions, method: str, seed: str,
             model: str = PAPER_MODEL) -> bool:
    """Whether the run's summary (in its folder or its record) covers every cycle asked for."""
    path = os.path.join(source_dir(options, method, seed, model), "summary.json")
    asked = cycles_asked(options)
    if not os.path.isfile(path) or not asked:
        return False
    with open(path) as f:
        return json.load(f).get("cycles_completed", 0) >= asked


def run_one(options: ReproduceOptions, method: str, seed: str,
            model: str = PAPER_MODEL) -> bool:
    """Runs (or resumes) one method; records wall time and peak RSS of this process.

    Returns False, running nothing, if another process is running the run now.
    """
    folder = run_dir(options, method, seed, model)
    cmd = command(options, method, seed, model)
    if finished(options, method, seed, model):
        print(f"already complete: {folder}", flush=True)
        return True
    print("$", shlex.join(cmd), flush=True)
    started = time.time()
    os.makedirs(folder, exist_ok=True)
    cycles_before = cycles_done(folder)
    with open(os.path.join(folder, "stdout.txt"), "a") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, cwd=REPO)
        _, status, usage = os.wait4(proc.pid, 0)  # this child's own peak RSS
    code = os.waitstatus_to_exitcode(status)
    if code == RUN_IN_USE:
        print(f"running in another process: {folder}; passed over", flush=True)
        return False
    if code != 0:
        raise RuntimeError(f"{shlex.join(cmd)} failed (exit status {code}); see {out.name}")
    timing = {"wall_seconds": round(time.time() - started, 1),
              "peak_rss_gb": round(usage.ru_maxrss / 2**20, 2),
              # CPU time is what a shared machine's load does not inflate (wall time is).
              "cpu_seconds": round(usage.ru_utime + usage.ru_stime, 1),
              "cycles_before": cycles_before, "cycles_after": cycles_done(folder),
              "command": shlex.join(cmd), "finished": now()}
    write_json_atomic(os.path.join(folder, "timing.json"), read_timings(folder) + [timing])
    if options.records_dir:
        keep_record(folder, record_dir(options, method, seed, model))
    return True


def check_tuned(options: ReproduceOptions) -> None:
    """With --tuned, every method that has something to tune must have its values in the file.

    Raises:
        ValueError: naming the file and the methods (their runs would take the defaults under
            a ``-tuned`` name).
    """
    if not options.tuned:
        return
    untuned = [m for m in options.methods if is_tunable(m)
               and not tuned_values(options.tuned, options.dataset, RUN_METHODS[m][0])]
    if untuned:
        raise ValueError(
            f"{options.tuned}: no tuned values for {', '.join(untuned)}; tune them first "
            "(python -m ader_tf.tune --method=...) or leave them out of --methods")


def run_all(options: ReproduceOptions) -> list[tuple[str, str, str]]:
    """Runs (or resumes) every seed x backbone x method that main.py accepts, in that order;
    returns (method, seed, backbone) of the runs passed over because other processes were
    running them.

    Raises:
        ValueError: see `check_tuned`; nothing is run.
    """
    check_tuned(options)
    elsewhere = []
    for seed in options.seeds:
        for model in options.models:
            for method in options.methods:
                if applies(model, method) and not run_one(options, method, seed, model):
                    elsewhere.append((method, seed, model))
    return elsewhere


def now() -> str:
    """The current UTC time to the minute, as the records and sections give it."""
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")


# === Reading runs ===


def cycles_done(folder: str) -> int:
    """How many cycles the run in ``folder`` has finished (rows of its metrics.csv)."""
    path = os.path.join(folder, "metrics.csv")
    return len(read_metrics_csv(path)) if os.path.isfile(path) else 0


def completed(options: ReproduceOptions, method: str, seed: str, model: str = PAPER_MODEL) -> Run:
    """Per-cycle metrics of a run, limited to the first --cycles cycles when that is set."""
    path = os.path.join(source_dir(options, method, seed, model), "metrics.csv")
    rows = read_metrics_csv(path) if os.path.isfile(path) else {}
    return {c: r for c, r in rows.items() if not options.cycles or c <= options.cycles}


def seed_runs(options: ReproduceOptions, method: str) -> dict[str, Run]:
    """The SASRec runs of ``method`` under each --seeds that has finished cycles, by seed."""
    return {seed: run for seed in options.seeds if (run := completed(options, method, seed))}


def label(options: ReproduceOptions, method: str, seed: str) -> str:
    """A run's name in the tables: the method, and its seed where several are listed."""
    return method if len(options.seeds) == 1 else f"{method} seed {seed}"


def shared_cycles(runs: list[Run]) -> list[int]:
    """The cycles every one of ``runs`` finished."""
    return sorted(set.intersection(*(set(r) for r in runs)))


def read_timings(folder: str) -> list[dict]:
    """The entries of the run's timing.json (one per finished process), or none."""
    path = os.path.join(folder, "timing.json")
    if not os.path.isfile(path):
        return []
    with open(path) as f:
        return json.load(f)


def process_spans(folder: str, total_cycles: int) -> list[Span]:
    """(cycles before, cycles after, timing) for each finished process of a run.

    Entries written before the spans were recorded lack them: a run that never resumed
    (no "resuming after cycle" in its stdout.txt) ran in that one process; otherwise the
    last process started after the last resume the log shows and ran to the end, the run's
    ``total_cycles`` finished cycles (the caller has counted them already).
    """
    timing = read_timings(folder)
    if all("cycles_before" in t for t in timing):
        return [(t["cycles_before"], t["cycles_after"], t) for t in timing]
    if len(timing) != 1:
        return []  # several unlabelled processes: which cycles each ran is unknown
    log_path = os.path.join(folder, "stdout.txt")
    resumes = []
    if os.path.isfile(log_path):
        with open(log_path, errors="replace") as f:
            resumes = [int(m) for m in re.findall(r"resuming after cycle (\d+)", f.read())]
    return [(resumes[-1] if resumes else 0, total_cycles, timing[0])]


def whole_run_timing(spans: list[Span], total_cycles: int) -> tuple[float, float] | None:
    """(wall seconds, peak RSS GB) when the timed ``spans`` ran every cycle of the run.

    None where a process left no timing (killed, or a session ended): its wall clock is
    lost, and the sum of the timed processes would pass for the whole run.
    """
    expected = 0
    for before, after, _ in spans:
        if before != expected:
            return None
        expected = after
    if not spans or expected != total_cycles:
        return None
    return (sum(t["wall_seconds"] for _, _, t in spans),
            max(t["peak_rss_gb"] for _, _, t in spans))
