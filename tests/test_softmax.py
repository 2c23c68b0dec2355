"""objectives.softmax: values and custom gradients against TensorFlow's fused kernels."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

from ader_tf.objectives.softmax import softmax_cross_entropy, sparse_softmax_cross_entropy


def logits(rows: int = 9, items: int = 300, scale: float = 4.0, seed: int = 0) -> tf.Tensor:
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((rows, items)).astype(np.float32) * scale
    x[0, :] = 0.0  # a flat row: every item ties
    x[1, 7] = 200.0  # one item dominates: the others' probabilities underflow to 0
    return tf.constant(x)


def value_and_gradient(fn, x: tf.Tensor, upstream: tf.Tensor) -> tuple[np.ndarray, np.ndarray]:
    with tf.GradientTape() as tape:
        tape.watch(x)
        loss = fn(x)
    return loss.numpy(), tape.gradient(loss, x, output_gradients=upstream).numpy()


def ours_and_theirs(ours, theirs, x: tf.Tensor, upstream: tf.Tensor, compiled: bool) -> tuple:
    """(loss, gradient) of ``ours`` and of TensorFlow's ``theirs`` at ``x``, eager or compiled."""
    if compiled:
        ours, theirs = tf.function(ours), tf.function(theirs)
    return value_and_gradient(ours, x, upstream), value_and_gradient(theirs, x, upstream)


@pytest.mark.parametrize("compiled", [False, True])
def test_sparse_matches_tensorflow(compiled: bool) -> None:
    x = logits()
    rng = np.random.default_rng(1)
    labels = tf.constant(rng.integers(0, x.shape[1], x.shape[0]).astype(np.int32))
    labels = tf.tensor_scatter_nd_update(labels, [[1]], [8])  # the underflowing target: loss 200+
    upstream = tf.constant(rng.random(x.shape[0]).astype(np.float32))

    (loss, grad), (want_loss, want_grad) = ours_and_theirs(
        lambda v: sparse_softmax_cross_entropy(labels, v),
        lambda v: tf.nn.sparse_softmax_cross_entropy_with_logits(labels=labels, logits=v),
        x, upstream, compiled)
    assert np.all(np.isfinite(loss)) and loss[1] > 190
    np.testing.assert_allclose(loss, want_loss, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(grad, want_grad, rtol=0, atol=1e-6)


@pytest.mark.parametrize("compiled", [False, True])
def test_dense_matches_tensorflow(compiled: bool) -> None:
    x = logits()
    labels = tf.nn.softmax(logits(seed=2, scale=2.0))  # a teacher's distribution
    upstream = tf.constant(np.random.default_rng(3).random(x.shape[0]).astype(np.float32))

    (loss, grad), (want_loss, want_grad) = ours_and_theirs(
        lambda v: softmax_cross_entropy(labels, v),
        lambda v: tf.nn.softmax_cross_entropy_with_logits(labels=labels, logits=v),
        x, upstream, compiled)
    np.testing.assert_allclose(loss, want_loss, rtol=1e-5, atol=1e-4)
    np.testing.assert_allclose(grad, want_grad, rtol=0, atol=1e-6)


def test_no_gradient_flows_into_the_labels() -> None:
    x = logits(rows=3, items=10)
    labels = tf.Variable(tf.nn.softmax(logits(rows=3, items=10, seed=4)))
    with tf.GradientTape() as tape:
        loss = tf.reduce_sum(softmax_cross_entropy(labels, x))
    assert tape.gradient(loss, labels) is None
