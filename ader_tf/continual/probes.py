"""The probe evaluation after a cycle: one row of the accuracy matrix per period's probe.

Every period's probe (held-out sessions no cycle trains on, see `ader_tf.data.cycles`) is
ranked by the model of the cycle just finished: past periods (what it kept), the period it
just learned, and later ones (what carries forward). `ader_tf.continual.forgetting` turns
the rows into forgetting figures.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import numpy as np

from ader_tf.data.cycles import ContinualData
from ader_tf.data.examples import Examples
from ader_tf.evaluation import metrics_from_ranks

log = logging.getLogger(__name__)


def evaluate_probes(learner: Any, data: ContinualData, cycle: int,
                    max_item: int) -> list[dict[str, Any]]:
    """The accuracy-matrix rows of ``cycle``: its model's metrics on each period's probe.

    The probes are ranked in one pass (per-probe passes cost a pipeline each, five times the
    ranking itself on the sample) and their ranks split by period.

    Args:
        learner: The run's `Learner`, holding the model of ``cycle``.
        data: The run's periods (with their probes).
        cycle: The cycle just finished.
        max_item: The largest item that cycle knows.

    Returns:
        One row per period whose probe has an example the cycle can rank, with the columns
        of `ader_tf.continual.forgetting.MATRIX_COLUMNS`; none without a probe fraction.
    """
    # A probe whose every click is on an item the cycle has not seen has no cell.
    probes = {p: examples for p, examples in data.probe_examples(cycle).items() if len(examples)}
    if not probes:
        return []
    ranks = learner.target_ranks(cycle, Examples.concatenate(list(probes.values())), max_item,
                                 probes=True)
    ends = np.cumsum([len(examples) for examples in probes.values()])
    rows = []
    for period, period_ranks in zip(probes, np.split(ranks, ends[:-1])):
        metrics = metrics_from_ranks(period_ranks)
        rows.append({"cycle": cycle, "period": period, "recall20": metrics.recall20,
                     "mrr20": metrics.mrr20, "ndcg20": metrics.ndcg20,
                     "probe_examples": metrics.num_examples})
    return rows


def probe_cycle(learner: Any, data: ContinualData, cycle: int, max_item: int,
                best_epoch: int) -> dict[str, Any]:
    """`evaluate_probes`, timed, as entries of the cycle's metrics row: ``probes`` (its
    accuracy-matrix rows, kept in the cycle's record so a resumed run writes the same
    matrix) and ``probe_seconds``.

    A score that is not finite stops the run as in testing (``best_epoch`` is named in the
    message).
    """
    t0 = time.time()
    with learner.stop_if_not_finite(cycle, "probe evaluation", best_epoch):
        probes = evaluate_probes(learner, data, cycle, max_item)
    seconds = time.time() - t0
    log.info("cycle %d: %d probes (%d examples) evaluated in %.2fs", cycle, len(probes),
             sum(p["probe_examples"] for p in probes), seconds)
    return {"probes": probes, "probe_seconds": round(seconds, 2)}
