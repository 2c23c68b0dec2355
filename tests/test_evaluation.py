"""Ranks and metrics against a plain reference implementation."""

import numpy as np
import pytest
import tensorflow as tf

from ader_tf.data.examples import Examples
from ader_tf.data.pipeline import evaluation_order
from ader_tf.evaluation import (
    NonFiniteError,
    apply_in_order,
    evaluate,
    evaluate_ranks,
    metrics_from_ranks,
    require_finite,
    target_ranks,
)


def test_metrics_by_hand():
    m = metrics_from_ranks(np.array([0, 1, 9, 10, 19, 20, 100]))
    assert m.recall20 == 5 / 7
    assert m.recall10 == 3 / 7
    assert np.isclose(m.mrr10, (1 + 1 / 2 + 1 / 10) / 7)
    assert np.isclose(m.mrr20, (1 + 1 / 2 + 1 / 10 + 1 / 11 + 1 / 20) / 7)
    assert m.log_line(3, "valid").startswith("epoch:3, valid (MRR@20: ")


def test_ndcg_by_hand():
    # Ranks 0, 1, 9 count at 10 and 20; 10 and 19 only at 20; 20 and 100 at neither.
    m = metrics_from_ranks(np.array([0, 1, 9, 10, 19, 20, 100]))
    at10 = 1 / np.log2(2) + 1 / np.log2(3) + 1 / np.log2(11)
    at20 = at10 + 1 / np.log2(12) + 1 / np.log2(21)
    assert np.isclose(m.ndcg10, at10 / 7)
    assert np.isclose(m.ndcg20, at20 / 7)
    assert np.isclose(m.ndcg10, (1 + 0.6309297535714575 + 0.2890648263178879) / 7)
    # The other metrics are unchanged by it.
    assert (m.recall20, m.recall10) == (5 / 7, 3 / 7)
    empty = metrics_from_ranks(np.array([], np.int64))
    assert (empty.ndcg20, empty.ndcg10, empty.num_examples) == (0.0, 0.0, 0)


def test_target_ranks_counts_strictly_higher_scores():
    logits = tf.constant([[0.1, 0.5, 0.3, 0.9], [1.0, 1.0, 0.0, 2.0]])
    ranks = target_ranks(logits, tf.constant([3, 1])).numpy()
    assert ranks.tolist() == [2, 1]


def _shuffled_examples(rng, n: int, maxlen: int, items: int) -> Examples:
    """Rows of random lengths in random order, so length-sorted batches permute them."""
    inputs = np.zeros((n, maxlen), np.int32)
    for r in range(n):
        k = rng.integers(1, maxlen + 1)
        inputs[r, maxlen - k:] = rng.integers(1, items + 1, size=k)
    return Examples(inputs, rng.integers(1, items + 1, size=n).astype(np.int32))


def test_evaluate_restores_example_order(rng):
    """Ranks, losses and session vectors come back in example order, row for row.

    The reference scores each row alone, so any permutation of rows (by the length sort of the
    batches or by putting them back) changes some row's value and fails the comparison.
    """
    n, maxlen, items = 37, 6, 12
    ex = _shuffled_examples(rng, n, maxlen, items)
    assert not np.array_equal(evaluation_order(ex), np.arange(n))  # the batches do reorder
    table = rng.normal(size=(items + 1, 4)).astype(np.float32)
    table[0] = 0.0  # padding contributes nothing, as in the real model

    def represent(item_ids):  # a deterministic "model": sum of input embeddings
        return tf.reduce_sum(tf.gather(table, item_ids), axis=1)

    def logits_fn(item_ids):
        return tf.matmul(represent(item_ids), table[1:], transpose_b=True)

    def losses_fn(features, targets):
        return tf.nn.sparse_softmax_cross_entropy_with_logits(
            labels=targets - 1, logits=logits_fn(features["item_ids"]))

    want_ranks, want_losses, want_vectors = [], [], []
    for row, target in zip(ex.inputs, ex.targets):
        vector = table[row].sum(axis=0)
        logits = table[1:] @ vector
        want_vectors.append(vector)
        want_ranks.append(int((logits > logits[target - 1]).sum()))
        logits = logits.astype(np.float64)
        want_losses.append(np.log(np.exp(logits - logits.max()).sum()) + logits.max()
                           - logits[target - 1])
    assert np.diff(np.sort(want_losses)).min() > 1e-3  # every row is told apart

    np.testing.assert_array_equal(evaluate_ranks(logits_fn, ex, batch_size=5), want_ranks)
    np.testing.assert_allclose(apply_in_order(losses_fn, ex, 5, "losses"), want_losses,
                               atol=1e-5)
    vectors = apply_in_order(lambda f, t: represent(f["item_ids"]), ex, 5, "vectors")
    np.testing.assert_allclose(vectors, np.array(want_vectors), rtol=1e-5, atol=1e-6)
    assert evaluate(logits_fn, ex, batch_size=5) == metrics_from_ranks(np.array(want_ranks))


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_scores_raise_instead_of_ranking_first(rng, bad):
    """A NaN score compares false, so counting scores above the target would rank it first
    (a perfect Recall@20); evaluation refuses such scores instead."""
    ex = _shuffled_examples(rng, 40, 4, 6)
    embeddings = rng.normal(size=(7, 3)).astype(np.float32)
    embeddings[0] = 0.0
    embeddings[4] = bad  # every row that clicked item 4 gets non-finite scores
    outputs = rng.normal(size=(6, 3)).astype(np.float32)

    def logits_fn(item_ids):
        return tf.matmul(tf.reduce_sum(tf.gather(embeddings, item_ids), axis=1), outputs,
                         transpose_b=True)

    broken = int((ex.inputs == 4).any(axis=1).sum())
    assert 0 < broken < len(ex)
    with pytest.raises(NonFiniteError, match=f"{broken} of 40 rows have non-finite scores"):
        evaluate(logits_fn, ex, batch_size=16)
    ranks = target_ranks(tf.constant([[0.3, bad, 0.1], [0.3, 0.2, 0.1]]),
                         tf.constant([1, 1])).numpy()
    assert ranks.tolist() == [-1, 0]


def test_require_finite_counts_rows():
    values = np.ones((4, 3), np.float32)
    assert require_finite(values, "session vectors") is values
    values[2, 1] = np.inf
    with pytest.raises(NonFiniteError, match="1 of 4 rows have non-finite session vectors"):
        require_finite(values, "session vectors")


def test_progress_bar_only_with_a_label(rng, capfd):
    """A label draws a progress bar on stderr; None (the runner under --noprogress) draws
    none, whatever tqdm's environment says."""
    ex = _shuffled_examples(rng, 9, 4, 5)

    def logits_fn(item_ids):
        return tf.one_hot(item_ids[:, -1] - 1, 5)

    evaluate(logits_fn, ex, 4, "Labelled pass")
    assert "Labelled pass" in capfd.readouterr().err
    evaluate(logits_fn, ex, 4, None)
    assert capfd.readouterr().err == ""
