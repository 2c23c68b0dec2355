"""Forgetting measures on a hand-made accuracy matrix (values worked out by hand)."""

from __future__ import annotations

import pytest

from ader_tf.continual.forgetting import (
    MEASURES,
    average_past,
    backward_transfer,
    forgetting,
    forgetting_summary,
    last_cycle,
    past_recall,
    plasticity,
    recall_matrix,
)

# A[c, p] after cycles 1..3 on the probes of periods 0..3; cycle c learns period c - 1.
# Period 0 still improves in cycle 2 (0.60 -> 0.65), so forgetting is not -BWT.
HAND = {
    (1, 0): 0.60, (1, 1): 0.20, (1, 2): 0.10, (1, 3): 0.05,
    (2, 0): 0.65, (2, 1): 0.70, (2, 2): 0.15, (2, 3): 0.10,
    (3, 0): 0.40, (3, 1): 0.55, (3, 2): 0.80, (3, 3): 0.20,
}


def test_the_measures_of_a_hand_made_matrix():
    assert last_cycle(HAND) == 3
    # Just learned: A[1,0], A[2,1], A[3,2].
    assert plasticity(HAND) == pytest.approx((0.60 + 0.70 + 0.80) / 3)
    # Past of cycle 2: period 0; of cycle 3: periods 0 and 1.
    assert past_recall(HAND) == pytest.approx({2: 0.65, 3: (0.40 + 0.55) / 2})
    assert average_past(HAND) == pytest.approx((0.65 + 0.475) / 2)
    # Periods learned before the last cycle: 0 (in cycle 1) and 1 (in cycle 2).
    assert backward_transfer(HAND) == pytest.approx(((0.40 - 0.60) + (0.55 - 0.70)) / 2)
    # Best before the last cycle: period 0 at cycle 2 (0.65), period 1 at cycle 2 (0.70).
    assert forgetting(HAND) == pytest.approx(((0.65 - 0.40) + (0.70 - 0.55)) / 2)


def test_forward_cells_change_no_measure():
    forward_changed = {k: (0.99 if k[1] >= k[0] else v) for k, v in HAND.items()}
    for fn in (average_past, backward_transfer, forgetting):
        assert fn(forward_changed) == pytest.approx(fn(HAND))


def test_missing_cells_are_left_out_of_the_means():
    matrix = {k: v for k, v in HAND.items() if k != (2, 1)}  # period 1 had no rankable example
    assert plasticity(matrix) == pytest.approx((0.60 + 0.80) / 2)
    # Period 1 lacks its just-learned cell: BWT and forgetting are period 0's alone.
    assert backward_transfer(matrix) == pytest.approx(0.40 - 0.60)
    assert forgetting(matrix) == pytest.approx(0.65 - 0.40)
    assert average_past(matrix) == pytest.approx(average_past(HAND))


def test_one_cycle_has_no_past_and_an_empty_matrix_no_measure():
    one = {k: v for k, v in HAND.items() if k[0] == 1}
    assert forgetting_summary([]) == {"average_past": None, "bwt": None, "forgetting": None,
                                      "plasticity": None, "cycles": 0}
    summary = forgetting_summary(
        [{"cycle": c, "period": p, "recall20": v} for (c, p), v in one.items()])
    assert summary == {"average_past": None, "bwt": None, "forgetting": None,
                       "plasticity": 0.60, "cycles": 1}


def test_summary_reads_csv_rows():
    rows = [{"cycle": str(c), "period": str(p), "recall20": str(v), "mrr20": "0.1"}
            for (c, p), v in HAND.items()]
    assert recall_matrix(rows) == HAND
    summary = forgetting_summary(rows)
    assert list(summary) == [*MEASURES, "cycles"]
    assert summary["bwt"] == pytest.approx(backward_transfer(HAND))
    assert summary["cycles"] == 3
