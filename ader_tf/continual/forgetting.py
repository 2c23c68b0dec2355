"""Forgetting measured on the accuracy matrix of a continual run (pure functions).

The matrix holds ``A[c, p]``: Recall@20 of the model after cycle ``c`` on the probe of period
``p`` (sessions of period ``p`` that no cycle trains on; see `ader_tf.data.cycles`). Cycle
``c`` trains on period ``c - 1`` and is tested on period ``c``, so period ``p`` is *just
learned* after cycle ``p + 1`` and *past* for every later cycle. With ``T`` the last cycle in
the matrix and ``L = {p : p + 1 <= T - 1}`` the periods learned before the last cycle::

    plasticity   = mean_{c = 1..T} A[c, c - 1]
    average_past = mean_{c = 2..T} ( mean_{p = 0..c - 2} A[c, p] )
    bwt          = mean_{p in L} ( A[T, p] - A[p + 1, p] )
    forgetting   = mean_{p in L} ( max_{c = p + 1..T - 1} A[c, p] - A[T, p] )

Plasticity is how well each period is known just after it was learned; average past, how
well the periods learned in earlier cycles are still known, averaged over cycles; BWT
(backward transfer, as GEM defines it) is how much the last model gained on each period
since it was learned (negative: forgotten); forgetting (as Chaudhry et al. define it) is how
far each period fell from the best the model knew it before the last cycle. The probes of
later periods (forward cells, ``p >= c``) enter none of them; they stay in the matrix.

A cell is missing where a probe had no example the cycle could rank (all its clicks on items
that cycle had not seen); each mean is over the cells present, and a measure with no cell
is None.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np

#: The columns of accuracy_matrix.csv: one row per (cycle, probe period).
MATRIX_COLUMNS = ("cycle", "period", "recall20", "mrr20", "ndcg20", "probe_examples")
#: The measures `forgetting_summary` returns, in the order reports list them.
MEASURES = ("average_past", "bwt", "forgetting", "plasticity")

Matrix = Mapping[tuple[int, int], float]


def recall_matrix(rows: Iterable[Mapping[str, Any]]) -> dict[tuple[int, int], float]:
    """``{(cycle, period): Recall@20}`` from rows of accuracy_matrix.csv (or the run state)."""
    return {(int(r["cycle"]), int(r["period"])): float(r["recall20"]) for r in rows}


def _mean(values: list[float]) -> float | None:
    return float(np.mean(values)) if values else None


def last_cycle(matrix: Matrix) -> int:
    """``T``: the last cycle with a cell in the matrix (0 for an empty one)."""
    return max((c for c, _ in matrix), default=0)


def plasticity(matrix: Matrix) -> float | None:
    """Mean over cycles of Recall@20 on the period just learned: ``A[c, c - 1]``."""
    return _mean([matrix[c, c - 1] for c in range(1, last_cycle(matrix) + 1)
                  if (c, c - 1) in matrix])


def past_recall(matrix: Matrix) -> dict[int, float]:
    """Per cycle ``c >= 2``: the mean Recall@20 on the periods learned before it
    (``p <= c - 2``); cycles without such a cell are left out."""
    per_cycle = {c: _mean([matrix[c, p] for p in range(c - 1) if (c, p) in matrix])
                 for c in range(2, last_cycle(matrix) + 1)}
    return {c: m for c, m in per_cycle.items() if m is not None}


def average_past(matrix: Matrix) -> float | None:
    """Mean over cycles ``c >= 2`` of the mean Recall@20 on the periods ``p <= c - 2``."""
    return _mean(list(past_recall(matrix).values()))


def _learned_before_last(matrix: Matrix) -> list[int]:
    """``L``: the periods learned before the last cycle with both cells BWT needs."""
    final = last_cycle(matrix)
    return [p for p in range(final - 1) if (p + 1, p) in matrix and (final, p) in matrix]


def backward_transfer(matrix: Matrix) -> float | None:
    """BWT: mean over ``L`` of the last cycle's minus the just-learned Recall@20."""
    final = last_cycle(matrix)
    return _mean([matrix[final, p] - matrix[p + 1, p] for p in _learned_before_last(matrix)])


def forgetting(matrix: Matrix) -> float | None:
    """Mean over ``L`` of the best Recall@20 before the last cycle (from the cycle that
    learned the period on) minus the last cycle's."""
    final = last_cycle(matrix)
    drops = []
    for p in _learned_before_last(matrix):
        best = max(matrix[c, p] for c in range(p + 1, final) if (c, p) in matrix)
        drops.append(best - matrix[final, p])
    return _mean(drops)


def forgetting_summary(rows: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    """The four measures of the matrix in ``rows`` (summary.json's ``forgetting``).

    Also ``cycles``: the last cycle ``T`` they are measured at.
    """
    matrix = recall_matrix(rows)
    return {
        "average_past": average_past(matrix),
        "bwt": backward_transfer(matrix),
        "forgetting": forgetting(matrix),
        "plasticity": plasticity(matrix),
        "cycles": last_cycle(matrix),
    }
