"""What a run reports: the original's Training_logs.txt, metrics.csv, summary.json, plots,
the accuracy matrix and TensorBoard scalars."""

from __future__ import annotations

import platform
import resource
from typing import Any

import keras
import numpy as np
import tensorflow as tf

import ader_tf
from ader_tf.config import Config
from ader_tf.continual.artifacts import (
    RunPaths,
    write_accuracy_matrix_csv,
    write_metrics_csv,
)
from ader_tf.continual.forgetting import MEASURES, forgetting_summary
from ader_tf.io_utils import write_json_atomic, write_text_atomic

MEAN_KEYS = ("mrr20", "recall20", "mrr10", "recall10")
TEST_SCALARS = ("mrr20", "recall20", "mrr10", "recall10", "ndcg20", "ndcg10")


def cycle_row(cycle: int, max_item: int, test: Any, training: Any, lam: float, kept: int,
              seconds: tuple[float, float, float], log_lines: list[str]) -> dict[str, Any]:
    """The metrics row of a finished cycle (metrics.csv, state.json).

    Args:
        cycle: The cycle.
        max_item: The items it knew.
        test: Its test `Metrics`.
        training: Its `Training` (epochs run, best epoch, best validation Recall@20).
        lam: The weight of the method's continual term.
        kept: Exemplars kept after it.
        seconds: Training (or memory), selection and test seconds.
        log_lines: Its lines of Training_logs.txt.
    """
    train_seconds, selection_seconds, test_seconds = seconds
    return {
        "cycle": cycle, "epochs_run": training.epochs_run, "best_epoch": training.best_epoch,
        "mrr20": test.mrr20, "recall20": test.recall20, "mrr10": test.mrr10,
        "recall10": test.recall10, "test_examples": test.num_examples, "lambda": lam,
        "exemplars_kept": kept, "train_seconds": round(train_seconds, 2),
        "selection_seconds": round(selection_seconds, 2),
        "test_seconds": round(test_seconds, 2), "ndcg20": test.ndcg20,
        "ndcg10": test.ndcg10, "max_item": max_item, "log_lines": log_lines,
        "valid_recall20": training.valid_recall20,
    }


def peak_rss_gb() -> float:
    """The largest resident memory this process has had so far, in GB (2**30 bytes)."""
    # Linux reports ru_maxrss in KiB (macOS in bytes; not a platform this package runs on).
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, 3)


# The last line of a finished run's log (the original's).
_LOG_END = "Done."


class RunLog:
    """Training_logs.txt in the original's line formats, rewritten atomically on each line.

    Finished cycles' lines live in state.json, so a resumed run writes one clean log with no
    half-finished cycle in it.
    """

    def __init__(self, path: str, config: Config) -> None:
        self.path = path
        args = {k: v for k, v in config.to_dict().items()}
        self.header = [f"{k},{v}" for k, v in sorted(args.items())]
        self.done: list[str] = []
        self.current: list[str] = []
        self.footer: list[str] = []

    def data_lines(self, data: Any) -> None:
        """The original's two lines on a cycle's data (`CycleData`)."""
        stats = data.stats
        self.line(f"Train set information: total number of action: {stats['train_clicks']}.")
        removed = stats["test_clicks_unseen_items_removed"] + stats[
            "test_sessions_dropped_one_click"]
        self.line(f"Test set information: original total number of action: "
                  f"{stats['test_clicks']}, removed number of action: {removed}.")

    def restore(self, cycles: list[dict[str, Any]]) -> None:
        self.done = [line for row in cycles for line in row.get("log_lines", [])]

    def start_cycle(self, cycle: int) -> None:
        self.current = []
        self.line(f"Period {cycle}:")

    def line(self, text: str) -> None:
        print(text, flush=True)
        self.current.append(text)
        self._write()

    def note(self, text: str) -> None:
        self.done.append(text)
        self._write()

    def current_lines(self) -> list[str]:
        return list(self.current)

    def finish_cycle(self) -> None:
        self.done.extend(self.current)
        self.current = []

    def is_finished_on_disk(self) -> bool:
        """Whether the log file ends with the footer `finish_run` writes."""
        try:
            with open(self.path) as f:
                return f.read().endswith(f"\n{_LOG_END}\n")
        except FileNotFoundError:
            return False

    def finish_run(self, summary: dict[str, Any], seconds: float | None,
                   first_cycle: int = 1) -> None:
        """Writes the footer: the means over cycles and, if ``seconds`` is given, the wall
        time of this process, which ran the cycles from ``first_cycle`` on."""
        m = summary["mean"]
        self.footer = [
            f"Average: (MRR@20: {m['mrr20']:.4f}, RECALL@20: {m['recall20']:.4f}, "
            f"MRR@10: {m['mrr10']:.4f}, RECALL@10: {m['recall10']:.4f})",
        ]
        if seconds is not None:
            ran = (f" (cycles {first_cycle}-{summary['cycles_completed']} in this process)"
                   if first_cycle > 1 else "")
            self.footer.append(f"Total time: {seconds / 60.0:.2f} minutes{ran}")
        self.footer.append(_LOG_END)
        print("\n".join(self.footer), flush=True)
        self._write()

    def _write(self) -> None:
        lines = self.header + self.done + self.current + self.footer
        write_text_atomic(self.path, "\n".join(lines) + "\n")


def versions() -> dict[str, str]:
    return {
        "ader_tf": ader_tf.__version__, "python": platform.python_version(),
        "tensorflow": tf.__version__, "keras": keras.__version__, "numpy": np.__version__,
    }


def probe_rows(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The accuracy matrix's rows kept in the cycles' records (state.json), in cycle order."""
    return [probe for row in rows for probe in row.get("probes", [])]


def write_summary(path: str, config: Config, rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Writes summary.json (see `run_summary`); returns it."""
    summary = run_summary(config, rows)
    write_json_atomic(path, summary)
    return summary


def run_summary(config: Config, rows: list[dict[str, Any]]) -> dict[str, Any]:
    """The run's summary: the means over cycles (the paper's numbers), config and versions.

    A run with probes (``--probe_fraction`` > 0) adds ``forgetting``: the measures of
    `ader_tf.continual.forgetting` on its accuracy matrix so far.
    """
    mean = {k: float(np.mean([r[k] for r in rows])) if rows else float("nan") for k in MEAN_KEYS}
    timed = ("train_seconds", "selection_seconds", "test_seconds")
    if config.probe_fraction:
        timed += ("probe_seconds",)
    summary = {
        "run": config.run_name,
        "method": config.method,
        "cycles_completed": len(rows),
        "mean": mean,
        "per_cycle": [{k: r[k] for k in ("cycle",) + MEAN_KEYS} for r in rows],
        "seconds": {k: float(sum(r.get(k, 0.0) for r in rows)) for k in timed},
        "config": config.to_dict(),
        "fingerprint": config.fingerprint(),
        "versions": versions(),
    }
    if config.probe_fraction:
        summary["forgetting"] = forgetting_summary(probe_rows(rows))
    return summary


def write_plot(path: str, rows: list[dict[str, Any]], title: str) -> None:
    """metrics.png: test Recall@20 and MRR@20 per cycle."""
    if not rows:
        return
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from ader_tf.io_utils import atomic_path

    cycles = [r["cycle"] for r in rows]
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8))
    for ax, key, label in ((axes[0], "recall20", "Recall@20"), (axes[1], "mrr20", "MRR@20")):
        ax.plot(cycles, [100 * r[key] for r in rows], marker="o")
        ax.set_xlabel("cycle")
        ax.set_ylabel(f"{label} (%)")
        ax.set_title(f"{title}: {label}")
        ax.grid(alpha=0.3)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=100)
    plt.close(fig)


def write_accuracy_heatmap(path: str, matrix: list[dict[str, Any]], title: str) -> None:
    """accuracy_matrix.png: probe Recall@20 by cycle (rows) and period (columns).

    Each cell is annotated in percent; the just-learned cells (period = cycle - 1) are
    outlined, so past periods lie left of them and later ones right.
    """
    if not matrix:
        return
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Rectangle

    from ader_tf.io_utils import atomic_path

    cycles = sorted({int(r["cycle"]) for r in matrix})
    periods = list(range(max(int(r["period"]) for r in matrix) + 1))
    grid = np.full((len(cycles), len(periods)), np.nan)
    for r in matrix:
        grid[cycles.index(int(r["cycle"])), int(r["period"])] = 100 * float(r["recall20"])
    fig, ax = plt.subplots(figsize=(max(4.5, 1.5 + 0.55 * len(periods)),
                                    max(3.0, 1.5 + 0.45 * len(cycles))))
    image = ax.imshow(np.ma.masked_invalid(grid), cmap="viridis", aspect="auto",
                      vmin=np.nanmin(grid), vmax=np.nanmax(grid))
    for i, cycle in enumerate(cycles):
        for j in periods:
            if np.isfinite(grid[i, j]):
                ax.text(j, i, f"{grid[i, j]:.0f}", ha="center", va="center", fontsize=7,
                        color="white" if grid[i, j] < np.nanmean(grid) else "black")
        if cycle - 1 in periods:
            ax.add_patch(Rectangle((cycle - 1.5, i - 0.5), 1, 1, fill=False, edgecolor="red",
                                   linewidth=1.5))
    ax.set_xticks(periods)
    ax.set_yticks(range(len(cycles)), [str(c) for c in cycles])
    ax.set_xlabel("probe period")
    ax.set_ylabel("after cycle")
    ax.set_title(f"{title}\nprobe Recall@20 (%); just-learned period outlined", fontsize=9)
    fig.colorbar(image, ax=ax, fraction=0.04)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=100)
    plt.close(fig)


def write_run_files(paths: RunPaths, config: Config, rows: list[dict[str, Any]]) -> dict:
    """Rewrites the run's files from its finished cycles' rows (after each cycle, so a kill
    leaves them complete): metrics.csv, summary.json, metrics.png and, with probes,
    accuracy_matrix.csv and .png. Returns the summary."""
    write_metrics_csv(paths.file("metrics.csv"), rows)
    summary = write_summary(paths.file("summary.json"), config, rows)
    write_plot(paths.file("metrics.png"), rows, config.run_name)
    if config.probe_fraction:
        matrix = probe_rows(rows)
        write_accuracy_matrix_csv(paths.file("accuracy_matrix.csv"), matrix)
        write_accuracy_heatmap(paths.file("accuracy_matrix.png"), matrix, config.run_name)
    return summary


def write_cycle_scalars(writer: Any, row: dict[str, Any],
                        earlier_rows: list[dict[str, Any]]) -> None:
    """TensorBoard at step = cycle: the cycle's test metrics and, with probes, each period's
    probe metrics and the forgetting measures of the matrix so far (``earlier_rows``: the
    finished cycles before ``row``'s)."""
    with writer.as_default(step=row["cycle"]):
        for k in TEST_SCALARS:
            tf.summary.scalar(f"test/{k}", row[k])
        if "probes" not in row:
            return
        for probe in row["probes"]:
            for k in ("recall20", "mrr20"):
                tf.summary.scalar(f"probe/period_{probe['period']}/{k}", probe[k])
        measures = forgetting_summary(probe_rows(earlier_rows) + row["probes"])
        for k in MEASURES:
            if measures[k] is not None:
                tf.summary.scalar(f"forgetting/{k}", measures[k])
