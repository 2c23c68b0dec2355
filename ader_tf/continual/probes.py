"""The probe evaluation after a cycle: one row of the accuracy matrix per period's probe.

Every period's probe (held-out sessions no cycle trains on, see `ader_tf.data.cycles`) is
ranked by the model of the cycle just finished: past periods (what it kept), the period it
just learned, and later ones (what carries forward). `ader_tf.continual.forgetting` turns
the rows into forgetting figures.
"""

from __future__ import annotations

from typing import Any

from ader_tf.data.cycles import ContinualData


def evaluate_probes(learner: Any, data: ContinualData, cycle: int,
                    max_item: int) -> list[dict[str, Any]]:
    """The accuracy-matrix rows of ``cycle``: its model's metrics on each period's probe.

    Args:
        learner: The run's `Learner`, holding the model of ``cycle``.
        data: The run's periods (with their probes).
        cycle: The cycle just finished.
        max_item: The largest item that cycle knows.

    Returns:
        One row per period whose probe has an example the cycle can rank, with the columns
        of `ader_tf.continual.forgetting.MATRIX_COLUMNS`; none without a probe fraction.
    """
    rows = []
    for period, examples in data.probe_examples(cycle).items():
        if not len(examples):
            continue  # every probe click on an item the cycle has not seen: no cell
        metrics = learner.evaluate(cycle, examples, max_item, probe=period)
        rows.append({"cycle": cycle, "period": period, "recall20": metrics.recall20,
                     "mrr20": metrics.mrr20, "ndcg20": metrics.ndcg20,
                     "probe_examples": metrics.num_examples})
    return rows
