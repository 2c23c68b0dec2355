"""A quadratic penalty that holds each weight near its anchor, weighted by its importance."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import tensorflow as tf

from ader_tf.objectives.base import Objective, StepInputs, Term


class ImportancePenalty(Objective):
    """(weight / 2) * sum over variables of sum(importance * (theta - anchor)^2).

    EWC's penalty with the Fisher information as importance; MAS's with its output-sensitivity
    importance (same halved convention, so that `--lambda_` means the same for both). The term
    does not depend on the batch, so each replica adds 1/replicas of it.

    Args:
        importance: One tensor per trainable variable of the model, in its order.
        anchor: The variable values the penalty pulls towards, same order and shapes.
        weight: A float or scalar variable.
        name: The term's name.
    """

    def __init__(
        self,
        importance: Sequence[tf.Tensor],
        anchor: Sequence[tf.Tensor],
        weight: Any,
        name: str = "ewc_loss",
    ) -> None:
        if len(importance) != len(anchor):
            raise ValueError(
                f"`importance` and `anchor` must have one tensor per variable, got "
                f"{len(importance)} and {len(anchor)}."
            )
        self.importance = tuple(importance)
        self.anchor = tuple(anchor)
        self.weight = weight
        self.term_names = (name,)

    def check_matches(self, variables: Sequence[Any]) -> None:
        """Raises ValueError unless `variables` have the shapes this penalty was built for."""
        shapes = [tuple(v.shape) for v in variables]
        own = [tuple(f.shape) for f in self.importance]
        if shapes != own:
            raise ValueError(f"penalty is for variable shapes {own}, the model has {shapes}.")

    def penalty(self, variables: Sequence[Any]) -> tf.Tensor:
        """The penalty's value at `variables`."""
        total = tf.add_n(
            [
                tf.reduce_sum(f * tf.square(tf.convert_to_tensor(v) - p))
                for v, f, p in zip(variables, self.importance, self.anchor, strict=True)
            ]
        )
        return tf.cast(self.weight, total.dtype) / 2.0 * total

    def terms(self, inputs: StepInputs) -> dict[str, Term]:
        return {self.term_names[0]: Term(self.penalty(inputs.model.trainable_variables), None)}
