"""Paper-style tables from run folders, beside any original Training_logs.txt.

    python -m ader_tf.report <results_dir> [--reference_log=PATH/Training_logs.txt ...]

Rows are the metrics (means over cycles, in percent), columns the runs found under
``results_dir`` (each ``<DATASET>-<save_dir>/`` with a ``metrics.csv``) and the reference logs.
A combined plot of Recall@20 and MRR@20 per cycle is written to ``<results_dir>/report.png``.

Runs made with ``--probe_fraction`` > 0 also have an ``accuracy_matrix.csv``: their forgetting
figures (`ader_tf.continual.forgetting`) follow in a second table, and
``<results_dir>/forgetting.png`` shows their past-probe Recall@20 per cycle beside the figures.
"""

from __future__ import annotations

import csv
import glob
import os
import re
from collections.abc import Sequence

import numpy as np
from absl import app, flags

from ader_tf.continual.forgetting import (
    MATRIX_COLUMNS,
    forgetting_summary,
    past_recall,
    recall_matrix,
)
from ader_tf.errors import AderError, print_error
from ader_tf.quiet import quiet_tensorflow

METRICS = (("recall20", "Recall@20"), ("mrr20", "MRR@20"), ("recall10", "Recall@10"),
           ("mrr10", "MRR@10"))
# The forgetting measures as the report names them (values in points of Recall@20).
FORGETTING = (("average_past", "Average past Recall@20"), ("bwt", "BWT"),
              ("forgetting", "Forgetting"), ("plasticity", "Plasticity"))
_TEST_LINE = re.compile(
    r"epoch:\d+, test \(MRR@20: ([\d.]+), RECALL@20: ([\d.]+), MRR@10: ([\d.]+), "
    r"RECALL@10: ([\d.]+)\)"
)
_PERIOD_LINE = re.compile(r"Period (\d+):")

Run = dict[int, dict[str, float]]  # cycle -> metric -> value (fraction)


class ReportInputError(AderError, ValueError):
    """A metrics.csv or Training_logs.txt to report on is missing or malformed."""


def read_metrics_csv(path: str) -> Run:
    """Per-cycle test metrics of one of our runs.

    Raises:
        ReportInputError: The file cannot be read, or a row lacks a metric or a number.
    """
    try:
        with open(path, newline="") as f:
            rows = list(enumerate(csv.DictReader(f), start=2))  # line 1 is the header
    except (OSError, UnicodeDecodeError) as e:
        raise ReportInputError(f"{path}: cannot be read ({getattr(e, 'strerror', None) or e})"
                               ) from e
    run: Run = {}
    for line, row in rows:
        try:
            run[int(row["cycle"])] = {k: float(row[k]) for k, _ in METRICS}
        except (KeyError, TypeError, ValueError) as e:
            raise ReportInputError(f"{path}:{line}: a row needs a number in cycle, "
                                   f"{', '.join(k for k, _ in METRICS)}; got {row}") from e
    return run


def read_training_log(path: str) -> Run:
    """Per-cycle test metrics from a Training_logs.txt (the original's or ours).

    Raises:
        ReportInputError: The file cannot be read or has no test line after a period line.
    """
    run: Run = {}
    period = None
    try:
        with open(path) as f:
            lines = f.readlines()
    except (OSError, UnicodeDecodeError) as e:
        raise ReportInputError(f"{path}: cannot be read ({getattr(e, 'strerror', None) or e})"
                               ) from e
    for line in lines:
        if m := _PERIOD_LINE.search(line):
            period = int(m.group(1))
        elif (m := _TEST_LINE.search(line)) and period is not None:
            mrr20, recall20, mrr10, recall10 = map(float, m.groups())
            run[period] = {"mrr20": mrr20, "recall20": recall20, "mrr10": mrr10,
                           "recall10": recall10}
    if not run:
        raise ReportInputError(f"{path}: no 'Period N:' / 'epoch:N, test (...)' lines found")
    return run


def find_runs(results_dir: str) -> dict[str, Run]:
    """Every run folder under ``results_dir`` that has a metrics.csv, by folder name."""
    runs = {}
    for path in sorted(glob.glob(os.path.join(results_dir, "*", "metrics.csv"))):
        run = read_metrics_csv(path)
        if run:
            runs[os.path.basename(os.path.dirname(path))] = run
    return runs


def read_accuracy_matrix(path: str) -> list[dict[str, float]]:
    """The rows of one run's accuracy_matrix.csv, as numbers.

    Raises:
        ReportInputError: The file cannot be read, or a row lacks a column or a number.
    """
    try:
        with open(path, newline="") as f:
            rows = list(enumerate(csv.DictReader(f), start=2))  # line 1 is the header
    except (OSError, UnicodeDecodeError) as e:
        raise ReportInputError(f"{path}: cannot be read ({getattr(e, 'strerror', None) or e})"
                               ) from e
    matrix = []
    for line, row in rows:
        try:
            matrix.append({k: float(row[k]) for k in MATRIX_COLUMNS})
        except (KeyError, TypeError, ValueError) as e:
            raise ReportInputError(f"{path}:{line}: a row needs a number in "
                                   f"{', '.join(MATRIX_COLUMNS)}; got {row}") from e
    return matrix


def find_matrices(results_dir: str) -> dict[str, list[dict[str, float]]]:
    """The accuracy matrix of every run folder under ``results_dir`` that has one."""
    matrices = {}
    for path in sorted(glob.glob(os.path.join(results_dir, "*", "accuracy_matrix.csv"))):
        matrix = read_accuracy_matrix(path)
        if matrix:
            matrices[os.path.basename(os.path.dirname(path))] = matrix
    return matrices


def forgetting_table(matrices: dict[str, list[dict[str, float]]]) -> str:
    """A Markdown table: rows = forgetting measures (points of Recall@20), columns = runs."""
    names = list(matrices)
    summaries = {n: forgetting_summary(matrices[n]) for n in names}
    header = "| forgetting | " + " | ".join(
        f"{n} ({summaries[n]['cycles']} cycles)" for n in names) + " |"
    lines = [header, "|---" * (len(names) + 1) + "|"]
    for key, label in FORGETTING:
        cells = " | ".join("-" if summaries[n][key] is None else f"{100 * summaries[n][key]:.2f}"
                           for n in names)
        lines.append(f"| {label} | {cells} |")
    return "\n".join(lines)


def forgetting_plot(matrices: dict[str, list[dict[str, float]]], path: str) -> None:
    """Past-probe Recall@20 per cycle of every run (left) beside its four measures (right)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    palette = plt.get_cmap("tab10" if len(matrices) <= 10 else "tab20").colors
    width = 0.8 / max(len(matrices), 1)
    for i, (name, rows) in enumerate(matrices.items()):
        colour = palette[i % len(palette)]
        past = past_recall(recall_matrix(rows))
        axes[0].plot(list(past), [100 * v for v in past.values()], marker="o", label=name,
                     color=colour)
        summary = forgetting_summary(rows)
        values = [100 * summary[k] if summary[k] is not None else np.nan for k, _ in FORGETTING]
        axes[1].bar(np.arange(len(FORGETTING)) + (i - (len(matrices) - 1) / 2) * width, values,
                    width, label=name, color=colour)
    axes[0].xaxis.set_major_locator(MaxNLocator(integer=True))
    axes[0].set_xlabel("cycle")
    axes[0].set_ylabel("mean Recall@20 on past probes (%)")
    axes[1].set_xticks(range(len(FORGETTING)), [label.replace(" Recall@20", "\nRecall@20")
                                                for _, label in FORGETTING])
    axes[1].axhline(0, color="black", linewidth=0.8)
    axes[1].set_ylabel("points of Recall@20")
    for ax in axes:
        ax.grid(alpha=0.3)
    axes[1].legend(fontsize=8, loc="center left", bbox_to_anchor=(1.02, 0.5))
    fig.tight_layout()
    fig.savefig(path, dpi=100, bbox_inches="tight")
    plt.close(fig)


def mean(run: Run, key: str, cycles: Sequence[int] | None = None) -> float:
    chosen = [c for c in run if cycles is None or c in cycles]
    return sum(run[c][key] for c in chosen) / len(chosen)


def table(runs: dict[str, Run]) -> str:
    """A Markdown table: rows = metrics (percent), columns = runs; cycle counts in the header."""
    names = list(runs)
    header = "| metric | " + " | ".join(f"{n} ({len(runs[n])} cycles)" for n in names) + " |"
    lines = [header, "|---" * (len(names) + 1) + "|"]
    for key, label in METRICS:
        cells = " | ".join(f"{100 * mean(runs[n], key):.2f}" for n in names)
        lines.append(f"| {label} | {cells} |")
    return "\n".join(lines)


def plot(runs: dict[str, Run], path: str, references: dict[str, Run] | None = None) -> None:
    """Recall@20 and MRR@20 per cycle of every run, in one figure.

    ``references`` (e.g. the paper's per-cycle values) are drawn dashed, in the colour of the
    run of the same name, labelled "paper <name>".
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    # Matplotlib's default cycle has 10 colours: with more runs, two would share one.
    palette = plt.get_cmap("tab10" if len(runs) <= 10 else "tab20").colors
    colours = {name: palette[i % len(palette)] for i, name in enumerate(runs)}
    for name, run in runs.items():
        cycles = sorted(run)
        for ax, key in zip(axes, ("recall20", "mrr20")):
            ax.plot(cycles, [100 * run[c][key] for c in cycles], marker="o", label=name,
                    color=colours[name])
    for name, run in (references or {}).items():
        cycles = sorted(run)
        for ax, key in zip(axes, ("recall20", "mrr20")):
            ax.plot(cycles, [100 * run[c][key] for c in cycles], linestyle="--",
                    color=colours.get(name), alpha=0.7, label=f"paper {name}")
    for ax, label in zip(axes, ("Recall@20 (%)", "MRR@20 (%)")):
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_xlabel("cycle")
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
    # Beside the plots, not over their lines (a table of a dozen methods has a long legend).
    axes[1].legend(fontsize=8, loc="center left", bbox_to_anchor=(1.02, 0.5))
    fig.tight_layout()
    fig.savefig(path, dpi=100, bbox_inches="tight")
    plt.close(fig)


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        raise app.UsageError("usage: python -m ader_tf.report <results_dir> "
                             "[--reference_log=PATH ...]")
    results_dir = argv[1]
    try:
        runs = find_runs(results_dir)
        for path in flags.FLAGS.reference_log:
            label = "original:" + os.path.basename(os.path.dirname(os.path.abspath(path)))
            runs[label] = read_training_log(path)
        if not runs:
            raise ReportInputError(f"{results_dir}: no runs (folders with metrics.csv) in it")
        matrices = find_matrices(results_dir)
    except AderError as e:
        return print_error(e)
    print(table(runs))
    out = os.path.join(results_dir, "report.png")
    plot(runs, out)
    print(f"\nplot: {out}")
    if matrices:
        print("\n" + forgetting_table(matrices))
        out = os.path.join(results_dir, "forgetting.png")
        forgetting_plot(matrices, out)
        print(f"\nforgetting plot: {out}")
    return 0


if __name__ == "__main__":
    quiet_tensorflow()  # nothing here imports TensorFlow today; this keeps it so if one does
    # Defined here, not on import, so the library adds no global flags.
    flags.DEFINE_multi_string("reference_log", [], "An original Training_logs.txt to compare.")
    app.run(main)
