"""Cross-entropy on the rows' own targets: current rows (every method) and exemplar rows (ER)."""

from __future__ import annotations

from typing import Any

import tensorflow as tf

from ader_tf.objectives.base import Objective, StepInputs, Term


class CrossEntropy(Objective):
    """Mean cross-entropy of the current-period rows on their targets (`ce_loss`).

    Every row counts as a current row when the batch marks no exemplars.
    """

    term_names = ("ce_loss",)

    def terms(self, inputs: StepInputs) -> dict[str, Term]:
        current = inputs.current
        return {"ce_loss": Term(tf.reduce_sum(inputs.row_ce * current), tf.reduce_sum(current))}


class Replay(Objective):
    """`weight` times the mean cross-entropy of the replayed exemplar rows (`er_loss`).

    Args:
        weight: A float or a scalar variable (a variable lets a method change the weight
            between cycles without retracing the training step).
        name: The term's name.
    """

    def __init__(self, weight: Any, name: str = "er_loss") -> None:
        self.weight = weight
        self.term_names = (name,)

    def terms(self, inputs: StepInputs) -> dict[str, Term]:
        exemplar = inputs.is_exemplar
        return {
            self.term_names[0]: Term(
                tf.reduce_sum(inputs.row_ce * exemplar), tf.reduce_sum(exemplar), self.weight
            )
        }
