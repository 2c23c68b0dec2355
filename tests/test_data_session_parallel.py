"""Session-parallel mini-batches and popularity sampling (the data side of GRU4Rec's training)."""

from __future__ import annotations

import numpy as np
import pytest

from ader_tf.data.session_parallel import (
    PopularitySampler,
    candidate_items,
    num_short_sessions,
    session_parallel_batches,
)
from tests.helpers import sessions_of

# === Mini-batches ===


def test_sessions_enter_rows_in_input_order() -> None:
    # Lengths 3, 2, 4, 1, 2; the 1-click session gives no step.
    sessions = sessions_of([[1, 2, 3], [4, 5], [6, 7, 8, 9], [10], [11, 12]])
    steps = list(session_parallel_batches(sessions, batch_size=2))
    T, F = True, False
    expected = [  # inputs, targets, reset, active
        ([1, 4], [2, 5], [T, T], [T, T]),
        ([2, 6], [3, 7], [F, T], [T, T]),
        ([11, 7], [12, 8], [T, F], [T, T]),
        ([0, 8], [0, 9], [F, F], [F, T]),
    ]
    assert len(steps) == len(expected)
    for step, (inputs, targets, reset, active) in zip(steps, expected):
        np.testing.assert_array_equal(step.inputs, inputs)
        np.testing.assert_array_equal(step.targets, targets)
        np.testing.assert_array_equal(step.reset, reset)
        np.testing.assert_array_equal(step.active, active)
    assert num_short_sessions(sessions) == 1

    # Shuffling is opt-in; it changes the order but not the set of (click, next click) pairs.
    def pairs(steps) -> list[tuple[int, int]]:
        return sorted((int(i), int(t)) for s in steps for i, t, a in zip(*s[:2], s.active) if a)

    shuffled = list(
        session_parallel_batches(sessions, 2, np.random.default_rng(0), shuffle_sessions=True)
    )
    assert pairs(shuffled) == pairs(steps)
    assert [s.inputs.tolist() for s in shuffled] != [s.inputs.tolist() for s in steps]
    with pytest.raises(ValueError, match="0"):
        next(session_parallel_batches(sessions, 0))


# === Negative sampling ===


def test_sampling_follows_popularity_power_and_includes_batch_targets() -> None:
    counts = np.array([0, 1, 4, 9, 0, 16, 25])  # id 0 is padding, id 4 unseen
    draws = 100_000
    for alpha in (0.75, 0.0, 1.0):
        sampler = PopularitySampler(counts, alpha, np.random.default_rng(0))
        observed = np.bincount(sampler.sample(draws), minlength=len(counts))
        weights = np.where(counts > 0, counts.astype(float) ** alpha, 0.0)
        expected = draws * weights / weights.sum()
        assert observed[counts == 0].sum() == 0
        seen = counts > 0
        chi2 = (((observed - expected) ** 2)[seen] / expected[seen]).sum()
        assert chi2 < 25.0, (alpha, chi2)  # df = 4: P(chi2 > 25) < 1e-4
    assert PopularitySampler(counts, 0.0).probabilities[seen].tolist() == [0.2] * 5

    # The scored columns: the batch's targets first (in-batch negatives), then the samples.
    targets = np.array([3, 5, 3], np.int32)
    candidates = candidate_items(targets, np.array([5, 3, 1], np.int32))
    np.testing.assert_array_equal(candidates, [3, 5, 3, 5, 3, 1])
