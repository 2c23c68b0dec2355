"""GRU4Rec's session-parallel step math: state resets, negative masks and sampled losses.

Hidasi et al. 2016 (arXiv 1511.06939) and Hidasi & Karatzoglou 2018, "Recurrent neural
networks with top-k gains for session-based recommendations" (arXiv 1706.03847), following
the authors' code (github.com/hidasib/GRU4Rec, GRU4Rec_PyTorch_Official) where the papers
leave a choice open. A step scores each row's output against the batch's targets (in-batch
negatives) plus items sampled for the step, shared by all rows.

Only tensors go in and out, so this module needs nothing from the data code: the mini-batches
and the negative sampler are in the data package's `session_parallel` module, the trainer
that joins them with a `GRU4RecEncoder` in the continual package's.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

# TensorFlow is imported inside each function, so that `LOSSES` (the session-parallel
# learner's `--gru4rec_loss` choices) is read without it, as `--help` does.
if TYPE_CHECKING:
    import tensorflow as tf

LOSSES = ("bpr", "top1", "bpr_max", "top1_max", "cross_entropy")

# Fill for excluded columns: exp() of it is exactly 0 in float32 and it stays finite, so a
# row without any negative gives no NaN (its loss is dropped afterwards).
_EXCLUDED = -1e9


# === State resets ===


def reset_states(states: list[tf.Tensor], reset: tf.Tensor) -> list[tf.Tensor]:
    """Zeroes the rows of each state [B, d] where `reset` [B] is true."""
    import tensorflow as tf

    keep = tf.cast(tf.logical_not(tf.cast(reset, tf.bool)), states[0].dtype)[:, None]
    return [state * keep for state in states]


# === Negatives ===


def negative_mask(targets: tf.Tensor, candidates: tf.Tensor, active: tf.Tensor) -> tf.Tensor:
    """Which candidate columns are negatives of each row, bool [B, B + S].

    A column is excluded for row i when it holds row i's own target item (the diagonal, and
    also another row's identical target or a sample that hit it: a positive is never pushed
    down as a negative) or when it is the target column of an inactive row.

    Args:
        targets: [B] target item of each row.
        candidates: [B + S] scored items, the targets first (as the data package's
            `candidate_items` lays them out).
        active: [B] bool, rows holding a session.
    """
    import tensorflow as tf

    targets = tf.cast(targets, tf.int32)
    candidates = tf.cast(candidates, tf.int32)
    extra = tf.shape(candidates)[0] - tf.shape(targets)[0]
    column_valid = tf.concat([tf.cast(active, tf.bool), tf.ones([extra], tf.bool)], axis=0)
    return tf.logical_and(
        tf.not_equal(candidates[None, :], targets[:, None]), column_valid[None, :]
    )


# === Losses ===


def sampled_loss(
    loss: str,
    scores: tf.Tensor,
    negatives: tf.Tensor | None = None,
    bpreg: float = 1.0,
) -> tf.Tensor:
    """Per-row ranking loss [B] over sampled scores [B, N] whose diagonal is the positive.

    With r_i the row's positive score, r_j its negatives (columns where `negatives` is true,
    n of them) and s_j = softmax of the r_j over the negatives only:

    - "bpr": -(1/n) sum_j log sigmoid(r_i - r_j)                        (2016 paper)
    - "top1": (1/n) sum_j [sigmoid(r_j - r_i) + sigmoid(r_j^2)]          (2016 paper)
    - "bpr_max": -log sum_j s_j sigmoid(r_i - r_j) + bpreg sum_j s_j r_j^2   (2018 paper)
    - "top1_max": sum_j s_j [sigmoid(r_j - r_i) + sigmoid(r_j^2)]         (2018 paper)
    - "cross_entropy": -log softmax(r)_i over the positive and its negatives.

    The authors' `bpr` and `top1` average over all N columns, the positive's own (constant)
    term included; here the mean is over the negatives, as the papers write it. A row without
    any negative gets 0.

    Args:
        loss: One of `LOSSES`.
        scores: [B, N] scores, N >= B, column i of row i its positive.
        negatives: [B, N] bool mask of negatives (default: every off-diagonal column).
        bpreg: Weight of BPR-max's score regularisation (the authors' default 1.0).

    Raises:
        ValueError: On an unknown loss name.
    """
    if loss not in LOSSES:
        raise ValueError(f"`loss` must be one of {LOSSES}, got {loss!r}.")
    import tensorflow as tf

    shape = tf.shape(scores)
    diagonal = tf.cast(tf.eye(shape[0], shape[1]), tf.bool)
    if negatives is None:
        negatives = tf.logical_not(diagonal)
    negatives = tf.logical_and(tf.cast(negatives, tf.bool), tf.logical_not(diagonal))
    weights = tf.cast(negatives, scores.dtype)
    count = tf.reduce_sum(weights, axis=1)
    positive = tf.linalg.diag_part(scores)[:, None]  # [B, 1]

    if loss == "cross_entropy":
        logits = tf.where(tf.logical_or(negatives, diagonal), scores, _EXCLUDED)
        row = -tf.linalg.diag_part(tf.nn.log_softmax(logits, axis=1))
    elif loss == "bpr":
        row = -tf.math.divide_no_nan(
            tf.reduce_sum(tf.math.log_sigmoid(positive - scores) * weights, 1), count
        )
    elif loss == "top1":
        terms = tf.sigmoid(scores - positive) + tf.sigmoid(tf.square(scores))
        row = tf.math.divide_no_nan(tf.reduce_sum(terms * weights, 1), count)
    else:
        log_softmax = tf.nn.log_softmax(tf.where(negatives, scores, _EXCLUDED), axis=1)
        softmax = tf.exp(log_softmax) * weights
        if loss == "bpr_max":
            # log sum_j s_j sigmoid(.) as a logsumexp: no underflow for large score gaps.
            log_terms = tf.where(
                negatives, log_softmax + tf.math.log_sigmoid(positive - scores), _EXCLUDED
            )
            row = -tf.reduce_logsumexp(log_terms, axis=1) + bpreg * tf.reduce_sum(
                softmax * tf.square(scores), axis=1
            )
        else:
            terms = tf.sigmoid(scores - positive) + tf.sigmoid(tf.square(scores))
            row = tf.reduce_sum(softmax * terms, axis=1)
    return tf.where(count > 0, row, tf.zeros_like(row))
