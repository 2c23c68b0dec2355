"""SA-CAISR (Song et al., "Stage-Adaptive and Conflict-Aware Incremental Sequential
Recommendation", arXiv 2602.08678, 2026): the old model screened by Fisher-weighted conflict,
an InfoNCE consistency with it, no exemplars."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ader_tf.continual.methods.base import CycleContext, Method, refuse_distribution
from ader_tf.options import Option, in_range, non_negative
from ader_tf.search_space import FloatRange

# What needs TensorFlow is imported where it is used, so that --help needs none.
if TYPE_CHECKING:
    from ader_tf.objectives import Objective


class SACAISR(Method):
    """Cross-entropy on the new period plus `--sacaisr_alpha` x InfoNCE with a screened
    old model, which keeps only what the new data does not contradict.

    Buffer-free: only the previous cycle's best model is kept (the runner's checkpoint, from
    which the teacher is rebuilt on resume), so there is nothing else to save between
    cycles. A cycle after the first trains as follows, step by step (`FisherScreening`,
    `Consistency`):

    1. The old model's Fisher information on the new data: the squared gradient of its
       mean cross-entropy on the batch, smoothed over the cycle's batches
       (F <- beta F + (1 - beta) g^2, `--sacaisr_ema_beta`) and multiplied by
       `--sacaisr_decay` after each epoch; it starts from 0 in every cycle. A weight with a
       large F conflicts with the new period.
    2. Screening: each weight of the old model is dropped with probability
       `--sacaisr_max_p` x (F min-max normalised over its tensor), the kept ones scaled by
       1 / (1 - p); a new mask every step. The old model's stored weights never change.
    3. The screened old model scores the batch over every item known now, and the student
       (trained with dropout) is pulled towards it by an InfoNCE over the batch: positive,
       the screened model's scores of the same row; negatives, its `--sacaisr_top_k`
       most similar other rows, at temperature `--sacaisr_temperature`.
    4. The loss is cross-entropy + alpha x InfoNCE. No gradient is masked or projected and
       no weight of the student is frozen: the screening acts on the reference only.

    Paper and code: this follows the authors' code (GitHub Togmm/SA-CAISR). The paper's
    abstract speaks of selectively removing obsolete knowledge found by parameter-level
    conflicts; the code does it as a stochastic dropout of the *old* model's weights, drawn
    anew at every step with a probability growing with the conflict (no threshold, no
    top fraction, nothing removed for good), in the reference's forward pass only: the
    student's update is neither masked nor penalised. Further, as the code does: the Fisher
    information is the square of the batch-mean gradient (not a mean of per-example squares
    as EWC's), the old model scores the new items too (their rows as initialised), and the
    ablations of the code (Fisher fixed per epoch, KL distillation instead of InfoNCE) are
    not offered; `--sacaisr_max_p=0` turns the screening off, `--sacaisr_ema_beta=0` the
    smoothing. Defaults are the code's, whose default dataset is DIGINETICA. Its Adam uses
    beta_2 = 0.98; ours keeps the protocol's 0.999 for every method.
    """

    name = "sacaisr"
    uses_teacher = True
    # The defaults are those of the authors' code (Togmm/SA-CAISR), whose default dataset is
    # DIGINETICA; the temperature is a constant there.
    options = (
        non_negative("sacaisr_alpha", 4.0, "SA-CAISR: weight of the InfoNCE consistency term."),
        Option("sacaisr_temperature", 0.07, "SA-CAISR: InfoNCE temperature.",
               check=lambda v: v > 0, wanted="> 0"),
        Option("sacaisr_top_k", 128, "SA-CAISR: hardest in-batch negatives per row.",
               check=lambda v: v >= 1, wanted=">= 1"),
        in_range("sacaisr_max_p", 0.8, "SA-CAISR: drop probability of the old model's most "
                 "conflicting weight of each tensor, in [0, 1).", 0, 1, high_included=False),
        in_range("sacaisr_ema_beta", 0.63, "SA-CAISR: share of the history kept when the old "
                 "model's Fisher information is updated each batch.", 0, 1),
        in_range("sacaisr_decay", 0.9, "SA-CAISR: factor on the smoothed Fisher information "
                 "after each epoch.", 0, 1),
    )
    search_space = (FloatRange("sacaisr_alpha", 0.1, 20.0, log=True),
                    FloatRange("sacaisr_max_p", 0.0, 0.95))

    @classmethod
    def check_config(cls, config: Any) -> None:
        super().check_config(config)
        refuse_distribution(config, "estimates the Fisher information on each whole batch "
                            "and takes a row's negatives from the rest of the batch")

    def weight(self, ctx: CycleContext) -> float:
        return 0.0 if ctx.previous is None else self.config.sacaisr_alpha

    def continual_objective(self, ctx: CycleContext) -> Objective:
        from ader_tf.data.pipeline import batch_count
        from ader_tf.objectives import Consistency, FisherScreening, combine

        cfg = self.config
        # The authors' old model scores every item known now, new ones included.
        ctx.teacher.set_max_item(ctx.data.max_item)

        def build() -> tuple[FisherScreening, Objective]:
            screening = FisherScreening(
                ctx.teacher, cfg.sacaisr_max_p, cfg.sacaisr_ema_beta, cfg.sacaisr_decay
            )
            consistency = Consistency(screening.logits, cfg.sacaisr_alpha,
                                      cfg.sacaisr_temperature, cfg.sacaisr_top_k)
            return screening, combine(self.cross_entropy, consistency)

        screening, objective = ctx.keep("objective", build)
        screening.start_cycle(
            ctx.seed("sacaisr_masks"), batch_count(len(ctx.data.train), cfg.batch_size)
        )
        return objective
