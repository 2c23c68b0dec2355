"""GRU4Rec trained its own way: session-parallel mini-batches and a sampled loss."""

from __future__ import annotations

import dataclasses
import logging
from typing import TYPE_CHECKING, Any, ClassVar

from ader_tf.continual.learners.neural import NeuralLearner
from ader_tf.models.session_parallel import LOSSES
from ader_tf.options import Option, non_negative

if TYPE_CHECKING:
    from ader_tf.data.cycles import CycleData

log = logging.getLogger(__name__)


class SessionParallelLearner(NeuralLearner):
    """`NeuralLearner` whose epochs are session-parallel passes over the cycle's sessions.

    Validation examples come from held-out whole sessions (a prefix-level split would leak
    their targets into training); testing and export are the neural learner's.
    """

    name: ClassVar[str] = "session_parallel"
    chosen_by: ClassVar[str] = "--model=gru4rec --gru4rec_training=session_parallel"
    options: ClassVar[tuple[Option, ...]] = (
        Option("gru4rec_loss", "bpr_max", "GRU4Rec session-parallel loss.", choices=LOSSES),
        non_negative("gru4rec_n_sample", 2048,
                     "GRU4Rec session-parallel: extra negatives per step."),
        non_negative("gru4rec_sample_alpha", 0.75,
                     "GRU4Rec session-parallel: negatives drawn with popularity^alpha."),
    )

    @classmethod
    def check_config(cls, config: Any, method: Any) -> None:
        if not method.plain_loss:
            raise ValueError(
                "--gru4rec_training=session_parallel trains on sampled scores of whole "
                "sessions, so it cannot replay exemplars or add a loss term: use it with a "
                "method trained on cross-entropy alone, such as --finetune, --dropout or "
                f"--joint; got the {config.method!r} method"
            )
        if config.distribution_strategy != "none":
            raise ValueError("--gru4rec_training=session_parallel runs on one device only")

    def start_cycle(self, cycle: int, data: CycleData) -> CycleData:
        self.sessions, valid = self.run.data.session_split(
            cycle, joint=self.run.method.retrains_from_scratch
        )
        log.info("cycle %d: session-parallel training on %d sessions, %d validation "
                 "examples from held-out sessions", cycle, len(self.sessions), len(valid))
        data = super().start_cycle(cycle, dataclasses.replace(data, valid=valid))
        self.trainer = self._trainer(cycle)
        return data

    def _trainer(self, cycle: int) -> Any:
        """GRU4Rec's own trainer on this cycle's model (its optimizer and state included)."""
        from ader_tf.continual.session_parallel import SessionParallelTrainer

        cfg = self.config
        return SessionParallelTrainer(
            self.model.encoder, optimizer=self.model.optimizer, loss=cfg.gru4rec_loss,
            batch_size=cfg.batch_size, n_sample=cfg.gru4rec_n_sample,
            sample_alpha=cfg.gru4rec_sample_alpha, seed=self.run.seed(cycle, "gru4rec_negatives"),
            items=self.model.max_item,
        )

    def set_objective(self, objective: Any) -> None:
        """Nothing to set: the sampled loss is the trainer's (methods here are plain)."""

    def train_epoch(self, cycle: int, epoch: int, data: CycleData) -> dict[str, float]:
        return {"loss": self.trainer.train_epoch(self.sessions, progress=self.config.progress)}
