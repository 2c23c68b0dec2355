"""MAS (Aljundi et al., ECCV 2018): an importance penalty whose importance accumulates."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ader_tf.continual.methods.base import CycleContext, Method
from ader_tf.continual.methods.ewc import importance_sample, penalty_objective
from ader_tf.search_space import FloatRange

# What needs TensorFlow is imported where it is used, so that --help needs none.
if TYPE_CHECKING:
    from ader_tf.continual.importance import ImportanceState
    from ader_tf.objectives import Objective


class MAS(Method):
    """Cross-entropy plus (lambda_ / 2) * sum Omega * (theta - theta_prev)^2, without dropout.

    Omega measures how much each weight moves the model's output (no labels needed), on
    `--ewc_sample_num` of the cycle's own training examples: no exemplar is kept. Unlike the
    paper's EWC, whose Fisher information is replaced after each cycle, Omega is summed over
    all cycles so far (as the MAS paper accumulates it), anchored at the latest weights.
    """

    name = "mas"
    trains_with_dropout = False
    # Its importance is on another scale than EWC's Fisher and sums over cycles: at the shared
    # 0.8 the penalty is far too rigid, so the range reaches far down.
    search_space = (FloatRange("lambda_", 1e-4, 10.0, log=True),)

    def __init__(self, config: Any) -> None:
        super().__init__(config)
        self.state: ImportanceState | None = None

    def weight(self, ctx: CycleContext) -> float:
        return 0.0 if ctx.previous is None else self.config.lambda_

    def continual_objective(self, ctx: CycleContext) -> Objective:
        return penalty_objective(self.cross_entropy, self.state, self.weight(ctx), ctx, "mas_loss")

    def after_cycle(self, ctx: CycleContext) -> None:
        from ader_tf.continual.importance import compute_mas_importance

        sample = importance_sample(ctx.data.train, ctx)
        newer = compute_mas_importance(ctx.model, sample.inputs, batch_size=50)
        self.state = newer if self.state is None else (
            self.state.fit_to(ctx.model.trainable_variables).accumulate(newer))
        self.state.save(ctx.state_path(ctx.cycle, "mas"))

    def restore(self, ctx: CycleContext) -> None:
        from ader_tf.continual.importance import ImportanceState

        self.state = ImportanceState.load(ctx.state_path(ctx.cycle, "mas"), ctx.model)
