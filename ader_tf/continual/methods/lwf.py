"""LwF (Li and Hoiem, ECCV 2016 / TPAMI 2017): distillation on the new data, no exemplars."""

from __future__ import annotations

from typing import Any

from ader_tf.continual.methods.base import CycleContext, Method
from ader_tf.continual.methods.weights import CycleWeight
from ader_tf.objectives import Distillation, Objective, combine


class LwF(Method):
    """Cross-entropy on the new period plus `--lambda_` times distillation, on the same rows.

    The previous cycle's model labels the new period's sessions with its softmax at
    temperature `--lwf_temperature` (the paper's T = 2); the student matches it over the
    items the teacher knew. No exemplar is kept, so nothing of the old periods is stored.
    """

    name = "lwf"
    uses_teacher = True
    options = ("lwf_temperature",)

    def __init__(self, config: Any) -> None:
        super().__init__(config)
        self._weight = CycleWeight()
        self._objective: Objective | None = None
        self._teacher: Any = None

    def weight(self, ctx: CycleContext) -> float:
        return 0.0 if ctx.previous is None else self.config.lambda_

    def continual_objective(self, ctx: CycleContext) -> Objective:
        weight = self._weight.set(self.weight(ctx))
        # Asked every cycle: that refills the teacher with the last cycle's weights. One
        # objective while the teacher object stays the same (a new one retraces the step).
        teacher = ctx.teacher()
        if self._objective is None or teacher is not self._teacher:
            distillation = Distillation(
                teacher, weight, rows="current", temperature=self.config.lwf_temperature
            )
            self._objective = combine(self.cross_entropy, distillation)
            self._teacher = teacher
        return self._objective
