"""The figure of a RESULTS.md section: per-cycle Recall@20 and MRR@20, the paper's dashed."""

from __future__ import annotations

from ader_tf.report import plot as report_plot
from benchmarks.paper_results import load_paper_results
from benchmarks.reproduce_options import ReproduceOptions
from benchmarks.reproduce_runs import label, seed_runs


def plot(options: ReproduceOptions, path: str) -> None:
    """Per-cycle Recall@20 and MRR@20 of every method and seed, like the paper's figure."""
    by_method = {m: seed_runs(options, m) for m in options.methods}
    runs = {label(options, m, seed): r for m, seeds in by_method.items()
            for seed, r in seeds.items()}
    # The paper's curves only beside runs of its own length (not the 3-epoch side-by-side job).
    paper = (load_paper_results().per_cycle.get(options.dataset, {})
             if options.paper_length else {})
    cycles = {m: sorted({c for r in seeds.values() for c in r}) for m, seeds in by_method.items()}
    # Named after the method: with one seed that is also the run's name, so the paper's curve
    # takes the run's colour.
    references = {
        m: {c: {"recall20": paper[m][0][c - 1] / 100, "mrr20": paper[m][1][c - 1] / 100}
            for c in cycles[m] if c <= len(paper[m][0])}
        for m in options.methods if m in paper and cycles[m]
    }
    report_plot(runs, path, references)
