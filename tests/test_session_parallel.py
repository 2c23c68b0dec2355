"""GRU4Rec's session-parallel step math: state resets, negative masks, sampled losses."""

from __future__ import annotations

import math

import numpy as np
import pytest
import tensorflow as tf

from ader_tf.data.session_parallel import session_parallel_batches
from ader_tf.models.session_parallel import LOSSES, negative_mask, reset_states, sampled_loss
from tests.helpers import NUM_ITEMS, sessions_of
from tests.helpers import tiny_gru4rec_encoder as tiny_encoder

# === State resets ===


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


# === Negative masks ===


def test_negative_mask_excludes_own_targets_and_inactive_columns() -> None:
    # The scored columns: the batch's targets first (in-batch negatives), then the samples
    # (the data side's candidate_items([3, 5, 3], [5, 3, 1])).
    targets = np.array([3, 5, 3], np.int32)
    candidates = np.array([3, 5, 3, 5, 3, 1], np.int32)
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
