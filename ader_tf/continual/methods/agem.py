"""A-GEM (Chaudhry et al., ICLR 2019): exemplars constrain the gradient instead of the loss."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ader_tf.continual.methods.base import CycleContext, Method, refuse_flags

# The objectives are imported where they are built, so that --help needs no TensorFlow.
if TYPE_CHECKING:
    from ader_tf.objectives import Objective


class AGEM(Method):
    """Cross-entropy on the new period; the step is projected where it would raise the loss on
    the exemplar rows of the batch (the episodic memory sample of the paper).

    Exemplars are kept and mixed into batches as for ADER (same `--selection`,
    `--exemplar_size`), but they enter no loss term: only the reference gradient.
    """

    name = "agem"
    keeps_exemplars = True
    replays_exemplars = True
    # Nothing to tune: its one setting is the memory, the same budget for every method.
    search_space = ()

    @classmethod
    def check_config(cls, config: Any) -> None:
        refuse_flags(config, ("disable_distillation", "fix_lambda"),
                     "has no distillation and no weight")

    def continual_objective(self, ctx: CycleContext) -> Objective:
        from ader_tf.objectives import GradientProjection, combine

        return ctx.keep("objective", lambda: combine(self.cross_entropy, GradientProjection()))
