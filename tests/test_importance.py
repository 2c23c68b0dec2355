"""Per-weight importance: EWC's Fisher information and MAS's output sensitivity, by hand."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

from ader_tf.continual.importance import ImportanceState, compute_fisher, compute_mas_importance
from ader_tf.models.recommender import make_optimizer
from tests.helpers import left_padded, randomize
from tests.helpers import tiny_sasrec_model as tiny_model

NUM_ITEMS, MAXLEN = 30, 6


def student():
    model = tiny_model(NUM_ITEMS, maxlen=MAXLEN, seed=1)
    randomize(model, seed=1)
    model.compile(optimizer=make_optimizer(), run_eagerly=True)
    model.build_all(MAXLEN)
    model.set_max_item(25)
    return model


def per_example_mean(model, ids, loss_of_row, statistic) -> list[np.ndarray]:
    """Mean over rows of statistic(gradient of loss_of_row), one gradient call per row."""
    variables = model.trainable_variables
    total = [np.zeros(v.shape) for v in variables]
    for row in range(len(ids)):
        with tf.GradientTape() as tape:
            loss = loss_of_row(row, model(ids[row : row + 1], training=False))
        for t, g in zip(total, tape.gradient(loss, variables), strict=True):
            t += statistic(np.asarray(tf.convert_to_tensor(g), np.float64))
    return [t / len(ids) for t in total]


def test_fisher_equals_mean_squared_per_example_gradient() -> None:
    model = student()
    rng = np.random.default_rng(7)
    ids = left_padded(rng, list(rng.integers(1, 7, 7)), MAXLEN, NUM_ITEMS)
    targets = rng.integers(1, 26, 7).astype(np.int32)
    state = compute_fisher(model, ids, targets, batch_size=3)
    expected = per_example_mean(
        model, ids,
        lambda r, logits: tf.nn.sparse_softmax_cross_entropy_with_logits(
            targets[r : r + 1] - 1, logits)[0],
        np.square,
    )
    assert state.num_examples == 7
    for f, e in zip(state.importance, expected, strict=True):
        np.testing.assert_allclose(np.asarray(f), e, rtol=1e-4, atol=1e-9)
    np.testing.assert_array_equal(np.asarray(state.importance[0])[0], 0.0)  # padding row
    for p, v in zip(state.anchor, model.trainable_variables, strict=True):
        np.testing.assert_array_equal(np.asarray(p), np.asarray(v))


def test_mas_equals_mean_abs_gradient_of_the_squared_output_norm() -> None:
    model = student()
    rng = np.random.default_rng(8)
    ids = left_padded(rng, list(rng.integers(1, 7, 6)), MAXLEN, NUM_ITEMS)
    state = compute_mas_importance(model, ids, batch_size=4)
    expected = per_example_mean(
        model, ids, lambda r, logits: tf.reduce_sum(tf.square(logits)), np.abs
    )
    assert state.num_examples == 6
    for f, e in zip(state.importance, expected, strict=True):
        np.testing.assert_allclose(np.asarray(f), e, rtol=1e-4, atol=1e-7)
    # The output norm does not depend on the target: no labels, unlike the Fisher information.
    assert any(np.asarray(f).max() > 0 for f in state.importance)


def test_accumulate_sums_importance_and_keeps_the_newest_anchor() -> None:
    a = ImportanceState((tf.constant([1.0, 2.0]),), (tf.constant([0.0, 0.0]),), 3)
    b = ImportanceState((tf.constant([0.5, 0.5]),), (tf.constant([1.0, 1.0]),), 4)
    total = a.accumulate(b)
    np.testing.assert_array_equal(np.asarray(total.importance[0]), [1.5, 2.5])
    np.testing.assert_array_equal(np.asarray(total.anchor[0]), [1.0, 1.0])
    assert total.num_examples == 7


def test_state_save_load_and_checks(tmp_path) -> None:
    model = student()
    state = ImportanceState(
        tuple(tf.random.uniform(v.shape) for v in model.trainable_variables),
        tuple(tf.convert_to_tensor(v) for v in model.trainable_variables),
        num_examples=8,
    )
    path = str(tmp_path / "ewc.npz")
    state.save(path)
    loaded = ImportanceState.load(path, model)
    assert loaded.num_examples == 8
    for a, b in zip(state.importance, loaded.importance, strict=True):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    other = tiny_model(NUM_ITEMS + 1, maxlen=MAXLEN)
    with pytest.raises(ValueError, match="shapes"):
        ImportanceState.load(path, other)
