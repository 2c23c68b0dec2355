"""Knowledge distillation from a frozen teacher's softmax over the items it knows."""

from __future__ import annotations

from typing import Any

import numpy as np
import tensorflow as tf

from ader_tf.objectives.base import Objective, StepInputs, Term
from ader_tf.objectives.softmax import softmax_cross_entropy

ROWS = ("exemplar", "current")


class Distillation(Objective):
    """`weight` times the mean over some rows of CE(softmax(teacher / T), softmax(student / T)).

    Both distributions are over items 1..teacher.max_item: the student's scores of items the
    teacher never saw are left out. ADER distils on the replayed exemplar rows with T = 1;
    LwF distils on the current period's rows with T = 2 (scaled by T^2, as Hinton et al.
    do, so that the gradient keeps its size).

    Args:
        teacher: The frozen previous model; called with training=False and never updated.
        weight: A float or scalar variable.
        rows: "exemplar" or "current".
        temperature: T > 0.
        name: The term's name.

    With ``rows="exemplar"``, `cache_teacher_vectors` computes the teacher's session vectors
    of the exemplar set once per cycle; steps then score the cached vectors of their exemplar
    rows (looked up by ``exemplar_index``) instead of running the teacher's encoder on them.
    The teacher is frozen and runs without dropout, so the vectors are the same up to
    rounding (the encoder's products are batched differently; about 1e-6 apart).
    """

    def __init__(
        self,
        teacher: Any,
        weight: Any,
        rows: str = "exemplar",
        temperature: float = 1.0,
        name: str = "kd_loss",
    ) -> None:
        if rows not in ROWS:
            raise ValueError(f"`rows` must be one of {ROWS}, got {rows!r}.")
        if temperature <= 0:
            raise ValueError(f"`temperature` must be > 0, got {temperature}.")
        teacher.trainable = False
        self.teacher = teacher
        self.weight = weight
        self.rows = rows
        self.temperature = float(temperature)
        self.term_names = (name,)
        # [exemplars, d] teacher session vectors, refilled each cycle (one variable of any
        # row count, so a new exemplar set does not retrace the training step).
        self._vectors: tf.Variable | None = None

    def cache_teacher_vectors(self, exemplar_ids: Any, batch_size: int = 512) -> None:
        """Stores the teacher's session vectors of every exemplar (rows in exemplar order).

        Call it under the model's distribution strategy scope whenever the teacher's weights
        or the exemplar set change; the training batches' ``exemplar_index`` must index
        ``exemplar_ids``.

        Raises:
            ValueError: If this term distils on the current rows (they have no index).
        """
        if self.rows != "exemplar":
            raise ValueError("only distillation on exemplar rows can cache teacher vectors")
        ids = np.asarray(exemplar_ids, np.int32)
        # Length-sorted batches carry little padding; rows are put back in exemplar order.
        order = np.argsort(np.count_nonzero(ids, axis=1), kind="stable")
        vectors = np.zeros((len(ids), self.teacher.encoder.hidden_units), np.float32)
        for start in range(0, len(ids), batch_size):
            rows = order[start:start + batch_size]
            vectors[rows] = self.teacher.represent(ids[rows]).numpy()
        if self._vectors is None:
            self._vectors = tf.Variable(vectors, trainable=False, name="teacher_vectors",
                                        shape=tf.TensorShape([None, vectors.shape[1]]))
        else:
            self._vectors.assign(vectors)

    def terms(self, inputs: StepInputs) -> dict[str, Term]:
        mask = inputs.is_exemplar if self.rows == "exemplar" else inputs.current
        rows = tf.where(mask > 0)[:, 0]
        if self._vectors is not None:
            vectors = tf.gather(self._vectors, tf.gather(inputs.exemplar_index, rows))
            teacher_logits = tf.stop_gradient(self.teacher.score(vectors))
        else:
            teacher_logits = tf.stop_gradient(
                self.teacher(tf.gather(inputs.item_ids, rows), training=False)
            )
        num_teacher_items = tf.shape(teacher_logits)[1]
        tf.debugging.assert_less_equal(
            num_teacher_items,
            tf.shape(inputs.logits)[1],
            message="the teacher scores more items than the student",
        )
        student_logits = tf.gather(inputs.logits, rows)[:, :num_teacher_items]
        if self.temperature != 1.0:
            teacher_logits = teacher_logits / self.temperature
            student_logits = student_logits / self.temperature
        row_kd = softmax_cross_entropy(tf.nn.softmax(teacher_logits), student_logits)
        total = tf.reduce_sum(row_kd)
        if self.temperature != 1.0:
            total = total * self.temperature**2
        return {self.term_names[0]: Term(total, tf.reduce_sum(mask), self.weight)}
