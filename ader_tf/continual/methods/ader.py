"""ADER (Mi, Lin, Faltings, RecSys 2020): herded exemplars replayed with adaptive distillation."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ader_tf.continual.methods.base import CycleContext, Method, adaptive_lambda
from ader_tf.search_space import FloatRange

# The objectives are imported where they are built, so that --help needs no TensorFlow.
if TYPE_CHECKING:
    from ader_tf.objectives import Objective


class ADER(Method):
    """Cross-entropy on the new period plus lambda_t times distillation on the exemplars.

    The teacher is the previous cycle's model; lambda_t grows with the share of old items and
    of exemplars per new example (`adaptive_lambda`), or is `--lambda_` with `--fix_lambda`.
    """

    name = "ader"
    keeps_exemplars = True
    replays_exemplars = True
    uses_teacher = True
    # The base of the adaptive weight (the paper's 0.8, 1.0 on YOOCHOOSE).
    search_space = (FloatRange("lambda_", 0.05, 5.0, log=True),)

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

    def exemplar_term(self, ctx: CycleContext) -> Objective:
        """The term on the exemplar rows: distillation from the previous model."""
        from ader_tf.objectives import Distillation

        return Distillation(ctx.teacher, ctx.weight)

    def continual_objective(self, ctx: CycleContext) -> Objective:
        from ader_tf.objectives import Distillation, combine

        objective = ctx.keep(
            "objective", lambda: combine(self.cross_entropy, self.exemplar_term(ctx))
        )
        exemplar_term = objective.parts[1]
        if isinstance(exemplar_term, Distillation) and ctx.exemplars is not None:
            # The teacher's weights and the exemplars are new each cycle: its vectors too.
            exemplar_term.cache_teacher_vectors(ctx.exemplars.inputs)
        return objective
