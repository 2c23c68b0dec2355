"""SA-CAISR (Song et al., "Stage-Adaptive and Conflict-Aware Incremental Sequential
Recommendation", arXiv 2602.08678, 2026): the old model screened by Fisher-weighted conflict,
an InfoNCE consistency with it, no exemplars."""

from __future__ import annotations

from typing import Any

from ader_tf.continual.methods.base import CycleContext, Method
from ader_tf.data.pipeline import batch_count
from ader_tf.objectives import Consistency, FisherScreening, Objective, combine

# Salt of the cycle seed that the screening masks are drawn from (the runner uses 1-8).
_MASK_SALT = 10


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
    options = ("sacaisr_alpha", "sacaisr_temperature", "sacaisr_top_k", "sacaisr_max_p",
               "sacaisr_ema_beta", "sacaisr_decay")

    def __init__(self, config: Any) -> None:
        super().__init__(config)
        self._screening: FisherScreening | None = None
        self._objective: Objective | None = None

    @classmethod
    def check_config(cls, config: Any) -> None:
        super().check_config(config)
        if config.distribution_strategy != "none":
            raise ValueError(
                "--method=sacaisr estimates the Fisher information on each whole batch and "
                "takes a row's negatives from the rest of the batch, but under "
                f"--distribution_strategy={config.distribution_strategy} a replica sees only "
                "its share of it; use --distribution_strategy=none"
            )
        checks = (
            ("sacaisr_alpha", config.sacaisr_alpha >= 0, ">= 0"),
            ("sacaisr_temperature", config.sacaisr_temperature > 0, "> 0"),
            ("sacaisr_top_k", config.sacaisr_top_k >= 1, ">= 1"),
            ("sacaisr_max_p", 0 <= config.sacaisr_max_p < 1, "in [0, 1)"),
            ("sacaisr_ema_beta", 0 <= config.sacaisr_ema_beta <= 1, "in [0, 1]"),
            ("sacaisr_decay", 0 <= config.sacaisr_decay <= 1, "in [0, 1]"),
        )
        for flag, ok, wanted in checks:
            if not ok:
                raise ValueError(f"--{flag} must be {wanted}, got {getattr(config, flag)}")

    def weight(self, ctx: CycleContext) -> float:
        return 0.0 if ctx.previous is None else self.config.sacaisr_alpha

    def continual_objective(self, ctx: CycleContext) -> Objective:
        cfg = self.config
        teacher = ctx.teacher()
        # The authors' old model scores every item known now, new ones included.
        teacher.set_max_item(ctx.data.max_item)
        # One objective per run (the teacher object is reused): a new one would retrace
        # the training step every cycle.
        if self._screening is None or self._screening.teacher is not teacher:
            self._screening = FisherScreening(
                teacher, cfg.sacaisr_max_p, cfg.sacaisr_ema_beta, cfg.sacaisr_decay
            )
            consistency = Consistency(self._screening.logits, cfg.sacaisr_alpha,
                                      cfg.sacaisr_temperature, cfg.sacaisr_top_k)
            self._objective = combine(self.cross_entropy, consistency)
        self._screening.start_cycle(
            ctx.seed(_MASK_SALT), batch_count(len(ctx.data.train), cfg.batch_size)
        )
        return self._objective
