"""Ranks and metrics against a plain reference implementation."""

import numpy as np
import tensorflow as tf

from ader_tf.data.examples import Examples
from ader_tf.evaluation import evaluate, metrics_from_ranks, target_ranks


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


def test_evaluate_restores_example_order(rng):
    n, maxlen, items = 37, 6, 12
    inputs = np.zeros((n, maxlen), np.int32)
    for r in range(n):
        k = rng.integers(1, maxlen + 1)
        inputs[r, maxlen - k:] = rng.integers(1, items + 1, size=k)
    ex = Examples(inputs, rng.integers(1, items + 1, size=n).astype(np.int32))
    table = rng.normal(size=(items + 1, 4)).astype(np.float32)
    table[0] = 0.0  # padding contributes nothing, as in the real model

    def logits_fn(item_ids):  # a deterministic "model": sum of input embeddings
        rep = tf.reduce_sum(tf.gather(table, item_ids), axis=1)
        return tf.matmul(rep, table[1:], transpose_b=True)

    full = logits_fn(tf.constant(inputs)).numpy()
    expected = (full > full[np.arange(n), ex.targets - 1][:, None]).sum(1)
    m = evaluate(logits_fn, ex, batch_size=5)
    assert m == metrics_from_ranks(expected)
