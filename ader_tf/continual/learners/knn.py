"""The untrained session-kNN baselines: each cycle only sets the sessions they remember."""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from ader_tf.continual.learners.base import Learner, Training
from ader_tf.options import Option, positive

# What needs TensorFlow (or pandas) is imported where it is used, so that --help needs neither.
if TYPE_CHECKING:
    from ader_tf.data.cycles import CycleData
    from ader_tf.data.examples import Examples
    from ader_tf.data.periods import Sessions

#: The session-kNN backbones this learner serves.
KNN_MODELS = ("sknn", "vsknn")

log = logging.getLogger(__name__)


class KNNLearner(Learner):
    """SKNN / V-SKNN: no model to train; the method decides which past sessions they keep.

    ``model`` stays None (there is no `SessionRecommender`); the fitted index is ``knn``.
    """

    name: ClassVar[str] = "knn"
    trains: ClassVar[bool] = False
    exports: ClassVar[bool] = False
    chosen_by: ClassVar[str] = "--model=sknn/vsknn"
    options: ClassVar[tuple[Option, ...]] = (
        positive("knn_k", 100, "SKNN/V-SKNN: neighbours."),
        positive("knn_sample_size", 500, "SKNN/V-SKNN: candidate neighbours, the most recent "
                 "ones sharing an item."),
        positive("knn_window", 1, "SKNN/V-SKNN with --finetune: how many recent periods it "
                 "remembers."),
    )

    @classmethod
    def check_config(cls, config: Any, method: Any) -> None:
        memory = method.name in ("finetune", "joint") or (
            method.name == "er" and config.selection == "random" and not config.fix_lambda
        )
        if not memory:
            raise ValueError(
                f"--model={config.model} is not trained, so the {config.method!r} method does "
                "not apply (no distillation, dropout, EWC penalty or model-based selection). "
                "Choose its memory instead: --finetune (the last --knn_window periods), "
                "--joint (all past periods) or --disable_distillation --selection=random "
                "(the exemplars' sessions plus the last period)"
            )

    def memory(self, cycle: int) -> Sessions:
        """The past sessions a session-kNN model remembers at ``cycle``, oldest first.

        --joint: every training period; --finetune: the last ``knn_window`` ones; ER with
        random selection: the previous exemplars' sessions, then the last period.
        """
        from ader_tf.data.examples import sessions_from_examples
        from ader_tf.data.periods import Sessions

        method = self.run.method
        if method.retrains_from_scratch:
            periods = list(range(cycle))
        elif not method.keeps_exemplars:
            periods = list(range(max(0, cycle - self.config.knn_window), cycle))
        else:
            periods = [cycle - 1]
        parts = [self.run.data.training_sessions(p) for p in periods]  # probes never kept
        exemplars = self.run.exemplars()
        if method.keeps_exemplars and exemplars is not None and len(exemplars):
            parts.insert(0, sessions_from_examples(exemplars))
        return Sessions.concatenate(parts)

    def train(self, cycle: int, data: CycleData) -> Training:
        """Sets the memory (the cycle's only "training")."""
        from ader_tf.models.sknn import SessionKNN

        cfg = self.config
        t0 = time.time()
        memory = self.memory(cycle)
        self.knn = SessionKNN(k=cfg.knn_k, sample_size=cfg.knn_sample_size,
                                sequential=cfg.model == "vsknn").fit(memory)
        log.info("cycle %d: %s remembers %d sessions", cycle, cfg.model, len(memory))
        return Training(0, 0, time.time() - t0)

    def target_ranks(self, cycle: int, examples: Examples, max_item: int,
                     probes: bool = False) -> np.ndarray:
        # Probes break ties from a stream of their own, so the test set's draws stay the same.
        index = ("probes",) if probes else ()
        return self.knn.target_ranks(examples, max_item,
                                     batch_size=max(self.config.test_batch, 512),
                                     seed=self.run.seed(cycle, "knn_ties", *index))
