"""Runs methods over a dataset and writes the paper-style tables and plots into RESULTS.md.

    python benchmarks/reproduce.py --dataset=DIGINETICA --methods=ader,joint,dropout,ewc,finetune \
        --cycles=4 --data_dir=../shared/data --section=diginetica-4cycles

Each method runs as ``python main.py`` in its own process (so every run is resumable: run the
same command again after a crash and finished cycles are kept), timed with wall clock and peak
RSS. Then a section of RESULTS.md (between ``<!-- BEGIN name -->`` and ``<!-- END name -->``)
is rewritten with the table, the paper's numbers beside ours, the command, machine and date.
With ``--seeds=0,1,2`` and ``--reference_log=...`` it writes the per-cycle side-by-side table
with the original's logs instead; several seeds without a reference log give every seed its own
row and column and then their mean, over the cycles all of them finished.

Each finished process also copies the run's small files (config, per-cycle metrics, summary,
timings, log; ``RECORD_FILES``) into ``--records_dir`` (``benchmarks/records``, committed with
RESULTS.md). On a machine without the run folders the tables are rebuilt from those records
and finished runs are not run again; delete a run's record to run it afresh.
"""

from __future__ import annotations

import csv
import datetime
import glob
import json
import os
import platform
import re
import shlex
import shutil
import subprocess
import sys
import time
from typing import NamedTuple

import numpy as np
from absl import app, flags

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

from ader_tf.io_utils import atomic_path, write_json_atomic  # noqa: E402
from ader_tf.report import plot as report_plot  # noqa: E402
from ader_tf.report import read_metrics_csv, read_training_log  # noqa: E402

METHOD_FLAGS = {
    "ader": [], "joint": ["--joint"], "dropout": ["--dropout"], "ewc": ["--ewc"],
    "finetune": ["--finetune"], "er_herding": ["--disable_distillation"],
    "er_loss": ["--disable_distillation", "--selection=loss"],
    "er_random": ["--disable_distillation", "--selection=random"],
    "ader_equal": ["--equal_exemplar"], "ader_fix": ["--fix_lambda"],
    "er_reservoir": ["--disable_distillation", "--selection=reservoir"],
    "lwf": ["--method=lwf"], "agem": ["--method=agem"], "mas": ["--method=mas"],
    "derpp": ["--method=derpp"], "sacaisr": ["--method=sacaisr"],
}
# The paper's Table 2 (SASRec, mean over 16 cycles, percent).
PAPER = {
    "DIGINETICA": {"finetune": (47.28, 16.01), "dropout": (49.07, 16.86), "ewc": (47.66, 16.28),
                   "joint": (50.03, 17.31), "ader": (50.21, 17.32)},
    "YOOCHOOSE": {"finetune": (71.86, 36.49), "dropout": (72.20, 36.60), "ewc": (71.91, 36.53),
                  "joint": (72.22, 36.65), "ader": (72.38, 36.71)},
}
# The paper's per-cycle values (Recall@20, MRR@20 in percent, cycles 1-16), read off the original
# repository's results.svg (doublemul/ADER): its data lines' coordinates mapped through the axis
# ticks. Their 16-cycle means equal Table 2 to two decimals for all 20 method x metric pairs.
PAPER_PER_CYCLE = {
    "DIGINETICA": {
        "finetune": ([46.31, 47.95, 47.64, 48.36, 46.89, 48.01, 46.05, 46.14, 47.53, 47.62, 46.87,
                      45.24, 46.28, 46.88, 48.70, 50.09],
                     [16.50, 16.80, 16.45, 17.00, 16.00, 16.54, 15.92, 15.88, 16.33, 16.05, 15.46,
                      14.72, 14.90, 15.51, 15.79, 16.28]),
        "dropout": ([49.17, 50.01, 49.86, 49.26, 48.51, 49.81, 48.53, 47.86, 49.38, 49.03, 48.51,
                     46.60, 48.32, 49.04, 50.47, 50.68],
                    [17.63, 17.77, 17.27, 17.49, 17.07, 17.41, 17.01, 16.64, 16.85, 16.65, 16.49,
                     15.32, 15.93, 16.73, 16.83, 16.73]),
        "ewc": ([46.18, 47.48, 47.87, 48.37, 46.96, 48.29, 47.14, 46.45, 48.18, 47.60, 46.95, 45.92,
                 47.18, 47.55, 49.78, 50.66],
                [16.39, 16.74, 16.38, 17.17, 16.29, 16.78, 16.26, 15.95, 16.50, 16.23, 16.06, 15.01,
                 15.69, 15.98, 16.49, 16.62]),
        "joint": ([49.21, 50.43, 51.19, 51.21, 50.18, 50.33, 49.76, 49.28, 50.21, 49.99, 49.95,
                   47.93, 48.87, 49.30, 50.93, 51.75],
                  [17.66, 17.92, 17.76, 18.13, 17.65, 17.74, 17.36, 17.10, 17.24, 17.06, 17.07,
                   16.04, 16.50, 16.96, 17.20, 17.53]),
        "ader": ([49.45, 50.80, 51.23, 51.19, 49.85, 51.29, 49.86, 48.99, 50.23, 50.36, 49.39,
                  48.06, 49.28, 49.96, 51.76, 51.71],
                 [17.71, 18.18, 17.72, 18.39, 17.52, 17.85, 17.49, 17.04, 17.27, 17.11, 16.80,
                  15.96, 16.37, 17.31, 17.21, 17.26]),
    },
    "YOOCHOOSE": {
        "finetune": ([69.34, 69.09, 69.15, 69.78, 69.17, 72.11, 71.58, 72.72, 73.50, 73.61, 74.88,
                      71.66, 73.12, 73.56, 74.10, 72.37],
                     [36.54, 35.00, 34.84, 35.72, 35.48, 37.18, 36.41, 36.79, 37.10, 37.22, 38.29,
                      35.99, 35.90, 36.64, 38.26, 36.51]),
        "dropout": ([70.17, 69.82, 69.89, 70.49, 69.62, 72.25, 71.91, 73.04, 73.58, 73.77, 75.08,
                     71.87, 73.38, 73.73, 74.11, 72.56],
                    [37.20, 35.48, 35.33, 36.02, 35.75, 37.21, 36.46, 36.86, 36.89, 37.10, 38.15,
                     35.95, 35.96, 36.73, 38.07, 36.47]),
        "ewc": ([69.33, 69.05, 69.45, 69.82, 69.15, 72.20, 71.70, 72.81, 73.44, 73.65, 74.71, 71.73,
                 73.18, 73.62, 74.21, 72.48],
                [36.52, 34.96, 35.14, 35.86, 35.56, 37.16, 36.53, 36.92, 37.11, 37.11, 38.05, 36.08,
                 36.05, 36.73, 38.28, 36.47]),
        "joint": ([70.12, 70.09, 70.13, 70.89, 69.38, 72.52, 72.33, 73.30, 73.74, 73.89, 74.97,
                   71.30, 72.70, 73.68, 74.02, 72.39],
                  [37.12, 35.52, 35.56, 36.21, 35.61, 37.30, 36.61, 37.10, 37.20, 37.17, 38.09,
                   35.74, 35.87, 36.67, 38.18, 36.45]),
        "ader": ([70.17, 70.05, 70.05, 70.71, 69.79, 72.49, 72.13, 73.23, 73.94, 73.90, 75.17,
                  72.30, 73.45, 73.88, 74.23, 72.67],
                 [37.20, 35.59, 35.35, 36.16, 35.77, 37.21, 36.49, 37.08, 37.31, 37.20, 38.30,
                  36.09, 36.08, 36.78, 38.21, 36.50]),
    },
}
PAPER_ABLATION_R20 = {"er_random": 49.14, "er_loss": 49.31, "er_herding": 49.34,
                      "ader_equal": 49.92, "ader_fix": 50.09}
# The paper's YOOCHOOSE setting (the original README's command line).
DATASET_FLAGS = {"YOOCHOOSE": ["--lambda_=1.0", "--batch_size=512"], "DIGINETICA": [],
                 "sample": []}

FLAGS = flags.FLAGS
flags.DEFINE_string("dataset", "DIGINETICA", "DIGINETICA, YOOCHOOSE or sample.")
flags.DEFINE_list("methods", ["ader"], f"Methods among {sorted(METHOD_FLAGS)}.")
flags.DEFINE_list("models", ["sasrec"], "Backbones (main.py --model); several give a "
                  "backbone x method table.")
flags.DEFINE_integer("cycles", 0, "First N cycles only (0 = all 16).")
flags.DEFINE_integer("num_epochs", 100, "Maximum epochs per cycle.")
flags.DEFINE_list("seeds", ["0"], "Random seeds; several give mean and spread.")
flags.DEFINE_string("data_dir", "data", "Folder with <DATASET>/period_*.txt.")
flags.DEFINE_string("results_dir", "results/reproduce", "Where the runs go.")
flags.DEFINE_string("results_md", os.path.join(REPO, "RESULTS.md"), "File to update.")
flags.DEFINE_string("section", None, "Name of the RESULTS.md section to (re)write.")
flags.DEFINE_multi_string("reference_log", [], "Original Training_logs.txt for side by side.")
flags.DEFINE_list("extra_flags", [], "More flags for main.py (e.g. --hidden_units=64).")
flags.DEFINE_boolean("run", True, "Run missing cycles (false: only rebuild the tables).")
flags.DEFINE_string("records_dir", os.path.join(REPO, "benchmarks", "records"),
                    "Where each finished run process's small open-format outputs are copied "
                    "(committed with RESULTS.md): tables are rebuilt from them, and finished "
                    "runs are not run again, on a machine that lacks --results_dir.")


# The session-kNN models are not trained: a method maps to the memory they keep
# (main.py rejects the others). Their epochs flag is irrelevant.
KNN_METHOD_FLAGS = {"finetune": ["--finetune"], "joint": ["--joint"],
                    "er_random": ["--disable_distillation", "--selection=random"]}
KNN_MODELS = ("sknn", "vsknn")
# Each backbone's learning rate: the protocol's 5e-4 is SASRec's. GRU4Rec and STAMP start from
# small embeddings without SASRec's sqrt(d) scaling and layer norm, and barely move at it
# (DIGINETICA cycle 1, GRU4Rec under ADER: validation Recall@20 0.020 after 3 epochs, 0.029 after
# 6), so they use the STAMP paper's 5e-3 (3 epochs without dropout: GRU4Rec 0.317, STAMP 0.341).
MODEL_FLAGS = {"sasrec": [], "gru4rec": ["--lr=0.005"], "stamp": ["--lr=0.005"],
               "stmp": ["--lr=0.005"], "sknn": [], "vsknn": []}


def applies(model: str, method: str) -> bool:
    """Whether main.py accepts this backbone with this method."""
    return model not in KNN_MODELS or method in KNN_METHOD_FLAGS


def run_name(method: str, seed: str, model: str = "sasrec") -> str:
    suffix = f"-e{FLAGS.num_epochs}" if FLAGS.num_epochs != 100 else ""
    prefix = "" if model == "sasrec" else f"{model}-"  # SASRec keeps the published names
    return f"{prefix}{method}{suffix}-seed{seed}"


def run_dir(method: str, seed: str, model: str = "sasrec") -> str:
    return os.path.join(FLAGS.results_dir, f"{FLAGS.dataset}-{run_name(method, seed, model)}")


def record_dir(method: str, seed: str, model: str = "sasrec") -> str:
    return os.path.join(FLAGS.records_dir, f"{FLAGS.dataset}-{run_name(method, seed, model)}")


def source_dir(method: str, seed: str, model: str = "sasrec") -> str:
    """The folder a run's tables are read from: its --results_dir folder, unless its record
    holds more finished cycles (the run folder is gone, or a new attempt is still short)."""
    folder, record = run_dir(method, seed, model), record_dir(method, seed, model)
    return record if cycles_done(record) > cycles_done(folder) else folder


# What a record keeps of a run: its config, per-cycle metrics, means, process timings and
# the original's log format; a few kB, where the run folder holds checkpoints of many MB.
RECORD_FILES = ("config.json", "metrics.csv", "summary.json", "timing.json", "Training_logs.txt")


def keep_record(folder: str, record: str) -> None:
    """Copies the run's RECORD_FILES from ``folder`` into ``record``, each file atomically."""
    for name in RECORD_FILES:
        source = os.path.join(folder, name)
        if os.path.isfile(source):
            with atomic_path(os.path.join(record, name)) as tmp:
                shutil.copyfile(source, tmp)


def cycles_asked() -> int:
    """--cycles, or with --cycles=0 every cycle the dataset's period files give (one fewer
    than the files: period 0 only trains); 0 when the period files are not here."""
    if FLAGS.cycles:
        return FLAGS.cycles
    periods = glob.glob(os.path.join(FLAGS.data_dir, FLAGS.dataset, "period_*.txt"))
    return max(len(periods) - 1, 0)


def command(method: str, seed: str, model: str = "sasrec") -> list[str]:
    method_flags = (KNN_METHOD_FLAGS if model in KNN_MODELS else METHOD_FLAGS)[method]
    model_flags = ([] if model == "sasrec" else [f"--model={model}"]) + MODEL_FLAGS[model]
    return [sys.executable, os.path.join(REPO, "main.py"), f"--dataset={FLAGS.dataset}",
            f"--save_dir={run_name(method, seed, model)}", f"--data_dir={FLAGS.data_dir}",
            f"--results_dir={FLAGS.results_dir}", f"--cycles={FLAGS.cycles}",
            f"--num_epochs={FLAGS.num_epochs}", f"--random_seed={seed}", "--noprogress",
            *model_flags, *DATASET_FLAGS[FLAGS.dataset], *method_flags, *FLAGS.extra_flags]


def finished(method: str, seed: str, model: str = "sasrec") -> bool:
    """Whether the run's summary (in its folder or its record) covers every cycle asked for."""
    path = os.path.join(source_dir(method, seed, model), "summary.json")
    asked = cycles_asked()
    if not os.path.isfile(path) or not asked:
        return False
    with open(path) as f:
        return json.load(f).get("cycles_completed", 0) >= asked


def run_one(method: str, seed: str, model: str = "sasrec") -> None:
    """Runs (or resumes) one method; records wall time and peak RSS of this process."""
    folder = run_dir(method, seed, model)
    cmd = command(method, seed, model)
    if finished(method, seed, model):
        print(f"already complete: {folder}", flush=True)
        return
    print("$", shlex.join(cmd), flush=True)
    started = time.time()
    os.makedirs(folder, exist_ok=True)
    cycles_before = cycles_done(folder)
    with open(os.path.join(folder, "stdout.txt"), "a") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, cwd=REPO)
        _, status, usage = os.wait4(proc.pid, 0)  # this child's own peak RSS
    if status != 0:
        raise RuntimeError(f"{shlex.join(cmd)} failed (status {status}); see {out.name}")
    timing = {"wall_seconds": round(time.time() - started, 1),
              "peak_rss_gb": round(usage.ru_maxrss / 2**20, 2),
              # CPU time is what a shared machine's load does not inflate (wall time is).
              "cpu_seconds": round(usage.ru_utime + usage.ru_stime, 1),
              "cycles_before": cycles_before, "cycles_after": cycles_done(folder),
              "command": shlex.join(cmd), "finished": now()}
    write_json_atomic(os.path.join(folder, "timing.json"), _read_timings(folder) + [timing])
    if FLAGS.records_dir:
        keep_record(folder, record_dir(method, seed, model))


def cycles_done(folder: str) -> int:
    """How many cycles the run in ``folder`` has finished (rows of its metrics.csv)."""
    path = os.path.join(folder, "metrics.csv")
    return len(read_metrics_csv(path)) if os.path.isfile(path) else 0


def process_spans(folder: str, total_cycles: int) -> list[tuple[int, int, dict]]:
    """(cycles before, cycles after, timing) for each finished process of a run.

    Entries written before the spans were recorded lack them: a run that never resumed
    (no "resuming after cycle" in its stdout.txt) ran in that one process; otherwise the
    last process started after the last resume the log shows and ran to the end, the run's
    ``total_cycles`` finished cycles (the caller has counted them already).
    """
    timing = _read_timings(folder)
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


def whole_run_timing(spans: list[tuple[int, int, dict]],
                     total_cycles: int) -> tuple[float, float] | None:
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


def _read_timings(folder: str) -> list[dict]:
    path = os.path.join(folder, "timing.json")
    if not os.path.isfile(path):
        return []
    with open(path) as f:
        return json.load(f)


def now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")


def machine() -> str:
    cores = os.cpu_count()
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return f"{platform.machine()} Linux, {cores} CPU cores, {mem:.0f} GiB RAM, {gpu_name()}"


def gpu_name() -> str:
    """The GPU(s) nvidia-smi reports, or "no GPU"."""
    try:
        out = subprocess.run(["nvidia-smi", "--query-gpu=name", "--format=csv,noheader"],
                             capture_output=True, text=True, timeout=30, check=True).stdout
    except (OSError, subprocess.SubprocessError):
        return "no GPU"
    names = [line.strip() for line in out.splitlines() if line.strip()]
    return ", ".join(names) if names else "no GPU"


def completed(method: str, seed: str, model: str = "sasrec") -> dict[int, dict[str, float]]:
    """Per-cycle metrics of a run, limited to the first --cycles cycles when that is set."""
    path = os.path.join(source_dir(method, seed, model), "metrics.csv")
    rows = read_metrics_csv(path) if os.path.isfile(path) else {}
    return {c: r for c, r in rows.items() if not FLAGS.cycles or c <= FLAGS.cycles}


def backbone_table() -> str:
    """Backbones as rows, methods as columns: mean Recall@20 / MRR@20 over the cycles run."""
    seed = FLAGS.seeds[0]
    lines = ["| backbone | " + " | ".join(FLAGS.methods) + " | wall time (all methods) |",
             "|---" * (len(FLAGS.methods) + 2) + "|"]
    for model in FLAGS.models:
        cells, wall = [], 0.0
        for method in FLAGS.methods:
            run = completed(method, seed, model) if applies(model, method) else None
            if run is None:
                cells.append("n/a")
                continue
            if not run:
                cells.append("not run")
                continue
            r20 = 100 * float(np.mean([run[c]["recall20"] for c in run]))
            mrr = 100 * float(np.mean([run[c]["mrr20"] for c in run]))
            cells.append(f"{r20:.2f} / {mrr:.2f} ({min(run)}-{max(run)})")
            wall += run_time(method, seed, model)[0]
        lines.append(f"| {model} | " + " | ".join(cells) + f" | {wall:.1f} min |")
    lines += ["", "Cells: mean Recall@20 / MRR@20 (percent) over the cycles in brackets. "
              "n/a: the method does not apply to the backbone (session-kNN is not trained: "
              "finetune = remembers the last period, joint = all past periods, er_random = the "
              "exemplars' sessions plus the last period)."]
    return "\n".join(lines)


def seed_runs(method: str) -> dict[str, dict[int, dict[str, float]]]:
    """The SASRec runs of ``method`` under each --seeds that has finished cycles, by seed."""
    return {seed: run for seed in FLAGS.seeds if (run := completed(method, seed))}


def label(method: str, seed: str) -> str:
    """A run's name in the tables: the method, and its seed where several are listed."""
    return method if len(FLAGS.seeds) == 1 else f"{method} seed {seed}"


def shared_cycles(runs: list[dict[int, dict[str, float]]]) -> list[int]:
    """The cycles every one of ``runs`` finished."""
    return sorted(set.intersection(*(set(r) for r in runs)))


def seed_mean(runs: list[dict[int, dict[str, float]]], cycles: list[int]) -> dict[str, float]:
    """Each metric in percent: its mean over ``cycles`` in each run, then over the runs."""
    return {k: 100 * float(np.mean([np.mean([r[c][k] for c in cycles]) for r in runs]))
            for k in ("recall20", "mrr20", "recall10", "mrr10")}


def main_table() -> str:
    """Methods (and seeds) as rows, paper beside ours, means over the cycles run.

    With several seeds, a method's seeds each get a row, then one with their mean over the
    cycles that all of them finished.
    """
    paper = PAPER.get(FLAGS.dataset, {})
    lines = ["| method | cycles | Recall@20 | MRR@20 | Recall@10 | MRR@10 | paper Recall@20 "
             "(16 cycles) | paper MRR@20 | wall time | peak RSS |", "|---" * 10 + "|"]
    for method in FLAGS.methods:
        runs = seed_runs(method)
        p_r20, p_mrr = paper.get(method, (PAPER_ABLATION_R20.get(method), None))
        for seed, run in runs.items():
            mean = seed_mean([run], list(run))
            minutes, how, rss = run_time(method, seed)
            wall = f"{how} {minutes:.1f} min".lstrip()
            lines.append(
                f"| {label(method, seed)} | {min(run)}-{max(run)} | {mean['recall20']:.2f} "
                f"| {mean['mrr20']:.2f} | {mean['recall10']:.2f} | {mean['mrr10']:.2f} "
                f"| {_fmt(p_r20)} | {_fmt(p_mrr)} | {wall} | {rss} |"
            )
        if len(runs) > 1:
            common = shared_cycles(list(runs.values()))
            mean = seed_mean(list(runs.values()), common)
            lines.append(
                f"| {method} mean of seeds {','.join(runs)} | {min(common)}-{max(common)} "
                f"| {mean['recall20']:.2f} | {mean['mrr20']:.2f} | {mean['recall10']:.2f} "
                f"| {mean['mrr10']:.2f} | {_fmt(p_r20)} | {_fmt(p_mrr)} | - | - |"
            )
    return "\n".join(lines)


# Methods that train with a frozen copy of the previous cycle's model beside the student.
TEACHER_METHODS = {"ader", "ader_equal", "ader_fix", "lwf", "sacaisr"}


def ndcg20(method: str, seed: str) -> str:
    """Mean NDCG@20 (percent) over the cycles a table reads, or "-" for runs without it."""
    path = os.path.join(source_dir(method, seed), "metrics.csv")
    cycles = completed(method, seed)
    with open(path, newline="") as f:
        values = [float(r["ndcg20"]) for r in csv.DictReader(f)
                  if int(r["cycle"]) in cycles and r.get("ndcg20")]
    return f"{100 * np.mean(values):.2f}" if values and len(values) == len(cycles) else "-"


def cpu_minutes(method: str, seed: str) -> str:
    """CPU minutes of the run's timed processes (when they ran exactly the table's cycles),
    else the sum of its cycles' own CPU times (metrics.csv, in runs since it records them)."""
    folder = source_dir(method, seed)
    total = cycles_done(folder)
    spans = process_spans(folder, total)
    if (not FLAGS.cycles or total <= FLAGS.cycles) and whole_run_timing(spans, total) and all(
            "cpu_seconds" in t for _, _, t in spans):
        return f"{sum(t['cpu_seconds'] for _, _, t in spans) / 60:.1f} min"
    costs = cycle_costs(method, seed)
    return "-" if costs is None else f"sum of cycles {costs[0] / 60:.1f} min"


def cycle_costs(method: str, seed: str, model: str = "sasrec") -> tuple[float, float] | None:
    """(CPU seconds summed, largest peak RSS in GB) over the table's cycles of a run, from the
    per-cycle columns of its metrics.csv; None unless every one of those cycles has both
    (cycles run before the columns existed leave them empty)."""
    path = os.path.join(source_dir(method, seed, model), "metrics.csv")
    if not os.path.isfile(path):
        return None
    cycles = completed(method, seed, model)
    with open(path, newline="") as f:
        rows = [r for r in csv.DictReader(f) if int(r["cycle"]) in cycles]
    if not rows or not all(r.get("cpu_seconds") and r.get("peak_rss_gb") for r in rows):
        return None
    return (sum(float(r["cpu_seconds"]) for r in rows),
            max(float(r["peak_rss_gb"]) for r in rows))


def kept_between_cycles(method: str, seed: str) -> str:
    """What a run keeps after its last cycle (in the table) for the next one, beyond the model
    and its optimizer state, which every method keeps: exemplars and the method's own files
    (importance, stored scores) on disk; the teacher, a frozen copy of the model's weights,
    is rebuilt from the model's checkpoint (its size: a third of the checkpoint, which also
    holds Adam's two moments); Joint keeps every past period."""
    folder = run_dir(method, seed)
    if source_dir(method, seed) != folder:
        return "- (read from its record: the run folder is not on this machine)"
    last = max(completed(method, seed))
    files = glob.glob(os.path.join(folder, "*", f"cycle_{last}.*"))
    files = [f for f in files if os.sep + "checkpoints" + os.sep not in f]
    parts = [f"{sum(os.path.getsize(f) for f in files) / 2**20:.1f} MB of files"]
    if method in TEACHER_METHODS:
        data = glob.glob(os.path.join(folder, "checkpoints", f"cycle_{last}", "*", "ckpt.data-*"))
        if data:
            parts.append(f"teacher {os.path.getsize(data[0]) / 3 / 2**20:.1f} MB")
    if method == "joint":
        periods = [os.path.join(FLAGS.data_dir, FLAGS.dataset, f"period_{p}.txt")
                   for p in range(last)]
        size = sum(os.path.getsize(p) for p in periods if os.path.isfile(p))
        parts.append(f"all past periods ({size / 2**20:.1f} MB of period files)")
    return " + ".join(parts)


def cost_table() -> str:
    """Per method: NDCG@20, CPU and wall time, peak RSS and what it keeps between cycles."""
    lines = ["| method | cycles | NDCG@20 | CPU time | wall time | peak RSS | kept for the next "
             "cycle |", "|---" * 7 + "|"]
    for method in FLAGS.methods:
        for seed, run in seed_runs(method).items():
            minutes, how, rss = run_time(method, seed)
            lines.append(
                f"| {label(method, seed)} | {min(run)}-{max(run)} | {ndcg20(method, seed)} "
                f"| {cpu_minutes(method, seed)} | {how} {minutes:.1f} min | {rss} "
                f"| {kept_between_cycles(method, seed)} |".replace("|  ", "| ")
            )
    lines += ["", "CPU time is user + system time of the run's processes: on a shared machine "
              "it moves less than wall time, which other jobs stretch. Kept for the next cycle: "
              "beyond the model and its optimizer state (every method keeps those)."]
    return "\n".join(lines)


def run_time(method: str, seed: str, model: str = "sasrec") -> tuple[float, str, str]:
    """(minutes, how they were counted, peak RSS) of the cycles a table reads from a run.

    A run that ran exactly those cycles, every one in a timed process, has its wall clock
    and peak RSS (timing.json). Otherwise (unfinished, a process killed on the way, or a
    longer run read for its first cycles) the minutes are the sum of its cycles' phase
    times from metrics.csv, and the RSS is that of the timed processes, with their cycles.
    """
    folder = source_dir(method, seed, model)
    total_cycles = cycles_done(folder)
    spans = process_spans(folder, total_cycles)
    whole = whole_run_timing(spans, total_cycles)
    if whole and (not FLAGS.cycles or total_cycles <= FLAGS.cycles):
        return whole[0] / 60, "", f"{whole[1]:.2f} GB"
    cycles = cycle_timings(method, seed, model)
    minutes = sum(c.phase_seconds for c in cycles.values()) / 60
    if cycles and total_cycles > max(cycles):
        return minutes, "its cycles", "-"
    costs = cycle_costs(method, seed, model)
    if costs is not None:  # every cycle recorded its process's peak: their largest is the run's
        rss = f"{costs[1]:.2f} GB"
    else:
        rss = "; ".join(f"{t['peak_rss_gb']:.2f} GB (cycles {b + 1}-{a})"
                        for b, a, t in spans if a > b)
    how = "sum of phases" if total_cycles >= (FLAGS.cycles or 0) else "unfinished; phases so far"
    return minutes, how, rss or "-"


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


def cycle_timings(method: str, seed: str, model: str = "sasrec") -> dict[int, CycleTiming]:
    """Per cycle: its `CycleTiming` from a run's metrics.csv."""
    path = os.path.join(source_dir(method, seed, model), "metrics.csv")
    if not os.path.isfile(path):
        return {}
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))

    def optional(row: dict, key: str) -> float | None:
        return float(row[key]) if row.get(key) else None

    return {int(r["cycle"]): CycleTiming(
                int(r["epochs_run"]), float(r["train_seconds"]), float(r["selection_seconds"]),
                float(r["test_seconds"]), optional(r, "cpu_seconds"), optional(r, "peak_rss_gb"))
            for r in rows if not FLAGS.cycles or int(r["cycle"]) <= FLAGS.cycles}


def cycle_timing_table() -> str:
    """Per cycle of the first method (each seed): epochs run, the seconds of each phase and,
    where the run recorded them, the cycle's CPU seconds and its process's peak RSS.

    A run paused or sharing the machine stretches its phases' wall seconds; its CPU seconds
    (user + system) stretch far less, so they are the figure to compare between cycles.
    """
    tables = []
    for seed in FLAGS.seeds:
        timings = cycle_timings(FLAGS.methods[0], seed)
        if not timings:
            continue
        lines = ["| cycle | epochs run | train (s) | s per epoch | selection (s) | test (s) "
                 "| CPU (s) | peak RSS (GB) |", "|---" * 8 + "|"]
        if len(FLAGS.seeds) > 1:
            lines.insert(0, f"Seed {seed}:\n")
        for cycle, t in sorted(timings.items()):
            lines.append(f"| {cycle} | {t.epochs} | {t.train:.0f} "
                         f"| {t.train / max(t.epochs, 1):.1f} | {t.selection:.1f} | {t.test:.1f} "
                         f"| {_fmt(t.cpu, '.0f')} | {_fmt(t.peak_rss_gb, '.2f')} |")
        costs = cycle_costs(FLAGS.methods[0], seed)
        if costs is not None:
            lines += ["", f"CPU time of these cycles: {costs[0] / 60:.1f} min; the largest "
                      f"peak RSS: {costs[1]:.2f} GB."]
        tables.append("\n".join(lines))
    return "\n\n".join(tables)


def _fmt(value: float | None, spec: str = ".2f") -> str:
    return "-" if value is None else format(value, spec)


def per_cycle_table() -> str:
    """Per-cycle Recall@20 / MRR@20 of every method, the paper's beside each.

    With several seeds, each seed has a column, then their mean (over the cycles all of them
    finished), then the paper.
    """
    paper = PAPER_PER_CYCLE.get(FLAGS.dataset, {})
    # (header, the runs it averages, the cycles all of them finished, whose paper values or None)
    columns: list[tuple[str, list[dict], list[int], str | None]] = []
    for method in FLAGS.methods:
        runs = seed_runs(method)
        if not runs:
            continue
        common = shared_cycles(list(runs.values()))
        columns += [(f"{label(method, seed)} R@20 / MRR@20", [run], sorted(run), None)
                    for seed, run in runs.items()]
        if len(runs) > 1:
            columns.append((f"{method} mean of seeds {','.join(runs)}", list(runs.values()),
                            common, None))
        if method in paper:
            columns.append((f"paper {method}", list(runs.values()), common, method))
    cycles = sorted({c for _, _, shared, _ in columns for c in shared})
    lines = ["| cycle | " + " | ".join(column[0] for column in columns) + " |",
             "|---" * (1 + len(columns)) + "|"]
    for c in cycles + ["mean"]:
        cells = []
        for _, runs, common, paper_of in columns:
            shown = common if c == "mean" else [c] if c in common else []
            if paper_of is not None:
                ks = [k for k in shown if 1 <= k <= 16]
                values = paper[paper_of]
                cells.append(f"{np.mean([values[0][k - 1] for k in ks]):.2f} / "
                             f"{np.mean([values[1][k - 1] for k in ks]):.2f}" if ks else "-")
                continue
            mean = seed_mean(runs, shown) if shown else None
            cells.append(f"{mean['recall20']:.2f} / {mean['mrr20']:.2f}" if mean else "-")
        if c == "mean":  # a column over fewer cycles than the row's says which
            for i, (_, _, common, _) in enumerate(columns):
                if common and common != cycles:
                    cells[i] += f" (cycles {min(common)}-{max(common)})"
        name = f"mean of cycles {min(cycles)}-{max(cycles)}" if c == "mean" else c
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _cycle_span(cycles: list[int]) -> str:
    """"1-7" for consecutive cycles, else "1, 3, 4"."""
    if cycles == list(range(cycles[0], cycles[-1] + 1)):
        return f"{cycles[0]}-{cycles[-1]}"
    return ", ".join(map(str, cycles))


def side_by_side_table() -> str:
    """Per cycle: each original log beside the mean and spread of ours over seeds, and the
    paper's value where the runs are the paper's length.

    An original log may stop early (a run cut short): the mean row then gives its mean over
    its own cycles (saying which), and a second mean row compares every column over the
    cycles all of them have.
    """
    method = FLAGS.methods[0]
    ours = [completed(method, s) for s in FLAGS.seeds]
    ours = [r for r in ours if r]
    if not ours:
        raise app.UsageError(
            f"no finished cycle of {method} for seeds {','.join(FLAGS.seeds)} in "
            f"{FLAGS.results_dir} or {FLAGS.records_dir}: run them first (without --norun)")
    refs = {os.path.basename(os.path.dirname(os.path.abspath(p))): read_training_log(p)
            for p in FLAGS.reference_log}
    cycles = shared_cycles(ours)
    full_length = FLAGS.num_epochs == FLAGS["num_epochs"].default
    paper = PAPER_PER_CYCLE.get(FLAGS.dataset, {}).get(method) if full_length else None
    metrics = (("recall20", "Recall@20", 0), ("mrr20", "MRR@20", 1))
    lines = ["| cycle | metric | " + " | ".join(f"original {n}" for n in refs)
             + f" | ours mean over {len(ours)} seeds | ours min-max | ours std"
             + (f" | paper {method}" if paper else "") + " |",
             "|---" * (5 + len(refs) + bool(paper)) + "|"]

    def row(name: str, shown: list[int], key: str, label: str, index: int,
            ref_cells: list[str]) -> str:
        v = 100 * np.array([np.mean([r[k][key] for k in shown]) for r in ours])
        cells = [*ref_cells, f"{v.mean():.2f}", f"{v.min():.2f}-{v.max():.2f}", f"{v.std():.2f}"]
        if paper:
            cells.append(f"{np.mean([paper[index][k - 1] for k in shown if k <= 16]):.2f}")
        return f"| {name} | {label} | " + " | ".join(cells) + " |"

    for c in cycles:
        for key, label, index in metrics:
            lines.append(row(str(c), [c], key, label, index,
                             [f"{100 * r[c][key]:.2f}" if c in r else "-" for r in refs.values()]))
    common = [c for c in cycles if all(c in r for r in refs.values())]
    for key, label, index in metrics:
        ref_cells = []
        for r in refs.values():
            own = [k for k in cycles if k in r]
            cell = f"{100 * np.mean([r[k][key] for k in own]):.2f}" if own else "-"
            ref_cells.append(cell + (f" (cycles {_cycle_span(own)})" if own and own != cycles
                                     else ""))
        lines.append(row("mean", cycles, key, label, index, ref_cells))
    if common and common != cycles:
        for key, label, index in metrics:
            lines.append(row(f"mean of cycles {_cycle_span(common)}", common, key, label, index,
                             [f"{100 * np.mean([r[k][key] for k in common]):.2f}"
                              for r in refs.values()]))
    timing = [t for s in FLAGS.seeds for t in _read_timings(source_dir(method, s))]
    if timing:
        lines.append("")
        lines.append("Wall time per seed (minutes): " + ", ".join(
            f"{t['wall_seconds'] / 60:.1f}" for t in timing) + "; peak RSS (GB): " + ", ".join(
            f"{t['peak_rss_gb']:.2f}" for t in timing) + ".")
    return "\n".join(lines)


def plot(path: str) -> None:
    """Per-cycle Recall@20 and MRR@20 of every method and seed, like the paper's figure."""
    by_method = {m: seed_runs(m) for m in FLAGS.methods}
    runs = {label(m, seed): r for m, seeds in by_method.items() for seed, r in seeds.items()}
    # The paper's curves only beside runs of its own length (not the 3-epoch side-by-side job).
    full_length = FLAGS.num_epochs == FLAGS["num_epochs"].default
    paper = PAPER_PER_CYCLE.get(FLAGS.dataset, {}) if full_length else {}
    cycles = {m: sorted({c for r in seeds.values() for c in r}) for m, seeds in by_method.items()}
    # Named after the method: with one seed that is also the run's name, so the paper's curve
    # takes the run's colour.
    references = {
        m: {c: {"recall20": paper[m][0][c - 1] / 100, "mrr20": paper[m][1][c - 1] / 100}
            for c in cycles[m] if c <= len(paper[m][0])}
        for m in FLAGS.methods if m in paper and cycles[m]
    }
    report_plot(runs, path, references)


def write_section(name: str, body: str) -> None:
    """Replaces (or appends) the named section of RESULTS.md."""
    path = FLAGS.results_md
    text = "# Results\n"
    if os.path.isfile(path):
        with open(path) as f:
            text = f.read()
    begin, end = f"<!-- BEGIN {name} -->", f"<!-- END {name} -->"
    block = f"{begin}\n{body.rstrip()}\n{end}"
    pattern = re.compile(re.escape(begin) + ".*?" + re.escape(end), re.S)
    text = pattern.sub(lambda _: block, text) if pattern.search(text) else (
        text.rstrip() + "\n\n" + block + "\n")
    with open(path + ".tmp", "w") as f:
        f.write(text)
    os.replace(path + ".tmp", path)


# Flags that say where this machine keeps files, or whether to run: not part of what ran.
LOCAL_FLAGS = ("--results_dir", "--results_md", "--records_dir", "--run", "--norun")


def published_command(args: list[str]) -> str:
    """The command line a section shows: ``args`` without LOCAL_FLAGS (a reader's defaults
    put the runs and tables in the repository's places)."""
    kept, skip_value = [], False
    for a in args:
        name = a.split("=", 1)[0]
        if skip_value or name in LOCAL_FLAGS:
            # "--results_dir DIR" (no "="): its value is the next argument
            skip_value = not skip_value and "=" not in a and name not in ("--run", "--norun")
            continue
        kept.append(a)
    return "python benchmarks/reproduce.py " + " ".join(shlex.quote(a) for a in kept)


def main(argv: list[str]) -> None:
    del argv
    unknown = set(FLAGS.methods) - set(METHOD_FLAGS)
    if unknown:
        raise app.UsageError(
            f"unknown methods {sorted(unknown)}; choose from {sorted(METHOD_FLAGS)}"
        )
    if FLAGS.run:
        for seed in FLAGS.seeds:
            for model in FLAGS.models:
                for method in FLAGS.methods:
                    if applies(model, method):
                        run_one(method, seed, model)
    name = FLAGS.section or f"{FLAGS.dataset}-{'-'.join(FLAGS.methods)}"
    plot_name = f"figures/{name}.png"
    invocation = published_command(sys.argv[1:])
    cycles = f"first {FLAGS.cycles} cycles" if FLAGS.cycles else "all 16 cycles"
    parts = [
        f"### {FLAGS.dataset}: {', '.join(FLAGS.methods)} ({cycles}, up to "
        f"{FLAGS.num_epochs} epochs, seeds {','.join(FLAGS.seeds)})",
        "",
        f"Command: `{invocation}`  ",
        f"Machine: {machine()}; tables written {now()}. Means are over the cycles listed; "
        "the paper's numbers are means over all 16 cycles.",
        "",
    ]
    if FLAGS.reference_log:
        parts += [side_by_side_table(), ""]
    elif FLAGS.models != ["sasrec"]:
        parts[0] = (f"### {FLAGS.dataset}: backbones {', '.join(FLAGS.models)} x methods "
                    f"{', '.join(FLAGS.methods)} ({cycles}, up to {FLAGS.num_epochs} epochs, "
                    f"seed {FLAGS.seeds[0]})")
        parts += [backbone_table(), ""]
    else:
        figures = os.path.join(os.path.dirname(os.path.abspath(FLAGS.results_md)), "figures")
        os.makedirs(figures, exist_ok=True)
        plot(os.path.join(figures, f"{name}.png"))
        parts += [main_table(), "", per_cycle_table(), "", f"![{name}]({plot_name})", ""]
        if len(FLAGS.methods) > 1:
            parts += [cost_table(), ""]
        if len(FLAGS.methods) == 1:
            parts += [cycle_timing_table(), ""]
    write_section(name, "\n".join(parts))
    print("\n".join(parts))


if __name__ == "__main__":
    app.run(main)
