"""RESULTS.md sections from reproduce.py's runs and records: markdown tables, the paper beside ours.

A section sits between ``<!-- BEGIN name -->`` and ``<!-- END name -->`` and holds the tables,
the command that made them, the machine and the date. Metrics are printed in percent.
"""

from __future__ import annotations

import os
import platform
import re
import shlex
import subprocess

import numpy as np
from absl import app

from ader_tf.io_utils import write_text_atomic
from ader_tf.report import read_training_log
from ader_tf.tuned import read_tuned
from benchmarks.paper_results import load_paper_results
from benchmarks.registry import PAPER_MODEL, RUN_METHODS, applies, is_tunable
from benchmarks.reproduce_costs import (
    cpu_minutes,
    cycle_costs,
    cycle_timings,
    kept_between_cycles,
    ndcg20,
    run_time,
)
from benchmarks.reproduce_options import ReproduceOptions
from benchmarks.reproduce_plots import plot
from benchmarks.reproduce_runs import (
    Run,
    completed,
    label,
    now,
    read_timings,
    seed_runs,
    shared_cycles,
    source_dir,
)

# === Tables ===


def seed_mean(runs: list[Run], cycles: list[int]) -> dict[str, float]:
    """Each metric in percent: its mean over ``cycles`` in each run, then over the runs."""
    return {k: 100 * float(np.mean([np.mean([r[c][k] for c in cycles]) for r in runs]))
            for k in ("recall20", "mrr20", "recall10", "mrr10")}


def _fmt(value: float | None, spec: str = ".2f") -> str:
    return "-" if value is None else format(value, spec)


def _cycle_span(cycles: list[int]) -> str:
    """"1-7" for consecutive cycles, else "1, 3, 4"."""
    if cycles == list(range(cycles[0], cycles[-1] + 1)):
        return f"{cycles[0]}-{cycles[-1]}"
    return ", ".join(map(str, cycles))


def main_table(options: ReproduceOptions) -> str:
    """Methods (and seeds) as rows, paper beside ours, means over the cycles run.

    With several seeds, a method's seeds each get a row, then one with their mean over the
    cycles that all of them finished.
    """
    paper = load_paper_results()
    lines = ["| method | cycles | Recall@20 | MRR@20 | Recall@10 | MRR@10 | paper Recall@20 "
             "(16 cycles) | paper MRR@20 | wall time | peak RSS |", "|---" * 10 + "|"]
    for method in options.methods:
        runs = seed_runs(options, method)
        p_r20, p_mrr = paper.means(options.dataset, method)
        for seed, run in runs.items():
            mean = seed_mean([run], list(run))
            minutes, how, rss = run_time(options, method, seed)
            wall = f"{how} {minutes:.1f} min".lstrip()
            lines.append(
                f"| {label(options, method, seed)} | {min(run)}-{max(run)} "
                f"| {mean['recall20']:.2f} | {mean['mrr20']:.2f} | {mean['recall10']:.2f} "
                f"| {mean['mrr10']:.2f} | {_fmt(p_r20)} | {_fmt(p_mrr)} | {wall} | {rss} |"
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


def per_cycle_table(options: ReproduceOptions) -> str:
    """Per-cycle Recall@20 / MRR@20 of every method, the paper's beside each.

    With several seeds, each seed has a column, then their mean (over the cycles all of them
    finished), then the paper.
    """
    paper = load_paper_results().per_cycle.get(options.dataset, {})
    # (header, the runs it averages, the cycles all of them finished, whose paper values or None)
    columns: list[tuple[str, list[Run], list[int], str | None]] = []
    for method in options.methods:
        runs = seed_runs(options, method)
        if not runs:
            continue
        common = shared_cycles(list(runs.values()))
        columns += [(f"{label(options, method, seed)} R@20 / MRR@20", [run], sorted(run), None)
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


#: The method every other is compared with in the seeds' table.
REFERENCE_METHOD = "ader"


def _per_seed(runs: dict[str, Run], seeds: list[str], cycles: list[int], key: str) -> np.ndarray:
    """Each seed's mean of ``key`` over ``cycles``, in percent, in ``seeds`` order."""
    return np.array([100 * np.mean([runs[s][c][key] for c in cycles]) for s in seeds])


def _mean_sd(values: np.ndarray) -> str:
    """"mean ± sample standard deviation" (ddof 1: a few seeds from many possible)."""
    return f"{values.mean():.2f} ± {values.std(ddof=1):.2f}"


def spread_table(options: ReproduceOptions) -> str:
    """Each method's mean and standard deviation over the seeds, and its difference to ADER.

    A method and ADER are compared over the seeds and cycles both finished. Seeds pair the
    runs (a seed fixes the data split and, with --share_first_cycle, the very first cycle), so
    the difference is taken seed by seed: its mean and standard deviation, and the p-value of
    a paired t-test (two-sided). *Beyond the seeds' spread* says whether the two means lie
    further apart than the sum of their standard deviations (their mean ± sd ranges do not
    overlap): a difference smaller than that is one the seeds alone move.
    """
    from scipy import stats  # only this table needs it

    reference = seed_runs(options, REFERENCE_METHOD)
    lines = ["| method | seeds | cycles | Recall@20 mean ± sd | MRR@20 mean ± sd | Recall@20 "
             f"minus {REFERENCE_METHOD}'s, per seed: mean ± sd | paired t-test p | beyond the "
             "seeds' spread |", "|---" * 8 + "|"]
    for method in options.methods:
        runs = seed_runs(options, method)
        seeds = [s for s in runs if s in reference]
        if len(seeds) < 2:
            continue
        cycles = shared_cycles([runs[s] for s in seeds] + [reference[s] for s in seeds])
        recall = _per_seed(runs, seeds, cycles, "recall20")
        mrr = _per_seed(runs, seeds, cycles, "mrr20")
        cells = [method, ",".join(seeds), _cycle_span(cycles), _mean_sd(recall), _mean_sd(mrr)]
        if method == REFERENCE_METHOD:
            cells += ["-", "-", "-"]
        else:
            theirs = _per_seed(reference, seeds, cycles, "recall20")
            difference = recall - theirs
            spread = recall.std(ddof=1) + theirs.std(ddof=1)
            # No p-value for differences that do not vary (the t statistic is undefined).
            p = (stats.ttest_rel(recall, theirs).pvalue if np.ptp(difference) > 1e-9
                 else float("nan"))
            cells += [f"{difference.mean():+.2f} ± {difference.std(ddof=1):.2f}",
                      "-" if np.isnan(p) else f"{p:.3f}",
                      "yes" if abs(recall.mean() - theirs.mean()) > spread else "no"]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def tuned_table(options: ReproduceOptions) -> str:
    """What --tuned gave each method: its values, the tuning objective, and the budget
    (trials finished and how they ended), so that a reader sees every method had the same."""
    entries = read_tuned(options.tuned)["methods"]
    lines = ["| method | tuned values | validation Recall@20 of the best trial (tuning cycles) "
             "| trials: complete / pruned / failed (random first) | tuning seeds |",
             "|---" * 5 + "|"]
    for method in options.methods:
        entry = entries.get(RUN_METHODS[method][0])
        if entry is None:
            why = "not tuned" if is_tunable(method) else "nothing to tune"
            lines.append(f"| {method} | none ({why}: the defaults) | - | - | - |")
            continue
        values = ", ".join(f"--{k}={v:.4g}" if isinstance(v, float) else f"--{k}={v}"
                           for k, v in sorted(entry["values"].items()))
        tuning, trials = entry.get("tuning", {}), entry.get("trials", {})
        cycles = ",".join(map(str, tuning.get("tune_cycles", [])))
        lines.append(
            f"| {method} | {values} | {100 * entry['objective']:.2f} ({cycles}) "
            f"| {trials.get('complete', '-')} / {trials.get('pruned', '-')} / "
            f"{trials.get('fail', '-')} "
            f"({tuning.get('startup_trials', '-')}) "
            f"| {','.join(map(str, tuning.get('seeds', [])))} |")
    return "\n".join(lines)


def side_by_side_table(options: ReproduceOptions) -> str:
    """Per cycle: each original log beside the mean and spread of ours over seeds, and the
    paper's value where the runs are the paper's length.

    An original log may stop early (a run cut short): the mean row then gives its mean over
    its own cycles (saying which), and a second mean row compares every column over the
    cycles all of them have.

    Raises:
        app.UsageError: when none of the seeds has a finished cycle.
    """
    method = options.methods[0]
    ours = [completed(options, method, s) for s in options.seeds]
    ours = [r for r in ours if r]
    if not ours:
        raise app.UsageError(
            f"no finished cycle of {method} for seeds {','.join(options.seeds)} in "
            f"{options.results_dir} or {options.records_dir}: run them first (without --norun)")
    refs = {os.path.basename(os.path.dirname(os.path.abspath(p))): read_training_log(p)
            for p in options.reference_log}
    cycles = shared_cycles(ours)
    paper = (load_paper_results().per_cycle.get(options.dataset, {}).get(method)
             if options.paper_length else None)
    metrics = (("recall20", "Recall@20", 0), ("mrr20", "MRR@20", 1))
    lines = ["| cycle | metric | " + " | ".join(f"original {n}" for n in refs)
             + f" | ours mean over {len(ours)} seeds | ours min-max | ours std"
             + (f" | paper {method}" if paper else "") + " |",
             "|---" * (5 + len(refs) + bool(paper)) + "|"]

    def row(name: str, shown: list[int], key: str, metric: str, index: int,
            ref_cells: list[str]) -> str:
        v = 100 * np.array([np.mean([r[k][key] for k in shown]) for r in ours])
        cells = [*ref_cells, f"{v.mean():.2f}", f"{v.min():.2f}-{v.max():.2f}", f"{v.std():.2f}"]
        if paper:
            cells.append(f"{np.mean([paper[index][k - 1] for k in shown if k <= 16]):.2f}")
        return f"| {name} | {metric} | " + " | ".join(cells) + " |"

    for c in cycles:
        for key, metric, index in metrics:
            lines.append(row(str(c), [c], key, metric, index,
                             [f"{100 * r[c][key]:.2f}" if c in r else "-" for r in refs.values()]))
    common = [c for c in cycles if all(c in r for r in refs.values())]
    for key, metric, index in metrics:
        ref_cells = []
        for r in refs.values():
            own = [k for k in cycles if k in r]
            cell = f"{100 * np.mean([r[k][key] for k in own]):.2f}" if own else "-"
            ref_cells.append(cell + (f" (cycles {_cycle_span(own)})" if own and own != cycles
                                     else ""))
        lines.append(row("mean", cycles, key, metric, index, ref_cells))
    if common and common != cycles:
        for key, metric, index in metrics:
            lines.append(row(f"mean of cycles {_cycle_span(common)}", common, key, metric, index,
                             [f"{100 * np.mean([r[k][key] for k in common]):.2f}"
                              for r in refs.values()]))
    timing = [t for s in options.seeds for t in read_timings(source_dir(options, method, s))]
    if timing:
        lines.append("")
        lines.append("Wall time per seed (minutes): " + ", ".join(
            f"{t['wall_seconds'] / 60:.1f}" for t in timing) + "; peak RSS (GB): " + ", ".join(
            f"{t['peak_rss_gb']:.2f}" for t in timing) + ".")
    return "\n".join(lines)


def backbone_table(options: ReproduceOptions) -> str:
    """Backbones as rows, methods as columns: mean Recall@20 / MRR@20 over the cycles run."""
    seed = options.seeds[0]
    lines = ["| backbone | " + " | ".join(options.methods) + " | wall time (all methods) |",
             "|---" * (len(options.methods) + 2) + "|"]
    for model in options.models:
        cells, wall = [], 0.0
        for method in options.methods:
            run = completed(options, method, seed, model) if applies(model, method) else None
            if run is None:
                cells.append("n/a")
                continue
            if not run:
                cells.append("not run")
                continue
            r20 = 100 * float(np.mean([run[c]["recall20"] for c in run]))
            mrr = 100 * float(np.mean([run[c]["mrr20"] for c in run]))
            cells.append(f"{r20:.2f} / {mrr:.2f} ({min(run)}-{max(run)})")
            wall += run_time(options, method, seed, model)[0]
        lines.append(f"| {model} | " + " | ".join(cells) + f" | {wall:.1f} min |")
    lines += ["", "Cells: mean Recall@20 / MRR@20 (percent) over the cycles in brackets. "
              "n/a: the method does not apply to the backbone (session-kNN is not trained: "
              "finetune = remembers the last period, joint = all past periods, er_random = the "
              "exemplars' sessions plus the last period)."]
    return "\n".join(lines)


def cost_table(options: ReproduceOptions) -> str:
    """Per method: NDCG@20, CPU and wall time, peak RSS and what it keeps between cycles."""
    lines = ["| method | cycles | NDCG@20 | CPU time | wall time | peak RSS | kept for the next "
             "cycle |", "|---" * 7 + "|"]
    for method in options.methods:
        for seed, run in seed_runs(options, method).items():
            minutes, how, rss = run_time(options, method, seed)
            lines.append(
                f"| {label(options, method, seed)} | {min(run)}-{max(run)} "
                f"| {ndcg20(options, method, seed)} | {cpu_minutes(options, method, seed)} "
                f"| {how} {minutes:.1f} min | {rss} "
                f"| {kept_between_cycles(options, method, seed)} |".replace("|  ", "| ")
            )
    lines += ["", "CPU time is user + system time of the run's processes: on a shared machine "
              "it moves less than wall time, which other jobs stretch. Kept for the next cycle: "
              "beyond the model and its optimizer state (every method keeps those)."]
    return "\n".join(lines)


def cycle_timing_table(options: ReproduceOptions) -> str:
    """Per cycle of the first method (each seed): epochs run, the seconds of each phase and,
    where the run recorded them, the cycle's CPU seconds and its process's peak RSS.

    A run paused or sharing the machine stretches its phases' wall seconds; its CPU seconds
    (user + system) stretch far less, so they are the figure to compare between cycles.
    """
    tables = []
    for seed in options.seeds:
        timings = cycle_timings(options, options.methods[0], seed)
        if not timings:
            continue
        lines = ["| cycle | epochs run | train (s) | s per epoch | selection (s) | test (s) "
                 "| CPU (s) | peak RSS (GB) |", "|---" * 8 + "|"]
        if len(options.seeds) > 1:
            lines.insert(0, f"Seed {seed}:\n")
        for cycle, t in sorted(timings.items()):
            lines.append(f"| {cycle} | {t.epochs} | {t.train:.0f} "
                         f"| {t.train / max(t.epochs, 1):.1f} | {t.selection:.1f} | {t.test:.1f} "
                         f"| {_fmt(t.cpu, '.0f')} | {_fmt(t.peak_rss_gb, '.2f')} |")
        costs = cycle_costs(options, options.methods[0], seed)
        if costs is not None:
            lines += ["", f"CPU time of these cycles: {costs[0] / 60:.1f} min; the largest "
                      f"peak RSS: {costs[1]:.2f} GB."]
        tables.append("\n".join(lines))
    return "\n\n".join(tables)


# === Sections ===


def section_name(options: ReproduceOptions) -> str:
    """--section, or ``<dataset>-<methods joined by ->``."""
    return options.section or f"{options.dataset}-{'-'.join(options.methods)}"


def section(options: ReproduceOptions, invocation: str) -> str:
    """The body of the options' RESULTS.md section; writes its figure where it has one.

    Args:
        options: What the section reports.
        invocation: The command line it shows (see `published_command`).
    """
    name = section_name(options)
    cycles = f"first {options.cycles} cycles" if options.cycles else "all 16 cycles"
    parts = [
        f"### {options.dataset}: {', '.join(options.methods)} ({cycles}, up to "
        f"{options.num_epochs} epochs, seeds {','.join(options.seeds)})",
        "",
        f"Command: `{invocation}`  ",
        f"Machine: {machine()}; tables written {now()}. Means are over the cycles listed; "
        "the paper's numbers are means over all 16 cycles.",
        "",
    ]
    if options.share_first_cycle:
        parts += [
            "Each seed's first cycle was trained once for every method that trains it the same "
            "(`--share_first_cycle`, main.py `--warm_start=shared`): the numbers are those of "
            "runs that train it themselves; a run's wall time leaves it out, except for the run "
            "that trained it.", ""]
    if options.reference_log:
        parts += [side_by_side_table(options), ""]
    elif options.models != (PAPER_MODEL,):
        parts[0] = (f"### {options.dataset}: backbones {', '.join(options.models)} x methods "
                    f"{', '.join(options.methods)} ({cycles}, up to {options.num_epochs} "
                    f"epochs, seed {options.seeds[0]})")
        parts += [backbone_table(options), ""]
    else:
        figures = os.path.join(os.path.dirname(os.path.abspath(options.results_md)), "figures")
        os.makedirs(figures, exist_ok=True)
        plot(options, os.path.join(figures, f"{name}.png"))
        parts += [main_table(options), "", per_cycle_table(options), "",
                  f"![{name}](figures/{name}.png)", ""]
        if options.tuned:
            parts += [tuned_table(options), ""]
        if len(options.seeds) > 1 and REFERENCE_METHOD in options.methods:
            parts += [spread_table(options), ""]
        if len(options.methods) > 1:
            parts += [cost_table(options), ""]
        if len(options.methods) == 1:
            parts += [cycle_timing_table(options), ""]
    return "\n".join(parts)


# RESULTS.md keeps its dated history last: a new section goes before this heading.
HISTORY_HEADING = "\n# History\n"


def write_section(path: str, name: str, body: str) -> None:
    """Replaces the named section of the markdown file ``path``, atomically; a new one goes
    before the file's history (or at its end)."""
    text = "# Results\n"
    if os.path.isfile(path):
        with open(path, encoding="utf-8") as f:
            text = f.read()
    begin, end = f"<!-- BEGIN {name} -->", f"<!-- END {name} -->"
    block = f"{begin}\n{body.rstrip()}\n{end}"
    pattern = re.compile(re.escape(begin) + ".*?" + re.escape(end), re.S)
    if pattern.search(text):
        text = pattern.sub(lambda _: block, text)
    elif HISTORY_HEADING in text:
        before, after = text.split(HISTORY_HEADING, 1)
        text = f"{before.rstrip()}\n\n{block}\n{HISTORY_HEADING}{after}"
    else:
        text = text.rstrip() + "\n\n" + block + "\n"
    write_text_atomic(path, text)


def update_results(options: ReproduceOptions, invocation: str) -> str:
    """(Re)writes the options' section of --results_md (and its figure); returns its body."""
    body = section(options, invocation)
    write_section(options.results_md, section_name(options), body)
    return body


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


def machine() -> str:
    """The machine a section's runs and tables were made on: CPU, cores, RAM and GPUs."""
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
