"""GRU4Rec's session-parallel training: batches, state resets, sampling, losses, trainer."""

from __future__ import annotations

import math

import numpy as np
import pytest
import tensorflow as tf

from ader_tf.data.examples import examples_from_sessions
from ader_tf.data.periods import Sessions
from ader_tf.models.recommender import SessionRecommender, make_optimizer
from ader_tf.models.session_parallel import (
    LOSSES,
    PopularitySampler,
    SessionParallelTrainer,
    candidate_items,
    negative_mask,
    num_short_sessions,
    reset_states,
    sampled_loss,
    session_parallel_batches,
)
from tests.helpers import NUM_ITEMS, patterned_sessions
from tests.helpers import tiny_gru4rec_encoder as tiny_encoder


def sessions_of(lists: list[list[int]]) -> Sessions:
    lengths = [len(s) for s in lists]
    items = np.array([i for s in lists for i in s], np.int32)
    return Sessions(items, np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64))


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


def test_state_is_reset_exactly_where_a_session_ends() -> None:
    rng = np.random.default_rng(4)
    lists = [rng.integers(1, NUM_ITEMS + 1, n).tolist() for n in [3, 1, 5, 2, 2, 4, 1, 6, 3]]
    sessions = sessions_of(lists)
    encoder = tiny_encoder()
    states = encoder.initial_state(3)
    clicks: list[list[int]] = [[], [], []]  # inputs fed to each row since its last reset
    last_target = [0, 0, 0]
    finished: list[list[int]] = []
    for step in session_parallel_batches(sessions, batch_size=3):
        states = reset_states(states, step.reset)
        output, states = encoder.step(step.inputs, states)
        for row in np.flatnonzero(step.active):
            if step.reset[row]:
                if clicks[row]:
                    finished.append(clicks[row] + [last_target[row]])
                clicks[row] = []
            clicks[row].append(int(step.inputs[row]))
            last_target[row] = int(step.targets[row])
            # The carried state equals a fresh run of the session's clicks so far...
            fresh = encoder(np.array([clicks[row]], np.int32)).numpy()[0]
            np.testing.assert_allclose(output.numpy()[row], fresh, atol=1e-5)
    finished += [c + [t] for c, t in zip(clicks, last_target) if c]
    # ...and the clicks between two resets of a row are exactly one input session.
    assert sorted(finished) == sorted(s for s in lists if len(s) >= 2)


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
    # A column holding the row's own target is never a negative; inactive rows' columns either.
    mask = negative_mask(targets, candidates, np.array([True, True, False])).numpy()
    np.testing.assert_array_equal(
        mask,
        [
            [False, True, False, True, False, True],
            [True, False, False, False, True, True],
            [False, True, False, True, False, True],
        ],
    )


# === Losses ===


def sig(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x))


def softmax(xs: list[float]) -> list[float]:
    e = [math.exp(x) for x in xs]
    return [v / sum(e) for v in e]


SCORES = [[2.0, 1.0, 0.0], [0.5, -1.0, 1.5]]  # row 0's positive 2.0, row 1's -1.0


def by_hand(loss: str, bpreg: float = 1.0) -> list[float]:
    rows = []
    for i, row in enumerate(SCORES):
        pos, neg = row[i], [s for j, s in enumerate(row) if j != i]
        w = softmax(neg)
        if loss == "bpr":
            rows.append(-sum(math.log(sig(pos - s)) for s in neg) / len(neg))
        elif loss == "top1":
            rows.append(sum(sig(s - pos) + sig(s * s) for s in neg) / len(neg))
        elif loss == "bpr_max":
            rows.append(
                -math.log(sum(wj * sig(pos - s) for wj, s in zip(w, neg)))
                + bpreg * sum(wj * s * s for wj, s in zip(w, neg))
            )
        elif loss == "top1_max":
            rows.append(sum(wj * (sig(s - pos) + sig(s * s)) for wj, s in zip(w, neg)))
        else:
            rows.append(-math.log(softmax(row)[i]))
    return rows


def test_losses_match_hand_computed_values() -> None:
    scores = tf.constant(SCORES)
    # e.g. bpr row 0: -(log sigmoid(1) + log sigmoid(2)) / 2 = 0.2201...
    assert by_hand("bpr")[0] == pytest.approx(0.22009, abs=1e-4)
    assert by_hand("cross_entropy")[0] == pytest.approx(0.40761, abs=1e-4)
    for loss in LOSSES:
        np.testing.assert_allclose(
            sampled_loss(loss, scores).numpy(), by_hand(loss), rtol=1e-5, err_msg=loss
        )
    np.testing.assert_allclose(
        sampled_loss("bpr_max", scores, bpreg=0.5).numpy(), by_hand("bpr_max", 0.5), rtol=1e-5
    )
    # Masked columns drop out: row 0 keeps negative 1.0 only, row 1 has none (loss 0).
    mask = tf.constant([[False, True, False], [False, False, False]])
    values = {loss: sampled_loss(loss, scores, mask).numpy() for loss in LOSSES}
    assert values["bpr"][0] == pytest.approx(-math.log(sig(1.0)), rel=1e-5)
    assert values["top1_max"][0] == pytest.approx(sig(-1.0) + sig(1.0), rel=1e-5)
    assert values["bpr_max"][0] == pytest.approx(-math.log(sig(1.0)) + 1.0, rel=1e-5)
    assert values["cross_entropy"][0] == pytest.approx(-math.log(softmax([2.0, 1.0])[0]))
    for loss in LOSSES:
        assert values[loss][1] == 0.0
    with pytest.raises(ValueError, match="hinge"):
        sampled_loss("hinge", scores)


# === Trainer ===


@pytest.mark.parametrize("loss", LOSSES)
def test_trainer_lowers_the_loss(loss: str) -> None:
    sessions = patterned_sessions(80)
    encoder = tiny_encoder(num_layers=1, hidden_units=16)
    model = SessionRecommender(encoder)
    examples = examples_from_sessions(sessions, encoder.maxlen)
    full_softmax_before = model.per_example_loss(examples.inputs, examples.targets).numpy().mean()

    trainer = SessionParallelTrainer(
        encoder, make_optimizer(2e-2), loss=loss, batch_size=8, n_sample=6, seed=0
    )
    losses = [trainer.train_epoch(sessions) for _ in range(4)]
    full_softmax_after = model.per_example_loss(examples.inputs, examples.targets).numpy().mean()
    assert losses[-1] < losses[0], losses
    assert full_softmax_after < 0.8 * full_softmax_before, (
        full_softmax_before,
        full_softmax_after,
    )
    assert trainer.train_step.experimental_get_tracing_count() == 1
