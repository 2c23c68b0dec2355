"""ADER (Mi, Lin, Faltings, RecSys 2020): herded exemplars replayed with adaptive distillation."""

from __future__ import annotations

from typing import Any, ClassVar

from ader_tf.continual.methods.base import CycleContext, Method, adaptive_lambda
from ader_tf.continual.methods.weights import CycleWeight
from ader_tf.objectives import Distillation, Objective, combine


class ADER(Method):
    """Cross-entropy on the new period plus lambda_t times distillation on the exemplars.

    The teacher is the previous cycle's model; lambda_t grows with the share of old items and
    of exemplars per new example (`adaptive_lambda`), or is `--lambda_` with `--fix_lambda`.
    """

    name = "ader"
    keeps_exemplars = True
    replays_exemplars = True
    #: Whether the exemplar term needs the previous cycle's model.
    uses_teacher: ClassVar[bool] = True

    def __init__(self, config: Any) -> None:
        super().__init__(config)
        self._weight = CycleWeight()
        self._objective: Objective | None = None
        self._exemplar_term: Objective | None = None
        self._teacher: Any = None

    def weight(self, ctx: CycleContext) -> float:
        if ctx.previous is None:
            return 0.0
        if self.config.fix_lambda:
            return self.config.lambda_
        num_exemplars = len(ctx.exemplars) if ctx.exemplars is not None else 0
        return adaptive_lambda(
            self.config.lambda_, int(ctx.previous["max_item"]), ctx.data.max_item,
            num_exemplars, len(ctx.data.train),
        )

    def exemplar_term(self, ctx: CycleContext, weight: Any) -> Objective:
        """The term on the exemplar rows: distillation from the previous model."""
        return Distillation(ctx.teacher(), weight)

    def continual_objective(self, ctx: CycleContext) -> Objective:
        weight = self._weight.set(self.weight(ctx))
        teacher = ctx.teacher() if self.uses_teacher else None
        # One objective for the whole run (the teacher object is reused too): a new one
        # would retrace the training step every cycle.
        if self._objective is None or teacher is not self._teacher:
            self._exemplar_term = self.exemplar_term(ctx, weight)
            self._objective = combine(self.cross_entropy, self._exemplar_term)
            self._teacher = teacher
        if isinstance(self._exemplar_term, Distillation) and ctx.exemplars is not None:
            # The teacher's weights and the exemplars are new each cycle: its vectors too.
            self._exemplar_term.cache_teacher_vectors(ctx.exemplars.inputs)
        return self._objective
