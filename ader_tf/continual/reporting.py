"""Human-readable outputs of a run: the original's Training_logs.txt, summary.json, a plot."""

from __future__ import annotations

import platform
import resource
from typing import Any

import numpy as np

from ader_tf.config import Config
from ader_tf.io_utils import write_json_atomic, write_text_atomic

MEAN_KEYS = ("mrr20", "recall20", "mrr10", "recall10")


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

    def finish_run(self, summary: dict[str, Any], seconds: float | None) -> None:
        m = summary["mean"]
        self.footer = [
            f"Average: (MRR@20: {m['mrr20']:.4f}, RECALL@20: {m['recall20']:.4f}, "
            f"MRR@10: {m['mrr10']:.4f}, RECALL@10: {m['recall10']:.4f})",
        ]
        if seconds is not None:
            self.footer.append(f"Total time: {seconds / 60.0:.2f} minutes")
        self.footer.append("Done.")
        print("\n".join(self.footer), flush=True)
        self._write()

    def _write(self) -> None:
        lines = self.header + self.done + self.current + self.footer
        write_text_atomic(self.path, "\n".join(lines) + "\n")


def versions() -> dict[str, str]:
    import keras
    import tensorflow as tf

    import ader_tf

    return {
        "ader_tf": ader_tf.__version__, "python": platform.python_version(),
        "tensorflow": tf.__version__, "keras": keras.__version__, "numpy": np.__version__,
    }


def write_summary(path: str, config: Config, rows: list[dict[str, Any]]) -> dict[str, Any]:
    """summary.json: the means over cycles (the paper's numbers), config and versions."""
    mean = {k: float(np.mean([r[k] for r in rows])) if rows else float("nan") for k in MEAN_KEYS}
    summary = {
        "run": config.run_name,
        "method": config.method,
        "cycles_completed": len(rows),
        "mean": mean,
        "per_cycle": [{k: r[k] for k in ("cycle",) + MEAN_KEYS} for r in rows],
        "seconds": {
            k: float(sum(r[k] for r in rows))
            for k in ("train_seconds", "selection_seconds", "test_seconds")
        },
        "config": config.to_dict(),
        "fingerprint": config.fingerprint(),
        "versions": versions(),
    }
    write_json_atomic(path, summary)
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
