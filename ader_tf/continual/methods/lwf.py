"""LwF (Li and Hoiem, ECCV 2016 / TPAMI 2017): distillation on the new data, no exemplars."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ader_tf.continual.methods.base import CycleContext, Method
from ader_tf.options import positive
from ader_tf.search_space import FloatRange

# The objectives are imported where they are built, so that --help needs no TensorFlow.
if TYPE_CHECKING:
    from ader_tf.objectives import Objective


class LwF(Method):
    """Cross-entropy on the new period plus `--lambda_` times distillation, on the same rows.

    The previous cycle's model labels the new period's sessions with its softmax at
    temperature `--lwf_temperature` (the paper's T = 2); the student matches it over the
    items the teacher knew. No exemplar is kept, so nothing of the old periods is stored.
    """

    name = "lwf"
    uses_teacher = True
    options = (positive("lwf_temperature", 2.0,
                        "LwF: distillation temperature (the paper's T = 2)."),)
    search_space = (FloatRange("lambda_", 0.01, 10.0, log=True),)

    def weight(self, ctx: CycleContext) -> float:
        return 0.0 if ctx.previous is None else self.config.lambda_

    def continual_objective(self, ctx: CycleContext) -> Objective:
        from ader_tf.objectives import Distillation, combine

        return ctx.keep("objective", lambda: combine(self.cross_entropy, Distillation(
            ctx.teacher, ctx.weight, rows="current", temperature=self.config.lwf_temperature
        )))
