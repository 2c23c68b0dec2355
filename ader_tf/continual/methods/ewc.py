"""EWC (Kirkpatrick et al., PNAS 2017) as the paper runs it: Fisher from exemplars, frozen."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ader_tf.continual.methods.base import CycleContext, Method, refuse_flags
from ader_tf.search_space import FloatRange

# What needs TensorFlow is imported where it is used, so that --help needs none.
if TYPE_CHECKING:
    from ader_tf.continual.importance import ImportanceState
    from ader_tf.objectives import CrossEntropy, Objective


class EWC(Method):
    """Cross-entropy plus (lambda_ / 2) * sum F * (theta - theta_prev)^2, without dropout.

    After each cycle the Fisher information is measured at the best weights on
    `--ewc_sample_num` of the kept exemplars (the exemplars serve only as that sample), and
    replaces the previous one: the paper's EWC, not the online variants (see MAS).
    """

    name = "ewc"
    keeps_exemplars = True
    trains_with_dropout = False
    # The Fisher information of a softmax over thousands of items is small per weight: at the
    # shared 0.8 the penalty barely moves EWC from Finetune, so the range reaches far up.
    search_space = (FloatRange("lambda_", 0.1, 1e4, log=True),)

    def __init__(self, config: Any) -> None:
        super().__init__(config)
        self.state: ImportanceState | None = None

    @classmethod
    def check_config(cls, config: Any) -> None:
        refuse_flags(config, ("disable_distillation",), "replays no exemplars")

    def weight(self, ctx: CycleContext) -> float:
        return 0.0 if ctx.previous is None else self.config.lambda_

    def continual_objective(self, ctx: CycleContext) -> Objective:
        return penalty_objective(self.cross_entropy, self.state, self.weight(ctx), ctx, "ewc_loss")

    def after_cycle(self, ctx: CycleContext) -> None:
        from ader_tf.continual.importance import compute_fisher

        sample = importance_sample(ctx.exemplars, ctx)
        self.state = compute_fisher(ctx.model, sample.inputs, sample.targets, batch_size=50)
        self.state.save(ctx.state_path(ctx.cycle, "ewc"))

    def restore(self, ctx: CycleContext) -> None:
        from ader_tf.continual.importance import ImportanceState

        self.state = ImportanceState.load(ctx.state_path(ctx.cycle, "ewc"), ctx.model)


def importance_sample(examples: Any, ctx: CycleContext) -> Any:
    """Up to ``--ewc_sample_num`` of ``examples``, drawn without replacement (from the
    cycle's ``importance_sample`` stream), that a penalty method measures its importance on."""
    rng = ctx.generator("importance_sample")
    n = min(len(examples), ctx.config.ewc_sample_num)
    return examples.subset(rng.choice(len(examples), n, replace=False))


def penalty_objective(
    cross_entropy: CrossEntropy, state: ImportanceState | None, weight: float,
    ctx: CycleContext, name: str,
) -> Objective:
    """Cross-entropy plus the importance penalty of ``state``, fitted to the model's item
    tables if they have grown (new rows are not penalised)."""
    from ader_tf.objectives import ImportancePenalty, combine

    if state is None:
        raise ValueError(f"cycle {ctx.cycle}: no importance state from the previous cycle")
    state = state.fit_to(ctx.model.trainable_variables)
    penalty = ImportancePenalty(state.importance, state.anchor, weight, name=name)
    return combine(cross_entropy, penalty)
