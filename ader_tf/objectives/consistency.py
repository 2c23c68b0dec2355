"""InfoNCE consistency between the student's scores and a frozen reference's, in the batch."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import tensorflow as tf

from ader_tf.objectives.base import Objective, StepInputs, Term

# What the diagonal is filled with before the hardest negatives are picked: a row's own
# reference never counts as its negative (exp of it / temperature underflows to 0).
_EXCLUDED = -1e9


def hard_negative_info_nce(
    student: tf.Tensor, reference: tf.Tensor, temperature: float, top_k: int
) -> tf.Tensor:
    """Per-row InfoNCE loss [B] of the student's rows against the reference's rows.

    Each row's scores over the items are L2-normalised; row i of the student is pulled
    towards row i of the reference (the positive) and pushed from the `top_k` reference rows
    of the batch most similar to it (the hardest in-batch negatives):

        s_ij = <z_i, r_j>,  loss_i = -log(exp(s_ii / T) / (exp(s_ii / T) + sum_{j in N_i}
        exp(s_ij / T)))

    with N_i the `min(top_k, B)` largest s_ij over j != i. When `top_k >= B - 1` every other
    row is a negative. The reference receives no gradient.

    Args:
        student: float [B, n] scores of the model being trained.
        reference: float [B, n] scores of the reference for the same rows.
        temperature: T > 0.
        top_k: Negatives per row (at most B - 1 are real).
    """
    z_student = tf.math.l2_normalize(student, axis=1, epsilon=1e-24)
    z_reference = tf.stop_gradient(tf.math.l2_normalize(reference, axis=1, epsilon=1e-24))
    similarity = tf.matmul(z_student, z_reference, transpose_b=True)  # [B, B]
    rows = tf.shape(similarity)[0]
    positive = tf.linalg.diag_part(similarity)
    others = tf.where(tf.eye(rows, dtype=tf.bool), tf.constant(_EXCLUDED, similarity.dtype),
                      similarity)
    hardest = tf.math.top_k(others, k=tf.minimum(rows, top_k)).values
    logits = tf.concat([positive[:, None], hardest], axis=1) / temperature
    return tf.reduce_logsumexp(logits, axis=1) - logits[:, 0]


class Consistency(Objective):
    """`weight` times the mean over the current rows of `hard_negative_info_nce`.

    The reference view comes from a callable, so that what produces it (a frozen teacher,
    a masked one) stays outside this term. Only the current rows take part, as each other's
    negatives.

    Args:
        reference: Maps the step's inputs to reference scores [B, n] for every row of the
            batch, n equal to the student's number of scored items.
        weight: A float or scalar variable.
        temperature: T > 0.
        top_k: Hardest negatives per row, >= 1.
        name: The term's name.
    """

    def __init__(
        self,
        reference: Callable[[StepInputs], tf.Tensor],
        weight: Any,
        temperature: float,
        top_k: int,
        name: str = "nce_loss",
    ) -> None:
        if temperature <= 0:
            raise ValueError(f"`temperature` must be > 0, got {temperature}.")
        if top_k < 1:
            raise ValueError(f"`top_k` must be >= 1, got {top_k}.")
        self.reference = reference
        self.weight = weight
        self.temperature = float(temperature)
        self.top_k = int(top_k)
        self.term_names = (name,)

    def terms(self, inputs: StepInputs) -> dict[str, Term]:
        current = inputs.current
        rows = tf.where(current > 0)[:, 0]
        reference = tf.stop_gradient(self.reference(inputs))
        tf.debugging.assert_equal(
            tf.shape(reference)[1], tf.shape(inputs.logits)[1],
            message="the reference scores another number of items than the student",
        )
        per_row = hard_negative_info_nce(
            tf.gather(inputs.logits, rows), tf.gather(reference, rows),
            self.temperature, self.top_k,
        )
        return {self.term_names[0]: Term(tf.reduce_sum(per_row), tf.reduce_sum(current),
                                         self.weight)}
