"""DER's logit matching against stored scores, for scores kept as top-k per exemplar."""

from __future__ import annotations

from typing import Any

import numpy as np
import tensorflow as tf

from ader_tf.objectives.base import Objective, StepInputs, Term


class LogitMatching(Objective):
    """`weight` times the mean over exemplar rows of a squared error to the stored scores.

    DER (Buzzega et al., NeurIPS 2020) stores the model's logits for each memory row and adds
    the mean squared error between them and the current logits. Full logits over 43k items
    for 30k exemplars would take 5 GB, so only each row's top k stored scores are kept, with
    the k-th as a bound for the rest. A row's error, over the n items the scores were taken
    over, is

        (sum over the top k of (s_i - z_i)^2
         + sum over the other items of max(0, s_i - z_k)^2) / n

    the exact mean squared error when the other stored scores equal z_k, and a lower bound of
    it otherwise: scores of forgotten items may sit anywhere below z_k, but rising above it
    is penalised.

    Args:
        top_items: int [M, k] 0-based item columns of each exemplar's top k stored scores.
        top_scores: float [M, k] those scores, best first.
        num_scored: int [M] how many items each row's scores covered (max_item then).
        weight: A float or scalar variable.
        name: The term's name.
    """

    def __init__(
        self,
        top_items: np.ndarray,
        top_scores: np.ndarray,
        num_scored: np.ndarray,
        weight: Any,
        name: str = "der_loss",
    ) -> None:
        top_items = np.asarray(top_items, np.int32)
        top_scores = np.asarray(top_scores, np.float32)
        num_scored = np.asarray(num_scored, np.int32).reshape(-1)
        if top_items.shape != top_scores.shape or top_items.ndim != 2:
            raise ValueError(
                f"`top_items` and `top_scores` must both be [M, k], got {top_items.shape} and "
                f"{top_scores.shape}."
            )
        if len(num_scored) != len(top_items):
            raise ValueError(
                f"`num_scored` must have {len(top_items)} rows, got {len(num_scored)}."
            )
        self.top_items = tf.constant(top_items)
        self.top_scores = tf.constant(top_scores)
        self.num_scored = tf.constant(num_scored)
        self.weight = weight
        self.term_names = (name,)

    def terms(self, inputs: StepInputs) -> dict[str, Term]:
        exemplar = inputs.is_exemplar
        rows = tf.where(exemplar > 0)[:, 0]
        index = tf.gather(inputs.exemplar_index, rows)
        student = tf.gather(inputs.logits, rows)  # [R, max_item]
        items = tf.gather(self.top_items, index)  # [R, k]
        stored = tf.gather(self.top_scores, index)
        scored = tf.gather(self.num_scored, index)
        num_items = tf.shape(student)[1]
        covered = tf.sequence_mask(scored, num_items, dtype=student.dtype)  # items scored then
        bound = stored[:, -1:]
        student_top = tf.gather(student, items, batch_dims=1)
        # Bound violations over every covered item, minus those of the top k (distinct items,
        # all covered), rather than a [rows, k, items] mask of the top k.
        rest = tf.reduce_sum(tf.square(tf.nn.relu(student - bound)) * covered, axis=1)
        rest -= tf.reduce_sum(tf.square(tf.nn.relu(student_top - bound)), axis=1)
        top_error = tf.reduce_sum(tf.square(student_top - stored), axis=1)
        per_row = (top_error + rest) / tf.cast(scored, student.dtype)
        return {self.term_names[0]: Term(tf.reduce_sum(per_row), tf.reduce_sum(exemplar),
                                         self.weight)}
